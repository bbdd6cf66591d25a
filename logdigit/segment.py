"""Tiled onnxruntime segmentation of whole scans with bounded memory.

The network is run on bands of tiles with a halo around each tile's core, so that
the tiled result equals the whole-image result (the halo covers at least half the
network's receptive field). Only uint8 arrays of the whole scan are kept (class mask,
confidence and/or the curve code of :func:`logits_to_codes`): memory is bounded by
the tile, not by the scan height.

Model file contract (DESIGN.md): input ``image`` float32 N x 1 x H x W (dynamic H, W),
output ``logits`` N x C x H x W, ``custom_metadata_map`` with JSON values under the
``META_*`` keys of :mod:`logdigit.constants`. A model whose metadata is missing, whose
class map is neither :data:`CLASS_MAP` nor :data:`BINARY_CLASS_MAP`, or whose graph
names differ is refused with a :class:`~logdigit.errors.ModelError`.

Examples
--------
>>> seg = Segmenter("model.onnx", threads=2)              # doctest: +SKIP
>>> classes, confidence = seg.predict(grey)                # doctest: +SKIP
>>> code = np.empty(grey.shape, np.uint8)                  # doctest: +SKIP
>>> classes, _ = seg.predict(grey, out=(classes, None), code=code)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib.resources
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .constants import (BINARY_CLASS_MAP, CLASS_MAP, DEFAULT_MODEL_NAME, META_CLASS_MAP, META_CONFIG_SHA,
                        META_HALO, META_INPUT, META_METRICS, META_REQUIRED, META_STRIDE,
                        META_TILE, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME)
from .errors import ModelError

#: Value used to pad the image to a multiple of the stride (white paper).
PAD_VALUE: int = 255
#: Pixels per inference batch (tiles of one band are grouped up to this size).
BATCH_PIXELS: int = 1_500_000
#: Pixels per block of logits post-processed at once: the dozen float temporaries of
#: :func:`logits_to_codes` then stay in the CPU cache (2.5x faster than whole tiles).
POST_PIXELS: int = 64_000
#: A band is one tile row; tiles span the full padded width when it is at most this.
MAX_BAND_WIDTH: int = 4096

DEVICES = ("cpu", "cuda")


@dataclass
class ModelInfo:
    """What a logdigit ONNX model says about itself.

    Attributes
    ----------
    path : Path
        The model file.
    class_map : dict[int, str]
        :data:`CLASS_MAP` (multiclass) or :data:`BINARY_CLASS_MAP`.
    input_norm : dict
        ``channels, scale, invert, mean, std``: x = ((pixel*scale), 1-x if invert, -mean)/std.
    stride, tile, halo : int
        Input H, W must divide by ``stride``; recommended tile edge and halo (px).
    config_sha256 : str
    metrics : dict
    """

    path: Path
    class_map: dict[int, str]
    input_norm: dict[str, Any]
    stride: int
    tile: int
    halo: int
    config_sha256: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        """True for a background/curve model (no line styles)."""
        return self.class_map == BINARY_CLASS_MAP

    @property
    def n_classes(self) -> int:
        return len(self.class_map)

    def describe(self) -> str:
        """One line for headers and logs: file name and config hash."""
        return f"{self.path.name} (config sha256 {self.config_sha256[:12]})"


def default_model_path(root: str | os.PathLike | None = None) -> Path:
    """The model shipped in ``logdigit/models/`` (or ``root``):
    :data:`~logdigit.constants.DEFAULT_MODEL_NAME` if present, else the first ``*.onnx``
    by name.

    Raises
    ------
    ModelError
        when no model is shipped, telling the user to pass ``--model``.
    """
    if root is None:
        root = importlib.resources.files("logdigit") / "models"
    cands: list[Path] = []
    try:
        cands = sorted(Path(str(p)) for p in Path(str(root)).iterdir() if p.name.endswith(".onnx"))
    except (FileNotFoundError, NotADirectoryError):
        pass
    if not cands:
        raise ModelError("no model is shipped in this installation: pass --model PATH "
                         "(a logdigit ONNX model)", str(root))
    for p in cands:
        if p.name == DEFAULT_MODEL_NAME:
            return p
    return cands[0]


_ARENA_REGISTERED: bool | None = None
_ARENA_LOCK = threading.Lock()


def _shared_cpu_arena(ort) -> bool:
    """Register (once per process) a CPU arena that grows by what is requested rather
    than by powers of two; False where this onnxruntime cannot."""
    global _ARENA_REGISTERED
    with _ARENA_LOCK:   # Dask worker threads may load models at once
        if _ARENA_REGISTERED is None:
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                         ort.OrtMemType.DEFAULT)
                # max_mem 0 = no cap; extend strategy 1 = kSameAsRequested; -1 = defaults
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
                _ARENA_REGISTERED = True
            except Exception:   # older builds lack the env-allocator API
                _ARENA_REGISTERED = False
        return _ARENA_REGISTERED


def _session(path: Path, threads: int | None, device: str):
    import onnxruntime as ort

    if device not in DEVICES:
        raise ModelError(f"device {device!r} is unknown: use cpu or cuda", str(path))
    if not path.is_file():
        raise ModelError("model file not found: pass --model PATH to an existing file", str(path))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # the arena keeps the activations' buffers between bands (2.5x faster than fresh
    # allocations, which page-fault); grown only as requested, not by doubling (memory)
    opts.enable_cpu_mem_arena = True
    opts.enable_mem_pattern = False
    if device == "cpu" and _shared_cpu_arena(ort):
        opts.add_session_config_entry("session.use_env_allocators", "1")
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ModelError("--device cuda needs onnxruntime-gpu (pip install "
                             "'logdigit[gpu]') and a CUDA GPU; use --device cpu", str(path))
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ModelError(f"not a valid ONNX model ({first}): pass a logdigit model "
                         "exported by `logdigit-train export`", str(path)) from None


def _info_from_session(sess, path: Path) -> ModelInfo:
    def err(msg: str) -> ModelError:
        return ModelError(msg + ": this is not a logdigit model (export it with "
                          "`logdigit-train export`)", str(path))

    ins, outs = sess.get_inputs(), sess.get_outputs()
    if len(ins) != 1 or ins[0].name != ONNX_INPUT_NAME:
        raise err(f"model input must be one tensor named {ONNX_INPUT_NAME!r}, "
                  f"found {[i.name for i in ins]}")
    if not outs or outs[0].name != ONNX_OUTPUT_NAME:
        raise err(f"model output must be named {ONNX_OUTPUT_NAME!r}, found {[o.name for o in outs]}")
    shape = ins[0].shape
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 1):
        raise err(f"model input must be N x 1 x H x W, found {shape}")
    meta = sess.get_modelmeta().custom_metadata_map or {}
    missing = [k for k in META_REQUIRED if k not in meta]
    if missing:
        raise err(f"model metadata lacks {', '.join(missing)}")
    vals: dict[str, Any] = {}
    for k in META_REQUIRED:
        try:
            vals[k] = json.loads(meta[k])
        except (TypeError, ValueError):
            raise err(f"model metadata {k} is not JSON ({meta[k]!r:.60})") from None
    cm_raw = vals[META_CLASS_MAP]
    try:
        cm = {int(k): str(v) for k, v in dict(cm_raw).items()}
    except (TypeError, ValueError):
        raise err(f"model metadata {META_CLASS_MAP} is not a class map") from None
    if cm not in (CLASS_MAP, BINARY_CLASS_MAP):
        raise ModelError(f"model class map {cm} differs from logdigit's {CLASS_MAP} (or the "
                         f"binary {BINARY_CLASS_MAP}): retrain or re-export the model with "
                         "the current class map", str(path))
    norm = vals[META_INPUT]
    if not isinstance(norm, dict) or not {"scale", "invert", "mean", "std"} <= set(norm):
        raise err(f"model metadata {META_INPUT} must hold scale, invert, mean, std")
    if int(norm.get("channels", 1)) != 1:
        raise err("model must take one input channel (grey)")
    try:
        stride, tile, halo = (int(vals[k]) for k in (META_STRIDE, META_TILE, META_HALO))
    except (TypeError, ValueError):
        raise err("model metadata stride/tile/halo must be integers") from None
    if stride < 1 or tile < stride or halo < 0:
        raise err(f"model metadata stride={stride}, tile={tile}, halo={halo} are not usable")
    metrics = vals[META_METRICS] if isinstance(vals[META_METRICS], dict) else {}
    return ModelInfo(path=path, class_map=cm, input_norm=dict(norm), stride=stride, tile=tile,
                     halo=halo, config_sha256=str(vals[META_CONFIG_SHA]), metrics=metrics)


def load_model_info(path: str | os.PathLike | None = None) -> ModelInfo:
    """Read and check a model's metadata (``None``: the shipped model).

    Raises
    ------
    ModelError
        when the file is missing, not ONNX, or not a logdigit model.
    """
    p = default_model_path() if path is None else Path(path)
    return _info_from_session(_session(p, 1, "cpu"), p)


def normalise(grey: np.ndarray, norm: dict[str, Any]) -> np.ndarray:
    """uint8 pixels -> float32 network input per the model's ``logdigit.input``."""
    x = grey.astype(np.float32) * np.float32(norm.get("scale", 1.0 / 255.0))
    if norm.get("invert"):
        x = np.float32(1.0) - x
    mean, std = float(norm.get("mean", 0.0)), float(norm.get("std", 1.0))
    if mean != 0.0 or std != 1.0:
        x = (x - np.float32(mean)) / np.float32(std)
    return x


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


