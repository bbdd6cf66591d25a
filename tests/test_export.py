"""Export: torch -> ONNX round trip, metadata, checker, parity, int8 / fp16, FLOP count."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from export import onnx_export as ox
from export.build import ExportOptions, export_checkpoint, variant_path
from export.flops import conv_macs
from export.parity import check_parity, normalise, ort_session
from export.quantize import convert_fp16, int8_decision, quantize_int8
from export.receptive import receptive_field, recommend_halo, recommend_tile
from export.samples import labelled_tiles, parity_tiles
from logdigit import constants as C
from logdigit.errors import ModelError
from training.checkpoint import save_checkpoint
from training.models import build_model

torch.set_num_threads(1)

#: tiny members of the model family: (name, args)
TINY = [("unet_light", dict(base_width=4, depth=2)), ("unet_light", dict(base_width=4, depth=3))]


def _tiny(name, args, seed=0):
    torch.manual_seed(seed)
    m = build_model(name, **args).eval()
    # non-trivial BatchNorm statistics, so folding them into the convs is exercised
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    return m


def _ckpt(tmp_path, name="unet_light", args=TINY[0][1], metrics=None):
    m = _tiny(name, args)
    p = tmp_path / "model.pt"
    save_checkpoint(p, kind="finetune", model_name=m.name, model_args=m.model_args,
                    state_dict=m.state_dict(), config={"epochs": 1}, config_sha256="ab" * 32,
                    step=7, epoch=1, metrics=metrics or {"mean_curve_iou": 0.5})
    return p, m


def _export(m, path, **meta):
    ox.export_onnx(m, path)
    ox.write_metadata(path, ox.build_metadata(
        stride=m.stride, tile=meta.get("tile", 64), halo=meta.get("halo", 8),
        config_sha256="cd" * 32, metrics={"x": 1.0}, class_map=meta.get("class_map", C.CLASS_MAP)))
    return path


# ------------------------------------------------------------------ receptive field

@pytest.mark.parametrize("layers, reach", [
    ([nn.Conv2d(1, 2, 3, padding=1)], 1),
    ([nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
      nn.Conv2d(3, 3, 5, padding=2), nn.ReLU(), nn.Conv2d(3, 2, 3, padding=2, dilation=2)], 5),
    ([nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(3, stride=1, padding=1),
      nn.Conv2d(2, 2, 1)], 2),
])
def test_receptive_field_of_known_stacks(layers, reach):
    net = nn.Sequential(*layers).eval()
    with torch.no_grad():  # negative weights must not hide paths
        for mod in net.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.normal_()
    rf = receptive_field(net, start=32)
    assert (rf.up, rf.down, rf.left, rf.right) == (reach,) * 4
    assert rf.size == 2 * reach + 1


def test_halo_covers_half_the_field_and_tile_fits_stride():
    m = _tiny(*TINY[1])
    rf = receptive_field(m, start=64)
    halo = recommend_halo(rf, m.stride)
    assert halo >= rf.size / 2 and halo >= rf.reach and halo % m.stride == 0
    tile = recommend_tile(halo, m.stride, min_tile=40)
    assert tile % m.stride == 0 and tile >= 4 * halo


# ------------------------------------------------------------------ round trip and parity

@pytest.mark.parametrize("name, args", TINY)
def test_roundtrip_parity_on_several_sizes(tmp_path, name, args):
    m = _tiny(name, args)
    path = _export(m, tmp_path / "m.onnx")
    ox.check_onnx(path)
    s = m.stride
    tiles = parity_tiles([(4 * s, 4 * s), (8 * s, 16 * s), (24 * s, 8 * s)], source="toy")
    res = check_parity(m, path, tiles)
    assert res.ok, res.to_dict()
    assert res.pixels == sum(t.size for t in tiles)
    assert [t["shape"] for t in res.tiles] == [list(t.shape) for t in tiles]
    # dynamic batch: two tiles in one call give the same logits as one by one
    sess = ort_session(path, 1)
    x = np.concatenate([normalise(tiles[0]), normalise(tiles[0][::-1].copy())])
    both = sess.run(None, {C.ONNX_INPUT_NAME: x})[0]
    one = sess.run(None, {C.ONNX_INPUT_NAME: x[1:]})[0]
    assert both.shape == (2, C.NUM_CLASSES) + tiles[0].shape
    np.testing.assert_allclose(both[1:], one, atol=1e-5)


@pytest.mark.filterwarnings("ignore")
def test_dynamo_exporter_also_passes_parity(tmp_path):
    m = _tiny(*TINY[0])
    path = tmp_path / "d.onnx"
    ox.export_onnx(m, path, exporter="dynamo")
    ox.check_onnx(path)
    res = check_parity(m, path, parity_tiles([(32, 32), (48, 80)], source="toy"))
    assert res.ok, res.to_dict()


def test_parity_detects_a_different_network(tmp_path):
    m = _tiny(*TINY[0])
    path = _export(m, tmp_path / "m.onnx")
    other = _tiny(*TINY[0], seed=1)
    res = check_parity(other, path, parity_tiles([(32, 32)], source="toy"))
    assert not res.ok


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_checker_refuses_fixed_axes_and_wrong_names(tmp_path):
    m = _tiny(*TINY[0])
    fixed = tmp_path / "fixed.onnx"
    torch.onnx.export(m, (torch.rand(1, 1, 32, 32),), str(fixed), dynamo=False, opset_version=17,
                      input_names=[C.ONNX_INPUT_NAME], output_names=[C.ONNX_OUTPUT_NAME])
    with pytest.raises(ModelError, match="dynamic"):
        ox.check_onnx(fixed)
    named = tmp_path / "named.onnx"
    torch.onnx.export(m, (torch.rand(1, 1, 32, 32),), str(named), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"])
    with pytest.raises(ModelError, match="image"):
        ox.check_onnx(named)
    with pytest.raises(ValueError, match="opset"):
        ox.export_onnx(m, tmp_path / "old.onnx", opset=13)


# ------------------------------------------------------------------ metadata

def test_metadata_written_and_read_back(tmp_path):
    m = _tiny(*TINY[0])
    path = _export(m, tmp_path / "m.onnx", tile=96, halo=12)
    meta = ox.read_metadata(path)
    assert set(C.META_REQUIRED) <= set(meta)
    assert meta[C.META_CLASS_MAP] == C.class_map_json()
    assert meta[C.META_INPUT] == C.DEFAULT_INPUT_NORM
    assert (meta[C.META_STRIDE], meta[C.META_TILE], meta[C.META_HALO]) == (m.stride, 96, 12)
    assert meta[C.META_CONFIG_SHA] == "cd" * 32 and meta[C.META_METRICS] == {"x": 1.0}
    # onnxruntime sees the same map (values are JSON text)
    cmm = ort_session(path, 1).get_modelmeta().custom_metadata_map
    assert json.loads(cmm[C.META_STRIDE]) == m.stride
    with pytest.raises(ValueError, match="multiple of the stride"):
        ox.build_metadata(stride=8, tile=12, halo=0, config_sha256="", metrics={})


def test_runtime_accepts_export_and_refuses_bad_metadata(tmp_path):
    from logdigit.segment import load_model_info

    m = _tiny(*TINY[0])
    good = _export(m, tmp_path / "good.onnx")
    info = load_model_info(good)
    assert info.class_map == C.CLASS_MAP and info.stride == m.stride and info.halo == 8

    bare = tmp_path / "bare.onnx"
    ox.export_onnx(m, bare)  # no metadata at all
    with pytest.raises(ModelError, match="metadata"):
        load_model_info(bare)
    with pytest.raises(ModelError, match="metadata"):
        ox.read_metadata(bare)

    swapped = dict(C.CLASS_MAP)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    bad = _export(m, tmp_path / "bad.onnx", class_map=swapped)
    with pytest.raises(ModelError, match="class map"):
        load_model_info(bad)


# ------------------------------------------------------------------ variants and cost

def test_int8_and_fp16_variants(tmp_path):
    m = _tiny(*TINY[1])
    fp32 = _export(m, tmp_path / "m.onnx")
    calib = [img for img, _ in labelled_tiles(4, 32, source="toy", seed=5)]
    q = quantize_int8(fp32, tmp_path / "m.int8.onnx", calib)
    ox.check_onnx(q)
    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert ox.read_metadata(q)[C.META_STRIDE] == m.stride  # metadata carried over
    samples = labelled_tiles(3, 32, source="toy", seed=6)
    keep = int8_decision(fp32, q, samples, speed_shape=(1, 1, 64, 64), threads=1)
    assert keep.iou_drop == pytest.approx(keep.iou_fp32 - keep.iou_int8)
    strict = int8_decision(fp32, q, samples, speed_shape=(1, 1, 64, 64), threads=1, max_drop=-1.0)
    assert not strict.kept and strict.reason.startswith("dropped")

    h = convert_fp16(fp32, tmp_path / "m.fp16.onnx")
    g = onnx.load(str(h))
    assert g.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in g.graph.initializer)
    res = check_parity(m, h, parity_tiles([(32, 64)], source="toy"), rtol=2e-2, min_agree=0.99)
    assert res.ok, res.to_dict()


def test_conv_macs_counted_from_graph(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 1)).eval()
    path = tmp_path / "c.onnx"
    ox.export_onnx(net, path)
    cost = conv_macs(path, size=64)
    assert cost["macs_per_pixel"] == 4 * 9 + 5 * 4
    assert cost["gflop_per_mpx"] == pytest.approx(2 * 56 * 1e6 / 1e9)


# ------------------------------------------------------------------ whole export and CLI

def test_export_checkpoint_cli(tmp_path):
    from training.cli import main

    ckpt, m = _ckpt(tmp_path, metrics={"mean_curve_iou": 0.42})
    out = tmp_path / "out" / "model.onnx"
    res = CliRunner().invoke(main, ["export", str(ckpt), "-o", str(out), "--data", "toy",
                                    "--int8", "--fp16", "--calib-tiles", "2", "--eval-tiles", "2",
                                    "--tile-size", "32", "--threads", "1", "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads(variant_path(out, "export").read_text())
    assert report["parity"]["ok"] and report["cost"]["macs_per_pixel"] > 0
    assert report["int8"]["kept"] == variant_path(out, "int8").exists()
    assert variant_path(out, "fp16").exists()
    meta = ox.read_metadata(out)
    assert meta[C.META_CONFIG_SHA] == "ab" * 32
    assert meta[C.META_METRICS] == {"mean_curve_iou": 0.42}
    assert meta[C.META_HALO] >= report["receptive_field"]["size"] / 2
    assert meta["logdigit.model"]["name"] == "unet_light" and meta["logdigit.model"]["step"] == 7


def test_export_refuses_a_bad_checkpoint(tmp_path):
    from training.cli import main

    bad = tmp_path / "bad.pt"
    torch.save({"not": "a checkpoint"}, bad)
    res = CliRunner().invoke(main, ["export", str(bad), "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code == 1 and "not a logdigit checkpoint" in res.output
    assert not (tmp_path / "m.onnx").exists()


def test_failed_parity_leaves_no_file(tmp_path, monkeypatch):
    import export.build as build

    ckpt, _ = _ckpt(tmp_path)
    real = build.check_parity

    def off_by_one(model, path, tiles, **kw):
        class Shifted(nn.Module):
            def forward(self, x):
                return model(x) + 1.0
        return real(Shifted(), path, tiles, **kw)

    monkeypatch.setattr(build, "check_parity", off_by_one)
    out = tmp_path / "m.onnx"
    with pytest.raises(ModelError, match="parity"):
        export_checkpoint(ckpt, out, ExportOptions(source="toy", threads=1))
    assert not out.exists()


def test_model_card_reads_its_figures_from_files(tmp_path):
    from export.model_card import render_card

    ckpt, _ = _ckpt(tmp_path)
    out = tmp_path / "m.onnx"
    report = export_checkpoint(ckpt, out, ExportOptions(source="toy", threads=1))
    evaluation = {"source": "val:3", "onnx": str(out), "mean_curve_iou": 0.123456,
                  "binary_curve_iou": 0.5, "mean_curve_f1_tol2": 0.25,
                  "per_class": {"background": {"iou": 0.99, "support_px": 10},
                                "solid": {"iou": 0.123456, "f1_tol0": 0.2, "f1_tol1": 0.3,
                                          "f1_tol2": 0.4, "support_px": 5}}}
    card = render_card(model=out, report=report, evaluation=evaluation, bench=None,
                       config_text="data: {source: toy, seed: 3}\nbatch_size: 2\n",
                       commands="logdigit-train export model.pt -o m.onnx")
    assert "ab" * 32 in card and "0.1235" in card and "seed 3" in card
    assert f"{report['parity']['max_abs']:.2e}" in card and "logdigit-train export" in card


def test_metadata_halo_makes_tiling_exact(tmp_path):
    """The runtime's tiled run with the exported halo equals one whole-image run; with no
    halo it does not (so the halo is what makes it exact)."""
    from logdigit.segment import Segmenter

    ckpt, _ = _ckpt(tmp_path, args=TINY[1][1])
    raw = torch.load(ckpt, weights_only=True)
    raw["state_dict"]["head.weight"] *= 200.0  # untrained logits are flat: make them speak
    torch.save(raw, ckpt)
    out = tmp_path / "m.onnx"
    export_checkpoint(ckpt, out, ExportOptions(source="toy", threads=1))
    img = np.vstack([labelled_tiles(1, 96, source="toy", seed=s)[0][0] for s in (1, 2)])
    seg = Segmenter(out, threads=1, tile=32)
    whole_c, whole_q = seg.predict_whole(img)
    c, q = seg.predict(img)
    assert (c == whole_c).mean() >= 0.9999 and np.abs(q.astype(int) - whole_q).max() <= 1
    _, q0 = Segmenter(out, threads=1, tile=32, halo=0).predict(img)
    assert np.abs(q0.astype(int) - whole_q).max() > 1


# ------------------------------------------------------------------ recover (ONNX -> checkpoint)

@pytest.mark.parametrize("int8", [False, True])
def test_recovered_checkpoint_computes_the_exported_model(tmp_path, int8):
    """recover puts the folded (and, for int8, dequantized) weights back and re-inflates
    BatchNorm: the rebuilt network matches the file in eval mode, stays close in train
    mode (batch statistics), and export rebuilds it from the checkpoint alone."""
    from export.recover import recover_checkpoint
    from training.checkpoint import load_checkpoint

    ckpt, m = _ckpt(tmp_path, args=TINY[1][1])
    onnx_path = tmp_path / "m.onnx"
    export_checkpoint(ckpt, onnx_path, ExportOptions(source="toy", parity_sizes=[(32, 32)]))
    imgs = [img for img, _ in labelled_tiles(6, 32, source="toy", seed=3)]   # uint8
    tiles = [(img.astype(np.float32) / 255.0)[None, None] for img in imgs]
    if int8:
        onnx_path = quantize_int8(onnx_path, tmp_path / "m.int8.onnx", imgs)
    rep = recover_checkpoint(onnx_path, tmp_path / "rec.pt", tiles)
    assert rep["convs"] == sum(isinstance(x, nn.Conv2d) for x in m.modules())
    assert rep["agreement"] > (0.98 if int8 else 0.9999)
    got = load_checkpoint(tmp_path / "rec.pt")
    assert got["kind"] == "finetune" and got["metrics"]["recovered"]["convs"] == rep["convs"]
    rec = ox.model_from_checkpoint(got)
    x = torch.from_numpy(np.concatenate(tiles))
    with torch.no_grad():
        ref = m(x)
        ev = rec(x)
        rec.train()
        tr = rec(x)   # BatchNorm on the batch's statistics: here the calibration tiles'
    scale = float(ref.abs().max())
    assert float((ev - ref).abs().max()) < (0.1 if int8 else 1e-4) * scale
    assert float((tr - ev).abs().max()) < 1e-3 * scale


def test_recover_cli_refuses_a_model_without_metadata(tmp_path):
    from training.cli import main

    net = nn.Sequential(nn.Conv2d(1, 5, 3, padding=1)).eval()
    path = tmp_path / "plain.onnx"
    ox.export_onnx(net, path)
    res = CliRunner().invoke(main, ["recover", str(path), "-o", str(tmp_path / "r.pt"),
                                    "--tiles", "1", "-q"])
    assert res.exit_code == 1
    assert "no logdigit.model metadata" in res.output and not (tmp_path / "r.pt").exists()
