"""How often curves run (nearly) horizontally: real paper scans vs rendered pages.

Real curves wiggle continuously and cross a track in steep but gradational
ramps; long horizontal traverses (a row of curve ink running over a good part of
the track) are rare. This bench measures that on the 1-bit image the same way
for real scans (``../shared/real_scans/paper_scans``, relative to the repo;
skipped cleanly when absent) and rendered 1-bit pages at similar px/ft:

* ``traverse``: share of the non-grid rows inside the tracks of a band from the
  middle of the log that hold a black run of ``10 % .. 90 %`` of the track width
  (grid rows: more than 25 % black across the track, and their neighbours). Real
  scans are deskewed and their tracks found with :mod:`logdigit.layout`; renders
  use their calibration's tracks (unskewed pages).
* ``slanted``: share of the runs in those rows that are 8 px .. 10 % of the track
  long (curves crossing rows at a slant) among all runs of 2 px and more.
* for renders also the exact ``jump``: share of curve rows whose drawn position
  moves by more than 10 % of the track width from the previous row (from the
  page model, no image analysis), and ``flat_run``: share of curve rows inside a
  plateau (position within 0.3 % of the track for >= 3 ft), and ``steep_tv``: share
  of the position's 1-ft variation made where it moves more than 10 % of the
  track within a foot (a square wave puts nearly all its variation there); also per family
  (``GR_steep_tv`` ...).

Prints medians per source and writes ``bench/results/render_curves.json``.

    python bench/render_curves.py [--pages 12] [--rows 4000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_scans" / "paper_scans"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench._results import write_results  # noqa: E402


def _row_runs(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, length) of every True run along the rows of bool [H, W]."""
    pad = np.pad(b, ((0, 0), (1, 1)))
    d = np.diff(pad.astype(np.int8), axis=1)
    r, s = np.nonzero(d == 1)
    _, e = np.nonzero(d == -1)
    return r, e - s


def traverse_share(black: np.ndarray, tracks: list[tuple[int, int]]) -> dict[str, float]:
    """Horizontal-run statistics of bool [H, W] ink (deskewed) inside each track.

    Per track (interior columns, 4 px off the borders): grid rows are rows more
    than 25 % black across the track, and the rows next to them. ``traverse``:
    share of the other rows holding a black run of 10-90 % of the track width;
    ``slanted``: share of the runs (>= 2 px) in those rows that are 8 px .. 10 %
    of the track long (a curve crossing rows at a slant rather than running
    down a plateau one pen wide). Pooled over tracks.
    """
    hits = rows = n_mid = n_all = 0
    for x0, x1 in tracks:
        w = x1 - x0
        if w < 100:
            continue
        sub = black[:, x0 + 4:x1 - 4]
        grid = sub.mean(1) > 0.25
        grid = grid | np.r_[grid[1:], False] | np.r_[False, grid[:-1]]
        r, ln = _row_runs(sub)
        keep = ~grid[r] & (ln >= 2) & (ln <= 0.9 * w)
        long_rows = np.unique(r[keep & (ln >= 0.1 * w)])
        hits += len(long_rows)
        rows += int((~grid).sum())
        n_mid += int((keep & (ln >= 8) & (ln < 0.1 * w)).sum())
        n_all += int(keep.sum())
    return {"traverse": hits / max(rows, 1), "slanted": n_mid / max(n_all, 1)}


def curve_stats(frac: np.ndarray, wrap: bool, px_per_ft: float) -> dict[str, float]:
    """Exact per-row statistics of one drawn curve (float64 [H] unwrapped position).

    ``jump``: share of row steps moving > 10 % of the track; ``flat_run``: share of
    rows inside a plateau (position within 0.3 % of the track for >= 3 ft);
    ``steep_tv``: share of the curve's 1-ft variation (sum over rows of
    |position(row + 1 ft) - position(row)|) made where the curve moves more than
    10 % of the track within a foot (square waves put nearly all of it there,
    curves that wiggle at several scales less; tool noise, a few % of the track,
    stays below); ``rows``: row steps counted.
    """
    ok = np.isfinite(frac)
    if ok.sum() < 10:
        return {}
    shown = frac - np.floor(frac) if wrap else frac
    d = np.abs(np.diff(shown))
    fl = np.floor(np.nan_to_num(frac))
    same = ok[1:] & ok[:-1] & (fl[1:] == fl[:-1])
    dd = np.where(same, d, 0.0)
    w = max(3, int(round(3 * px_per_ft)))
    flat = np.zeros(len(shown), bool)
    if len(shown) > w:
        from numpy.lib.stride_tricks import sliding_window_view

        win = sliding_window_view(np.where(ok, shown, np.nan), w)
        span = np.where(np.isnan(win), -np.inf, win).max(1) - np.where(np.isnan(win), np.inf, win).min(1)
        for i in np.flatnonzero(span < 0.003):
            flat[i:i + w] = True
    lag = max(1, int(round(px_per_ft)))          # one foot of rows
    d1 = np.abs(shown[lag:] - shown[:-lag])
    d1 = d1[np.isfinite(d1) & (fl[lag:] == fl[:-lag])]
    return {"rows": int(same.sum()), "jump": float((dd > 0.1).sum()),
            "flat_run": float((flat & ok).sum()), "steep_tv": float(d1[d1 > 0.1].sum()),
            "tv": float(d1.sum())}