@dataclass(frozen=True)
class Tile:
    """One tile: core ``[y0, y1) x [x0, x1)`` written to the output, read from the
    input window ``[iy0, iy1) x [ix0, ix1)`` of the stride-padded image."""

    y0: int
    y1: int
    x0: int
    x1: int
    iy0: int
    iy1: int
    ix0: int
    ix1: int


def plan_tiles(height: int, width: int, tile_h: int, tile_w: int, halo: int,
               stride: int) -> list[list[Tile]]:
    """Tiles covering an ``height`` x ``width`` image, grouped in bands (tile rows).

    All edges are multiples of ``stride`` in the image padded to a multiple of
    ``stride``, so pooling grids align with the whole-image run.
    """
    ph, pw = _round_up(height, stride), _round_up(width, stride)
    th, tw = _round_up(tile_h, stride), _round_up(tile_w, stride)
    h = _round_up(halo, stride)
    bands = []
    for y0 in range(0, ph, th):
        y1 = min(y0 + th, ph)
        band = []
        for x0 in range(0, pw, tw):
            x1 = min(x0 + tw, pw)
            band.append(Tile(y0, y1, x0, x1, max(0, y0 - h), min(ph, y1 + h),
                             max(0, x0 - h), min(pw, x1 + h)))
        bands.append(band)
    return bands


