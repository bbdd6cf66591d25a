"""Compute cost of an ONNX segmentation model, counted from its graph.

Convolutions (and MatMul/Gemm, if any) dominate; their multiply-accumulates are
counted on a copy of the graph whose input is fixed to 1 x 1 x ``size`` x ``size``
and whose shapes are inferred. FLOPs = 2 x MACs. Elementwise ops, pooling and
resizes are not counted (a few per cent of a conv net).
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import shape_inference

from logdigit import constants as C


def _dims(vi) -> list[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def conv_macs(path_or_model: str | os.PathLike | onnx.ModelProto, size: int = 256) -> dict:
    """Multiply-accumulates of one ``size`` x ``size`` input through the graph.

    Returns ``{"macs": int, "macs_per_pixel": float, "gflop_per_mpx": float,
    "by_op": {op: macs}}``. Works on fp32 graphs and on QDQ int8 graphs (the
    DequantizeLinear weights feed the same Conv nodes).
    """
    model = path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(str(path_or_model))
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name == C.ONNX_INPUT_NAME:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, (1, 1, size, size)):
                d.Clear()
                d.dim_value = v
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {vi.name: _dims(vi) for vi in list(model.graph.value_info) + list(model.graph.input)
              + list(model.graph.output)}
    for name, t in inits.items():
        shapes[name] = list(t.dims)
    # QDQ graphs: a weight reaches the Conv through DequantizeLinear
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            shapes[n.output[0]] = list(inits[n.input[0]].dims)
    by_op: dict[str, int] = {}
    for n in model.graph.node:
        macs = 0
        if n.op_type in ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger"):
            w_in = n.input[3] if n.op_type == "QLinearConv" else n.input[1]
            w = shapes.get(w_in)
            out = shapes.get(n.output[0])
            if not w or not out or 0 in out:
                raise ValueError(f"cannot infer shapes around {n.op_type} {n.name!r}")
            if n.op_type == "ConvTranspose":
                x = shapes[n.input[0]]
                macs = int(np.prod(x)) * int(np.prod(w[1:]))
            else:
                macs = int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type in ("MatMul", "Gemm"):
            a, out = shapes.get(n.input[0]), shapes.get(n.output[0])
            if a and out:
                macs = int(np.prod(out)) * a[-1]
        if macs:
            by_op[n.op_type] = by_op.get(n.op_type, 0) + macs
    total = sum(by_op.values())
    px = size * size
    return {"macs": total, "macs_per_pixel": total / px, "gflop_per_mpx": 2 * total / px * 1e6 / 1e9,
            "by_op": by_op}
