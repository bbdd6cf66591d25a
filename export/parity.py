"""Parity of an exported ONNX model against the PyTorch network it came from."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from logdigit import constants as C

#: issue 6 acceptance: max |logit difference| <= RTOL x max(1, max |logit|) ...
PARITY_RTOL = 1e-3
#: ... and argmax agreement on at least this fraction of pixels
PARITY_ARGMAX = 0.9999


@dataclass
class ParityResult:
    """Per-tile and overall parity figures.

    ``max_abs``: largest |onnx - torch| logit difference; ``scale``: max(1, max |torch
    logit|); ``argmax_agree``: fraction of pixels with the same class; ``ok``: every
    tile's difference within ``rtol`` x its scale and the agreement >= ``min_agree``.
    """

    max_abs: float
    scale: float
    argmax_agree: float
    pixels: int
    rtol: float = PARITY_RTOL
    min_agree: float = PARITY_ARGMAX
    tiles: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        close = all(t["max_abs"] <= self.rtol * t["scale"] for t in self.tiles)
        return close and self.argmax_agree >= self.min_agree

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def normalise(tile: np.ndarray, norm: dict = C.DEFAULT_INPUT_NORM) -> np.ndarray:
    """uint8 [H, W] grey tile -> float32 [1, 1, H, W] model input, exactly as the
    runtime computes it (``logdigit.segment.normalise``)."""
    from logdigit.segment import normalise as runtime_normalise

    return np.ascontiguousarray(runtime_normalise(tile, dict(norm))[None, None])


def ort_session(path: str | os.PathLike, threads: int = 0, *, level: str = "all",
                providers: Sequence[str] = ("CPUExecutionProvider",)):
    """An onnxruntime session with graph optimisation ``level`` (basic/extended/all)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=list(providers))


def check_parity(model, onnx_path: str | os.PathLike, tiles: Iterable[np.ndarray], *,
                 rtol: float = PARITY_RTOL, min_agree: float = PARITY_ARGMAX,
                 threads: int = 0) -> ParityResult:
    """Run ``model`` (torch, eval) and the ONNX file on the same tiles and compare.

    Parameters
    ----------
    tiles : iterable of uint8 [H, W]
        Grey tiles; H and W multiples of the model's stride (sizes may differ, which
        exercises the dynamic axes).
    """
    import torch

    sess = ort_session(onnx_path, threads)
    model = model.eval()
    worst, scale, agree, total, per = 0.0, 1.0, 0, 0, []
    for tile in tiles:
        x = normalise(tile)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run([C.ONNX_OUTPUT_NAME], {C.ONNX_INPUT_NAME: x})[0]
        if got.shape != ref.shape:
            raise AssertionError(f"ONNX output shape {got.shape} != torch {ref.shape}")
        d = float(np.abs(got - ref).max())
        s = max(1.0, float(np.abs(ref).max()))
        a = int((got.argmax(1) == ref.argmax(1)).sum())
        n = int(ref.shape[0] * ref.shape[2] * ref.shape[3])
        per.append({"shape": list(tile.shape), "max_abs": d, "scale": s, "argmax_agree": a / n})
        worst, scale, agree, total = max(worst, d), max(scale, s), agree + a, total + n
    if not total:
        raise ValueError("no tiles given for the parity check")
    return ParityResult(max_abs=worst, scale=scale, argmax_agree=agree / total, pixels=total,
                        rtol=rtol, min_agree=min_agree, tiles=per)
