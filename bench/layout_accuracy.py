"""Layout analysis against rendered pages whose layout is known (training.synth).

For pages ``(seed, 0..n-1)`` rendered at a fixed height: skew error, tracks found
(count equal and every border within ``--tol`` px of the renderer's track columns in
its unrotated frame), depth track centre inside the true depth track, minor grid
spacing error, header/log-bottom error, time per page. Prints a table and writes
``bench/results/layout_accuracy.json``. Needs torch-free ``training.synth`` only.

    python bench/layout_accuracy.py [--pages 24] [--height 6000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=24)
    ap.add_argument("--height", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "results" / "layout_accuracy.json"))
    args = ap.parse_args()
    try:
        import cv2
        from training.synth import render_page
        from training.synth.config import RenderConfig
        from training.synth.page import page_model
    except ImportError as e:
        print(f"skipping: training.synth not importable ({e})")
        return
    from logdigit.layout import analyse

    rows = []
    for i in range(args.pages):
        page = render_page(args.seed, i, height=args.height)
        spec, _ = page_model(args.seed, i, RenderConfig(), {"height": args.height})
        img = page.image if page.image.ndim == 2 else cv2.cvtColor(page.image, cv2.COLOR_RGB2GRAY)
        t = time.perf_counter()
        lay = analyse(img)
        dt = time.perf_counter() - t
        want = [(tr.x0, tr.x1) for tr in spec.tracks]
        ok = len(want) == len(lay.tracks) and all(
            abs(a - c) <= args.tol and abs(b - d) <= args.tol
            for (a, b), (c, d) in zip(lay.tracks, want))
        dx = page.meta["depth_track_x"]
        dok = lay.depth_track is not None and dx[0] <= sum(lay.depth_track) / 2 <= dx[1]
        minor = spec.hgrid[0] * page.meta["rows_per_unit"]
        top, bottom = page.meta["body_rows"]
        rows.append({
            "index": i, "shape": list(img.shape), "skew_true": page.meta["skew_deg"],
            "skew_err": abs(lay.skew_deg - page.meta["skew_deg"]),
            "tracks_ok": ok, "n_tracks": len(want), "n_found": len(lay.tracks),
            "depth_ok": dok,
            "grid_err_px": None if lay.grid_minor_px is None else abs(lay.grid_minor_px - minor),
            "header_err": abs(lay.header_bottom - top), "bottom_err": abs(lay.log_bottom - bottom),
            "binarized": page.meta["binarized"], "seconds": dt})
    print(f"{'page':>4s} {'skew':>7s} {'err':>7s} {'tracks':>8s} {'depth':>5s} {'grid err':>8s} "
          f"{'head err':>8s} {'bot err':>7s} {'s':>5s}")
    for r in rows:
        g = "-" if r["grid_err_px"] is None else f"{r['grid_err_px']:.3f}"
        print(f"{r['index']:4d} {r['skew_true']:7.3f} {r['skew_err']:7.4f} "
              f"{('ok' if r['tracks_ok'] else 'BAD') + ' %d/%d' % (r['n_found'], r['n_tracks']):>8s} "
              f"{'ok' if r['depth_ok'] else '-':>5s} {g:>8s} {r['header_err']:8d} "
              f"{r['bottom_err']:7d} {r['seconds']:5.1f}")
    n = len(rows)
    grid = [r["grid_err_px"] for r in rows if r["grid_err_px"] is not None]
    summary = {
        "pages": n, "tracks_ok": sum(r["tracks_ok"] for r in rows),
        "depth_ok": sum(r["depth_ok"] for r in rows),
        "skew_err_max": max(r["skew_err"] for r in rows),
        "grid_found": len(grid), "grid_err_median": float(np.median(grid)) if grid else None,
        "header_err_median": float(np.median([r["header_err"] for r in rows])),
        "seconds_mean": float(np.mean([r["seconds"] for r in rows])),
    }
    print(json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "pages": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
