"""Loss comparison on a CPU budget: CE+Dice vs + a thin-structure term vs Lovasz.

Each loss trains the same model from the same seed on the same tiles for the same
wall-clock budget (``schedule=time``: a slower loss pays for its cost in steps), then
best.pt is scored on the same validation tiles. Prints a markdown table and writes
bench/results/loss_comparison.json.

    nice -n 5 python bench/loss_comparison.py --minutes 4 --size 128
    python bench/loss_comparison.py --steps 300          # equal steps instead of equal time
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.config import resolve, to_dict  # noqa: E402
from training.evaluate import EvalConfig, evaluate  # noqa: E402
from training.finetune import FinetuneConfig, run  # noqa: E402

KINDS = ("ce+dice", "ce+dice+cldice", "ce+dice+skel", "ce+lovasz")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "training/configs/cpu.yaml"))
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated loss.kind values")
    ap.add_argument("--minutes", type=float, default=4.0, help="wall-clock budget per loss")
    ap.add_argument("--steps", type=int, default=0, help="equal steps per loss instead of --minutes")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--eval-limit", type=int, default=200)
    ap.add_argument("--out", default="runs/loss_comparison")
    ap.add_argument("--results", default=str(ROOT / "bench/results/loss_comparison.json"))
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    a = ap.parse_args(argv)

    if a.steps > 0:
        budget = [f"steps={a.steps}", "schedule=steps", "optim.warmup_steps=" + str(max(1, a.steps // 10))]
    else:
        budget = ["schedule=time", f"max_minutes={a.minutes}", "steps=10000000", "epochs=1000"]
    rows = []
    for kind in a.kinds.split(","):
        out = Path(a.out) / kind.replace("+", "_")
        cfg = resolve(FinetuneConfig(), a.config,
                      [f"data.size={a.size}", f"loss.kind={kind}", f"out_dir={out}", "resume=false",
                       "val_every=0", "data.val_count=50", *budget, *a.overrides])
        t0 = time.time()
        res = run(cfg, quiet=True)
        secs = time.time() - t0
        ev = evaluate(EvalConfig(data=cfg.data, limit=a.eval_limit, batch_size=cfg.val_batch_size,
                                 threads=cfg.threads, png_tiles=0),
                      checkpoint=str(out / "best.pt"), out_dir=out / "eval", quiet=True)
        row = {"loss": kind, "steps": res["step"], "train_seconds": round(secs, 1),
               "mean_curve_iou": ev["mean_curve_iou"], "mean_curve_f1_tol2": ev["mean_curve_f1_tol2"],
               "min_curve_f1_tol2": ev["min_curve_f1_tol2"], "binary_curve_iou": ev["binary_curve_iou"],
               "iou": {n: d["iou"] for n, d in ev["per_class"].items()},
               "f1_tol2": {n: d.get("f1_tol2") for n, d in ev["per_class"].items() if n != "background"}}
        rows.append(row)
        print(json.dumps(row), flush=True)

    head = "| loss | steps | mean curve IoU | mean F1@2px | min F1@2px | " + \
        " | ".join(f"IoU {n}" for n in rows[0]["iou"] if n != "background") + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        per = " | ".join(_f(v) for n, v in r["iou"].items() if n != "background")
        lines.append(f"| {r['loss']} | {r['steps']} | {_f(r['mean_curve_iou'])} | "
                     f"{_f(r['mean_curve_f1_tol2'])} | {_f(r['min_curve_f1_tol2'])} | {per} |")
    table = "\n".join(lines)
    print(table)
    from logdigit.fsutil import atomic_write_text

    res_path = Path(a.results)
    res_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(res_path, json.dumps({
        "bench": "loss_comparison", "command": "python bench/loss_comparison.py " + " ".join(sys.argv[1:]),
        "budget": {"minutes": a.minutes, "steps": a.steps, "size": a.size, "eval_tiles": a.eval_limit},
        "base_config": to_dict(resolve(FinetuneConfig(), a.config)), "rows": rows, "table": table}, indent=1))
    return 0


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
