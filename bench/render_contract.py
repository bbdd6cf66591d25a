"""The calibration contract over many rendered pages.

For ``--pages`` default pages (``render_page(seed, i, skew_deg=0)``: the per-row
reading needs an unskewed mask), reads each curve's per-row position from the
class mask, converts it to a value with the page's calibration alone
(:mod:`training.synth.contract`) and compares with the truth table on the rows
where the curve has one position. Prints, per style and pooled: rows checked,
share of the body rows that were checkable, median / p95 / p99 absolute error (% of
the track width) and the share within 0.5 %. Writes
``bench/results/render_contract.json``.

    python bench/render_contract.py [--pages 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench._results import write_results  # noqa: E402

from logdigit.constants import CURVE_STYLES  # noqa: E402
from training.synth import render_page  # noqa: E402
from training.synth.contract import TOLERANCE, contract_errors  # noqa: E402


def _summary(err: np.ndarray, body_rows: int) -> dict:
    a = np.abs(err) * 100
    return {"rows": int(len(a)), "checkable": float(len(a) / max(body_rows, 1)),
            "median_pct": float(np.median(a)) if len(a) else None,
            "p95_pct": float(np.percentile(a, 95)) if len(a) else None,
            "p99_pct": float(np.percentile(a, 99)) if len(a) else None,
            "within": float(np.mean(a <= TOLERANCE * 100)) if len(a) else None}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "render_contract.json")
    a = ap.parse_args(argv)
    by_style: dict[str, list] = {s: [] for s in CURVE_STYLES}
    body = dict.fromkeys(CURVE_STYLES, 0)
    for i in range(a.pages):
        p = render_page(a.seed, i, skew_deg=0.0)
        top, bottom = p.calibration.depth.rows
        for r in contract_errors(p):
            by_style[r["style"]].append(r["err"])
            body[r["style"]] += bottom - top
    res = {"pages": a.pages, "seed": a.seed, "tolerance_pct": TOLERANCE * 100, "styles": {}}
    print(f"{'style':<10}{'rows':>9}{'checkable':>11}{'median %':>10}{'p95 %':>8}{'p99 %':>8}{'within':>9}")
    for s in list(CURVE_STYLES) + ["all"]:
        if s == "all":
            err = np.concatenate([e for v in by_style.values() for e in v] or [np.zeros(0)])
            n_body = sum(body.values())
        else:
            err = np.concatenate(by_style[s] or [np.zeros(0)])
            n_body = body[s]
        row = _summary(err, n_body)
        res["styles"][s] = row
        if row["rows"]:
            print(f"{s:<10}{row['rows']:>9}{100 * row['checkable']:>10.1f}%{row['median_pct']:>10.3f}"
                  f"{row['p95_pct']:>8.3f}{row['p99_pct']:>8.3f}{100 * row['within']:>8.2f}%")
    return write_results(res, a.out)


if __name__ == "__main__":
    main()
