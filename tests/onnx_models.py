"""Tiny hand-built ONNX models with logdigit metadata, for runtime tests (no torch).

- :func:`random_net`: conv 3x3 -> relu -> avgpool /2 -> conv 3x3 -> relu -> upsample x2
  (+ skip) -> conv 1x1, random weights, stride 2; for the tiling-equality test.
- :func:`darkness_net`: 1x1 conv: dark pixels -> class ``dark_class`` (default solid),
  light -> background; for end-to-end runs on images whose only ink is curves.
- ``metadata`` overrides / drops make invalid models for the refusal tests.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from logdigit.constants import (CLASS_MAP, DEFAULT_INPUT_NORM, META_CLASS_MAP, META_CONFIG_SHA,
                                META_HALO, META_INPUT, META_METRICS, META_STRIDE, META_TILE,
                                NUM_CLASSES, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME, class_map_json)


def default_metadata(stride: int = 1, tile: int = 64, halo: int = 8,
                     class_map: dict[int, str] = CLASS_MAP) -> dict[str, str]:
    """Valid logdigit metadata (JSON-encoded values)."""
    return {
        META_CLASS_MAP: json.dumps(class_map_json(class_map)),
        META_INPUT: json.dumps(DEFAULT_INPUT_NORM),
        META_STRIDE: json.dumps(stride),
        META_TILE: json.dumps(tile),
        META_HALO: json.dumps(halo),
        META_CONFIG_SHA: json.dumps("0" * 64),
        META_METRICS: json.dumps({"note": "test model"}),
    }


def _model(nodes, inits, path, metadata, n_out=NUM_CLASSES, input_name=ONNX_INPUT_NAME):
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info(ONNX_OUTPUT_NAME, TensorProto.FLOAT, ["N", n_out, "H", "W"])
    graph = helper.make_graph(nodes, "logdigit_test", [x], [y], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for k, v in (metadata or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def random_net(path, seed: int = 0, metadata: dict[str, str] | None = None, n_out=NUM_CLASSES):
    """Random stride-2 conv net (receptive field about 16 px; halo 8 suffices)."""
    rng = np.random.default_rng(seed)
    w = lambda *s: numpy_helper.from_array(rng.normal(0, 1.0, s).astype(np.float32))  # noqa: E731
    z = lambda n: numpy_helper.from_array(np.zeros(n, np.float32))  # noqa: E731
    inits = [w(4, 1, 3, 3), z(4), w(4, 4, 3, 3), z(4), w(n_out, 4, 1, 1), z(n_out),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    for t, n in zip(inits[:6], ["w1", "b1", "w2", "b2", "w3", "b3"]):
        t.name = n
    nodes = [
        helper.make_node("Conv", [ONNX_INPUT_NAME, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("AveragePool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Resize", ["r2", "", "scales"], ["u2"], mode="nearest"),
        helper.make_node("Add", ["u2", "r1"], ["s"]),
        helper.make_node("Conv", ["s", "w3", "b3"], [ONNX_OUTPUT_NAME]),
    ]
    md = default_metadata(stride=2, tile=32, halo=8) if metadata is None else metadata
    return _model(nodes, inits, path, md, n_out)


def darkness_net(path, dark_class: int = 1, metadata: dict[str, str] | None = None,
                 n_out=NUM_CLASSES, threshold: float = 0.5):
    """1x1 conv: x < threshold (dark ink) -> ``dark_class``, else background."""
    wt = np.zeros((n_out, 1, 1, 1), np.float32)
    b = np.full(n_out, -20.0, np.float32)
    wt[0, 0, 0, 0], b[0] = 10.0, -10.0 * threshold
    wt[dark_class, 0, 0, 0], b[dark_class] = -10.0, 10.0 * threshold
    inits = [numpy_helper.from_array(wt, "w"), numpy_helper.from_array(b, "b")]
    nodes = [helper.make_node("Conv", [ONNX_INPUT_NAME, "w", "b"], [ONNX_OUTPUT_NAME])]
    md = default_metadata(stride=1, tile=64, halo=0) if metadata is None else metadata
    return _model(nodes, inits, path, md, n_out)
