"""Benchmark: how many curves an uncalibrated ``convert`` finds, on rendered pages.

Without a calibration (the default on real scans) ``convert`` reads every detected track
and names curves by track and style (``T2_SOLID``, ``T2_SOLID_2``), as fractions of the
track width by pixel row. This renders pages whose truth is known, runs the same stages
as ``convert_file`` (layout, deskew, :func:`logdigit.pipeline.segment_plan`, vertical-line
clearing, :func:`logdigit.pipeline.digitise` with no calibration) and matches each read
curve to the truth curve it runs nearest (both as deskewed columns, row by row, over at
least 50 shared rows). A read is **good** when its median distance is within
``--tol`` (share of the truth track's width, default 2 %); a truth curve is **found**
when a good read matches it. Every other page draws two solid curves and a dashed one
per track (``styles`` override), the case the second-curve rule is for; the others
follow ``convert_accuracy``'s spread (1-bit, skew, backup traces).

Reports truth curves found (per style), reads: good (one per truth curve), duplicate (a
second good read of a curve already found) and spurious (matching none), and the mean
share of a found curve's rows its best read covers. Prints a table and writes
``bench/results/uncalibrated_accuracy.json``.

    python bench/uncalibrated_accuracy.py [--pages 12] [--seed 930000] [--threads 2]
        [--per-style 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _results import write_results  # noqa: E402
from convert_accuracy import page_overrides  # noqa: E402

SEED = 930000
PAIR_STYLES = ["solid", "dashed", "solid"]


def truth_columns(page, cplan, n_rows: int) -> list[np.ndarray]:
    """Per truth curve, float [n_rows]: its deskewed column at each deskewed row (NaN where
    absent), placed by the page's own calibration (``cplan``: :func:`plan_read` of it);
    backup traces folded into the track as drawn."""
    from logdigit.vectorise import resample_rows

    depth = cplan.depth_of_rows(np.arange(n_rows, dtype=float))
    track_of = {c.mnemonic: t for t, tc in enumerate(page.calibration.tracks) for c in tc.curves}
    out = []
    for ct in page.truth.curves:
        tp = cplan.tracks[track_of[ct.mnemonic]]
        f = resample_rows(page.truth.depth, ct.frac % 1.0 if ct.wrap else ct.frac, depth)
        x = tp.xl + f * (tp.xr - tp.xl)
        out.append(x)
    return out


def read_columns(qc) -> np.ndarray:
    """float [H]: deskewed column of a read curve (QCCurve) at each row (NaN = not read)."""
    x = qc.xl + qc.frac * (qc.xr - qc.xl)
    return x if qc.shift is None else x + qc.shift


def match(reads: list, truths: list, widths: list, tol: float) -> tuple[list, dict]:
    """(per read: (truth index or None, median distance as share of width),
    per truth index: best coverage by a good read)."""
    out, cover = [], {}
    for x in reads:
        best = (np.inf, None, 0.0)
        for j, t in enumerate(truths):
            ok = np.isfinite(x) & np.isfinite(t)
            if ok.sum() < 50:
                continue
            d = float(np.median(np.abs(x[ok] - t[ok]))) / widths[j]
            if d < best[0]:
                best = (d, j, float(ok.sum() / max(1, np.isfinite(t).sum())))
        d, j, cov = best
        good = j is not None and d <= tol
        out.append((j if good else None, d))
        if good:
            cover[j] = max(cover.get(j, 0.0), cov)
    return out, cover


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--tol", type=float, default=0.02, help="good read: median distance "
                    "within this share of the track width")
    ap.add_argument("--per-style", type=int, default=None,
                    help="curves of one style read per track (default: the pipeline's "
                         "MAX_UNCALIBRATED_PER_STYLE; 1 = the rule before the second curve)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "uncalibrated_accuracy.json"))
    args = ap.parse_args(argv)

    from logdigit import layout as lay
    from logdigit import pipeline
    from logdigit.pipeline import clear_vertical_lines, digitise, plan_read, segment_plan
    from logdigit.segment import Segmenter
    from logdigit.vectorise import TrackerConfig
    from training.synth import render_page

    if args.per_style is not None:
        pipeline.MAX_UNCALIBRATED_PER_STYLE = args.per_style
    seg = Segmenter(args.model, threads=args.threads)
    cfg = TrackerConfig()
    per_page, styles = [], {}
    n = dict(truth=0, found=0, reads=0, good=0, duplicate=0)
    covers = []
    t0 = time.perf_counter()
    for i in range(args.pages):
        ov = page_overrides(i)
        if i % 2 == 1:
            ov.update(styles=PAIR_STYLES, wraps=False)
        page = render_page(args.seed, i, **ov)
        grey = page.image if page.image.ndim == 2 else page.image.mean(-1).astype(np.uint8)
        L = lay.analyse(grey)
        g = lay.deskew(grey, L.skew_deg) if abs(L.skew_deg) >= lay.MIN_SKEW_DEG else grey
        H, W = g.shape
        plan = plan_read(None, L, (H, W), None)
        classes, code, _ = segment_plan(seg, g, L, plan)
        clear_vertical_lines(classes, code, L, plan.tracks, plan.rows, cfg.curve_p_min, grey=g)
        dig = digitise(classes, None, L, tracker=cfg, plan=plan, grey=g, code=code,
                       binary=seg.binary)
        truths = truth_columns(page, plan_read(page.calibration, L, (H, W), None), H)
        widths = [float(c.x1 - c.x0) for c in page.truth.curves]
        m, cover = match([read_columns(q) for q in dig.qc_curves], truths, widths, args.tol)
        for j, ct in enumerate(page.truth.curves):
            s = styles.setdefault(ct.style, [0, 0])
            s[0] += 1
            s[1] += j in cover
        n["truth"] += len(truths)
        n["found"] += len(cover)
        n["reads"] += len(m)
        hits = [j for j, _ in m if j is not None]
        n["good"] += len(set(hits))
        n["duplicate"] += len(hits) - len(set(hits))
        covers += list(cover.values())
        per_page.append({"index": i, "overrides": ov,
                         "tracks_found": len(plan.tracks), "tracks_true": len(page.calibration.tracks),
                         "truth": [c.mnemonic + ":" + c.style for c in page.truth.curves],
                         "reads": [[q.mnemonic, None if j is None else page.truth.curves[j].mnemonic,
                                    round(d, 4) if np.isfinite(d) else None]
                                   for q, (j, d) in zip(dig.qc_curves, m)]})
        print(f"page {i}: {len(truths)} truth curves, {len(m)} read, "
              f"{len(set(hits))} good, {len(hits) - len(set(hits))} duplicate, "
              f"{len(cover)} found", file=sys.stderr, flush=True)
    res = {"bench": "uncalibrated_accuracy", "seed": args.seed, "pages": args.pages,
           "tol": args.tol, "model": seg.info.describe(),
           "per_style": pipeline.MAX_UNCALIBRATED_PER_STYLE,
           "wall_s": round(time.perf_counter() - t0, 1),
           "truth_curves": n["truth"], "found": n["found"], "reads": n["reads"],
           "good_reads": n["good"], "duplicate_reads": n["duplicate"],
           "spurious_reads": n["reads"] - n["good"] - n["duplicate"],
           "found_coverage_mean": round(float(np.mean(covers)), 3) if covers else None,
           "found_by_style": {k: f"{v[1]}/{v[0]}" for k, v in sorted(styles.items())},
           "per_page": per_page}
    print(f"truth curves {n['truth']}: found {n['found']} "
          f"({100 * n['found'] / max(1, n['truth']):.0f} %); reads {n['reads']}: good "
          f"{n['good']}, duplicate {n['duplicate']}, spurious {res['spurious_reads']}; "
          f"found curves read on "
          f"{res['found_coverage_mean']} of their rows; by style {res['found_by_style']}")
    write_results(res, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
