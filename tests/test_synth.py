"""Synthetic renderer: determinism, mask/ink alignment, class rates, calibration contract."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import yaml
from click.testing import CliRunner

from logdigit.calibration import load_calibration
from logdigit.constants import CURVE_STYLES, NUM_CLASSES, STYLE_TO_CLASS
from training.synth import RenderConfig, render_page, render_tile, write_page
from training.synth import page as page_mod
from training.synth.layout import sample_page

SMALL = dict(height=1400, width=1000)


def _fresh():
    page_mod._CACHE.clear()


def test_page_deterministic_same_bytes():
    a = render_page(7, 3, **SMALL)
    _fresh()
    b = render_page(7, 3, **SMALL)
    for k in ("image", "mask", "instance", "clean"):
        assert getattr(a, k).tobytes() == getattr(b, k).tobytes(), k
    assert a.truth_csv() == b.truth_csv()
    assert a.calibration.to_yaml() == b.calibration.to_yaml()
    c = render_page(8, 3, **SMALL)
    assert c.image.tobytes() != a.image.tobytes()


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_tile_deterministic(task):
    a = render_tile(1, 17, task=task, size=128)
    _fresh()
    b = render_tile(1, 17, task=task, size=128)
    for k in ("image", "mask", "clean", "instance"):
        assert a[k].shape == (128, 128) and a[k].dtype == np.uint8
        assert a[k].tobytes() == b[k].tobytes(), k
    assert a["meta"] == b["meta"]
    assert a["meta"]["page_id"] == 17 // 8
    if task == "binary":
        assert set(np.unique(a["mask"])) <= {0, 1}


@pytest.mark.parametrize("kw", [dict(degrade=False), dict(degrade=True, skew_deg=0.7),
                                dict(colour=True), dict(binarize=True, line_width=4)])
def test_mask_is_dark_in_clean_render(kw):
    p = render_page(2, 11, **SMALL, **kw)
    curve = p.mask > 0
    assert curve.sum() > 500
    assert (p.clean[curve] < 128).mean() > 0.999
    # instance ids are curve pixels and name curves of the mask's class
    inst = p.instance
    assert not np.any((inst > 0) & ~curve)
    for k, c in enumerate(p.truth.curves):
        sel = inst == k + 1
        if sel.any():
            assert np.mean(p.mask[sel] == c.class_id) > 0.97
    if kw.get("colour"):
        assert p.image.ndim == 3 and p.image.shape[2] == 3
    else:
        assert p.image.ndim == 2


def test_style_rates_and_class_pixels():
    cfg = RenderConfig()
    counts = dict.fromkeys(CURVE_STYLES, 0)
    n = 0
    for i in range(60):
        spec = sample_page(0, i, cfg, {})
        for c in spec.curves:
            counts[c.style] += 1
            n += 1
    for s in CURVE_STYLES:          # equal style_weights: each style ~ 1/4 of the curves
        assert abs(counts[s] / n - 0.25) < 0.07, counts
    pix = np.zeros((16, NUM_CLASSES))
    for j, i in enumerate(range(0, 48, 3)):
        pix[j] = np.bincount(render_tile(0, i, size=192)["mask"].ravel(), minlength=NUM_CLASSES)
    frac = pix.sum(0) / pix.sum()
    assert 0.005 < frac[1:].sum() < 0.3, frac          # curves are thin: a few % of the pixels
    assert np.all((pix[:, 1:] > 0).mean(0) >= 0.25), (pix > 0).mean(0)   # each class in many tiles


def test_style_weights_respected():
    cfg = RenderConfig(style_weights=(1.0, 0.0, 1.0, 0.0), curves_per_track=(1, 2))
    styles = {c.style for i in range(20) for c in sample_page(0, i, cfg, {}).curves}
    assert styles == {"solid", "dotted"}


# thick pens and low px/ft are separate cases: a 3 px pen at 2.5 px/ft leaves almost no rows
# where the (continuously wiggling) curve holds one position to check
@pytest.mark.parametrize("kw", [dict(), dict(wraps=True, dropouts=True, n_tracks=3, width=1400),
                                dict(px_per_ft=6.0, line_width=3, metric=True),
                                dict(px_per_ft=2.5, line_width=1, metric=True, height=3000)])
def test_calibration_contract(kw):
    """From the mask and the calibration alone, per-row positions -> values match the
    truth within 0.5 % of the track width (on rows where the curve has one position)."""
    from training.synth.contract import TOLERANCE, contract_errors

    p = render_page(5, 2, **{**SMALL, "height": 2200, **kw}, degrade=False)
    cal = p.calibration
    top, bottom = cal.depth.rows
    rows = np.arange(top, bottom)
    # depth mapping from the ties reproduces the truth depth
    assert np.max(np.abs(cal.depth_at(rows) - p.truth.depth[rows])) * p.meta["rows_per_unit"] < 1.0
    names = [(c.mnemonic, c.style, t) for t, tr in enumerate(cal.tracks) for c in tr.curves]
    assert names == [(c.mnemonic, c.style, c.track) for c in p.truth.curves]
    res = contract_errors(p)
    for r in res:
        if r["rows"] >= 20:
            assert np.mean(np.abs(r["err"]) <= TOLERANCE) >= 0.9, (r["mnemonic"], np.abs(r["err"]).max())
    err = np.concatenate([r["err"] for r in res])
    assert len(err) > 100
    assert np.mean(np.abs(err) <= TOLERANCE) > 0.99


def test_contract_check_detects_a_wrong_calibration():
    """The contract check is not vacuous: shifting a track by 1 % of its width breaks it."""
    from training.synth.contract import TOLERANCE, contract_errors

    p = render_page(5, 2, **SMALL, degrade=False)
    good = np.concatenate([r["err"] for r in contract_errors(p)])
    tr = p.calibration.tracks[0]
    shift = max(2, int(round(0.01 * (tr.x[1] - tr.x[0]))))
    tr.x = (tr.x[0] + shift, tr.x[1] + shift)
    bad = np.concatenate([r["err"] for r in contract_errors(p)[:len(tr.curves)]])
    assert np.mean(np.abs(good) <= TOLERANCE) > 0.99
    assert np.mean(np.abs(bad) <= TOLERANCE) < 0.5


def test_overrides_and_truth_shapes():
    p = render_page(3, 1, **SMALL, n_tracks=2, styles=["dashed", "solid"], wraps=True, dropouts=True,
                    degrade=False)
    assert len(p.calibration.tracks) == 2
    assert [c.style for c in p.truth.curves] == ["dashed", "solid", "dashed", "solid"]
    H = p.image.shape[0]
    for c in p.truth.curves:
        assert c.values.shape == c.frac.shape == (H,)
    top, bottom = p.calibration.depth.rows
    body = slice(top, bottom)
    assert any(np.isnan(c.values[body]).any() for c in p.truth.curves)           # drop-outs
    wrapped = [c for c in p.truth.curves if c.wrap]
    assert wrapped and any(np.nanmax(np.abs(c.frac - 0.5)) > 0.5 for c in wrapped)  # off-scale
    assert np.all(np.diff(p.truth.depth) > 0)
    with pytest.raises(TypeError):
        render_page(3, 1, bogus=1)


@pytest.mark.parametrize("skew", [0.0, 0.6])
def test_tile_is_window_of_page(skew):
    """A tile is the page's window (geometry exactly: mask, instance; clean render)."""
    ov = dict(height=1600, width=1100, skew_deg=skew)
    for idx in (0, 5, 13, 22):
        t = render_tile(4, idx, size=256, tiles_per_page=8, **ov)
        p = render_page(4, idx // 8, **ov)
        y0, x0 = t["meta"]["y0"], t["meta"]["x0"]
        win = (slice(y0, y0 + 256), slice(x0, x0 + 256))
        if skew == 0.0:
            np.testing.assert_array_equal(t["mask"], p.mask[win])
            np.testing.assert_array_equal(t["instance"], p.instance[win])
            np.testing.assert_array_equal(t["clean"], p.clean[win])
        else:   # nearest-neighbour warp of a differently cut region: a pixel or two may differ
            for k in ("mask", "instance", "clean"):   # (sampling ties at .5 px round either way)
                assert np.mean(t[k] != getattr(p, k)[win]) < 1e-4, k


@pytest.mark.parametrize("binarize", [True, False])
def test_write_page_roundtrip(tmp_path, binarize):
    p = render_page(1, 4, **SMALL, binarize=binarize, colour=False)
    paths = write_page(p, tmp_path, "000004")
    with tifffile.TiffFile(paths["tif"]) as tf:
        pg = tf.pages[0]
        img = pg.asarray()
        if binarize:
            assert pg.compression == 4 and pg.bitspersample == 1    # CCITT G4
            img = np.where(img, 255, 0)
        else:
            assert pg.compression == 5                               # LZW
    np.testing.assert_array_equal(img.astype(np.uint8), p.image)
    cal = load_calibration(paths["yaml"])
    assert cal.to_dict() == p.calibration.to_dict()
    lines = paths["csv"].read_text().splitlines()
    assert lines[0].split(",") == ["DEPT"] + [c.mnemonic for c in p.truth.curves]
    assert len(lines) == p.image.shape[0] + 1


def test_cli_instances_and_pages(tmp_path):
    from training.cli import main

    r = CliRunner().invoke(main, ["synth", "--task", "binary", "--count", "3", "--size", "64",
                                  "--out", str(tmp_path / "b"), "--seed", "2", "-q"])
    assert r.exit_code == 0, r.output
    names = sorted(f.name for f in (tmp_path / "b").iterdir())
    assert "000002_mask.png" in names and "000000.json" in names and "config.yaml" in names
    import cv2
    m = cv2.imread(str(tmp_path / "b" / "000001_mask.png"), cv2.IMREAD_UNCHANGED)
    assert m.shape == (64, 64) and set(np.unique(m)) <= {0, 1}
    r = CliRunner().invoke(main, ["synth", "--pages", "--count", "1", "--out", str(tmp_path / "p"),
                                  "--set", "height=[900,1000]", "--set", "width=[900,950]", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p" / "000000.tif").exists() and (tmp_path / "p" / "000000_truth.csv").exists()
    cfg = yaml.safe_load((tmp_path / "p" / "config.yaml").read_text())
    assert cfg["height"] == [900, 1000]
    r = CliRunner().invoke(main, ["synth", "--count", "1", "--out", str(tmp_path / "x"), "--set", "nope=1"])
    assert r.exit_code == 2 and "nope" in r.output


def test_style_class_ids():
    p = render_page(0, 9, **SMALL, degrade=False)
    for c in p.truth.curves:
        assert c.class_id == STYLE_TO_CLASS[c.style]


def test_curves_visible_in_degraded_tiles():
    """Scan degradation keeps the labelled curve pixels visible (no ink-less labels)."""
    vis = []
    for i in range(0, 240, 8):
        t = render_tile(0, i, size=160)
        m = t["mask"] > 0
        if m.sum() < 40:
            continue
        img = t["image"].astype(np.float64)
        vis.append(np.mean(img[m] < np.median(img[~m]) - 40))
    assert len(vis) >= 10
    assert np.median(vis) > 0.9 and min(vis) > 0.3, sorted(vis)[:5]


def test_deterministic_across_processes():
    """Same (seed, index) -> same bytes in a fresh interpreter (no per-process hashing)."""
    import hashlib
    import subprocess
    import sys

    code = ("import hashlib; from training.synth import render_tile; t = render_tile(3, 41, size=96); "
            "print(hashlib.sha256(t['image'].tobytes() + t['mask'].tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    t = render_tile(3, 41, size=96)
    assert out == hashlib.sha256(t["image"].tobytes() + t["mask"].tobytes()).hexdigest()


@pytest.mark.parametrize("skew", [0.0, 0.5])
def test_banded_page_equals_one_piece(skew):
    """Tall pages render in bands (bounded memory) with the same result as one piece."""
    from training.synth.page import page_model, render_bands, render_window

    spec, model = page_model(6, 0, RenderConfig(), dict(height=1500, width=700, skew_deg=skew))
    whole = render_window(spec, model, 0, 0, spec.height, spec.width)
    bands = render_bands(spec, model, band_pixels=256 * 700)
    for k in ("mask", "instance"):
        if skew == 0.0:
            np.testing.assert_array_equal(bands[k], whole[k])
        else:   # nearest-neighbour sampling ties at .5 px may round either way
            assert np.mean(bands[k] != whole[k]) < 1e-5
    assert np.mean(bands["clean"] != whole["clean"]) < 1e-4
    diff = np.abs(bands["image"].astype(int) - whole["image"].astype(int))
    assert diff.mean() < 0.5


def test_same_style_told_apart_by_colour():
    p = render_page(1, 2, height=1200, width=1100, colour=True, same_style_colour=True, n_tracks=2,
                    curves_per_track=3, degrade=False)
    for tr in p.calibration.tracks:
        a, b = tr.curves[0], tr.curves[1]
        assert a.style == b.style and a.color and b.color and a.color != b.color
    for k, c in enumerate(p.truth.curves):
        sel = p.instance == k + 1
        assert sel.any() and np.all(p.mask[sel] == c.class_id)
    # off by default: styles stay unique within a track
    q = render_page(1, 2, height=1200, width=1100, colour=True, n_tracks=2, curves_per_track=3)
    for tr in q.calibration.tracks:
        assert len({c.style for c in tr.curves}) == len(tr.curves)


def test_wrapped_curves_sit_mostly_on_the_main_trace():
    """A wrapped curve's median backup level is 0: the level a reader (and the tracker's
    prior) takes for the main trace."""
    wrapped = 0
    for i in range(6):
        p = render_page(11, i, **SMALL, wraps=True, degrade=False)
        for c in p.truth.curves:
            if c.wrap:
                f = c.frac[np.isfinite(c.frac)]
                assert np.median(np.floor(f)) == 0, (i, c.mnemonic)
                wrapped += 1
    assert wrapped >= 3


def test_monochrome_shading_is_a_dot_screen_that_leaves_curves_visible():
    """A 1-bit scan of a shaded mono print: the shading thresholds to dots over about its
    level of the area (not to solid black, which would hide the curve under it)."""
    from training.synth.page import page_model, render_bands

    ov = dict(height=1200, width=700, n_tracks=1, binarize=True, colour=False, degrade=True,
              skew_deg=0.0, wraps=False)
    spec, model = page_model(11, 3, RenderConfig(shading_prob=0.0, hatch_prob=0.0), ov)
    # no drop-outs or stains: every difference between the two renders is the shading;
    # the darkest tint and the most inclusive 1-bit threshold
    spec.scan.update(fade=0.0, broken=0.0, speckle=0.0, bleed=0.0, hbreak=0.0, grid_drop=0.0,
                     bands=[], stains=[], folds=[], streaks=[], edges=[], threshold=0.78)
    plain = render_bands(spec, model)["image"] < 128
    k = 0
    tr = spec.tracks[spec.curves[k].track]
    spec.shading = [(k, True, 0.35, (0, 0, 0))]
    shaded = render_bands(spec, model)
    ink = shaded["image"] < 128
    rows = np.arange(spec.body_top + 20, spec.body_bottom - 20)
    x = model.x[k, rows]
    inside = np.zeros_like(ink)
    for r, xc in zip(rows[np.isfinite(x)], x[np.isfinite(x)]):
        inside[r, int(xc) + 4:tr.x1 - 2] = True
    area = inside & ~plain
    assert area.sum() > 10_000
    share = ink[area].mean()
    assert 0.15 < share < 0.5, share
    # the curve's own pixels are still ink, and the mask has no shading in it
    curve = shaded["mask"] == spec.curves[k].class_id
    assert ink[curve].mean() > 0.9
    assert not (shaded["mask"][area & ~curve]).any()


@pytest.mark.parametrize("stair", [1.0, 0.0])
def test_held_curves_have_straight_vertical_stretches(stair):
    """hold_prob 1: every curve is stair steps (piecewise constant on steps of 1-6 ft)
    or has a flat stretch of at least 8 ft; hold_prob 0 (the default) leaves the page
    exactly as it was, other streams untouched."""
    cfg = RenderConfig(hold_prob=1.0, hold_stair_share=stair)
    base = sample_page(5, 3, RenderConfig(), dict(SMALL))
    held = sample_page(5, 3, cfg, dict(SMALL))
    assert [c.mnemonic for c in held.curves] == [c.mnemonic for c in base.curves]
    for cb, ch in zip(base.curves, held.curves):
        f = ch.frac_model[np.isfinite(ch.frac_model)]
        same = np.diff(f) == 0
        if stair:
            assert same.mean() > 0.75                       # steps of >= 4 samples
        else:
            runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], same, [0]]))))[::2]
            assert runs.max() >= 8.0 / 0.25 - 1
        assert not np.array_equal(cb.frac_model, ch.frac_model, equal_nan=True)
    again = sample_page(5, 3, RenderConfig(hold_prob=0.0), dict(SMALL))
    for cb, c0 in zip(base.curves, again.curves):
        assert np.array_equal(cb.frac_model, c0.frac_model, equal_nan=True)
