"""torch -> ONNX: rebuild a network from its checkpoint, export it, write and read
the logdigit metadata, run the ONNX checker.

The exporter is the TorchScript one (``torch.onnx.export(..., dynamo=False)`` with
``dynamic_axes``). torch 2.14 defaults to the dynamo exporter, which has produced
wrong graphs for plain conv nets (pytorch/pytorch#166797, a Conv bias of the wrong
shape in ResNet50); the TorchScript path gives a clean Conv/Relu/MaxPool/Resize
graph with BatchNorm folded into the convolutions. ``exporter="dynamo"`` is kept as
an option; whichever is used, :func:`export.parity.check_parity` must pass before a
file is accepted.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import onnx
import torch

from logdigit import constants as C
from logdigit.errors import ModelError

#: lowest ONNX opset accepted (issue 6: >= 17)
MIN_OPSET = 17
DEFAULT_OPSET = 17
EXPORTERS = ("torchscript", "dynamo")


def model_from_checkpoint(ckpt: Mapping[str, Any]) -> torch.nn.Module:
    """Rebuild the network of a checkpoint dict (``training.checkpoint.load_checkpoint``).

    Uses ``ckpt["model"]["name"]`` / ``["args"]`` through ``training.models.build_model``
    and loads ``ckpt["state_dict"]`` strictly; returns the model in eval mode on CPU.
    """
    from training.models import build_model

    spec = ckpt.get("model") or {}
    if "name" not in spec:
        raise ValueError("checkpoint has no model name (ckpt['model']['name']); "
                         "re-save it with training.checkpoint.save_checkpoint")
    args = dict(spec.get("args") or {})
    model = build_model(spec["name"], **args)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval().cpu()


def model_stride(model: torch.nn.Module) -> int:
    """The factor H and W of the input must divide by (``model.stride``, default 1)."""
    return int(getattr(model, "stride", 1) or 1)


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                exporter: str = "torchscript", sample_size: int | None = None) -> Path:
    """Export ``model`` (input N x 1 x H x W float32 -> logits N x C x H x W) to ``path``.

    Batch, height and width are dynamic; the weights are stored inside the file.
    The file is written atomically. Metadata is added afterwards by
    :func:`write_metadata`.

    Parameters
    ----------
    sample_size : int, optional
        Edge of the square dummy input used for tracing (default: 4 x stride, >= 64).
    """
    from logdigit.fsutil import atomic_path

    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: use >= {MIN_OPSET}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter {exporter!r} unknown: use one of {EXPORTERS}")
    stride = model_stride(model)
    size = sample_size or max(64, 4 * stride)
    size = -(-size // stride) * stride
    # batch 2, non-square: a dummy with distinct dims keeps the tracer from
    # specialising any of them
    dummy = torch.rand(2, 1, size, size + stride)
    model = model.eval().cpu()
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
            if exporter == "torchscript":
                axes = {0: "batch", 2: "height", 3: "width"}
                torch.onnx.export(
                    model, (dummy,), str(tmp), dynamo=False, opset_version=opset,
                    input_names=[C.ONNX_INPUT_NAME], output_names=[C.ONNX_OUTPUT_NAME],
                    dynamic_axes={C.ONNX_INPUT_NAME: axes, C.ONNX_OUTPUT_NAME: axes},
                    do_constant_folding=True, export_params=True)
            else:
                dim = torch.export.Dim
                shapes = {"x": {0: dim("batch", min=1), 2: dim.DYNAMIC, 3: dim.DYNAMIC}}
                prog = torch.onnx.export(
                    model, (dummy,), dynamo=True, opset_version=opset, external_data=False,
                    input_names=[C.ONNX_INPUT_NAME], output_names=[C.ONNX_OUTPUT_NAME],
                    dynamic_shapes=_rename_shapes(model, shapes))
                prog.save(str(tmp), external_data=False)
    return Path(path)


def _rename_shapes(model: torch.nn.Module, shapes: dict) -> dict:
    """dynamic_shapes keyed by the model's own forward argument name."""
    import inspect

    params = [p for p in inspect.signature(model.forward).parameters if p != "self"]
    return {params[0]: shapes["x"]}


