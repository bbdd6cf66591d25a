"""How close rendered pages come to real paper scans, in simple image statistics.

Reads the real scans in ``../shared/real_scans/paper_scans`` (relative to the repo;
skips cleanly when absent: they are unlicensed and never part of the repo), takes
a band of rows from the middle of each (the log body), and renders 1-bit pages
(``render_page(seed, i, binarize=True, colour=False)``). For both it measures, on
the 1-bit image (grey / colour scans thresholded at 128):

* ``ink``: share of black pixels;
* ``hrun_p50`` / ``hrun_p90``, ``vrun_p50`` / ``vrun_p90``: black run lengths along
  rows / columns (px) - line thickness and dash structure;
* ``grid_rows`` / ``grid_cols``: share of rows / columns more than 40 % black over
  the band (long grid lines that survived);
* ``specks``: connected components of <= 2 px per megapixel (speckle);
* ``comp_px``: median size of connected components (px): broken lines give many
  small ones.

Prints a table (median over files, per source) and writes
``bench/results/render_realism.json``.

    python bench/render_realism.py [--pages 12] [--rows 4000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_scans" / "paper_scans"
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench._results import write_results  # noqa: E402

KEYS = ("ink", "hrun_p50", "hrun_p90", "vrun_p50", "vrun_p90", "grid_rows", "grid_cols", "specks", "comp_px")


def _runs(b: np.ndarray) -> np.ndarray:
    """Lengths of True runs along axis 1 of a bool [H, W] array."""
    pad = np.pad(b, ((0, 0), (1, 1)))
    d = np.diff(pad.astype(np.int8), axis=1)
    starts = np.flatnonzero(d.ravel() == 1)
    stops = np.flatnonzero(d.ravel() == -1)
    return stops - starts


def stats(black: np.ndarray) -> dict[str, float]:
    """Statistics of a bool [H, W] ink image (True = black)."""
    h, w = black.shape
    hr, vr = _runs(black), _runs(black.T)
    n, _, st, _ = cv2.connectedComponentsWithStats(black.astype(np.uint8), connectivity=8)
    areas = st[1:, cv2.CC_STAT_AREA] if n > 1 else np.zeros(1)
    return {
        "ink": float(black.mean()),
        "hrun_p50": float(np.median(hr)) if len(hr) else 0.0,
        "hrun_p90": float(np.percentile(hr, 90)) if len(hr) else 0.0,
        "vrun_p50": float(np.median(vr)) if len(vr) else 0.0,
        "vrun_p90": float(np.percentile(vr, 90)) if len(vr) else 0.0,
        "grid_rows": float((black.mean(1) > 0.4).mean()),
        "grid_cols": float((black.mean(0) > 0.4).mean()),
        "specks": float((areas <= 2).sum() / (h * w / 1e6)),
        "comp_px": float(np.median(areas)),
    }


def real_bands(rows: int):
    """Yield (file name, uint8 [rows, W] grey band from the middle) per real scan."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    for f in sorted(REAL.glob("*.tif")):
        im = Image.open(f)
        W, H = im.size
        y0 = max(0, H // 2 - rows // 2)
        yield f.name, np.asarray(im.crop((0, y0, W, min(H, y0 + rows))).convert("L"))


def real_stats(rows: int) -> dict[str, dict[str, float]]:
    return {name: stats(band < 128) for name, band in real_bands(rows)}


def render_stats(pages: int, rows: int, seed: int) -> dict[str, dict[str, float]]:
    from training.synth import render_page

    out = {}
    for i in range(pages):
        p = render_page(seed, i, binarize=True, colour=False, height=rows + 1200)
        top, bottom = p.meta["body_rows"]
        img = p.image[top:bottom][:rows]
        out[f"render_{i}"] = stats(img < 128)
    return out


def _median(d: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: float(np.median([v[k] for v in d.values()])) for k in KEYS}


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "render_realism.json")
    a = ap.parse_args(argv)
    if not REAL.is_dir() or not any(REAL.glob("*.tif")):
        print(f"skipped: no real scans in {REAL}")
        return None
    real = real_stats(a.rows)
    rend = render_stats(a.pages, a.rows, a.seed)
    med = {"real paper scans": _median(real), "rendered 1-bit": _median(rend)}
    print(f"{'':<18}" + "".join(f"{k:>10}" for k in KEYS))
    for name, row in med.items():
        print(f"{name:<18}" + "".join(f"{row[k]:>10.4g}" for k in KEYS))
    res = {"median": med, "real": real, "rendered": rend, "rows": a.rows, "pages": a.pages}
    return write_results(res, a.out)


if __name__ == "__main__":
    main()
