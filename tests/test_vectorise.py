"""Vectoriser: runs, tracker through dashes / crossings / noise, wraps, gaps, resampling,
and digitise() on true masks from the renderer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from logdigit import vectorise as vz
from logdigit.calibration import value_to_fraction
from logdigit.vectorise import (TrackerConfig, bridge_gaps, depth_grid, drop_blips,
                                drop_cross_strokes, drop_line_spikes, find_runs,
                                resample_rows, style_mask, trace_curves)


def _draw(h, w, x, width=2, cls=1, out=None):
    m = np.zeros((h, w), np.uint8) if out is None else out
    pts = np.stack([x * 16, np.arange(h) * 16], 1).round().astype(np.int32)
    cv2.polylines(m, [pts], False, cls, width, cv2.LINE_8, 4)
    return m


def test_find_runs_and_merge():
    m = np.zeros((3, 12), bool)
    m[0, 1:3] = m[0, 4:6] = True   # gap 1 -> merged with merge_px 2
    m[2, 0] = m[2, 8:12] = True    # gap 7 -> two runs
    r = find_runs(m, merge_px=2)
    assert r.rows.tolist() == [0, 2, 2]
    assert list(zip(r.starts.tolist(), r.ends.tolist())) == [(1, 6), (0, 1), (8, 12)]
    assert r.ptr.tolist() == [0, 1, 1, 3]
    r0 = find_runs(m, merge_px=0)
    assert len(r0.rows) == 4


@pytest.mark.parametrize("dash", [0, 12])
def test_tracker_dashes_noise_crossing(dash):
    h, w = 2000, 300
    rows = np.arange(h)
    truth = 150 + 100 * np.sin(rows / 170.0) + 15 * np.sin(rows / 23.0)
    m = _draw(h, w, truth)
    if dash:
        for r0 in range(0, h, 3 * dash):
            m[r0 + 2 * dash:r0 + 3 * dash] = 0
    rng = np.random.default_rng(1)
    for _ in range(150):                       # specks
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        m[y:y + 2, x:x + 2] = 1
    m[:, 60:62] = 2                            # another class drawn on top (crossing)
    m[700:760] = 0                             # a drop-out longer than max_gap_px
    tr = trace_curves(m, 1, 0.0, float(w), cfg=TrackerConfig(max_gap_px=40))[0]
    x = tr.frac * w
    err = np.abs(x - truth)
    assert np.isnan(x[710:750]).all()          # long gap left NULL
    ok = np.isfinite(x)
    assert ok.mean() > 0.96
    assert np.median(err[ok]) < 0.5 and np.percentile(err[ok], 99) < 3.0
    assert not tr.observed[710:750].any() and tr.observed[ok].mean() > 0.55


def test_wrapped_curve_unrolled():
    h, w = 3000, 200
    rows = np.arange(h)
    f_true = 0.5 + 0.9 * np.sin(rows / 400.0)         # goes past both edges
    shown = np.mod(f_true, 1.0)
    m = np.zeros((h, w + 1), np.uint8)
    for r in range(h - 1):                             # broken where it wraps
        if np.floor(f_true[r]) == np.floor(f_true[r + 1]):
            cv2.line(m, (int(round(shown[r] * w)), r), (int(round(shown[r + 1] * w)), r + 1), 1, 2)
    tr = trace_curves(m, 1, 0.0, float(w), wrap=[True])[0]
    err = np.abs(tr.frac - f_true)
    ok = np.isfinite(tr.frac)
    assert ok.mean() > 0.99
    assert np.nanmax(tr.frac) > 1.3 and np.nanmin(tr.frac) < -0.3
    assert np.percentile(err[ok], 99) < 0.01
    # without wrap the same trace stays inside the track
    plain = trace_curves(m, 1, 0.0, float(w), wrap=[False])[0]
    assert np.nanmax(plain.frac) <= 1.01


def test_two_curves_same_style_crossing():
    h, w = 1500, 300
    rows = np.arange(h)
    a = 150 + 100 * np.sin(rows / 200.0)
    b = 150 - 100 * np.sin(rows / 200.0)
    m = _draw(h, w, a)
    _draw(h, w, b, out=m)
    tr = trace_curves(m, 1, 0.0, float(w), n_curves=2)
    got = [t.frac * w for t in tr]
    # each truth is matched by one trace away from the crossings
    far = np.abs(a - b) > 12
    for t in (a, b):
        best = min(np.nanmedian(np.abs(g - t)[far]) for g in got)
        assert best < 1.0


def test_bridge_gaps_and_blips():
    x = np.array([0, 1, np.nan, np.nan, 4, np.nan, np.nan, np.nan, np.nan, 9.0])
    f, b = bridge_gaps(x, 2)
    np.testing.assert_allclose(f[:5], [0, 1, 2, 3, 4])
    assert np.isnan(f[5:9]).all() and b.tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    y = np.array([10, 10, 10, np.nan, 30, np.nan, 10, 10, np.nan, 10.5, np.nan, 10])
    d = drop_blips(y, 2, 3.0)
    assert np.isnan(d[4]) and d[9] == 10.5  # speck off the line dropped, dot on it kept


def test_drop_cross_strokes():
    """Isolated one-way strokes across the track go; spikes, slow and joined strokes stay."""
    x = np.full(200, np.nan)
    x[0:40] = 20.0                                  # curve
    x[60:68] = np.linspace(10, 90, 8)               # slanted line: 80 px in 8 rows
    x[100:108] = np.r_[np.linspace(10, 90, 4), np.linspace(90, 10, 4)]   # spike out and back
    x[130:140] = np.linspace(10, 40, 10)            # 30 px: under 60 % of the track
    x[145:150] = 40.0                               # ... and this joins 140-145 (gap 5 < 8)
    x[160:172] = np.linspace(10, 90, 12)
    x[175:200] = 90.0                               # a stroke joined to the curve: kept
    d = drop_cross_strokes(x, 100.0, 0.6, 8.0, 8)
    assert np.isnan(d[60:68]).all()
    keep = np.isfinite(x) & ~((np.arange(200) >= 60) & (np.arange(200) < 68))
    np.testing.assert_array_equal(d[keep], x[keep])
    assert np.array_equal(drop_cross_strokes(x, 100.0, 0.0, 8.0, 8), x, equal_nan=True)  # off


def test_slanted_grid_lines_not_read_as_a_saw_tooth():
    """A curve that leaves the track (paper slid at an angle: the grid lines slope) is
    NULL there, not zig-zagged along the sloping lines the network took for a curve."""
    h, w = 400, 120
    m = np.zeros((h, w), np.uint8)
    _draw(200, w, 60 + 15 * np.sin(np.arange(200) / 20), out=m)   # the curve, rows 0-199
    for y in range(215, h - 10, 25):                  # sloping "horizontal" lines after it
        cv2.line(m, (2, y), (w - 3, y + 10), 1, 2)
    tr = trace_curves(m, 1, 0.0, float(w))[0]
    assert np.isfinite(tr.frac[:190]).mean() > 0.95
    assert np.isnan(tr.frac[220:]).all()
    off = trace_curves(m, 1, 0.0, float(w), cfg=TrackerConfig(cross_share=0.0))[0]
    assert np.isfinite(off.frac[220:]).mean() > 0.5   # without the rule: the saw-tooth


def test_drop_line_spikes():
    """Samples on grid-line rows that step off the curve and back go; a real peak on a
    line row, met by steep flanks, stays; off switch and no-lines are no-ops."""
    x = 20.0 + 0.1 * np.arange(120)
    lines = np.zeros(120, bool)
    lines[[30, 31, 60, 90]] = True
    x[30:32] = 80.0                       # stepped out along a heavy line for two rows
    x[58:63] = [20, 50, 80, 50, 20]       # a real spike through line row 60: ends off it
    x[90] = 20.0 + 9.0 + 1.0              # 1 px off the line: within tolerance, kept
    d = drop_line_spikes(x, lines, 4.0, 3)
    assert np.isnan(d[30:32]).all()
    keep = np.ones(120, bool)
    keep[30:32] = False
    np.testing.assert_array_equal(d[keep], x[keep])
    assert np.array_equal(drop_line_spikes(x, lines, 0.0, 3), x)
    assert np.array_equal(drop_line_spikes(x, None, 4.0, 3), x)
    y = x.copy()
    y[27:30] = np.nan                     # no reading within reach before the line: kept
    assert np.array_equal(drop_line_spikes(y, lines, 4.0, 3), y, equal_nan=True)
    screen = np.zeros(120, bool)
    screen[20:50] = True                  # 30 "line" rows: shading, not a line: kept
    assert np.array_equal(drop_line_spikes(x, screen, 4.0, 3, longest=20), x)
    assert np.isnan(drop_line_spikes(x, screen, 4.0, 3, longest=40)[30:32]).all()


def test_resample_and_grid():
    d_rows = 1000 + np.arange(11) * 0.5        # depth of rows 0..10
    y = np.arange(11, dtype=float)
    y[6] = np.nan
    g = depth_grid(1000.2, 1005.0, 0.25)
    assert g[0] == 1000.25 and g[-1] == 1005.0 and np.allclose(np.diff(g), 0.25)
    out = resample_rows(d_rows, y, np.array([1000.0, 1000.25, 1002.75, 1003.0, 1010.0]))
    np.testing.assert_allclose(out[:2], [0.0, 0.5])
    assert np.isnan(out[2]) and np.isnan(out[3]) and np.isnan(out[4])


def _score(dig, page):
    """Per curve: (style, wrap, coverage where truth exists, errors in % of track width)."""
    cals = {c.mnemonic: c for t in page.calibration.tracks for c in t.curves}
    out = []
    for ct in page.truth.curves:
        col = next(c for c in dig.table.curves if c.mnemonic == ct.mnemonic)
        tf = resample_rows(page.truth.depth, ct.frac, dig.table.depth)
        ef = value_to_fraction(col.values, cals[ct.mnemonic])
        has = np.isfinite(tf)
        ok = has & np.isfinite(ef)
        out.append((ct.style, ct.wrap, ok.sum() / has.sum(), np.abs(ef - tf)[ok] * 100))
    return out


@pytest.mark.parametrize("skew", [0.0, 0.6])
def test_digitise_true_masks(skew):
    synth = pytest.importorskip("training.synth")
    from logdigit import layout as lay
    from logdigit.pipeline import deskew_mask, digitise

    page = synth.render_page(4242, 3, height=2200, width=1100, n_tracks=2, skew_deg=skew,
                             styles=["solid", "dashed", "dotted"], wraps=False, colour=False)
    grey = page.image
    L = lay.analyse(grey)
    dig = digitise(deskew_mask(page.mask, L.skew_deg), page.calibration, L,
                   grey=lay.deskew(grey, L.skew_deg))
    assert dig.plan.calibrated and len(dig.table.curves) == 6
    assert np.allclose(np.diff(dig.table.depth), dig.table.step)
    scores = _score(dig, page)
    for style in ("solid", "dashed", "dotted"):
        errs = np.concatenate([e for s, _, _, e in scores if s == style])
        assert np.median(errs) < 0.5, style           # % of track width
        assert np.percentile(errs, 95) < 3.0, style
        assert min(c for s, _, c, _ in scores if s == style) > 0.97, style


def _two_crossing(h=1200, w=300):
    rows = np.arange(h)
    a = 150 + 110 * np.sin(rows / 150.0)
    b = 150 - 110 * np.sin(rows / 150.0)
    return rows, a, b


def _cal_two(colours, style="solid"):
    from logdigit.calibration import calibration_from_dict
    return calibration_from_dict({
        "depth": {"unit": "M", "ties": [{"row": 0, "depth": 100.0}, {"row": 1000, "depth": 200.0}]},
        "tracks": [{"x": [0, 300], "curves": [
            {"style": style, "mnemonic": "AAA", "left": 0, "right": 1, "color": colours[0]},
            {"style": style, "mnemonic": "BBB", "left": 0, "right": 1, "color": colours[1]}]}]})


def test_same_style_split_by_colour():
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise

    h, w = 1200, 301
    rows, a, b = _two_crossing(h)
    m = _draw(h, w, a)
    _draw(h, w, b, out=m)
    rgb = np.full((h, w, 3), 255, np.uint8)
    _draw(h, w, a, out=rgb, cls=(220, 30, 30))       # AAA red
    _draw(h, w, b, out=rgb, cls=(30, 60, 220))       # BBB blue, drawn last
    dig = digitise(m, _cal_two(["red", "blue"]), Layout(shape=(h, w)), rgb=rgb, step=0.1)
    got = {c.mnemonic: c.values for c in dig.table.curves}
    depth = dig.table.depth
    far = np.abs(np.interp(depth, 100 + rows * 0.1, a - b)) > 12
    for name, truth in (("AAA", a), ("BBB", b)):
        t = np.interp(depth, 100 + rows * 0.1, truth / 300.0)
        err = np.abs(got[name] - t)[far & np.isfinite(got[name])]
        assert np.median(err) < 0.005 and np.isfinite(got[name]).mean() > 0.9, name
    assert not any("not told apart" in w_ for w_ in dig.warnings)


def test_binary_model_uncalibrated_names():
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise

    h, w = 600, 200
    rows = np.arange(h)
    m = _draw(h, w, 100 + 60 * np.sin(rows / 80.0))
    dig = digitise(m, None, Layout(shape=(h, w), tracks=[(10, 190)], log_bottom=h), binary=True)
    assert [c.mnemonic for c in dig.table.curves] == ["T1_CURVE"]
    assert dig.table.depth_unit == "PX" and dig.table.step == 1.0
    assert any("UNCALIBRATED" in n for n in dig.table.notes)


def test_depth_refined_to_grid():
    """Grid lines every 2 ft at 7.3 rows/ft; ties 1.2 rows off: the grid fit recovers
    the true depth scale; without a grid the ties are kept."""
    from logdigit.calibration import Calibration, DepthCalibration, DepthTie
    from logdigit.pipeline import ReadPlan, TrackPlan, refine_depth

    h, w, rpu, d0 = 3000, 400, 7.3, 4000.0
    grey = np.full((h, w), 255, np.uint8)
    k = np.arange(0, 500)
    rows = 20.0 + k * 2 * rpu
    for r in rows[rows < h - 2]:
        a = int(np.floor(r))
        t = r - a                                    # sub-pixel line: two rows shaded
        grey[a, 20:380] = int(255 * t)
        grey[a + 1, 20:380] = int(255 * (1 - t))
    true_depth = lambda rr: d0 + (np.asarray(rr) - 20.0) / rpu      # noqa: E731
    ties = [DepthTie(100 + 1.2, float(true_depth(100))), DepthTie(2900 - 1.2, float(true_depth(2900)))]
    plan = ReadPlan([TrackPlan(0, 10.0, 390.0, [])], (0, h), True,
                    DepthCalibration(unit="FT", ties=ties))
    dep, note = refine_depth(grey, plan, 128)
    assert "refined" in note, note
    got = Calibration(depth=dep).depth_at(np.arange(50, 2950))
    assert np.abs(got - true_depth(np.arange(50, 2950))).max() * rpu < 0.1   # rows
    blank = np.full((h, w), 255, np.uint8)
    dep2, note2 = refine_depth(blank, plan, 128)
    assert dep2 is plan.depth and "ties" in note2


@pytest.mark.parametrize("vline_share", [0.5, 1.0])
def test_grid_lines_misread_as_curve(vline_share):
    """Vertical and horizontal grid lines labelled with the curve's class (a weak model)
    are not followed; with the vertical-line filter off (share 1.0) they are."""
    h, w = 1500, 300
    rows = np.arange(h)
    truth = 200 + 60 * np.sin(rows / 90.0)
    m = _draw(h, w, truth)
    for r0 in range(0, h, 30):
        m[r0 + 12:r0 + 30] = 0                 # long dash gaps
    m[:, 60:62] = 1                            # vertical grid line, same class
    m[::50, :] = 1                             # horizontal grid lines, same class
    tr = trace_curves(m, 1, 0.0, float(w), cfg=TrackerConfig(vline_share=vline_share))[0]
    on_line = np.abs(tr.frac * w - 60.5) < 3
    if vline_share < 1:
        assert on_line.sum() == 0
        ok = np.isfinite(tr.frac)
        assert np.median(np.abs(tr.frac[ok] * w - truth[ok])) < 1.0
    else:
        assert on_line.sum() > 100


def test_find_class_runs_blocked_equals_whole():
    from logdigit.vectorise import find_class_runs
    rng = np.random.default_rng(3)
    cl = rng.integers(0, 3, (301, 57)).astype(np.uint8)
    whole = find_runs(cl[10:290, 5:50] == 2, 2)
    blk = find_class_runs(cl, 2, (10, 290), (5, 50), 2, block=64)
    for a in ("rows", "starts", "ends", "ptr"):
        np.testing.assert_array_equal(getattr(whole, a), getattr(blk, a))


def _drift_page(amp=12):
    """A rendered page whose paper wanders sideways (rows shifted by dx(r), a bump of
    ``amp`` px, image and mask alike; slow enough for Layout to follow it, and not a
    straight ramp, which is skew), its calibration's columns read at the middle row."""
    synth = pytest.importorskip("training.synth")
    page = synth.render_page(4242, 5, height=4000, width=1000, n_tracks=2, skew_deg=0.0,
                             styles=["solid", "dashed"], wraps=False, colour=False)
    h, w = page.mask.shape
    dx = np.round(amp * np.sin(np.pi * np.arange(h) / h)).astype(int)
    img = np.full_like(page.image, 255)
    mask = np.zeros_like(page.mask)
    for r in range(h):
        d = dx[r]
        if d >= 0:
            img[r, d:], mask[r, d:] = page.image[r, :w - d], page.mask[r, :w - d]
        else:
            img[r, :d], mask[r, :d] = page.image[r, -d:], page.mask[r, -d:]
    cal = page.calibration
    rows = cal.depth.rows
    ref = int(round(sum(rows) / 2.0)) if rows is not None else (h - 1) // 2
    for t in cal.tracks:
        if t.x is not None:
            t.x = [t.x[0] + int(dx[ref]), t.x[1] + int(dx[ref])]
    return page, img, mask


