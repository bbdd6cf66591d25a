"""Segmentation model registry: shapes, gradients, rebuild, encoder map, ONNX with dynamic H/W."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from logdigit.constants import NUM_CLASSES, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME
from training.models import MODELS, build_model, count_parameters, list_models

torch.set_num_threads(1)


@pytest.fixture(params=list_models())
def name(request):
    return request.param


def _input(model, n=2, mult_h=2, mult_w=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, model.stride * mult_h, model.stride * mult_w, generator=g)


def test_registry_lists_required_names():
    assert {"unet_light", "unet_resnet18", "unet_resnet34"} <= set(MODELS)
    assert list_models() == sorted(MODELS)


def test_unknown_name_lists_models():
    with pytest.raises(ValueError) as e:
        build_model("unet_nope")
    for n in MODELS:
        assert n in str(e.value)


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="valid options"):
        build_model("unet_light", no_such_option=3)


@pytest.mark.parametrize("num_classes", [NUM_CLASSES, 1])
def test_shape_full_resolution(name, num_classes):
    torch.manual_seed(0)
    m = build_model(name, num_classes=num_classes)
    x = _input(m)
    y = m(x)
    assert y.shape == (x.shape[0], num_classes, x.shape[2], x.shape[3])
    assert torch.isfinite(y).all()
    assert m.num_classes == num_classes and m.name == name


def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    m = build_model(name).train()
    x = _input(m)
    target = torch.randint(0, NUM_CLASSES, (x.shape[0], x.shape[2], x.shape[3]))
    loss = F.cross_entropy(m(x), target)
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_rebuild_from_model_args_and_prefixes(name):
    m = build_model(name)
    m2 = build_model(m.name, **m.model_args)
    sd, sd2 = m.state_dict(), m2.state_dict()
    assert sd.keys() == sd2.keys()
    assert all(sd[k].shape == sd2[k].shape for k in sd)
    assert {k.split(".")[0] for k in sd} == {"encoder", "decoder", "head"}
    assert count_parameters(m) == count_parameters(m2)


def test_encode_returns_deepest_map(name):
    m = build_model(name).eval()
    x = _input(m, n=1, mult_h=2, mult_w=2)
    with torch.no_grad():
        f = m.encode(x)
    assert f.shape == (1, m.encoder_channels, x.shape[2] // m.stride, x.shape[3] // m.stride)


def test_light_width_and_depth_configurable():
    m = build_model("unet_light", base_width=8, depth=3)
    assert m.stride == 4 and m.encoder_channels == 32
    y = m(torch.rand(1, 1, 16, 20))
    assert y.shape == (1, NUM_CLASSES, 16, 20)
    with pytest.raises(ValueError):
        build_model("unet_light", depth=1)


def test_onnx_export_dynamic_height_width(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    m = build_model(name).eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            m, (_input(m, n=1, mult_h=1, mult_w=1),), str(path), dynamo=False,
            input_names=[ONNX_INPUT_NAME], output_names=[ONNX_OUTPUT_NAME],
            dynamic_axes={ONNX_INPUT_NAME: {0: "n", 2: "h", 3: "w"},
                          ONNX_OUTPUT_NAME: {0: "n", 2: "h", 3: "w"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for mh, mw in [(1, 1), (3, 2)]:
        x = _input(m, n=2, mult_h=mh, mult_w=mw, seed=mh)
        out = sess.run(None, {ONNX_INPUT_NAME: x.numpy()})[0]
        with torch.no_grad():
            ref = m(x).numpy()
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-3)
