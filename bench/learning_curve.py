"""Learning curve of the shipped model's training: validation curve-class IoU and F1@2px
against optimiser steps, across chained runs (a run started with ``init=`` another run's
checkpoint continues that run's step count).

    python bench/learning_curve.py runs/cpu/metrics.jsonl runs/cpu2/metrics.jsonl:2000 \
        --out bench/results/learning_curve_cpu

Each positional argument is ``metrics.jsonl[:step_offset]``; points of a run past the step
where the next run starts from it are left out. Writes ``<out>.json`` (the val
points) and ``<out>.png`` (the chart).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERIES = (("mean_curve_iou", "mean curve IoU", (200, 90, 30)),
          ("mean_curve_f1_tol2", "mean curve F1@2px", (40, 140, 40)))


def read_points(spec: str) -> list[dict]:
    """``path[:offset]`` -> the val records of that metrics log, steps shifted by ``offset``."""
    path, _, off = spec.partition(":")
    offset = int(off or 0)
    pts = []
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        if r.get("event") == "val" and r.get("mean_curve_iou") is not None:
            pts.append({"run": path, "step": int(r["step"]) + offset,
                        **{k: r.get(k) for k, _, _ in SERIES}})
    return pts


def draw(points: list[dict], starts: list[int], title: str, path: Path) -> None:
    """PNG chart: each series against step; dashed verticals where a chained run starts."""
    import cv2

    from logdigit.fsutil import atomic_write_bytes

    W, H, M = 720, 420, 60
    img = np.full((H, W, 3), 255, np.uint8)
    smax = max(p["step"] for p in points)
    x0, x1, y0, y1 = M, W - 20, H - M, 40

    def px(step, v):
        return int(x0 + step / smax * (x1 - x0)), int(y0 - v * (y0 - y1))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for k in range(11):
        _, y = px(0, k / 10)
        cv2.line(img, (x0, y), (x1, y), (230, 230, 230), 1)
        if k % 2 == 0:
            cv2.putText(img, f"{k / 10:.1f}", (12, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for s in starts:
        x, _ = px(s, 0)
        for yy in range(y1, y0, 8):
            cv2.line(img, (x, yy), (x, yy + 4), (120, 120, 120), 1)
    cv2.rectangle(img, (x0, y1), (x1, y0), (0, 0, 0), 1)
    for t in np.linspace(0, smax, 6):
        x, _ = px(t, 0)
        cv2.putText(img, f"{int(t)}", (x - 14, y0 + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "optimiser steps (batch 8)", (x0 + 230, y0 + 40), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (key, label, col) in enumerate(SERIES):
        pts = [px(p["step"], p[key]) for p in points if p.get(key) is not None]
        for a, b in zip(pts, pts[1:]):
            cv2.line(img, a, b, col, 2, cv2.LINE_AA)
        for q in pts:
            cv2.circle(img, q, 3, col, -1, cv2.LINE_AA)
        cv2.putText(img, label, (x0 + 10 + 220 * i, y1 + 20), font, 0.5, col, 1, cv2.LINE_AA)
    cv2.putText(img, title, (x0 + 10, 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    atomic_write_bytes(path, buf.tobytes())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", nargs="+", help="metrics.jsonl[:step_offset], in training order")
    ap.add_argument("--out", default=str(ROOT / "bench/results/learning_curve_cpu"))
    ap.add_argument("--title", default="cpu config, validation tiles scored during training")
    a = ap.parse_args(argv)
    runs, starts = [], []
    for spec in a.logs:
        pts = read_points(spec)
        if not pts:
            raise SystemExit(f"{spec.partition(':')[0]}: no val records with mean_curve_iou")
        starts.append(int(spec.partition(":")[2] or 0))
        runs.append(pts)
    points = []
    for i, pts in enumerate(runs):  # a run's later points are superseded where the next run starts
        end = starts[i + 1] if i + 1 < len(runs) and starts[i + 1] > 0 else None
        points += [p for p in pts if end is None or p["step"] <= end]
    points.sort(key=lambda p: p["step"])
    out = Path(a.out)
    draw(points, [s for s in starts if s > 0], a.title, out.with_suffix(".png"))
    from bench._results import write_results

    write_results({"bench": "learning_curve", "command": "python bench/learning_curve.py " + " ".join(sys.argv[1:]),
                   "logs": a.logs, "points": points}, out.with_suffix(".json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