def test_paper_drift_followed():
    """Track borders that wander 12 px sideways: with Layout.drift the values follow the
    borders (errors as on straight paper); ignoring the drift is several times worse."""
    from logdigit import layout as lay
    from logdigit.pipeline import deskew_mask, digitise

    page, img, mask = _drift_page()
    L = lay.analyse(img)
    assert L.drift, L.notes
    mask, img = deskew_mask(mask, L.skew_deg), lay.deskew(img, L.skew_deg)
    scores = _score(digitise(mask, page.calibration, L, grey=img), page)
    errs = np.concatenate([e for _, _, _, e in scores])
    assert np.median(errs) < 0.3 and np.percentile(errs, 95) < 1.0
    assert all(c > 0.97 for _, _, c, _ in scores)
    L.drift = []                                    # the same read, drift ignored
    errs0 = np.concatenate([e for _, _, _, e in _score(digitise(mask, page.calibration, L,
                                                                grey=img), page)])
    assert np.median(errs0) > 3 * np.median(errs)


def _code(p_curve, best, second=0):
    """Curve code bytes: P(curve) 0..1, best / runner-up curve class ids (1..4)."""
    return (np.rint(np.asarray(p_curve) * 15).astype(np.uint8) | ((best - 1) << 4)
            | ((max(second, 1) - 1) << 6)).astype(np.uint8)


