"""Segmenter: tiled == whole-image, metadata checks, refusals, default model lookup."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
from onnx_models import darkness_net, default_metadata, random_net  # noqa: E402

from logdigit import segment  # noqa: E402
from logdigit.constants import (BINARY_CLASS_MAP, DEFAULT_MODEL_NAME, META_CLASS_MAP,  # noqa: E402
                                META_HALO)
from logdigit.errors import ModelError  # noqa: E402
from logdigit.segment import Segmenter, load_model_info, plan_tiles  # noqa: E402


def _grey(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


@pytest.mark.parametrize("h,w,tile,band", [(77, 53, 32, 4096), (130, 41, 16, 4096),
                                           (64, 150, 32, 40), (33, 201, 16, 64),
                                           (301, 45, None, 4096)])
def test_tiled_equals_whole(tmp_path, monkeypatch, h, w, tile, band):
    monkeypatch.setattr(segment, "MAX_BAND_WIDTH", band)
    monkeypatch.setattr(segment, "BATCH_PIXELS", 3000)  # several batches per band
    seg = Segmenter(random_net(tmp_path / "r.onnx"), threads=1, tile=tile)
    grey = _grey(h, w)
    rows = []
    cls, conf = seg.predict(grey, progress=rows.append)
    wcls, wconf = seg.predict_whole(grey)
    assert cls.shape == conf.shape == (h, w) and cls.dtype == conf.dtype == np.uint8
    assert sum(rows) == h
    buf = np.full((h + 4, w, 2), 7, np.uint8)            # write into views of a bigger array
    seg.predict(grey, out=(buf[2:-2, :, 0], buf[2:-2, :, 1]))
    np.testing.assert_array_equal(buf[2:-2, :, 0], cls)
    assert (buf[:2] == 7).all() and (buf[-2:] == 7).all()
    assert len(np.unique(wcls)) > 1  # the random net is not constant
    np.testing.assert_array_equal(cls, wcls)
    np.testing.assert_array_equal(conf, wconf)
    code = np.empty((h, w), np.uint8)                     # curve code, confidence skipped
    c2, none = seg.predict(grey, out=(np.empty((h, w), np.uint8), None), code=code)
    _, _, wcode = seg.predict_whole(grey, with_code=True)
    assert none is None and len(np.unique(wcode)) > 4
    np.testing.assert_array_equal(c2, cls)
    np.testing.assert_array_equal(code, wcode)


def test_too_small_halo_breaks_equality(tmp_path, monkeypatch):
    """The equality above depends on the halo: without it tile borders differ."""
    monkeypatch.setattr(segment, "MAX_BAND_WIDTH", 16)
    seg = Segmenter(random_net(tmp_path / "r.onnx"), threads=1, tile=16, halo=0)
    grey = _grey(64, 64, 1)
    assert (seg.predict(grey)[1] != seg.predict_whole(grey)[1]).any()


def test_logits_to_codes_known():
    """P(curve) = 1 - P(background) in 1/15ths, best and runner-up curve classes."""
    from logdigit.segment import CODE_P_LEVELS, logits_to_codes
    p = np.array([[0.6, 0.05, 0.25, 0.02, 0.08],     # background wins; dashed, dashdot next
                  [0.1, 0.5, 0.1, 0.3, 0.0],         # solid, then dotted
                  [0.2, 0.0, 0.1, 0.3, 0.4]])        # dashdot, then dotted
    logits = np.log(np.maximum(p, 1e-9)).T.reshape(1, 5, 1, 3).astype(np.float32)
    cls, conf, code = logits_to_codes(logits)
    np.testing.assert_array_equal(cls[0, 0], [0, 1, 4])
    np.testing.assert_array_equal(code[0, 0] & 15, np.rint((1 - p[:, 0]) * CODE_P_LEVELS))
    np.testing.assert_array_equal((code[0, 0] >> 4) & 3, [1, 0, 3])    # class - 1
    np.testing.assert_array_equal(code[0, 0] >> 6, [3, 2, 2])
    np.testing.assert_array_equal(conf, logits_to_classes_ref(logits))



@pytest.mark.parametrize("C", [2, 5])
def test_logits_to_codes_equals_argmax_reference(C):
    """The channel-by-channel code equals the plain argmax / top-2 computation, ties
    (to the lower class id) included."""
    from logdigit.segment import CODE_P_LEVELS, logits_to_codes
    rng = np.random.default_rng(C)
    logits = rng.integers(-3, 4, size=(2, C, 17, 19)).astype(np.float32)  # many ties
    cls, conf, code = logits_to_codes(logits)
    ref_cls, ref_conf = segment.logits_to_classes(logits)
    np.testing.assert_array_equal(cls, ref_cls)
    np.testing.assert_array_equal(conf, ref_conf)
    ex = np.exp(logits - logits.max(axis=1, keepdims=True))
    p_curve = 1.0 - ex[:, 0] / ex.sum(axis=1)
    np.testing.assert_array_equal(code & 15, np.rint(p_curve * CODE_P_LEVELS).astype(np.uint8))
    if C == 5:
        cur = logits[:, 1:].copy()
        b1 = np.argmax(cur, axis=1)
        np.put_along_axis(cur, b1[:, None], -np.inf, axis=1)
        np.testing.assert_array_equal((code >> 4) & 3, b1)
        np.testing.assert_array_equal(code >> 6, np.argmax(cur, axis=1))
    else:
        assert not (code >> 4).any()

def logits_to_classes_ref(logits):
    return segment.logits_to_classes(logits)[1]


def test_plan_tiles_cover_once():
    bands = plan_tiles(100, 70, 32, 32, 8, 4)
    cover = np.zeros((100, 72), int)
    for band in bands:
        for t in band:
            cover[t.y0:t.y1, t.x0:t.x1] += 1
            assert all(v % 4 == 0 for v in (t.iy0, t.iy1, t.ix0, t.ix1))
            assert t.iy0 <= t.y0 - 8 or t.iy0 == 0
    assert (cover[:100, :70] == 1).all()


def test_darkness_model_and_info(tmp_path):
    p = darkness_net(tmp_path / "d.onnx", dark_class=3)
    info = load_model_info(p)
    assert info.stride == 1 and not info.binary and info.n_classes == 5
    grey = np.full((20, 30), 250, np.uint8)
    grey[5:8, 10:12] = 10
    cls, conf = Segmenter(p, threads=1).predict(grey)
    expect = np.zeros_like(grey)
    expect[5:8, 10:12] = 3
    np.testing.assert_array_equal(cls, expect)
    assert conf.min() > 200


def test_binary_class_map_accepted(tmp_path):
    md = default_metadata(class_map=BINARY_CLASS_MAP)
    info = load_model_info(darkness_net(tmp_path / "b.onnx", n_out=2, metadata=md))
    assert info.binary


def _bad_models(tmp_path):
    md_missing = default_metadata()
    del md_missing[META_HALO]
    md_cm = default_metadata()
    md_cm[META_CLASS_MAP] = json.dumps({"0": "background", "1": "dashed", "2": "solid"})
    md_json = default_metadata()
    md_json[META_HALO] = "not json"
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 this is not onnx" * 10)
    return {
        "metadata lacks logdigit.halo": darkness_net(tmp_path / "m.onnx", metadata=md_missing),
        "class map": darkness_net(tmp_path / "c.onnx", metadata=md_cm, n_out=3),
        "not JSON": darkness_net(tmp_path / "j.onnx", metadata=md_json),
        "no metadata": darkness_net(tmp_path / "n.onnx", metadata={}),
        "not a valid ONNX model": garbage,
        "not found": tmp_path / "absent.onnx",
    }


@pytest.mark.parametrize("case", ["metadata lacks logdigit.halo", "class map", "not JSON",
                                  "no metadata", "not a valid ONNX model", "not found"])
def test_refuses_bad_models(tmp_path, case):
    p = _bad_models(tmp_path)[case]
    with pytest.raises(ModelError) as e:
        Segmenter(p)
    msg = str(e.value)
    assert str(p) in msg
    key = "lacks" if case == "no metadata" else case
    assert key in msg


def test_default_model_lookup(tmp_path):
    with pytest.raises(ModelError, match="--model"):
        segment.default_model_path(tmp_path)
    (tmp_path / "b.onnx").write_bytes(b"")
    (tmp_path / "a.onnx").write_bytes(b"")
    assert segment.default_model_path(tmp_path).name == "a.onnx"
    (tmp_path / "a_other.onnx").write_bytes(b"")
    (tmp_path / DEFAULT_MODEL_NAME).write_bytes(b"")
    assert segment.default_model_path(tmp_path).name == DEFAULT_MODEL_NAME


def test_cuda_without_provider(tmp_path):
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider installed")
    with pytest.raises(ModelError, match="onnxruntime-gpu"):
        Segmenter(darkness_net(tmp_path / "d.onnx"), device="cuda")
