"""The shipped default model: present, small, a valid logdigit model, and it segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import logdigit
from logdigit import constants as C

MODEL = Path(logdigit.__file__).parent / "models" / C.DEFAULT_MODEL_NAME
CARD = MODEL.parent / "MODEL_CARD.md"
#: curve-class IoU the shipped model must beat on rendered tiles (MODEL_CARD.md has its
#: validation figures; the model scores 0.37 on these tiles, 0.50 on the validation split; an untrained
#: one < 0.05)
IOU_FLOOR = 0.25
MAX_BYTES = 10 * 2 ** 20


@pytest.fixture(scope="module")
def model_path() -> Path:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is not shipped in this checkout")
    return MODEL


def test_file_small_valid_and_documented(model_path):
    from export.onnx_export import check_onnx, read_metadata

    assert model_path.stat().st_size < MAX_BYTES
    check_onnx(model_path)  # onnx.checker full_check + image/logits contract
    meta = read_metadata(model_path)
    assert meta[C.META_CLASS_MAP] == C.class_map_json()
    assert meta[C.META_INPUT] == C.DEFAULT_INPUT_NORM
    stride, tile, halo = meta[C.META_STRIDE], meta[C.META_TILE], meta[C.META_HALO]
    assert tile % stride == 0 and halo % stride == 0
    assert halo >= meta["logdigit.receptive_field"]["size"] / 2
    assert len(meta[C.META_CONFIG_SHA]) == 64
    assert CARD.is_file() and meta[C.META_CONFIG_SHA] in CARD.read_text()


def test_runtime_uses_it_by_default(model_path):
    from logdigit.segment import default_model_path, load_model_info

    assert default_model_path().resolve() == model_path.resolve()
    info = load_model_info(None)
    assert info.class_map == C.CLASS_MAP and not info.binary


def test_segments_a_rendered_tile(model_path):
    from export.samples import EXPORT_SEED, labelled_tiles
    from logdigit.segment import Segmenter
    from training.metrics import SegMetrics

    try:
        import training.data  # noqa: F401 - the renderer's datasets
        source = "synth"
    except ImportError:
        pytest.skip("training.data (the renderer) is not importable")
    seg = Segmenter(None, threads=1)
    metrics = SegMetrics(tolerances=(0,))
    # one tile from each of 10 pages (pages vary far more than tiles of one page)
    tiles = [labelled_tiles(1, 256, source=source, seed=EXPORT_SEED + 300 + k)[0]
             for k in range(10)]
    with_curves = [(img, mask) for img, mask in tiles if (mask > 0).sum() > 200]
    assert len(with_curves) >= 5, "the renderer gave too few tiles with curves"
    for img, mask in with_curves:
        classes, conf = seg.predict(img)
        assert classes.shape == img.shape and conf.dtype == np.uint8
        metrics.update(classes, mask)
    iou = metrics.summary()["mean_curve_iou"]
    assert iou is not None and iou > IOU_FLOOR, metrics.summary()["per_class"]