def test_style_mask_allowed_styles_and_faint():
    classes = np.array([[0, 1, 2, 1]], np.uint8)
    code = np.array([[_code(0.4, 2), _code(0.9, 1, 2), _code(0.8, 2, 1), _code(0.2, 1, 2)]])
    # uncalibrated: the argmax
    np.testing.assert_array_equal(style_mask(classes, 2), [[0, 0, 1, 0]])
    # track holds dashed only: faint dashed (background won) and solid -> runner-up dashed
    dashed = frozenset({2})
    np.testing.assert_array_equal(style_mask(classes, 2, code, dashed, 0.35), [[1, 1, 1, 0]])
    np.testing.assert_array_equal(style_mask(classes, 2, code, dashed, 0.5), [[0, 1, 1, 0]])
    both = frozenset({1, 2})                  # both held: each pixel keeps its best
    np.testing.assert_array_equal(style_mask(classes, 1, code, both, 0.35), [[0, 1, 0, 0]])
    np.testing.assert_array_equal(style_mask(classes, 2, code, both, 0.35), [[1, 0, 1, 0]])
    assert not style_mask(classes, 3, code, both, 0.1).any()   # a style the track lacks


def test_faint_curve_read_from_code():
    """A curve the argmax calls background (P(curve) 0.4) is read from the curve code in
    a calibrated track; the argmax alone finds nothing."""
    from logdigit.calibration import calibration_from_dict
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise

    h, w = 600, 200
    x = 100 + 60 * np.sin(np.arange(h) / 80.0)
    faint = _draw(h, w, x, cls=1) > 0
    classes = np.zeros((h, w), np.uint8)
    code = np.where(faint, _code(0.4, 2, 1), _code(0.0, 1, 2)).astype(np.uint8)
    cal = calibration_from_dict({
        "depth": {"unit": "M", "ties": [{"row": 0, "depth": 0.0}, {"row": 600, "depth": 60.0}]},
        "tracks": [{"x": [0, 199], "curves": [
            {"style": "dashed", "mnemonic": "AAA", "left": 0, "right": 199}]}]})
    lay = Layout(shape=(h, w), log_bottom=h)
    table = digitise(classes, cal, lay, code=code, step=0.1).table
    col = table.curves[0]
    truth = np.interp(table.depth * 10, np.arange(h), x)       # row = depth / 0.1 m
    ok = np.isfinite(col.values)
    assert ok.mean() > 0.95
    assert np.median(np.abs(col.values[ok] - truth[ok])) < 1.0   # values are columns here
    assert np.all(col.confidence[ok] > 0.3)
    none = digitise(classes, cal, lay, step=0.1).table.curves[0]
    assert not np.isfinite(none.values).any()


@pytest.mark.parametrize("p_weak", [0.0, 0.05, 0.1])
def test_weak_stretch_read_when_asked(p_weak):
    """A curve whose middle third the network barely sees (P(curve) 0.2): with
    ``curve_p_weak`` 0.1 it is read through (one path, on the line); without, the middle
    is a long NULL gap. A weak blob beside a strong stretch never pulls the path off."""
    from logdigit.constants import STYLE_TO_CLASS
    from logdigit.vectorise import trace_track

    h, w = 900, 300
    r = np.arange(h)
    x = 150 + 60 * np.sin(r / 70.0)
    on = _draw(h, w + 1, x) > 0
    solid = STYLE_TO_CLASS["solid"]
    p = np.where((r >= 300) & (r < 600), 0.2, 0.9)[:, None] * on
    blob = np.zeros_like(on)
    blob[100:160, 20:26] = True                     # weak ink far from the strong curve
    p = np.where(blob & ~on, 0.2, p)
    code = _code(p, solid)
    cfg = TrackerConfig(curve_p_weak=p_weak)
    tr = trace_track(code, [(solid, False)], 0.0, float(w), cfg)[0]
    got = tr.frac * w
    mid = slice(300, 600)
    assert np.nanmax(np.abs(got[:300] - x[:300])) < 2       # the blob is ignored
    if p_weak:
        assert np.isfinite(got[mid]).all() and np.nanmax(np.abs(got[mid] - x[mid])) < 2
        assert tr.observed[mid].all()
    else:
        assert not np.isfinite(got[mid]).any()


def test_trace_curves_follow_shift():
    """A curve drawn on paper shifted by s(r) px per row is read at its place relative
    to the shifted borders; sub-pixel shift included."""
    h, w = 500, 260
    shift = 15 * np.sin(np.arange(h) / 120.0) + 0.3
    f = 0.5 + 0.3 * np.sin(np.arange(h) / 60.0)           # true fraction of the track
    xl, xr = 30.0, 230.0
    m = _draw(h, w, xl + shift + f * (xr - xl))
    tr = trace_curves(m, 1, xl, xr, shift=shift)[0]
    ok = np.isfinite(tr.frac)
    assert ok.mean() > 0.98
    assert np.median(np.abs(tr.frac[ok] - f[ok])) < 0.003
    plain = trace_curves(m, 1, xl, xr)[0]
    assert np.median(np.abs(plain.frac[ok] - f[ok])) > 0.02


def _wrapped_mask(f_true, w, width=2):
    """Mask of a wrapped curve: positions ``f_true`` [h] (unwrapped fractions) drawn
    modulo the track; consecutive rows on one level joined, broken where it wraps."""
    h = len(f_true)
    shown = np.mod(f_true, 1.0)
    m = np.zeros((h, w + 1), np.uint8)
    for r in range(h - 1):
        if np.isfinite(f_true[r]) and np.isfinite(f_true[r + 1]) and \
                np.floor(f_true[r]) == np.floor(f_true[r + 1]):
            cv2.line(m, (int(round(shown[r] * w)), r), (int(round(shown[r + 1] * w)), r + 1), 1,
                     width)
    return m


def test_wrapped_sweep_across_track_kept():
    """A wrapped curve hugging the left edge sweeps across the track in one row to hug
    the right edge, on level 0 throughout. The sweep is a track-wide run: dropped as a
    grid line, one side is read a level off (the hop over the left edge is shorter);
    told which rows hold grid lines, the sweep is kept and all is read right."""
    h, w = 700, 300
    r = np.arange(h, dtype=float)
    f = np.where(r < 310, 0.012 + 0.012 * np.sin(r / 15.0), 0.975 + 0.01 * np.sin(r / 13.0))
    m = _wrapped_mask(np.where(r < 310, f, np.nan), w) | _wrapped_mask(np.where(r > 310, f, np.nan), w)
    m[310, int(round(f[309] * w)):int(round(f[311] * w)) + 1] = 1   # the sweep, one row
    grid = np.zeros(h, bool)
    grid[::20] = True                                         # grid lattice rows (not 310)
    tr = trace_curves(m, 1, 0.0, float(w), wrap=[True], line_rows=grid)[0]
    ok = np.isfinite(tr.frac)
    assert ok.mean() > 0.98
    assert np.percentile(np.abs(tr.frac - f)[ok], 99) < 0.02
    old = trace_curves(m, 1, 0.0, float(w), wrap=[True])[0]  # wide runs dropped anywhere
    assert np.mean(np.abs(old.frac - f)[ok] > 0.5) > 0.3     # one side a level off


def test_wrapped_level_after_long_dropout(monkeypatch):
    """After a drop-out longer than max_gap_px the stretch that follows takes the level
    that keeps it on the main trace, not the copy nearest the last position."""
    from logdigit import vectorise
    from logdigit.vectorise import relevel_segments
    h, w = 700, 300
    r = np.arange(h, dtype=float)
    f = np.where(r < 250, 0.93 + 0.03 * np.sin(r / 20.0), 0.12 + 0.03 * np.sin(r / 20.0))
    f[250:330] = np.nan                      # not recorded (longer than max_gap_px)
    m = _wrapped_mask(f, w)
    tr = trace_curves(m, 1, 0.0, float(w), wrap=[True])[0]
    ok = np.isfinite(tr.frac) & np.isfinite(f)
    assert ok.sum() > 0.95 * np.isfinite(f).sum()
    assert np.percentile(np.abs(tr.frac - f)[ok], 99) < 0.02
    monkeypatch.setattr(vectorise, "relevel_segments", lambda x, period, min_gap: x)
    near = trace_curves(m, 1, 0.0, float(w), wrap=[True])[0]  # nearest copy: a level off
    assert np.mean(np.abs(near.frac - f)[ok] > 0.5) > 0.3
    x = np.array([10.0, 11, 12, np.nan, np.nan, np.nan, np.nan, 320, 321])
    np.testing.assert_array_equal(relevel_segments(x, 300.0, 2),     # two stretches
                                  [10, 11, 12, np.nan, np.nan, np.nan, np.nan, 20, 21])
    np.testing.assert_array_equal(relevel_segments(x, 300.0, 5), x)  # one, bridged


