"""Checkpoint -> checked, metadata-carrying ONNX model (+ optional int8 / fp16 variants).

:func:`export_checkpoint` is what ``logdigit-train export`` runs:

1. rebuild the network from the checkpoint alone (``model{name,args}`` + weights);
2. measure its receptive field -> halo (>= half the field) and recommended tile;
3. export (TorchScript exporter, dynamic N/H/W, opset >= 17, weights inside);
4. write the ``logdigit.*`` metadata; ``onnx.checker`` full check + I/O contract;
5. parity against PyTorch on rendered tiles of several sizes (refuses the file when
   max |diff| > 1e-3 x scale or argmax agreement < 99.99 %);
6. ``int8``: static QDQ quantisation calibrated on rendered tiles, kept only when the
   curve-class IoU drops <= 0.01 and it is faster here; ``fp16``: for the CUDA EP.

A JSON report (``<output stem>.export.json``) records every figure.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from logdigit import constants as C

from . import onnx_export as ox
from .parity import check_parity
from .receptive import receptive_field, recommend_halo, recommend_tile
from .samples import EXPORT_SEED, labelled_tiles, parity_tiles


@dataclass
class ExportOptions:
    """Options of one export (CLI flags map 1:1)."""

    opset: int = ox.DEFAULT_OPSET
    exporter: str = "torchscript"
    tile: int | None = None            #: recommended tile edge; None = from the halo
    halo: int | None = None            #: halo px; None = from the receptive field
    int8: bool = False
    fp16: bool = False
    source: str = "synth"              #: tiles for parity / calibration: synth or toy
    seed: int = EXPORT_SEED
    parity_sizes: list[tuple[int, int]] = field(default_factory=lambda: [
        (64, 64), (128, 256), (256, 128), (384, 384)])
    calib_tiles: int = 32
    calib_size: int = 256
    eval_tiles: int = 24
    eval_size: int = 256
    threads: int = 0


def variant_path(output: str | os.PathLike, variant: str) -> Path:
    """``model.onnx`` -> ``model.int8.onnx`` / ``model.fp16.onnx`` / ``model.export.json``."""
    p = Path(output)
    ext = ".json" if variant == "export" else ".onnx"
    return p.with_name(f"{p.stem}.{variant}{ext}")


def export_checkpoint(ckpt_path: str | os.PathLike, output: str | os.PathLike,
                      opts: ExportOptions | None = None,
                      log: Callable[[str], None] = lambda s: None) -> dict:
    """Run the whole export; returns the report (also written next to ``output``).

    Raises
    ------
    logdigit.errors.ModelError
        when the checker or the parity check fails (no output file is left behind).
    """
    import torch

    from logdigit.errors import ModelError
    from logdigit.fsutil import atomic_write_text
    from training.checkpoint import load_checkpoint

    opts = opts or ExportOptions()
    output = Path(output)
    ckpt = load_checkpoint(ckpt_path)
    model = ox.model_from_checkpoint(ckpt)
    stride = ox.model_stride(model)
    num_classes = int(getattr(model, "num_classes", C.NUM_CLASSES))
    class_map = C.CLASS_MAP if num_classes == C.NUM_CLASSES else C.BINARY_CLASS_MAP

    rf = receptive_field(model)
    halo = opts.halo if opts.halo is not None else recommend_halo(rf, stride)
    tile = opts.tile or recommend_tile(halo, stride)
    log(f"receptive field {rf.size} px (reach {rf.reach}); halo {halo}, tile {tile}, stride {stride}")

    ox.export_onnx(model, output, opset=opts.opset, exporter=opts.exporter)
    extra = {
        "logdigit.model": {"name": ckpt["model"]["name"], "args": ckpt["model"].get("args", {}),
                           "parameters": sum(p.numel() for p in model.parameters()),
                           "step": ckpt.get("step"), "epoch": ckpt.get("epoch"),
                           "kind": ckpt.get("kind")},
        "logdigit.receptive_field": {"size": rf.size, "reach": rf.reach},
        "logdigit.export": {"exporter": opts.exporter, "opset": opts.opset,
                            "torch": torch.__version__, "variant": "fp32"},
    }
    meta = ox.build_metadata(stride=stride, tile=tile, halo=halo,
                             config_sha256=ckpt.get("config_sha256", ""),
                             metrics=ckpt.get("metrics") or {}, class_map=class_map, extra=extra)
    ox.write_metadata(output, meta, doc=f"logdigit segmentation model {ckpt['model']['name']}")
    report: dict = {"checkpoint": str(ckpt_path), "output": str(output),
                    "options": asdict(opts), "stride": stride, "tile": tile, "halo": halo,
                    "receptive_field": asdict(rf) | {"size": rf.size},
                    "machine": {"cpu": _cpu_name(), "python": platform.python_version()}}
    try:
        ox.check_onnx(output)
        sizes = [(-(-h // stride) * stride, -(-w // stride) * stride) for h, w in opts.parity_sizes]
        tiles = parity_tiles(sizes, source=opts.source, seed=opts.seed)
        par = check_parity(model, output, tiles, threads=opts.threads)
        report["parity"] = par.to_dict()
        log(f"parity: max |diff| {par.max_abs:.2e} (scale {par.scale:.1f}), "
            f"argmax agreement {100 * par.argmax_agree:.4f} %")
        if not par.ok:
            raise ModelError(f"parity check failed: max |diff| {par.max_abs:.3g} vs "
                             f"{par.rtol} x scale {par.scale:.3g}, argmax agreement "
                             f"{par.argmax_agree:.6f} < {par.min_agree}; try --exporter "
                             "torchscript or report the model", output)
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    from .flops import conv_macs

    report["cost"] = conv_macs(output)
    report["size_bytes"] = {"fp32": output.stat().st_size}
    if opts.int8:
        report["int8"] = _int8(output, opts, log)
    if opts.fp16:
        report["fp16"] = _fp16(model, output, tiles, opts, log)
    atomic_write_text(variant_path(output, "export"), json.dumps(report, indent=2) + "\n")
    return report


def _int8(fp32: Path, opts: ExportOptions, log) -> dict:
    from .quantize import int8_decision, quantize_int8

    out = variant_path(fp32, "int8")
    calib = [img for img, _ in labelled_tiles(opts.calib_tiles, opts.calib_size,
                                              source=opts.source, seed=opts.seed + 100)]
    quantize_int8(fp32, out, calib)
    _set_variant(out, "int8")
    ox.check_onnx(out)
    evals = labelled_tiles(opts.eval_tiles, opts.eval_size, source=opts.source,
                           seed=opts.seed + 200)
    dec = int8_decision(fp32, out, evals, threads=opts.threads)
    log(f"int8 {dec.reason}")
    d = dec.to_dict() | {"path": str(out) if dec.kept else None,
                         "size_bytes": out.stat().st_size}
    if not dec.kept:
        out.unlink()
    return d


def _fp16(model, fp32: Path, tiles, opts: ExportOptions, log) -> dict:
    from .quantize import convert_fp16

    out = variant_path(fp32, "fp16")
    convert_fp16(fp32, out)
    _set_variant(out, "fp16")
    ox.check_onnx(out)
    # CPU run of the fp16 graph: a check of the graph, not of CUDA-EP speed
    par = check_parity(model, out, tiles, rtol=2e-2, min_agree=0.999, threads=opts.threads)
    log(f"fp16: max |diff| {par.max_abs:.2e}, argmax agreement {100 * par.argmax_agree:.3f} % "
        "(CPU EP)")
    return {"path": str(out), "size_bytes": out.stat().st_size, "parity_cpu": par.to_dict()}


def _set_variant(path: Path, variant: str) -> None:
    meta = ox.read_metadata(path)
    exp = dict(meta.get("logdigit.export", {}), variant=variant)
    ox.write_metadata(path, {"logdigit.export": json.dumps(exp, sort_keys=True)})


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
