"""CPU and GPU variants of an exported model: static int8 (QDQ) and fp16.

int8: ``onnxruntime.quantization.quantize_static`` in QDQ format, per-channel int8
weights, uint8 activations, calibrated on rendered tiles; the variant is *kept* only
when its curve-class IoU drop against the fp32 model is <= :data:`MAX_IOU_DROP` and
it is faster on this CPU (:func:`int8_decision`).

fp16: every float32 initializer and op in float16 with float32 graph I/O kept
(``onnxruntime.transformers.float16``), meant for the CUDA execution provider.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx

from logdigit import constants as C

from .parity import normalise, ort_session

#: largest accepted drop of the curve-class IoU (int8 vs fp32)
MAX_IOU_DROP = 0.01


class _TileReader:
    """``CalibrationDataReader`` over uint8 grey tiles."""

    def __init__(self, tiles: Sequence[np.ndarray]):
        self._it = iter([{C.ONNX_INPUT_NAME: normalise(t)} for t in tiles])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - not used by MinMax calibration
        pass


def quantize_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                  calib_tiles: Sequence[np.ndarray], *, method: str = "minmax") -> Path:
    """Static int8 QDQ quantisation (per-channel weights) calibrated on ``calib_tiles``.

    The metadata of the fp32 file is copied over. ``method``: minmax, percentile, entropy.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from logdigit.fsutil import atomic_path

    if not len(calib_tiles):
        raise ValueError("int8 calibration needs at least one tile")
    cm = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
          "entropy": CalibrationMethod.Entropy}[method]
    with tempfile.TemporaryDirectory() as td:
        pre = Path(td) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        with atomic_path(out_path) as tmp:
            quantize_static(str(pre), str(tmp), _TileReader(calib_tiles),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=cm,
                            extra_options={"CalibTensorRangeSymmetric": False})
            _copy_metadata(fp32_path, tmp)
    return Path(out_path)


def convert_fp16(fp32_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """fp16 weights and compute, float32 ``image`` / ``logits`` kept (for the CUDA EP)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from logdigit.fsutil import atomic_write_bytes

    model = onnx.load(str(fp32_path))
    m16 = convert_float_to_float16(model, keep_io_types=True)
    _toposort(m16.graph)  # the converter appends its input Casts at the end
    del m16.metadata_props[:]
    m16.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(m16, full_check=True)
    atomic_write_bytes(out_path, m16.SerializeToString())
    return Path(out_path)


def _toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so every node follows its producers."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or a dangling input")
        for n in ready:
            known.update(n.output)
        ordered += ready
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def _copy_metadata(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    a, b = onnx.load(str(src)), onnx.load(str(dst))
    del b.metadata_props[:]
    b.metadata_props.extend(a.metadata_props)
    b.producer_name = a.producer_name or b.producer_name
    onnx.save(b, str(dst))


# ------------------------------------------------------------------ accuracy and speed

def session_metrics(path: str | os.PathLike, samples: Iterable[tuple[np.ndarray, np.ndarray]],
                    threads: int = 0, tolerances: Sequence[int] = (0,)) -> dict:
    """``training.metrics.SegMetrics`` summary of the ONNX model at ``path`` on
    ``(image uint8 [H, W], mask uint8 [H, W])`` pairs (H, W multiples of the stride);
    ``["mean_curve_iou"]`` is the curve-class IoU."""
    from training.metrics import SegMetrics

    sess = ort_session(path, threads)
    seg = None
    for img, mask in samples:
        logits = sess.run([C.ONNX_OUTPUT_NAME], {C.ONNX_INPUT_NAME: normalise(img)})[0]
        if seg is None:
            names = C.CLASS_MAP if logits.shape[1] == C.NUM_CLASSES else C.BINARY_CLASS_MAP
            seg = SegMetrics(num_classes=logits.shape[1], tolerances=tuple(tolerances),
                             class_names=dict(names))
        seg.update(logits[0].argmax(0), mask)
    if seg is None:
        raise ValueError("no samples for the metrics")
    return seg.summary()


def session_speed(path: str | os.PathLike, shape: tuple[int, int, int, int], *,
                  threads: int = 0, repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds per call of the ONNX model on a random input of ``shape``."""
    sess = ort_session(path, threads)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    feed = {C.ONNX_INPUT_NAME: x}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@dataclass
class Int8Decision:
    """Why the int8 variant is kept or dropped."""

    iou_fp32: float
    iou_int8: float
    iou_drop: float
    sec_fp32: float
    sec_int8: float
    speedup: float
    max_iou_drop: float
    cpu_vnni: bool
    kept: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_has_vnni() -> bool:
    """True when /proc/cpuinfo lists avx512_vnni or avx_vnni (fast int8 dot products)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def int8_decision(fp32_path: str | os.PathLike, int8_path: str | os.PathLike,
                  samples: Sequence[tuple[np.ndarray, np.ndarray]], *,
                  speed_shape: tuple[int, int, int, int] = (1, 1, 512, 512),
                  threads: int = 0, max_drop: float = MAX_IOU_DROP) -> Int8Decision:
    """Compare int8 with fp32 on labelled tiles (curve-class IoU) and on speed."""
    i32 = session_metrics(fp32_path, samples, threads)["mean_curve_iou"] or 0.0
    i8 = session_metrics(int8_path, samples, threads)["mean_curve_iou"] or 0.0
    s32 = session_speed(fp32_path, speed_shape, threads=threads)
    s8 = session_speed(int8_path, speed_shape, threads=threads)
    drop = i32 - i8
    ok_acc, ok_fast = drop <= max_drop, s8 < s32
    reason = ("kept: " if ok_acc and ok_fast else "dropped: ") + "; ".join([
        f"curve IoU drop {drop:+.4f} {'<=' if ok_acc else '>'} {max_drop}",
        f"int8 {s32 / s8:.2f}x the fp32 speed ({'faster' if ok_fast else 'not faster'})"])
    return Int8Decision(iou_fp32=i32, iou_int8=i8, iou_drop=drop, sec_fp32=s32, sec_int8=s8,
                        speedup=s32 / s8, max_iou_drop=max_drop, cpu_vnni=cpu_has_vnni(),
                        kept=ok_acc and ok_fast, reason=reason)