def test_periodic_lines_drop_one_off_rows():
    from logdigit.pipeline import periodic_lines
    lines = np.array([10.0, 30.2, 50.1, 63.0, 70.0, 89.9, 110.0])
    np.testing.assert_array_equal(periodic_lines(lines), [10.0, 30.2, 50.1, 70.0, 89.9, 110.0])


@pytest.mark.parametrize("joint", [True, False])
def test_trace_track_keeps_curves_through_style_confusion(joint):
    """Two curves, dashed and dash-dot, that the network labels with each other's style
    on short stretches (8 rows in 24, both at once). Read jointly over all curve pixels,
    each curve keeps its line; read style by style (argmax-like), the trackers hop to
    the other curve where their own style is missing."""
    from logdigit.constants import STYLE_TO_CLASS
    from logdigit.vectorise import trace_track
    h, w = 1200, 300
    r = np.arange(h)
    xa = 100 + 40 * np.sin(r / 90.0)
    xb = 220 + 30 * np.sin(r / 70.0 + 1)              # 50 px or more from the first
    dashed, dashdot = STYLE_TO_CLASS["dashed"], STYLE_TO_CLASS["dashdot"]
    swap = (r // 8) % 3 == 1
    code = np.zeros((h, w + 1), np.uint8)
    for x, own, other in ((xa, dashed, dashdot), (xb, dashdot, dashed)):
        on = _draw(h, w + 1, x) > 0
        best = np.where(swap, other, own)[:, None]
        second = np.where(swap, own, other)[:, None]
        code = np.where(on, (15 | ((best - 1) << 4) | ((second - 1) << 6)).astype(np.uint8), code)
    cfg = TrackerConfig(joint_styles=joint)
    curves = [(dashed, False), (dashdot, False)]
    if joint:
        got = trace_track(code, curves, 0.0, float(w), cfg)
    else:
        allowed = frozenset({dashed, dashdot})
        got = [trace_curves(np.zeros_like(code), c, 0.0, float(w), cfg=cfg, code=code,
                            allowed=allowed)[0] for c, _ in curves]
    bad = [np.mean(np.abs(tr.frac * w - x) > 10) for tr, x in zip(got, (xa, xb))]
    if joint:
        assert max(bad) < 0.01, bad
    else:
        assert max(bad) > 0.1, bad


def test_ambiguous_backup_level_warned():
    """A wrapped curve read on its backup trace on ~40 % of the rows is flagged."""
    from logdigit.calibration import calibration_from_dict
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise
    h, w = 1500, 300
    r = np.arange(h, dtype=float)

    def cal(wrap):
        return calibration_from_dict({
            "depth": {"unit": "M", "ties": [{"row": 0, "depth": 0.0}, {"row": h, "depth": 150.0}]},
            "tracks": [{"x": [0, w], "curves": [{"style": "solid", "mnemonic": "AAA", "left": 0,
                                                 "right": 1, "wrap": wrap}]}]})
    lay = Layout(shape=(h, w + 1), log_bottom=h)
    high = _wrapped_mask(0.9 + 0.3 * np.sin(r / 100.0), w)     # ~39 %
    assert any("backup trace on" in m for m in digitise(high, cal(True), lay).warnings)
    low = _wrapped_mask(0.5 + 0.55 * np.sin(r / 100.0), w)    # off the track ~27 %
    assert not any("backup trace on" in m for m in digitise(low, cal(True), lay).warnings)


@pytest.mark.parametrize("joint", [True, False])
def test_uncalibrated_curve_with_changing_style_read_once(joint):
    """Uncalibrated read of a track with two curves: one wide, noisy trace that the
    network labels with two styles at once (left and right edge), the pair changing
    every 250 rows (solid+dashed, dashed+dotted, dotted+solid), and one labelled dash-dot
    all along. Read jointly, the styles running together make ONE curve over the whole
    log; read style by style the first falls apart into a fragment per style."""
    from logdigit.constants import STYLE_TO_CLASS
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise

    h, w = 1500, 300
    r = np.arange(h)
    xa = 90 + 40 * np.sin(r / 90.0)
    xb = 220 + 30 * np.sin(r / 70.0 + 1)
    solid, dashed, dotted, dashdot = (STYLE_TO_CLASS[s]
                                      for s in ("solid", "dashed", "dotted", "dashdot"))
    pairs = np.array([(solid, dashed), (dashed, dotted), (dotted, solid)])[(r // 250) % 3]
    cols = np.arange(w)[None, :]
    on_a = _draw(h, w, xa, width=5) > 0
    left = cols < xa[:, None]
    best_a = np.where(left, pairs[:, :1], pairs[:, 1:])
    second_a = np.where(left, pairs[:, 1:], pairs[:, :1])
    on_b = _draw(h, w, xb) > 0
    code = np.zeros((h, w), np.uint8)
    classes = np.zeros((h, w), np.uint8)
    for on, best, second in ((on_a, best_a, second_a),
                             (on_b, np.full((h, 1), dashdot), np.full((h, 1), solid))):
        byte = (15 | ((best - 1) << 4) | ((second - 1) << 6)).astype(np.uint8)
        code = np.where(on, byte, code)
        classes = np.where(on, best.astype(np.uint8), classes)
    L = Layout(shape=(h, w), tracks=[(0, w)], log_bottom=h)
    dig = digitise(classes, None, L, code=code, tracker=TrackerConfig(joint_styles=joint))
    got = {c.mnemonic: c.values for c in dig.table.curves}
    near_a = [m for m, v in got.items()
              if np.nanmedian(np.abs(v * w - np.interp(dig.table.depth, r, xa))) < 5]
    if joint:
        assert len(got) == 2 and len(near_a) == 1, sorted(got)
        assert np.isfinite(got[near_a[0]]).mean() > 0.95
        assert np.nanmedian(np.abs(got["T1_DASHDOT"] * w - np.interp(dig.table.depth, r, xb))) < 2
    else:
        assert len(near_a) >= 2, sorted(got)


def test_uncalibrated_joint_read_keeps_crossing_curves_apart():
    """Two curves, solid and dashed, crossing each other every few hundred rows, each
    labelled with its own style: the joint uncalibrated read must not let the first
    curve wander onto the second (the cheaper style cost is for a curve's own line)."""
    from logdigit.constants import STYLE_TO_CLASS
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise

    h, w = 1500, 300
    r = np.arange(h)
    xa = 150 + 90 * np.sin(r / 60.0)
    xb = 150 + 90 * np.sin(r / 60.0 + 2.0)
    solid, dashed = STYLE_TO_CLASS["solid"], STYLE_TO_CLASS["dashed"]
    code = np.zeros((h, w), np.uint8)
    classes = np.zeros((h, w), np.uint8)
    gaps = (r % 24) < 8                                 # the dashed curve's gaps
    for x, own, other, drop in ((xa, solid, dashed, None), (xb, dashed, solid, gaps)):
        on = _draw(h, w, x) > 0
        if drop is not None:
            on[drop] = False
        byte = np.uint8(15 | ((own - 1) << 4) | ((other - 1) << 6))
        code = np.where(on, byte, code)
        classes = np.where(on, np.uint8(own), classes)
    L = Layout(shape=(h, w), tracks=[(0, w)], log_bottom=h)
    dig = digitise(classes, None, L, code=code)
    got = {c.mnemonic: c.values for c in dig.table.curves}
    assert sorted(got) == ["T1_DASHED", "T1_SOLID"]
    for name, x in (("T1_SOLID", xa), ("T1_DASHED", xb)):
        v = got[name] * w
        truth = np.interp(dig.table.depth, r, x)
        far = np.abs(xa - xb)[dig.table.depth.astype(int)] > 12   # away from crossings
        off = np.abs(v - truth) > 6
        assert np.mean(off[far & np.isfinite(v)]) < 0.02, name
        assert np.isfinite(v).mean() > 0.9, name


def test_vertical_grid_line_taken_for_curve_is_cleared():
    """A heavy (7 px) division line the network labelled solid, beside a curve that
    fades out for stretches: the tracker alone runs down the line in the fades
    (staircases). Cleared where it stands alone, the line is gone; the curve keeps its
    pixels (but for a few rows per steep crossing within the band) and the fades are
    gaps, not line."""
    from logdigit.layout import Layout
    from logdigit.pipeline import TrackPlan, clear_vertical_lines, digitise

    h, w = 1200, 300
    r = np.arange(h)
    x = 150 + 100 * np.sin(r / 70.0)
    curve = _draw(h, w, x) > 0
    curve[(r // 100) % 3 == 1] = False             # faded stretches
    classes = curve.astype(np.uint8)
    classes[:, 100:107] = 1                        # the line, labelled solid
    L = Layout(shape=(h, w), tracks=[(0, w)], log_bottom=h,
               lines=[{"x": 103.0, "x0": 100, "x1": 107, "width": 7.0, "presence": 0.5}])
    plan = [TrackPlan(0, 0.0, float(w), None)]
    off_line = np.abs(x - 103) > 15

    def on_line_share(cls):
        got = digitise(cls, None, L).table.curves[0].values * w
        return float(np.mean((np.abs(got - 103) < 5) & off_line))

    assert on_line_share(classes.copy()) > 0.1     # the staircase
    before = classes.copy()
    assert clear_vertical_lines(classes.copy(), None, L, plan, (0, h)) == 0   # 50 %: kept
    L.lines[0]["presence"] = 0.99
    assert clear_vertical_lines(classes, None, L, plan, (0, h)) == 1
    band = np.zeros((h, w), bool)
    band[:, 98:109] = True
    assert np.all(classes[curve & ~band] == 1)    # no curve pixel lost off the line ...
    lost_rows = np.flatnonzero((curve & band & (classes == 0)).any(1))
    crossings = int(np.sum(np.diff(np.sign(x - 103)) != 0))
    assert len(lost_rows) <= 8 * crossings        # ... and on it a few rows per crossing
    line_left = (classes[:, 100:107] > 0) & ~curve[:, 100:107]
    assert line_left.sum() < 0.05 * ((before[:, 100:107] > 0) & ~curve[:, 100:107]).sum()
    assert on_line_share(classes) < 0.01


def test_broken_track_border_taken_for_dashed_curve_is_cleared():
    """A broken track border the network labelled dashed, and a dashed curve of the
    track with faded stretches: the tracker hops onto the border in the fades. The
    border is a line of the layout on the track's edge: cleared, the curve is read on
    its own line only, and where it touches the border it keeps its pixels."""
    from logdigit.layout import Layout
    from logdigit.pipeline import TrackPlan, clear_vertical_lines
    from logdigit.vectorise import trace_track

    h, w = 1200, 320
    r = np.arange(h)
    x = 120 + 60 * np.sin(r / 90.0)
    x[500:540] = np.linspace(x[500], 297, 40)      # out to the border and back
    x[540:580] = np.linspace(297, x[580], 40)
    classes = _draw(h, w, x, cls=2)
    classes[(r % 20) >= 12] = 0                    # dash gaps
    classes[(r // 150) % 4 == 2] = 0               # faded stretches
    border = np.zeros((h, w), bool)
    border[(r % 37) < 30, 293:300] = True          # the broken border, labelled dashed
    classes[border] = 2                            # (wider than its ink: no thin column)
    L = Layout(shape=(h, w), tracks=[(0, 299)], log_bottom=h,
               lines=[{"x": 296.5, "x0": 294, "x1": 299, "width": 5.0, "presence": 0.8}])
    plan = [TrackPlan(0, 0.0, 299.0, None)]
    far = np.abs(x - 297) > 20

    def on_border_rows(cls):
        code = np.where(cls > 0, 15 | ((cls - 1) << 4), 0).astype(np.uint8)
        got = trace_track(code, [(2, False)], 0.0, 299.0)[0].frac * 299.0
        return int(np.sum((np.abs(got - 297) < 4) & far))

    assert on_border_rows(classes) > 20            # the hops
    cleared = classes.copy()
    assert clear_vertical_lines(cleared, None, L, plan, (0, h)) == 1
    assert on_border_rows(cleared) == 0
    curve = _draw(h, w, x, cls=2) > 0
    touch = np.zeros((h, w), bool)
    touch[:, 289:293] = True                       # the curve's pixels just inside the band
    assert np.array_equal(cleared[curve & touch], classes[curve & touch])


def test_curve_running_along_a_line_is_kept_with_the_scan():
    """A curve that runs down beside a division line for 100 rows, inside the line's
    band: from the masks alone it is indistinguishable from the line taken for curve;
    with the scan, its ink widens the band's ink beyond the line's, and it stays."""
    from logdigit.layout import Layout
    from logdigit.pipeline import TrackPlan, clear_vertical_lines

    h, w = 800, 300
    classes = np.zeros((h, w), np.uint8)
    classes[:, 100:107] = 1                       # the line, labelled solid
    classes[300:400, 107:109] = 1                 # the curve beside it
    grey = np.full((h, w), 255, np.uint8)
    grey[classes > 0] = 0
    L = Layout(shape=(h, w), tracks=[(0, w)], log_bottom=h, threshold=128,
               lines=[{"x": 103.0, "x0": 100, "x1": 107, "width": 7.0, "presence": 0.99}])
    plan = [TrackPlan(0, 0.0, float(w), None)]
    alone, scan = classes.copy(), classes.copy()
    clear_vertical_lines(alone, None, L, plan, (0, h))
    clear_vertical_lines(scan, None, L, plan, (0, h), grey=grey)
    assert not alone[300:400, 107:109].any()      # masks alone: the curve goes with the line
    assert scan[300:400, 107:109].all()           # with the scan it stays ...
    assert not scan[:300, 100:107].any() and not scan[400:, 100:107].any()   # the line goes


@pytest.mark.parametrize("with_code", [False, True])
def test_uncalibrated_two_curves_of_one_style(with_code):
    """Two solid curves in one track (a vendor print's pair), read without a calibration:
    both come out, T1_SOLID and T1_SOLID_2, each on its own line; a track with one
    (wide, 9 px) solid curve gives one curve, not a second along its edge."""
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise

    h, w = 1500, 300
    r = np.arange(h)
    xa = 80 + 40 * np.sin(r / 90.0)
    xb = 210 + 50 * np.sin(r / 70.0 + 1)
    L = Layout(shape=(h, w), tracks=[(0, w)], log_bottom=h)

    def read(m):
        code = np.where(m > 0, np.uint8(15), np.uint8(0)) if with_code else None
        dig = digitise(m, None, L, code=code)
        return {c.mnemonic: c.values * w for c in dig.table.curves}, dig.table.depth

    two = _draw(h, w, xa)
    _draw(h, w, xb, out=two)
    got, depth = read(two)
    assert sorted(got) == ["T1_SOLID", "T1_SOLID_2"], sorted(got)
    truths = [np.interp(depth, r, xa), np.interp(depth, r, xb)]
    for v in got.values():
        err = min(np.nanmedian(np.abs(v - t)) for t in truths)
        assert err < 1.5 and np.isfinite(v).mean() > 0.95
    assert {int(np.argmin([np.nanmedian(np.abs(v - t)) for t in truths]))
            for v in got.values()} == {0, 1}

    got, _ = read(_draw(h, w, xa, width=9))
    assert sorted(got) == ["T1_SOLID"], sorted(got)
    # beside the curve, pieces that hop across the track every 12 rows (what a wide
    # trace's leftovers look like): not a second curve
    hop = _draw(h, w, xa)
    for k, r0 in enumerate(range(0, h, 12)):
        x = 170 if k % 2 else 260
        hop[r0:r0 + 9, x:x + 2] = 1
    got, _ = read(hop)
    assert sorted(got) == ["T1_SOLID"], sorted(got)


def test_uncalibrated_curve_whose_style_flickers_is_read_once():
    """One curve the network labels solid and dash-dot in turns (pieces of 30 rows, never
    both on one row): without a calibration it is one curve, not a solid and a dash-dot
    one that each cover half the rows."""
    from logdigit.constants import STYLE_TO_CLASS
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise

    h, w = 1500, 300
    r = np.arange(h)
    x = 150 + 60 * np.sin(r / 90.0)
    on = _draw(h, w, x) > 0
    solid, dashdot = STYLE_TO_CLASS["solid"], STYLE_TO_CLASS["dashdot"]
    style = np.where((r // 30) % 2 == 0, solid, dashdot)[:, None]
    classes = np.where(on, style, 0).astype(np.uint8)
    code = np.where(on, (15 | ((style - 1) << 4) | ((np.where(style == solid, dashdot, solid) - 1)
                                                    << 6)), 0).astype(np.uint8)
    L = Layout(shape=(h, w), tracks=[(0, w)], log_bottom=h)
    dig = digitise(classes, None, L, code=code)
    names = [c.mnemonic for c in dig.table.curves]
    assert len(names) == 1, names
    v = dig.table.curves[0].values * w
    truth = np.interp(dig.table.depth, r, x)
    ok = np.isfinite(v)
    assert ok.mean() > 0.95 and np.median(np.abs(v[ok] - truth[ok])) < 1.5


def test_same_curve_groups_never_chain_two_curves_of_one_style():
    """Two solid curves read apart (they cross, 8.5 % apart at the median) and a dash-dot
    fragment along their middle (4 % from each): grouped as curves, the fragment joins
    one of them; it does not chain the two solid curves into one."""
    from logdigit.pipeline import same_curve_groups
    from logdigit.vectorise import CurveTrace

    r = np.arange(2000)
    wave = 0.06 * np.sin(r / 40.0)

    def tr(frac):
        return CurveTrace(frac, np.ones(len(r), bool), np.ones(len(r)))

    traces = [tr(0.3 + wave), tr(0.3 - wave), tr(np.full(len(r), 0.3))]
    assert same_curve_groups(traces, 0.05) == [[0, 1, 2]]     # styles unknown: chained
    groups = same_curve_groups(traces, 0.05, styles=[1, 1, 4])
    assert len(groups) == 2 and not any({0, 1} <= set(g) for g in groups), groups
    assert sorted(i for g in groups for i in g) == [0, 1, 2]


def _two_curve_code(h, w, xa, xb, label_a, label_b):
    """Curve code of two 2-px curves at columns ``xa``, ``xb`` [h], labelled per row with
    the class ids ``label_a``, ``label_b`` [h] (second-best style: the other's)."""
    code = np.zeros((h, w + 1), np.uint8)
    for x, best, second in ((xa, label_a, label_b), (xb, label_b, label_a)):
        on = _draw(h, w + 1, x) > 0
        byte = (15 | ((best[:, None] - 1) << 4) | ((second[:, None] - 1) << 6)).astype(np.uint8)
        code = np.where(on, byte, code)
    return code


def test_long_wrong_style_stretch_filled_between_anchors():
    """A dash-dot curve the network labels dashed for 300 rows (longer than max_gap_px),
    beside a true dashed curve: the first read leaves the stretch NULL (a wrong-style
    row costs more than a miss); the anchored second read fills it, on the right line."""
    from logdigit.constants import STYLE_TO_CLASS
    from logdigit.vectorise import trace_track
    h, w = 1200, 300
    r = np.arange(h)
    xa = 80 + 30 * np.sin(r / 90.0)                 # dashed
    xb = 210 + 30 * np.sin(r / 70.0 + 1)            # dash-dot, labelled dashed 500..800
    dashed, dashdot = STYLE_TO_CLASS["dashed"], STYLE_TO_CLASS["dashdot"]
    lb = np.where((r >= 500) & (r < 800), dashed, dashdot)
    code = _two_curve_code(h, w, xa, xb, np.full(h, dashed), lb)
    curves = [(dashed, False), (dashdot, False)]
    off = trace_track(code, curves, 0.0, float(w), TrackerConfig(fill_style_cost=0.0))
    assert np.isnan(off[1].frac[550:750]).all()        # the first read alone: a hole
    got = trace_track(code, curves, 0.0, float(w), TrackerConfig())
    for tr, x in zip(got, (xa, xb)):
        ok = np.isfinite(tr.frac)
        assert ok.mean() > 0.98
        assert np.max(np.abs(tr.frac[ok] * w - x[ok])) < 3


def test_fill_anchored_gaps_needs_both_anchors_and_its_own_line():
    from logdigit.vectorise import CurveTrace, fill_anchored_gaps
    n = 100
    t = np.linspace(0.2, 0.4, n)

    def trace(f):
        return CurveTrace(f, np.isfinite(f), np.where(np.isfinite(f), 1.0, 0.0))

    a = t.copy()
    a[30:60] = np.nan
    filled = fill_anchored_gaps(trace(a), trace(t), 0.01)
    np.testing.assert_allclose(filled.frac, t)
    assert filled.observed[30:60].all()
    moved = t.copy()
    moved[59:] += 0.05                                   # disagrees after the gap
    assert np.isnan(fill_anchored_gaps(trace(a), trace(moved), 0.01).frac[30:60]).all()
    lead = t.copy()
    lead[:40] = np.nan                                   # no anchor above: left alone
    assert np.isnan(fill_anchored_gaps(trace(lead), trace(t), 0.01).frac[:40]).all()
    other = np.full(n, np.nan)
    other[30:60] = t[30:60] + 0.002                      # another curve's read, that line
    kept = fill_anchored_gaps(trace(a), trace(t), 0.01, [other])
    assert np.isnan(kept.frac[30:60]).all()
    other[30:38] = 0.9                                   # shares 22 of 30 rows: still refused
    assert np.isnan(fill_anchored_gaps(trace(a), trace(t), 0.01, [other]).frac[30:60]).all()
    other[30:55] = 0.9                                   # shares 5 of 30 (a crossing): filled
    assert np.isfinite(fill_anchored_gaps(trace(a), trace(t), 0.01, [other]).frac[30:60]).all()


def test_wrapped_stretch_resuming_where_it_left_keeps_its_level():
    """After a long gap a wrapped curve that comes back where it left keeps the level
    it had, even when it then spends most of its rows on the backup trace (the
    off-main-trace prior alone would move it down a period)."""
    from logdigit.vectorise import relevel_segments
    x = np.array([100.0, 60, 20, np.nan, np.nan, np.nan, 22, 150, 310, 330, 340, 350])
    got = relevel_segments(x, 300.0, 2)
    np.testing.assert_array_equal(got, x)                              # continuity
    np.testing.assert_array_equal(relevel_segments(x, 300.0, 2, near=0.0)[6:],
                                  x[6:] - 300)                         # the prior alone


def test_read_hopping_between_curves_is_warned():
    """A read whose position jumps across the track every 15 rows (a tracker hopping
    between two curves) is flagged; a smooth curve is not."""
    from logdigit.calibration import calibration_from_dict
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise
    h, w = 1500, 300
    r = np.arange(h, dtype=float)
    cal = calibration_from_dict({
        "depth": {"unit": "M", "ties": [{"row": 0, "depth": 0.0}, {"row": h, "depth": 150.0}]},
        "tracks": [{"x": [0, w], "curves": [{"style": "solid", "mnemonic": "AAA", "left": 0,
                                             "right": 1}]}]})
    lay = Layout(shape=(h, w + 1), log_bottom=h)
    smooth = 150 + 60 * np.sin(r / 80.0)
    hop = np.where((r // 15) % 2 == 0, 60.0, 230.0) + 5 * np.sin(r / 9.0)
    warned = [any("may hop between curves" in m for m in
                  digitise(_draw(h, w + 1, x), cal, lay).warnings) for x in (smooth, hop)]
    assert warned == [False, True]


def _random_runs(rng, H: int, W: int) -> vz.Runs:
    """Runs of a wandering curve plus clutter: 0-4 runs per row, some rows empty."""
    rows, starts, ends = [], [], []
    x = W / 2
    for r in range(H):
        x = float(np.clip(x + rng.normal(0, 3), 0, W - 1))
        cand = [] if rng.random() < 0.15 else [int(x)]
        cand += list(rng.integers(0, W, rng.integers(0, 4)))
        cols = sorted(set(cand))
        for c in cols:
            w = int(rng.integers(1, 6))
            if starts and rows[-1] == r and c <= ends[-1]:
                continue
            rows.append(r)
            starts.append(c)
            ends.append(min(W, c + w))
    rows = np.array(rows, np.int64)
    return vz.Runs(rows, np.array(starts, np.int64), np.array(ends, np.int64),
                   np.searchsorted(rows, np.arange(H + 1)))


@pytest.mark.parametrize("period", [0, 120])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_tracker_equals_python(period, seed, monkeypatch):
    """The numba kernel takes the same path as the Python loop (same costs, same
    tie-breaking), with and without emission costs, busy rows and wrapping."""
    from logdigit import _tracker_jit

    if _tracker_jit.kernel() is None:
        pytest.skip("numba not installed (pip install 'logdigit[fast]')")
    rng = np.random.default_rng(seed)
    runs = _random_runs(rng, 1500, 120)
    emit = rng.random(len(runs.rows)) * 4 * (rng.random(len(runs.rows)) < 0.3)
    busy = rng.random(runs.n_rows) < 0.5
    cfg = vz.TrackerConfig(gap_hypotheses=int(rng.integers(1, 6)))
    for em, b in [(None, None), (emit, None), (emit, busy)]:
        back, end = vz._viterbi_compiled(_tracker_jit.kernel(), runs, cfg, period, em, b)
        back_py, end_py = vz._viterbi_python(runs, cfg, period, em, b)
        assert end == end_py
        np.testing.assert_array_equal(back, back_py)   # every node's best predecessor
        fast = vz.viterbi_path(runs, cfg, period, em, b)
        monkeypatch.setenv("LOGDIGIT_JIT", "0")
        slow = vz.viterbi_path(runs, cfg, period, em, b)
        monkeypatch.delenv("LOGDIGIT_JIT")
        assert (slow >= 0).sum() > 500
        np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("factor,marked", [(3.0, True), (3.0, None), (0.0, True), (3.0, False)])
def test_heavy_grid_line_crossing_leaves_no_spike(factor, marked):
    """Where the curve crosses a heavy horizontal line and the network labels part of
    the line curve (a run 40-120 px wide, short of a grid-line run), the position stays
    on the curve, not at the run's middle or end: on the rows the layout marks as grid
    lines (``line_rows``; None: every row), and unmarked too (a 4-row blob the curve
    passes straight through: a thick or tilted line the grid test missed). With the
    settling and the line-spike rule off the spikes are there, so the check can fail."""
    h, w = 1200, 400
    rows = np.arange(h)
    truth = 200 + 50 * np.sin(rows / 110.0)
    m = _draw(h, w, truth)
    lines = np.arange(40, h - 40, 100)
    rng = np.random.default_rng(3)
    for y in lines:                         # 4-row line, labelled curve on one side only
        c = int(round(truth[y]))
        lo, hi = (c - int(rng.integers(40, 120)), c + 2) if y % 200 else (c - 2, c + int(rng.integers(40, 120)))
        m[y:y + 4, lo:hi] = 1
    at_lines = np.concatenate([np.arange(y, y + 4) for y in lines])
    line_rows = None
    if marked is not None:
        line_rows = np.zeros(h, bool)
        if marked:
            line_rows[at_lines] = True
    off = TrackerConfig(wide_run_factor=factor, line_spike_share=0.0)
    tr = trace_curves(m, 1, 0.0, float(w), cfg=off if not factor else
                      TrackerConfig(wide_run_factor=factor), line_rows=line_rows)[0]
    err = np.abs(tr.frac * w - truth)
    if factor:
        assert np.nanmax(err[at_lines]) < 2.5
        assert np.nanmedian(err) < 0.5
    else:
        assert np.nanmax(err[at_lines]) > 15
        # the line-spike rule is the second guard: it alone removes them too
        tr = trace_curves(m, 1, 0.0, float(w), cfg=TrackerConfig(wide_run_factor=0.0),
                          line_rows=line_rows)[0]
        err = np.abs(tr.frac * w - truth)
        assert np.nanmax(err[at_lines]) < 2.5


@pytest.mark.parametrize("rows_px", [1, 2])
def test_sharp_spike_and_sweep_keep_their_runs(rows_px):
    """A sharp spike (wide runs that shift row by row) and a sweep across the track
    (the curve leaves far from where it entered) are not line blobs: off the grid's
    rows they are read as drawn, the spike's tip kept."""
    h, w = 900, 400
    x = 120.0 + 6 * np.sin(np.arange(h) / 40.0)      # a constant line would be a grid line
    tip = 300
    half = rows_px
    for k in range(-half, half + 1):                  # triangular spike, 150 px high
        x[tip + k] += 150.0 * (1 - abs(k) / (half + 1))
    x[600:] += 200.0                                  # a step: sweep across in one row
    m = _draw(h, w, x)
    tr = trace_curves(m, 1, 0.0, float(w), line_rows=np.zeros(h, bool))[0]
    got = tr.frac * w
    assert got[tip - 2:tip + 3].max() > x[tip] - 4
    ok = np.isfinite(got)
    assert ok.mean() > 0.98 and np.median(np.abs(got[ok] - x[ok])) < 0.5


def _trace(frac):
    from logdigit.vectorise import CurveTrace
    frac = np.asarray(frac, float)
    ok = np.isfinite(frac)
    return CurveTrace(frac.copy(), ok.copy(), ok.astype(float))


def test_detour_onto_a_neighbours_gap_is_given_back():
    """Curve A leaves its line for B's over exactly the rows B went unread: B gets those
    rows back and A is left unread there. A curve that only crosses B's line, or that
    was already running along it, keeps its read."""
    from logdigit.vectorise import reassign_detours
    h = 400
    y = np.arange(h)
    b_true = 0.25 + 0.01 * np.sin(y / 9.0)
    a_true = 0.08 + 0.005 * np.sin(y / 13.0)
    b = b_true.copy()
    b[150:230] = np.nan                        # B unread ...
    a = a_true.copy()
    a[156:226] = b_true[156:226]               # ... A read on B's line instead
    a[150:156] = a[226:230] = np.nan           # (the jumps: a few rows unread)
    A, B = reassign_detours([_trace(a), _trace(b)], 0.02, max_gap=10)
    assert np.allclose(B.frac[156:226], b_true[156:226]) and B.observed[156:226].all()
    assert np.isfinite(B.frac[150:230]).all()                 # short ends bridged
    assert np.isnan(A.frac[156:226]).all() and not A.observed[156:226].any()
    assert np.allclose(A.frac[:150], a_true[:150])
    # off: unchanged
    A0, B0 = reassign_detours([_trace(a), _trace(b)], 0.0)
    assert np.array_equal(A0.frac, a, equal_nan=True)
    # a crossing: A passes B's line for a few rows only
    c = a_true + (y - 100) * 0.004
    A1, B1 = reassign_detours([_trace(c), _trace(b)], 0.02)
    assert np.array_equal(A1.frac, c) and np.array_equal(B1.frac, b, equal_nan=True)
    # A runs along B's line before and after the gap too: not a detour
    d = b_true + 0.005
    A2, B2 = reassign_detours([_trace(d), _trace(b)], 0.02)
    assert np.array_equal(A2.frac, d) and np.array_equal(B2.frac, b, equal_nan=True)


def _line_page(h=300, w=120):
    """White page, a 3 px vertical pen line at column 40 (the curve), a full-width
    horizontal grid line at rows 140-142, a 6-row break in the pen line at 200."""
    g = np.full((h, w), 255, np.uint8)
    g[:, 39:42] = 0
    g[140:143, :] = 0
    g[200:206, 39:42] = 255
    return g


def _gap_trace(h, rows_read, col, w=120):
    frac = np.full(h, np.nan)
    frac[rows_read] = col / w
    obs = np.isfinite(frac)
    return vz.CurveTrace(frac, obs, obs.astype(float))


def test_follow_ink_fills_a_held_line_through_grid_and_breaks():
    h, w = 300, 120
    g = _line_page(h, w)
    read = np.r_[0:20, 280:300]                  # the network saw only the ends
    t = vz.follow_ink_gaps(_gap_trace(h, read, 40.0, w), g, 128, 0.0, float(w), min_gap=60)
    x = t.frac * w
    assert np.isfinite(x).all() and np.abs(x - 40.0).max() < 0.01
    assert t.observed[20:140].all() and not t.observed[141] and not t.observed[202]
    assert np.allclose(t.confidence[20:140], vz.INK_CONFIDENCE)
    # gaps up to min_gap are the bridging's; a line elsewhere or none: left as NaN
    short = vz.follow_ink_gaps(_gap_trace(h, np.r_[0:100, 150:300], 40.0, w), g, 128, 0.0,
                               float(w), min_gap=60)
    assert np.isnan(short.frac[100:150]).all()
    off = vz.follow_ink_gaps(_gap_trace(h, read, 80.0, w), g, 128, 0.0, float(w), min_gap=60)
    assert np.isnan(off.frac[20:280]).all()
    blank = np.full((h, w), 255, np.uint8)
    assert np.isnan(vz.follow_ink_gaps(_gap_trace(h, read, 40.0, w), blank, 128, 0.0,
                                       float(w), min_gap=60).frac[20:280]).all()


def test_follow_ink_leaves_grid_lines_other_curves_and_backups():
    h, w = 300, 120
    g = _line_page(h, w)
    read = np.r_[0:20, 280:300]
    args = (g, 128, 0.0, float(w))
    on_grid = vz.follow_ink_gaps(_gap_trace(h, read, 40.0, w), *args, min_gap=60,
                                 vlines=np.array([40.5]))
    assert np.isnan(on_grid.frac[20:280]).all()
    other = np.full(h, 40.0 / w)                  # another curve read along that ink
    taken = vz.follow_ink_gaps(_gap_trace(h, read, 40.0, w), *args, min_gap=60, others=[other])
    assert np.isnan(taken.frac[20:280]).all()
    backup = _gap_trace(h, read, 40.0, w)
    backup.frac[read] += 1.0                      # ends on a backup trace
    assert np.isnan(vz.follow_ink_gaps(backup, *args, min_gap=60).frac[20:280]).all()


def test_follow_ink_takes_a_stair_step_jog():
    h, w = 300, 120
    g = np.full((h, w), 255, np.uint8)
    g[:151, 39:42] = 0
    g[148:151, 39:72] = 0                         # the jog: a horizontal run of the pen
    g[148:, 69:72] = 0
    t = _gap_trace(h, np.r_[0:20, 280:300], 0.0, w)
    t.frac[:20], t.frac[280:] = 40.0 / w, 70.0 / w
    x = vz.follow_ink_gaps(t, g, 128, 0.0, float(w), min_gap=60).frac * w
    assert np.abs(x[20:147] - 40).max() < 0.01 and np.abs(x[152:280] - 70).max() < 0.01


def test_follow_ink_counts_the_jogs_of_a_stair_step_as_line():
    """A held reading that steps back and forth every 10 rows (3 of them the pen's
    horizontal jog, wider than the pen): the jog rows are stepped over, so fewer than
    INK_MIN_SHARE of the rows take a centre, yet every row is ink of the line and the
    gap is filled (a real 1-bit SP log, 4702900080_gr_d, is drawn like this)."""
    h, w = 300, 120
    g = np.full((h, w), 255, np.uint8)
    g[:20, 39:42] = 0
    cols = []
    for k, r0 in enumerate(range(20, 280, 10)):
        c, nxt = (40, 46) if k % 2 == 0 else (46, 40)
        g[r0:r0 + 7, c - 1:c + 2] = 0
        g[r0 + 7:r0 + 10, min(c, nxt) - 1:max(c, nxt) + 2] = 0
        cols.append(c)
    g[280:, 39:42] = 0                            # 26 blocks: the last one jogs back to 40
    dark = g[19:281] < 128
    line = vz.follow_ink(dark, 40.0, 40.0)
    assert line is not None and np.isfinite(line).mean() < vz.INK_MIN_SHARE
    t = _gap_trace(h, np.r_[0:20, 280:300], 40.0, w)
    x = vz.follow_ink_gaps(t, g, 128, 0.0, float(w), min_gap=60).frac * w
    for k, r0 in enumerate(range(20, 280, 10)):
        assert np.abs(x[r0 + 1:r0 + 6] - cols[k]).max() < 0.01


def test_held_stretch_the_network_missed_is_read_from_the_ink():
    """A rendered page whose curve is held still (a stuck reading): with the curve's
    pixels erased from the true mask over most of the stretch (as the network, taking
    the straight line for grid, does), digitise reads it from the scan's ink when
    ``ink_follow`` is on, and leaves it NULL when off."""
    synth = pytest.importorskip("training.synth")
    from logdigit import layout as lay
    from logdigit.pipeline import digitise

    page = synth.render_page(4243, 0, cfg=synth.RenderConfig(hold_prob=1.0, hold_stair_share=0.0),
                             height=2400, width=900, n_tracks=2, skew_deg=0.0, styles=["solid"],
                             wraps=False, colour=False, binarize=False, dropouts=False)
    k = next(i for i, c in enumerate(page.truth.curves) if c.mnemonic == "ILD")
    L = lay.analyse(page.image)
    rows = np.arange(page.image.shape[0], dtype=float)
    row_of = np.interp(page.truth.depth, page.calibration.depth_at(rows), rows)
    f = page.truth.curves[k].frac
    starts, ends = vz.true_stretches(np.abs(np.diff(f)) < 1e-9)
    j = int(np.argmax(ends - starts))             # the longest hold
    r0, r1 = int(row_of[starts[j]]) + 30, int(row_of[ends[j] - 1]) - 30
    assert r1 - r0 > 200                          # the stretch this test is about
    mask = page.mask.copy()
    mask[r0:r1][page.instance[r0:r1] == k + 1] = 0
    tr = page.calibration.tracks[0]
    truth_x = tr.x[0] + f[starts[j]] * (tr.x[1] - tr.x[0])
    got = {}
    for on in (True, False):
        dig = digitise(mask, page.calibration, L, grey=page.image,
                       tracker=TrackerConfig(ink_follow=on))
        col = next(c for c in dig.table.curves if c.mnemonic == "ILD")
        d_all = page.calibration.depth_at(np.arange(r0 + 20, r1 - 20, dtype=float))
        inside = (dig.table.depth >= d_all[0]) & (dig.table.depth <= d_all[-1])
        x = tr.x[0] + value_to_fraction(col.values[inside],
                                        page.calibration.tracks[0].curves[0]) * (tr.x[1] - tr.x[0])
        got[on] = x
    err = np.abs(got[True] - truth_x)
    assert np.isfinite(got[True]).all() and np.median(err) < 0.6 and err.max() < 2.5
    assert np.isnan(got[False]).mean() > 0.8


def test_uncalibrated_track_with_only_grid_labelled_curve_writes_no_curve():
    """Track 2 holds no curve, but the network called pieces of its vertical grid lines
    and of one heavy horizontal line solid (what it does on empty tracks of real
    paper): no T2_SOLID is written, a warning says why; track 1's curve, which crosses
    the same kind of lines, is written."""
    from logdigit.layout import Layout
    from logdigit.pipeline import MIN_GRID_FREE_SHARE, digitise

    h, w = 1500, 600
    r = np.arange(h)
    grey = np.full((h, w), 255, np.uint8)
    xs = [60, 120, 180, 240, 360, 420, 480, 540]
    for x in xs:
        grey[:, x - 1:x + 2] = 0
    grey[::50, 5:595] = 0                              # horizontal grid, every 50 rows
    grey[700:703, 5:595] = 0                           # a heavy line
    x1 = 150 + 60 * np.sin(r / 90.0)
    classes = _draw(h, w, x1)
    grey[classes > 0] = 0
    for k, r0 in enumerate(range(100, h - 100, 150)):  # pieces of the lines, labelled solid
        x = xs[4 + k % 4]
        classes[r0:r0 + 90, x - 1:x + 2] = 1
    classes[700:703, 320:560] = 1
    lines = [{"x": float(x), "x0": x - 1, "x1": x + 2, "width": 3.0, "presence": 1.0}
             for x in xs]
    L = Layout(shape=(h, w), tracks=[(0, 300), (300, 599)], log_bottom=h, threshold=128,
               lines=lines)
    dig = digitise(classes, None, L, grey=grey)
    assert [c.mnemonic for c in dig.table.curves] == ["T1_SOLID"]
    assert any(w_.startswith("track 2: a solid read left out") for w_ in dig.warnings)
    # the same pieces beside a real curve of track 2 do not hide it
    _draw(h, w, 450 + 50 * np.sin(r / 70.0), out=classes)
    dig = digitise(classes, None, L, grey=grey)
    assert [c.mnemonic for c in dig.table.curves] == ["T1_SOLID", "T2_SOLID"]
    assert MIN_GRID_FREE_SHARE < 0.15


def test_grid_free_share():
    """Observed off the grid, against chance: 0 for a trace along a vertical line or seen
    only on line rows, about 1 for one crossing the track, on a sparse grid and on a
    dense one alike (a log track whose line bands cover 90 % of it); drift cancels (the
    line and the track's borders move together)."""
    from logdigit.pipeline import TrackPlan, grid_free_share
    from logdigit.vectorise import CurveTrace

    h = 400
    obs = np.ones(h, bool)
    tp = TrackPlan(0, 100.0, 300.0, None, drift_ref=5.0)
    along = CurveTrace(np.full(h, (155.0 - 100.0) / 200.0), obs, np.ones(h))
    across = CurveTrace(np.linspace(0.05, 0.95, h), obs, np.ones(h))
    vl = [(150.0, 3.0)]                     # at zero drift: 9 of the track's 201 columns
    free = 192 / 201
    assert grid_free_share(along, tp, (0, h), vl, None) == 0.0   # the trace holds at +5
    assert grid_free_share(along, TrackPlan(0, 100.0, 300.0, None), (0, h), vl,
                           None) == pytest.approx(1 / free)
    assert grid_free_share(across, tp, (0, h), vl, None) == pytest.approx(0.95 / free)
    assert grid_free_share(across, tp, (0, h), vl, np.ones(h, bool)) == 0.0
    half = CurveTrace(across.frac, np.arange(h) < h // 2, across.confidence)
    assert grid_free_share(half, tp, (0, h), vl, None) == pytest.approx(0.45 / free)
    dense = [(float(x), 3.0) for x in range(95, 300, 10)]
    assert 0.7 < grid_free_share(across, tp, (0, h), dense, None) < 1.3
    on_dense = CurveTrace(np.full(h, 0.25), obs, np.ones(h))     # at 150 - 5 = 145
    assert grid_free_share(on_dense, tp, (0, h), dense, None) == 0.0


def test_uncalibrated_pieces_of_a_wide_stroke_labelled_another_style_are_one_curve():
    """A fast solid curve whose strokes run 30 px sideways, the far end of each labelled
    dash-dot on 40 % of the rows (how the network labels fast spikes on real paper): the
    dash-dot read lies on the same run of ink as the solid one and is left out, with a
    warning; a dashed curve 40 px beside the solid, paper between them, is kept."""
    from logdigit.constants import STYLE_TO_CLASS
    from logdigit.layout import Layout
    from logdigit.pipeline import digitise, same_ink_share

    h, w = 1500, 300
    r = np.arange(h)
    xa = 100 + 30 * np.sin(r / 150.0)
    grey = np.full((h, w), 255, np.uint8)
    classes = _draw(h, w, xa, cls=STYLE_TO_CLASS["solid"])
    piece = ((r % 100) < 40) & ((r % 6) < 2)     # 2-row strokes, 4 rows of paper between
    for y in np.flatnonzero(piece):
        x = int(round(xa[y]))
        classes[y, x:x + 30] = STYLE_TO_CLASS["solid"]
        classes[y, x + 25:x + 31] = STYLE_TO_CLASS["dashdot"]
    _draw(h, w, xa + 40, cls=STYLE_TO_CLASS["dashed"], out=classes)
    grey[classes > 0] = 0
    L = Layout(shape=(h, w), tracks=[(0, w)], log_bottom=h, threshold=128)
    dig = digitise(classes, None, L, grey=grey)
    names = [c.mnemonic for c in dig.table.curves]
    assert names == ["T1_SOLID", "T1_DASHED"], names
    assert any("a dashdot read left out" in w_ and "solid curve" in w_ for w_ in dig.warnings)
    # without the scan nothing tells the pieces from a curve: all three are written
    assert len(digitise(classes, None, L).table.curves) == 3
    # the share itself: pieces joined on their rows, the dashed curve never
    from logdigit.pipeline import TrackPlan
    from logdigit.vectorise import CurveTrace
    tp = TrackPlan(0, 0.0, float(w), None)
    obs = np.ones(h, bool)
    a = CurveTrace(xa / w, obs, np.ones(h))
    pieces = CurveTrace(np.where(piece, (xa + 28) / w, np.nan), piece, piece * 1.0)
    b = CurveTrace((xa + 40) / w, obs, np.ones(h))
    assert same_ink_share(a, pieces, grey, 128, tp, None, (0, h), None) > 0.9
    assert same_ink_share(a, b, grey, 128, tp, None, (0, h), None) < 0.05
    assert same_ink_share(a, CurveTrace(a.frac, np.zeros(h, bool), a.confidence), grey, 128,
                          tp, None, (0, h), None) is None
