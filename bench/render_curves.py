"""How often curves run (nearly) horizontally: real paper scans vs rendered pages.

Real curves wiggle continuously and cross a track in steep but gradational
ramps; long horizontal traverses (a row of curve ink running over a good part of
the track) are rare. This bench measures that on the 1-bit image the same way
for real scans (``../shared/real_scans/paper_scans``, relative to the repo;
skipped cleanly when absent) and rendered 1-bit pages at similar px/ft:

* ``traverse``: share of the non-grid rows of a band from the middle of the log
  that hold one or two black runs of ``10 % .. 90 %`` of a track width (grid rows
  are excluded: rows more than 12 % black, the rows next to them, and rows with
  three or more such runs, i.e. a broken grid line). Track width: ``--track-px``
  for real scans (about 550 px on the 200-400 dpi scans here), the true width on
  renders.
* for renders also the exact ``jump``: share of curve rows whose drawn position
  moves by more than 10 % of the track width from the previous row (from the
  page model, no image analysis), and ``flat_run``: share of curve rows inside a
  plateau (position within 0.3 % of the track for >= 3 ft).

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


def traverse_share(black: np.ndarray, track_px: float) -> dict[str, float]:
    """``traverse``: share of non-grid rows of bool [H, W] ink with 1-2 runs of 10-90 %
    of ``track_px``; ``slanted``: share of the runs (>= 2 px) in non-grid rows that are
    8 px .. 10 % of ``track_px`` long (a curve crossing rows at a slant, not a
    vertical plateau one pen wide)."""
    h = black.shape[0]
    r, ln = _row_runs(black)
    long_ = (ln >= 0.1 * track_px) & (ln <= 0.9 * track_px)
    per_row = np.bincount(r[long_], minlength=h)
    grid = black.mean(1) > 0.12
    grid = grid | np.r_[grid[1:], False] | np.r_[False, grid[:-1]] | (per_row >= 3)
    ok = ~grid
    keep = ok[r] & (ln >= 2) & (ln <= 0.9 * track_px)
    mid = keep & (ln >= 8) & (ln < 0.1 * track_px)
    return {"traverse": float(((per_row >= 1) & ok).sum() / max(ok.sum(), 1)),
            "slanted": float(mid.sum() / max(keep.sum(), 1))}


def model_stats(page) -> dict[str, float]:
    """Exact per-row statistics of the drawn curves (page truth)."""
    jumps, flats, n = 0, 0, 0
    ppf = page.meta["px_per_ft"]
    for c in page.truth.curves:
        f = c.frac
        ok = np.isfinite(f)
        if ok.sum() < 10:
            continue
        shown = f - np.floor(f) if c.wrap else f
        d = np.abs(np.diff(shown))
        same = ok[1:] & ok[:-1] & (np.floor(np.nan_to_num(f[1:])) == np.floor(np.nan_to_num(f[:-1])))
        jumps += int((same & (d > 0.1)).sum())
        n += int(same.sum())
        # plateaus: rolling range of the position over 3 ft below 0.3 % of the track
        w = max(3, int(round(3 * ppf)))
        if ok.sum() > w:
            s = np.where(ok, shown, np.nan)
            from numpy.lib.stride_tricks import sliding_window_view
            win = sliding_window_view(s, w)
            rng = np.where(np.isnan(win), -np.inf, win).max(1) - np.where(np.isnan(win), np.inf, win).min(1)
            flat = np.zeros(len(s), bool)
            for i in np.flatnonzero(rng < 0.003):
                flat[i:i + w] = True
            flats += int((flat & ok).sum())
    return {"jump": jumps / max(n, 1), "flat_run": flats / max(n, 1)}


def real_stats(rows: int, track_px: float) -> dict[str, dict[str, float]]:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    out = {}
    for f in sorted(REAL.glob("*.tif")):
        im = Image.open(f)
        W, H = im.size
        y0 = max(0, H // 2 - rows // 2)
        band = np.asarray(im.crop((0, y0, W, min(H, y0 + rows))).convert("L")) < 128
        out[f.name] = traverse_share(band, track_px)
    return out


def render_stats(pages: int, rows: int, seed: int, ppf: float) -> dict[str, dict[str, float]]:
    from training.synth import render_page

    out = {}
    for i in range(pages):
        p = render_page(seed, i, binarize=True, colour=False, height=rows + 1200, width=1800,
                        px_per_ft=ppf, skew_deg=0.0)
        top, bottom = p.meta["body_rows"]
        img = p.image[top:bottom][:rows] < 128
        tw = np.median([c.x1 - c.x0 for c in p.truth.curves]) if p.truth.curves else 550
        # rows holding a labelled-grid-free image: traverse on the image, as for real scans
        out[f"render_{ppf:g}_{i}"] = {**traverse_share(img, float(tw)), **model_stats(p)}
    return out


def _median(d: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for v in d.values() for k in v})
    return {k: float(np.median([v[k] for v in d.values() if k in v])) for k in keys}


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--track-px", type=float, default=550.0)
    ap.add_argument("--ppf", type=float, nargs="+", default=[4.2, 10.0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "render_curves.json")
    a = ap.parse_args(argv)
    res: dict = {"rows": a.rows, "pages": a.pages, "median": {}}
    if REAL.is_dir() and any(REAL.glob("*.tif")):
        res["real"] = real_stats(a.rows, a.track_px)
        res["median"]["real paper scans"] = _median(res["real"])
    else:
        print(f"no real scans in {REAL}: renders only")
    for ppf in a.ppf:
        r = render_stats(a.pages, a.rows, a.seed, ppf)
        res[f"rendered_{ppf:g}"] = r
        res["median"][f"rendered {ppf:g} px/ft"] = _median(r)
    for name, row in res["median"].items():
        print(f"{name:<24}" + "".join(f"{k}={v:.4f}  " for k, v in row.items()))
    return write_results(res, a.out)


if __name__ == "__main__":
    main()
