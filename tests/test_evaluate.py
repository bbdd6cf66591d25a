"""Metrics known by construction, and the evaluate command on a checkpoint and on its ONNX export."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from logdigit.constants import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME
from training.checkpoint import save_checkpoint
from training.evaluate import EvalConfig, cli, evaluate
from training.finetune import DataConfig
from training.metrics import SegMetrics, confusion_matrix, iou_from_confusion
from training.models import build_model

torch.set_num_threads(1)


def _lines() -> np.ndarray:
    t = np.zeros((32, 32), np.uint8)
    t[:, 8] = 1       # solid, 1 px wide
    t[4:28, 20] = 2   # dashed column
    return t


def test_perfect_prediction_scores_one():
    t = _lines()
    m = SegMetrics()
    m.update(t, t)
    s = m.summary()
    assert s["per_class"]["solid"]["iou"] == 1.0 and s["per_class"]["dashed"]["iou"] == 1.0
    assert s["per_class"]["solid"]["f1_tol0"] == 1.0
    assert s["per_class"]["dotted"]["iou"] is None  # absent from truth and prediction
    assert s["mean_curve_iou"] == 1.0


@pytest.mark.parametrize("shift,strict,tol1,tol2", [(1, 0.0, 1.0, 1.0), (2, 0.0, 0.0, 1.0)])
def test_shifted_line_is_tolerated_within_tolerance(shift, strict, tol1, tol2):
    t = _lines()
    p = np.zeros_like(t)
    p[:, 8 + shift] = 1
    p[4:28, 20] = 2
    m = SegMetrics()
    m.update(p, t)
    solid = m.summary()["per_class"]["solid"]
    assert solid["iou"] == strict
    assert solid["f1_tol1"] == tol1 and solid["f1_tol2"] == tol2


def test_confusion_matrix_rows_are_truth():
    t = np.array([[0, 1, 1, 2]])
    p = np.array([[0, 1, 2, 2]])
    cm = confusion_matrix(p, t, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    np.testing.assert_allclose(iou_from_confusion(cm), [1.0, 0.5, 0.5])


def test_half_missed_line_recall():
    t = _lines()
    p = t.copy()
    p[16:, 8] = 0  # lower half of the solid line missed
    m = SegMetrics()
    m.update(p, t)
    solid = m.summary()["per_class"]["solid"]
    assert solid["precision_tol0"] == 1.0 and solid["recall_tol0"] == 0.5
    assert solid["iou"] == 0.5


@pytest.fixture
def tiny_ckpt(tmp_path):
    torch.manual_seed(0)
    m = build_model("unet_light", base_width=4, depth=2).eval()
    data = DataConfig(source="toy", count=12, size=32, val_fraction=0.5)
    path = save_checkpoint(tmp_path / "m.pt", kind="finetune", model_name=m.name,
                           model_args=m.model_args, state_dict=m.state_dict(),
                           config={"data": data.__dict__}, config_sha256="0" * 64, step=3)
    return m, data, path


def test_checkpoint_and_onnx_agree(tiny_ckpt, tmp_path):
    ort = pytest.importorskip("onnxruntime")  # noqa: F841
    m, data, path = tiny_ckpt
    onnx_path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.rand(1, 1, 32, 32),), str(onnx_path), dynamo=False,
                          input_names=[ONNX_INPUT_NAME], output_names=[ONNX_OUTPUT_NAME],
                          dynamic_axes={ONNX_INPUT_NAME: {0: "n", 2: "h", 3: "w"},
                                        ONNX_OUTPUT_NAME: {0: "n", 2: "h", 3: "w"}})
    cfg = EvalConfig(data=data, device="cpu", png_tiles=2)
    a = evaluate(cfg, checkpoint=str(path), out_dir=tmp_path / "a")
    b = evaluate(cfg, onnx=str(onnx_path), out_dir=tmp_path / "b")
    assert a["source"] == b["source"] == "val:6"
    assert a["confusion_matrix"]["counts"] == b["confusion_matrix"]["counts"]
    assert sum(map(sum, a["confusion_matrix"]["counts"])) == 6 * 32 * 32
    assert (tmp_path / "a" / "predictions.png").stat().st_size > 100
    with pytest.raises(ValueError, match="exactly one"):
        evaluate(cfg)


def test_cli_fresh_tiles_writes_json(tiny_ckpt, tmp_path):
    _, _, path = tiny_ckpt
    out = tmp_path / "ev"
    r = CliRunner().invoke(cli, ["--checkpoint", str(path), "--count", "3", "--out", str(out),
                                 "device=cpu"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "eval.json").read_text())
    assert res["source"] == "fresh:3" and res["tiles"] == 3
    assert "f1_tol2" in res["per_class"]["solid"]
    assert "mean curve IoU" in r.output
    r = CliRunner().invoke(cli, ["--count", "3"])
    assert r.exit_code != 0 and "exactly one" in r.output


def test_score_streams_an_iterator_like_a_list():
    """Fresh-tile evaluation is rendered while scored: an iterator (consumed once, no len)
    must give the same summary as the list, and keep only the tiles asked for."""
    from training.evaluate import iter_fresh_items, score

    data = DataConfig(source="toy", task="multiclass", size=32)
    items = list(iter_fresh_items(data, 7))
    rng = np.random.default_rng(0)

    def predict(x):  # deterministic per tile: truth with some pixels flipped
        return np.stack([np.where(rng.random(t.shape) < 0.1, 0, t) for t in cur.pop(0)]).astype(np.uint8)

    names = {0: "background", 1: "solid", 2: "dashed", 3: "dotted", 4: "dashdot"}
    cur = [[it["mask"].numpy() for it in items[i:i + 3]] for i in range(0, 7, 3)]
    s_list, p_list, k_list = score(predict, items, 5, names, batch_size=3)
    rng = np.random.default_rng(0)
    cur = [[it["mask"].numpy() for it in items[i:i + 3]] for i in range(0, 7, 3)]
    s_iter, p_iter, k_iter = score(predict, iter_fresh_items(data, 7), 5, names, batch_size=3, keep=2)
    assert s_iter == s_list
    assert len(p_list) == len(k_list) == 7 and len(p_iter) == len(k_iter) == 2
    assert np.array_equal(p_iter[1], p_list[1])
    assert torch.equal(k_iter[1]["image"], items[1]["image"])


def test_fresh_tiles_take_render_overrides():
    """``render`` scores one condition: every fresh tile follows the overrides (here all
    1-bit), the default stream does not, and bad keys or sources are refused up front."""
    from training.config import ConfigError
    from training.evaluate import iter_fresh_items

    data = DataConfig(source="synth", task="multiclass", size=64)
    one_bit = [it["image"].unique().numel() for it in iter_fresh_items(data, 4, {"binarize_prob": 1.0})]
    assert all(n <= 2 for n in one_bit), one_bit
    grey = [it["image"].unique().numel() for it in iter_fresh_items(data, 4, {"binarize_prob": 0.0})]
    assert all(n > 2 for n in grey), grey
    with pytest.raises(ConfigError, match="render.no_such_key"):
        iter_fresh_items(data, 1, {"no_such_key": 1})
    with pytest.raises(ConfigError, match="data.source=synth"):
        iter_fresh_items(DataConfig(source="toy", size=32), 1, {"binarize_prob": 1.0})


def test_render_overrides_need_fresh_tiles(tiny_ckpt, tmp_path):
    _, _, path = tiny_ckpt
    r = CliRunner().invoke(cli, ["--checkpoint", str(path), "--out", str(tmp_path / "ev"),
                                 "device=cpu", "render.binarize_prob=1.0"])
    assert r.exit_code != 0 and "--count" in r.output