def model_stats(page, families: list[str] | None = None) -> dict[str, float]:
    """:func:`curve_stats` pooled over a page's curves (``<family>_<stat>`` too when
    ``families`` names each curve's family)."""
    ppf = page.meta["px_per_ft"]
    acc: dict[str, dict[str, float]] = {}
    for k, c in enumerate(page.truth.curves):
        st = curve_stats(c.frac, c.wrap, ppf)
        if not st:
            continue
        for key in ["all"] + ([families[k]] if families else []):
            a = acc.setdefault(key, dict.fromkeys(st, 0.0))
            for s_, v in st.items():
                a[s_] += v
    out = {}
    for key, a in acc.items():
        pre = "" if key == "all" else f"{key}_"
        out[pre + "jump"] = a["jump"] / max(a["rows"], 1)
        out[pre + "flat_run"] = a["flat_run"] / max(a["rows"], 1)
        out[pre + "steep_tv"] = a["steep_tv"] / max(a["tv"], 1e-9)
    return out


def real_stats(rows: int) -> dict[str, dict[str, float]]:
    """Per real scan: deskew a band from the middle (``logdigit.layout``), find its
    tracks and measure :func:`traverse_share` there."""
    from bench.render_realism import real_bands
    from logdigit.layout import analyse, deskew

    out = {}
    for name, grey in real_bands(rows):
        lay = analyse(grey)
        flat = deskew(grey, lay.skew_deg)
        out[name] = {**traverse_share(flat < 128, lay.tracks), "tracks": len(lay.tracks),
                     "skew_deg": lay.skew_deg}
    return out


def render_stats(pages: int, rows: int, seed: int, ppf: float) -> dict[str, dict[str, float]]:
    from training.synth import RenderConfig, render_page
    from training.synth.page import page_model

    out = {}
    for i in range(pages):
        ov = dict(binarize=True, colour=False, height=rows + 1200, width=1800, px_per_ft=ppf, skew_deg=0.0)
        p = render_page(seed, i, **ov)
        fams = [c.family for c in page_model(seed, i, RenderConfig(), ov)[0].curves]
        top, bottom = p.meta["body_rows"]
        img = p.image[top:bottom][:rows] < 128
        tracks = [tuple(t.x) for t in p.calibration.tracks]
        out[f"render_{ppf:g}_{i}"] = {**traverse_share(img, tracks), **model_stats(p, fams)}
    return out


def _median(d: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for v in d.values() for k in v})
    return {k: float(np.median([v[k] for v in d.values() if k in v])) for k in keys}


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ppf", type=float, nargs="+", default=[4.2, 10.0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "render_curves.json")
    a = ap.parse_args(argv)
    res: dict = {"rows": a.rows, "pages": a.pages, "median": {}}
    if REAL.is_dir() and any(REAL.glob("*.tif")):
        res["real"] = real_stats(a.rows)
        res["median"]["real paper scans"] = _median(res["real"])
    else:
        print(f"no real scans in {REAL}: renders only")
    for ppf in a.ppf:
        r = render_stats(a.pages, a.rows, a.seed, ppf)
        res[f"rendered_{ppf:g}"] = r
        res["median"][f"rendered {ppf:g} px/ft"] = _median(r)
    for name, row in res["median"].items():
        print(f"{name:<24}" + "".join(f"{k}={row[k]:.4f}  " for k in ("traverse", "slanted", "jump",
                                                                    "flat_run", "steep_tv") if k in row))
    fam = sorted({k.rsplit("_", 2)[0] for m in res["median"].values() for k in m if k.count("_") >= 1
                  and k.split("_")[0].isupper()})
    for name, row in res["median"].items():
        for f in fam:
            vals = [f"{s}={row[f'{f}_{s}']:.3f}" for s in ("jump", "flat_run", "steep_tv") if f"{f}_{s}" in row]
            if vals:
                print(f"  {name:<22} {f:<7}" + "  ".join(vals))
    return write_results(res, a.out)


if __name__ == "__main__":
    main()