def logits_to_classes(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``logits`` float [N, C, H, W] -> (classes uint8 [N, H, W], confidence uint8
    [N, H, W] = round(255 * max softmax probability))."""
    cls = np.argmax(logits, axis=1)
    lmax = np.take_along_axis(logits, cls[:, None], axis=1)
    denom = np.exp(logits - lmax).sum(axis=1)
    conf = np.clip(np.rint(255.0 / denom), 0, 255).astype(np.uint8)
    return cls.astype(np.uint8), conf


#: Curve code (one uint8 per pixel, what the network says beyond the argmax):
#: bits 0-3 P(curve) = 1 - P(background) in 1/15ths (0..15); bits 4-5 the most likely
#: curve class - 1; bits 6-7 the second most likely curve class - 1 (binary models: 0).
CODE_P_LEVELS: int = 15
CODE_P_MASK: int = 0x0F


def logits_to_codes(logits: np.ndarray, want_conf: bool = True
                    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``logits`` float [N, C, H, W] -> (classes uint8 [N, H, W], confidence uint8
    [N, H, W] or None, curve code uint8 [N, H, W]; see :data:`CODE_P_LEVELS`).

    The code keeps, without a float copy of the scan, the probability that a pixel is
    ink of any curve (faint curves where background won the argmax still score) and
    the two best curve classes (a style the calibration does not list for a track can
    give way to the runner-up). Classes and confidence equal
    :func:`logits_to_classes`; ties go to the lower class id, as in ``np.argmax``.
    Done channel by channel (C is 2 or 5): cheaper than argmax along a short axis.
    """
    C = logits.shape[1]
    l0 = logits[:, 0]
    if C == 2:                                   # binary: one curve class
        b1 = b2 = np.zeros(l0.shape, np.uint8)
        m1 = logits[:, 1]
    else:   # top two of the four curve logits by pairs (np.where and argmax are slow)
        a, b, c, d = (logits[:, k] for k in range(1, 5))
        ab, cd = (b > a).view(np.uint8), (d > c).view(np.uint8)     # ties: the lower id
        hi1, lo1 = np.maximum(a, b), np.minimum(a, b)
        hi2, lo2 = np.maximum(c, d), np.minimum(c, d)
        top = (hi2 > hi1).view(np.uint8)                 # the second pair holds the best
        ih1, il1, ih2, il2 = ab, 1 - ab, 2 + cd, 3 - cd   # class - 1 of each value
        m1 = np.maximum(hi1, hi2)
        b1 = ih1 + top * (ih2 - ih1)
        other = np.minimum(hi1, hi2)                     # runner-up: the other pair's high
        io = ih2 + top * (ih1 - ih2)
        low = np.where(top.view(bool), lo2, lo1)         # ... or the best pair's low
        il = il1 + top * (il2 - il1)
        later = ((other > low) | ((other == low) & (io < il))).view(np.uint8)
        b2 = il + later * (io - il)
    cls = (m1 > l0).view(np.uint8) * (b1 + 1).astype(np.uint8)
    lmax = np.maximum(l0, m1)
    e0 = np.exp(l0 - lmax)
    denom, buf = e0.copy(), np.empty_like(e0)
    for k in range(1, C):
        np.subtract(logits[:, k], lmax, out=buf)
        denom += np.exp(buf, out=buf)
    conf = np.clip(np.rint(255.0 / denom), 0, 255).astype(np.uint8) if want_conf else None
    p_curve = 1.0 - e0 / denom
    code = np.clip(np.rint(p_curve * CODE_P_LEVELS), 0, CODE_P_LEVELS).astype(np.uint8)
    if C > 2:
        code |= (b1 << 4) | (b2 << 6)
    return cls, conf, code


class Segmenter:
    """A loaded segmentation model, reusable across scans.

    Parameters
    ----------
    model_path : path or None
        ONNX model; ``None`` = the model shipped in ``logdigit/models/``.
    threads : int or None
        onnxruntime intra-op threads (None: onnxruntime's default, all cores).
    device : {"cpu", "cuda"}
        ``cuda`` uses the CUDA execution provider (needs onnxruntime-gpu).
    tile : int or None
        Tile edge (px); default the model's recommended ``logdigit.tile``. A band spans
        the whole padded width when that is at most :data:`MAX_BAND_WIDTH`; with the
        default tile such a band is made as tall as :data:`BATCH_PIXELS` allows (less
        halo overhead).
    halo : int or None
        Halo (px) around each tile core; default the model's ``logdigit.halo``.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int | None = None,
                 device: str = "cpu", tile: int | None = None, halo: int | None = None):
        path = default_model_path() if model_path is None else Path(model_path)
        self.session = _session(path, threads, device)
        self.info = _info_from_session(self.session, path)
        self.device = device
        self.tile = int(tile or self.info.tile)
        self.halo = int(self.info.halo if halo is None else halo)
        self.tall = tile is None   # full-width bands grow to BATCH_PIXELS unless tile is set

    @property
    def binary(self) -> bool:
        return self.info.binary

    def run(self, x: np.ndarray, release: bool = False) -> np.ndarray:
        """Raw network call: float32 [N, 1, H, W] -> logits float32 [N, C, H, W].

        ``release``: hand the memory arena's free buffers back to the system after the
        call (the last band of a scan: the arena would otherwise stay at its peak while
        the scan is vectorised)."""
        opts = None
        if release and self.device == "cpu":
            import onnxruntime as ort

            opts = ort.RunOptions()
            opts.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        out = self.session.run([ONNX_OUTPUT_NAME], {ONNX_INPUT_NAME: x}, opts)[0]
        if out.ndim != 4 or out.shape[0] != x.shape[0] or out.shape[2:] != x.shape[2:]:
            raise ModelError(f"model returned logits of shape {out.shape} for input "
                             f"{x.shape}: expected N x C x H x W", str(self.info.path))
        return out

    def predict(self, grey: np.ndarray, progress: Callable[[int], None] | None = None,
                out: tuple[np.ndarray, np.ndarray | None] | None = None,
                code: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """Segment a whole scan.

        Parameters
        ----------
        grey : uint8 [H, W]
            The scan (paper light, ink dark).
        progress : callable(int) or None
            Called with the number of image rows finished after each band.
        out : (uint8 [H, W], uint8 [H, W] or None) or None
            Arrays (or views) to write the classes and confidence into; a confidence
            of None is not computed (and None is returned for it).
        code : uint8 [H, W] or None
            Also write the per-pixel curve code here (:func:`logits_to_codes`).

        Returns
        -------
        classes : uint8 [H, W]
            Class ids (:data:`CLASS_MAP` or :data:`BINARY_CLASS_MAP`).
        confidence : uint8 [H, W] or None
            255 x the winning class's softmax probability.
        """
        if grey.ndim != 2 or grey.dtype != np.uint8:
            raise ValueError(f"grey must be uint8 [H, W], got {grey.dtype} {grey.shape}")
        H, W = grey.shape
        s = self.info.stride
        ph, pw = _round_up(H, s), _round_up(W, s)
        if pw <= MAX_BAND_WIDTH:   # full-width bands, as tall as a batch allows (less halo)
            tile_w = pw
            tile_h = max(self.tile, (BATCH_PIXELS // pw) // s * s) if self.tall else self.tile
        else:
            tile_w = tile_h = self.tile
        bands = plan_tiles(H, W, tile_h, tile_w, self.halo, s)
        if out is None:
            classes, conf = np.empty((H, W), np.uint8), np.empty((H, W), np.uint8)
        else:
            classes, conf = out
        for a in (classes, conf, code):
            if a is not None and a.shape != (H, W):
                raise ValueError(f"out and code arrays must be {(H, W)}, got {a.shape}")
        norm = self.info.input_norm

        def work():
            """(tiles, input batch, rows finished after it or None, last batch?), band by band."""
            for b, band in enumerate(bands):
                iy0, iy1 = band[0].iy0, band[0].iy1
                strip = np.full((iy1 - iy0, pw), PAD_VALUE, np.uint8)
                ry1 = min(iy1, H)
                strip[: ry1 - iy0, :W] = grey[iy0:ry1]
                xs = normalise(strip, norm)
                # group tiles of equal window shape into batches
                groups: dict[tuple[int, int], list[Tile]] = {}
                for t in band:
                    groups.setdefault((t.iy1 - t.iy0, t.ix1 - t.ix0), []).append(t)
                chunks = [tiles[k:k + per] for (wh, ww), tiles in groups.items()
                          for per in [max(1, BATCH_PIXELS // (wh * ww))]
                          for k in range(0, len(tiles), per)]
                for i, chunk in enumerate(chunks):  # batches made one at a time (memory)
                    batch = np.ascontiguousarray(np.stack([xs[:, t.ix0:t.ix1] for t in chunk])[:, None])
                    last = i == len(chunks) - 1
                    done = max(0, min(band[0].y1, H) - band[0].y0) if last else None
                    yield chunk, batch, done, last and b == len(bands) - 1

        def post(chunk: list[Tile], logits: np.ndarray) -> None:
            for n, t in enumerate(chunk):   # post-process the cores only (not halos)
                y1, x1 = min(t.y1, H), min(t.x1, W)
                if y1 <= t.y0 or x1 <= t.x0:
                    continue
                oy, ox = t.y0 - t.iy0, t.x0 - t.ix0
                step = max(1, POST_PIXELS // (x1 - t.x0))
                for r0 in range(t.y0, y1, step):   # blocks that stay in the CPU cache
                    r1 = min(y1, r0 + step)
                    lg = logits[n:n + 1, :, oy + r0 - t.y0:oy + r1 - t.y0, ox:ox + x1 - t.x0]
                    if code is None:
                        c, q = logits_to_classes(lg)
                    else:
                        c, q, k = logits_to_codes(lg, conf is not None)
                        code[r0:r1, t.x0:x1] = k[0]
                    classes[r0:r1, t.x0:x1] = c[0]
                    if conf is not None:
                        conf[r0:r1, t.x0:x1] = q[0]

        # the next batch runs in onnxruntime (which releases the GIL) while this one is
        # post-processed in numpy: one batch of logits more in memory, not a serial tail
        from concurrent.futures import ThreadPoolExecutor

        jobs = work()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="logdigit-onnx") as ex:
            nxt = next(jobs, None)
            fut = ex.submit(self.run, nxt[1], nxt[3]) if nxt is not None else None
            while fut is not None:
                cur, logits = nxt, fut.result()
                nxt = next(jobs, None)
                fut = ex.submit(self.run, nxt[1], nxt[3]) if nxt is not None else None
                post(cur[0], logits)
                del logits
                if cur[2] is not None and progress is not None:
                    progress(cur[2])
        return classes, conf

    def predict_whole(self, grey: np.ndarray, with_code: bool = False) -> tuple[np.ndarray, ...]:
        """The reference: one network call on the whole (stride-padded) image. For tests
        and small images only (memory grows with the image). Returns (classes,
        confidence), plus the curve code when ``with_code``."""
        H, W = grey.shape
        s = self.info.stride
        img = np.full((_round_up(H, s), _round_up(W, s)), PAD_VALUE, np.uint8)
        img[:H, :W] = grey
        cls, conf, code = logits_to_codes(self.run(normalise(img, self.info.input_norm)[None, None]))
        if with_code:
            return cls[0, :H, :W], conf[0, :H, :W], code[0, :H, :W]
        return cls[0, :H, :W], conf[0, :H, :W]