def build_metadata(*, stride: int, tile: int, halo: int, config_sha256: str,
                   metrics: Mapping[str, Any] | None,
                   class_map: Mapping[int, str] = C.CLASS_MAP,
                   input_norm: Mapping[str, Any] = C.DEFAULT_INPUT_NORM,
                   extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The ``custom_metadata_map`` of a logdigit model: key -> JSON text.

    Keys are ``logdigit.constants.META_*``; ``extra`` adds further ``logdigit.*``
    entries (e.g. receptive field, model name) that the runtime does not require.
    """
    if tile % stride or tile <= 0:
        raise ValueError(f"tile {tile} must be a positive multiple of the stride {stride}")
    meta = {
        C.META_CLASS_MAP: C.class_map_json(dict(class_map)),
        C.META_INPUT: dict(input_norm),
        C.META_STRIDE: int(stride),
        C.META_TILE: int(tile),
        C.META_HALO: int(halo),
        C.META_CONFIG_SHA: str(config_sha256),
        C.META_METRICS: dict(metrics or {}),
    }
    meta.update(extra or {})
    return {k: json.dumps(v, sort_keys=True) for k, v in meta.items()}


def write_metadata(path: str | os.PathLike, metadata: Mapping[str, str], *,
                   doc: str = "") -> None:
    """Replace the ``logdigit.*`` metadata of the ONNX file at ``path`` (atomic rewrite)."""
    from logdigit.fsutil import atomic_write_bytes

    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in metadata.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "logdigit"
    if doc:
        model.doc_string = doc
    atomic_write_bytes(path, model.SerializeToString())


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``logdigit.*`` metadata of an ONNX file, JSON-decoded.

    Raises :class:`~logdigit.errors.ModelError` naming the file when a required key
    (``constants.META_REQUIRED``) is missing or a value is not JSON.
    """
    model = onnx.load(str(path), load_external_data=False)
    raw = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in C.META_REQUIRED if k not in raw]
    if missing:
        raise ModelError(f"not a logdigit model: metadata {missing} missing; "
                         "export it with `logdigit-train export`", path)
    out = {}
    for k, v in raw.items():
        if k.startswith("logdigit."):
            try:
                out[k] = json.loads(v)
            except json.JSONDecodeError:
                raise ModelError(f"metadata {k!r} is not JSON: {v[:60]!r}", path) from None
    return out


def check_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """``onnx.checker`` with ``full_check`` (shape inference too) plus the logdigit
    contract: opset >= 17, one input ``image`` [N,1,H,W] float32, one output
    ``logits`` [N,C,H,W] float32 with dynamic N/H/W, weights inside the file.

    Returns the loaded model; raises :class:`~logdigit.errors.ModelError`.
    """
    path = Path(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"ONNX checker failed: {e}", path) from None
    model = onnx.load(str(path))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ModelError(f"opset {opset} < {MIN_OPSET}", path)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ModelError("weights are stored outside the file; export with them inside", path)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    outputs = list(model.graph.output)
    if [i.name for i in inputs] != [C.ONNX_INPUT_NAME] or [o.name for o in outputs] != [C.ONNX_OUTPUT_NAME]:
        raise ModelError(f"graph I/O must be {C.ONNX_INPUT_NAME!r} -> {C.ONNX_OUTPUT_NAME!r}, got "
                         f"{[i.name for i in inputs]} -> {[o.name for o in outputs]}", path)
    for vi, want_c in ((inputs[0], 1), (outputs[0], None)):
        tt = vi.type.tensor_type
        if tt.elem_type != onnx.TensorProto.FLOAT:
            raise ModelError(f"{vi.name} must be float32", path)
        dims = tt.shape.dim
        if len(dims) != 4:
            raise ModelError(f"{vi.name} must be 4-D N x C x H x W", path)
        for ax in (0, 2, 3):
            if dims[ax].HasField("dim_value"):
                raise ModelError(f"{vi.name} axis {ax} is fixed ({dims[ax].dim_value}); "
                                 "export with dynamic batch, height and width", path)
        if want_c is not None and dims[1].dim_value != want_c:
            raise ModelError(f"{vi.name} must have {want_c} channel(s)", path)
    return model
