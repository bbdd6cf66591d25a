"""Benchmark: curve accuracy of ``logdigit convert`` on rendered pages with known truth.

Renders whole pages from seeds that tests and training never use (900000+), varied on
purpose (grey and 1-bit, skewed and straight, pages forced to carry backup traces,
the renderer's own drop-outs and styles), and scores the curves read:

- **tracker**: the TRUE class masks (deskewed like the scan), through
  :func:`logdigit.pipeline.digitise` with the page's calibration: the vectoriser,
  depth mapping and LAS resampling alone;
- **model**: the whole ``convert_file`` (read, layout, deskew, segmentation with the
  model, vectorise, LAS) on the page written as a TIFF, scored from the LAS.

Per curve style (``*_wrap`` = curves printed with backup traces), over the depth
samples where the truth has a value: coverage (share read; also over the samples the scan
*shows*, where the curve's own pixels are ink within the tracker's bridging distance, since
drop-outs, fades and 1-bit thresholding erase some of every page), median / mean / p95 of
|error| in % of track width (positions, unwrapped), and R^2 of the unwrapped position
against the truth (median over curves, and pooled). Prints a table and writes JSON to
``bench/results/convert_accuracy.json``.

    python bench/convert_accuracy.py --pages 20            # tracker + shipped model
    python bench/convert_accuracy.py --pages 20 --no-model # tracker only
    python bench/convert_accuracy.py --model m.onnx --threads 2
    python bench/convert_accuracy.py --render hold_prob=1.0 --tracker ink_follow=false \
        --out runs/held_off.json                          # one condition, one tracker setting
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 900000


def page_overrides(i: int) -> dict:
    """Deliberate spread over the pages: 1-bit every other page, skew on 3 of 4, forced
    backup traces on every third page (other properties from the renderer's priors)."""
    ov: dict = {"binarize": i % 2 == 1, "colour": False,
                "skew_deg": (0.0, 0.7, -0.45, 0.25)[i % 4]}
    if i % 3 == 0:
        ov["wraps"] = True
    return ov


def visible_rows(page, k: int, threshold: float, max_gap: int) -> np.ndarray:
    """bool [H]: stored rows where truth curve ``k`` leaves ink in the scan (a pixel of
    its instance darker than ``threshold``), with gaps up to ``max_gap`` rows (dashes,
    dots, short fades the tracker bridges) counted as shown."""
    grey = page.image if page.image.ndim == 2 else page.image.mean(-1)
    ink = ((page.instance == k + 1) & (grey < threshold)).any(1)
    rows = np.flatnonzero(ink)
    vis = ink.copy()
    if len(rows) > 1:
        for a, b in zip(rows[:-1], rows[1:]):
            if 1 < b - a <= max_gap + 1:
                vis[a:b] = True
    return vis


def score_page(depth, values: dict, page, visible: list | None = None) -> list[dict]:
    """Per truth curve: style, wrap, coverage, errors (% width) and R^2 on positions.

    ``visible``: per truth curve, bool [H] stored rows where the scan shows it
    (:func:`visible_rows`); adds ``coverage_visible`` (share read of the samples shown)
    and ``visible`` (share of the truth's samples shown)."""
    from logdigit.calibration import value_to_fraction
    from logdigit.vectorise import resample_rows

    cals = {c.mnemonic: c for t in page.calibration.tracks for c in t.curves}
    out = []
    for k, ct in enumerate(page.truth.curves):
        tf = resample_rows(page.truth.depth, ct.frac, depth)
        has = np.isfinite(tf)
        if has.sum() < 20:
            continue
        shown = has
        if visible is not None:
            shown = has & (resample_rows(page.truth.depth, visible[k].astype(float), depth) >= 0.5)
        v = values.get(ct.mnemonic)
        ef = (np.full(len(depth), np.nan) if v is None
              else value_to_fraction(v, cals[ct.mnemonic]))
        ok = has & np.isfinite(ef)
        err = np.abs(ef - tf)[ok] * 100
        ss = float(((tf[ok] - tf[ok].mean()) ** 2).sum()) if ok.any() else 0.0
        r2 = 1 - float(((ef[ok] - tf[ok]) ** 2).sum()) / ss if ss > 0 else float("nan")
        out.append({"mnemonic": ct.mnemonic, "style": ct.style + ("_wrap" if ct.wrap else ""),
                    "coverage": float(ok.sum() / has.sum()),
                    "coverage_visible": float((ok & shown).sum() / max(1, shown.sum())),
                    "visible": float(shown.sum() / has.sum()), "err": err, "r2": r2,
                    "truth": tf[ok], "read": ef[ok]})
    return out


def curve_cell(r: dict) -> list:
    """One curve's per-page entry: [style, coverage, coverage of the samples shown, share
    shown, median, mean |error| (% width), R^2]."""
    e = r["err"]
    return [r["style"], round(r["coverage"], 3), round(r["coverage_visible"], 3), round(r["visible"], 3),
            round(float(np.median(e)), 3) if len(e) else None,
            round(float(np.mean(e)), 3) if len(e) else None,
            round(r["r2"], 4) if np.isfinite(r["r2"]) else None]


def summarise(rows: list[dict]) -> dict:
    """Per style: coverage, error stats (% width), R^2 (median per curve and pooled)."""
    out = {}
    for style in sorted({r["style"] for r in rows}):
        rs = [r for r in rows if r["style"] == style]
        err = np.concatenate([r["err"] for r in rs]) if rs else np.zeros(0)
        t = np.concatenate([r["truth"] for r in rs])
        e = np.concatenate([r["read"] for r in rs])
        pooled = 1 - ((e - t) ** 2).sum() / ((t - t.mean()) ** 2).sum() if len(t) > 1 else np.nan
        out[style] = {
            "curves": len(rs),
            "coverage": round(float(np.mean([r["coverage"] for r in rs])), 4),
            "coverage_min": round(float(np.min([r["coverage"] for r in rs])), 4),
            "coverage_visible": round(float(np.mean([r["coverage_visible"] for r in rs])), 4),
            "visible": round(float(np.mean([r["visible"] for r in rs])), 4),
            "median_err_pct": round(float(np.median(err)), 3) if len(err) else None,
            "mean_err_pct": round(float(np.mean(err)), 3) if len(err) else None,
            "p95_err_pct": round(float(np.percentile(err, 95)), 3) if len(err) else None,
            "r2_median": round(float(np.nanmedian([r["r2"] for r in rs])), 4),
            "r2_pooled": round(float(pooled), 4),
        }
    return out


def table(name: str, summ: dict) -> str:
    head = (f"{name}\n{'style':14s} {'n':>3s} {'cover':>7s} {'cov min':>7s} {'cov vis':>7s} "
            f"{'shown':>6s} {'median%':>8s} "
            f"{'mean%':>7s} {'p95%':>7s} {'R2 med':>7s} {'R2 pool':>7s}")
    lines = [head]
    for s, v in summ.items():
        lines.append(f"{s:14s} {v['curves']:3d} {v['coverage']:7.3f} {v['coverage_min']:7.3f} "
                     f"{v['coverage_visible']:7.3f} {v['visible']:6.3f} "
                     f"{v['median_err_pct'] if v['median_err_pct'] is not None else float('nan'):8.3f} "
                     f"{v['mean_err_pct'] or float('nan'):7.3f} {v['p95_err_pct'] or float('nan'):7.3f} "
                     f"{v['r2_median']:7.4f} {v['r2_pooled']:7.4f}")
    return "\n".join(lines)


def key_values(items: list[str], what: str) -> dict:
    """``["k=v", ...]`` -> {k: YAML value of v}; a one-line error on a malformed item."""
    import yaml

    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k:
            raise SystemExit(f"{what} {it!r}: write KEY=VALUE")
        out[k] = yaml.safe_load(v)
    return out


def tracker_config(over: dict):
    """TrackerConfig with ``over`` applied (values cast to each field's type)."""
    import dataclasses

    from logdigit.vectorise import TrackerConfig

    base = TrackerConfig()
    fields = {f.name for f in dataclasses.fields(base)}
    bad = sorted(set(over) - fields)
    if bad:
        raise SystemExit(f"--tracker {bad[0]}: not a TrackerConfig field "
                         f"(one of {', '.join(sorted(fields))})")
    return dataclasses.replace(base, **{k: type(getattr(base, k))(v) for k, v in over.items()})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--height", type=int, default=None, help="page height (default: renderer)")
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped model)")
    ap.add_argument("--no-model", action="store_true", help="tracker (true masks) only")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--render", action="append", default=[], metavar="KEY=VALUE",
                    help="renderer setting for every page (RenderConfig field, e.g. hold_prob=1.0)")
    ap.add_argument("--tracker", action="append", default=[], metavar="KEY=VALUE",
                    help="tracker setting (TrackerConfig field, e.g. ink_follow=false)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "convert_accuracy.json"))
    args = ap.parse_args(argv)

    import lasio
    import tifffile

    from logdigit import layout as lay
    from logdigit.errors import ModelError
    from logdigit.pipeline import convert_file, deskew_mask, digitise
    from logdigit.segment import Segmenter
    from training.config import merge
    from training.synth import RenderConfig, render_page

    render_over = key_values(args.render, "--render")
    rcfg = merge(RenderConfig(), render_over, prefix="--render ")
    tracker_over = key_values(args.tracker, "--tracker")
    tcfg = tracker_config(tracker_over)
    max_gap = tcfg.max_gap_px

    seg, model_note = None, None
    if not args.no_model:
        try:
            seg = Segmenter(args.model, threads=args.threads)
            model_note = seg.info.describe()
        except ModelError as e:
            model_note = f"skipped: {e}"
            print(f"model half {model_note}", file=sys.stderr)
    rows_t: list[dict] = []
    rows_m: list[dict] = []
    per_page = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pages):
            ov = page_overrides(i)
            if args.height:
                ov["height"] = args.height
            t0 = time.perf_counter()
            page = render_page(args.seed, i, cfg=rcfg, **ov)
            t_render = time.perf_counter() - t0
            grey = page.image if page.image.ndim == 2 else page.image.mean(-1).astype(np.uint8)
            t0 = time.perf_counter()
            L = lay.analyse(grey)
            dig = digitise(deskew_mask(page.mask, L.skew_deg), page.calibration, L,
                           grey=lay.deskew(grey, L.skew_deg), tracker=tcfg)
            t_track = time.perf_counter() - t0
            vis = [visible_rows(page, k, getattr(L, "threshold", 128), max_gap)
                   for k in range(len(page.truth.curves))]
            st = score_page(dig.table.depth, {c.mnemonic: c.values for c in dig.table.curves}, page,
                            vis)
            rows_t += st
            info = {"index": i, "overrides": ov, "shape": list(grey.shape),
                    "skew_true": page.meta["skew_deg"], "skew_found": round(L.skew_deg, 4),
                    "px_per_ft": round(page.meta["px_per_ft"], 2), "render_s": round(t_render, 2),
                    "tracker_s": round(t_track, 2),
                    "tracker": {r["mnemonic"]: curve_cell(r) for r in st}}
            if seg is not None:
                scan = Path(tmp) / f"page{i}.tif"
                tifffile.imwrite(scan, page.image, compression="zlib")
                cal = Path(tmp) / f"page{i}.yaml"
                page.calibration.save(cal)
                t0 = time.perf_counter()
                res = convert_file(scan, Path(tmp) / f"page{i}.las", calibration=cal,
                                   segmenter=seg, tracker=tcfg)
                info["model_s"] = round(time.perf_counter() - t0, 2)
                las = lasio.read(Path(tmp) / f"page{i}.las")
                vals = {c.mnemonic: np.asarray(las[c.mnemonic], float) for c in las.curves[1:]}
                sm = score_page(np.asarray(las.index, float), vals, page, vis)
                rows_m += sm
                info["model"] = {r["mnemonic"]: curve_cell(r) for r in sm}
                info["model_warnings"] = res.warnings
            per_page.append(info)
            print(f"page {i}: {grey.shape[1]}x{grey.shape[0]} skew {page.meta['skew_deg']:+.2f} "
                  f"({L.skew_deg:+.2f} found) 1-bit={ov['binarize']} curves "
                  f"{len(page.truth.curves)} tracker {t_track:.1f}s"
                  + (f" model {info['model_s']:.1f}s" if "model_s" in info else ""),
                  file=sys.stderr, flush=True)
    result = {
        "bench": "convert_accuracy", "seed": args.seed, "pages": args.pages,
        "render": render_over, "tracker": tracker_over,
        "wall_s": round(time.perf_counter() - t_all, 1),
        "metric_notes": "errors in % of track width on unwrapped positions, over depth "
                        "samples where the truth has a value; coverage_visible: over the samples "
                        "where the scan shows the curve (its pixels are ink, gaps up to the "
                        "tracker's max_gap_px bridged); visible: share of the truth samples "
                        "shown; R2 on positions; per_page curves: [style, coverage, "
                        "coverage_visible, visible, median %, mean %, R2]",
        "tracker_true_masks": summarise(rows_t),
        "model": summarise(rows_m) if rows_m else None,
        "model_used": model_note,
        "per_page": per_page,
    }
    print(table("TRACKER on true masks", result["tracker_true_masks"]))
    if rows_m:
        print()
        print(table(f"MODEL {model_note}", result["model"]))
    elif model_note:
        print(f"\nmodel half: {model_note}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
