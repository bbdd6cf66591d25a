"""Train the shipped model (training/configs/cpu.yaml) on this CPU within a wall-clock budget.

1. with ``schedule: time`` (cpu.yaml): the cosine runs over the wall-clock budget (ends by
   ``--until`` UTC HH:MM or after ``--minutes``), whatever the step time on a shared machine;
   with ``schedule: steps``: a probe of a few steps measures seconds per step, and ``steps``
   is sized to fit (``max_minutes`` as a safety net); checkpoints every few minutes;
2. evaluate best.pt on the first ``--eval-limit`` validation tiles and write
   bench/results/finetune_cpu.json, finetune_cpu_metrics.jsonl (the learning curve) and
   finetune_cpu_predictions.png.

Rerunning resumes the run in ``out_dir`` (same planned config, read from its config.yaml).

    nice -n 5 python bench/train_cpu.py --until 08:40 > runs/cpu/train.log 2>&1 &
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training import engine  # noqa: E402
from training.config import resolve, to_dict  # noqa: E402
from training.evaluate import EvalConfig, evaluate, format_table  # noqa: E402
from training.finetune import FinetuneConfig, run  # noqa: E402


def minutes_until(hhmm: str) -> float:
    now = dt.datetime.now(dt.timezone.utc)
    h, m = map(int, hhmm.split(":"))
    end = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if end < now:
        end += dt.timedelta(days=1)
    return (end - now).total_seconds() / 60


def probe_seconds_per_step(cfg: FinetuneConfig, steps: int, out: Path) -> float:
    """Seconds per optimiser step of ``cfg`` here, now (first step excluded)."""
    pcfg = resolve(cfg, None, [f"out_dir={out}", f"steps={steps}", "resume=false", "val_every=0",
                               "data.val_count=1", "log_every=1"])
    run(pcfg, quiet=True)
    recs = [r for r in engine.read_metrics(out / "metrics.jsonl") if r["event"] == "train"]
    return (recs[-1]["elapsed_s"] - recs[0]["elapsed_s"]) / max(1, len(recs) - 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "training/configs/cpu.yaml"))
    ap.add_argument("--until", help="UTC HH:MM by which training must end")
    ap.add_argument("--minutes", type=float, help="training budget in minutes (instead of --until)")
    ap.add_argument("--probe-steps", type=int, default=6)
    ap.add_argument("--margin", type=float, default=0.9, help="share of the budget planned for steps")
    ap.add_argument("--eval-limit", type=int, default=300)
    ap.add_argument("--results", default=str(ROOT / "bench/results"))
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = ap.parse_args(argv)

    cfg = resolve(FinetuneConfig(), a.config, a.overrides)
    out = Path(cfg.out_dir)
    planned = out / "config.yaml"
    if (out / "last.pt").is_file() and planned.is_file():
        cfg = resolve(FinetuneConfig(), planned)
        print(f"resuming the planned run in {out} ({cfg.steps} steps)", flush=True)
        sps = None
    elif cfg.schedule == "time":  # cosine over the wall-clock budget: no probe needed
        budget = a.minutes if a.minutes else (minutes_until(a.until) if a.until else 60.0)
        cfg = resolve(cfg, None, [f"max_minutes={budget:.2f}"])
        sps = None
        print(f"time schedule: {budget:.1f} min (at most {cfg.steps} steps)", flush=True)
    else:
        budget = a.minutes if a.minutes else (minutes_until(a.until) if a.until else 60.0)
        t0 = time.time()
        sps = probe_seconds_per_step(cfg, a.probe_steps, out.with_name(out.name + "_probe"))
        budget -= (time.time() - t0) / 60
        steps = max(10, int(budget * 60 * a.margin / sps))
        cfg = resolve(cfg, None, [f"steps={steps}", f"max_minutes={budget:.2f}"])
        print(f"probe: {sps:.2f} s/step; budget {budget:.1f} min -> {steps} steps "
              f"({steps * cfg.batch_size} tiles of {cfg.data.size} px)", flush=True)
    t1 = time.time()
    res = run(cfg, quiet=False)
    train_min = (time.time() - t1) / 60
    trecs = [r for r in engine.read_metrics(out / "metrics.jsonl") if r["event"] == "train"]
    if len(trecs) > 1:
        measured_sps = (trecs[-1]["elapsed_s"] - trecs[0]["elapsed_s"]) / max(1, trecs[-1]["step"] - trecs[0]["step"])
    else:
        measured_sps = None
    print(f"trained to step {res['step']} in {train_min:.1f} min; best {res['best']}", flush=True)

    ecfg = EvalConfig(data=cfg.data, limit=a.eval_limit, batch_size=cfg.val_batch_size,
                      threads=cfg.threads)
    best = out / "best.pt"
    ev = evaluate(ecfg, checkpoint=str(best), out_dir=out / "eval", quiet=True)
    print(format_table(ev), flush=True)

    results = Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    curve = [r for r in engine.read_metrics(out / "metrics.jsonl") if r["event"] in ("val", "train")]
    summary = {
        "bench": "finetune_cpu", "command": "python bench/train_cpu.py " + " ".join(sys.argv[1:]),
        "checkpoint": str(best), "trained_steps": res["step"], "planned_steps": cfg.steps,
        "train_minutes_this_invocation": round(train_min, 1), "probe_seconds_per_step": sps,
        "measured_seconds_per_step": measured_sps,
        "best_during_training": res["best"], "config": to_dict(cfg),
        "targets": {"mean_curve_iou": 0.80, "f1_tol2_every_curve_class": 0.95},
        "reference": {"curve_class_iou": [0.26, 0.21]},
        "eval": ev,
        "learning_curve": [{k: r.get(k) for k in ("event", "step", "loss", "lr", "mean_curve_iou",
                                                  "mean_curve_f1_tol2", "elapsed_s") if k in r}
                           for r in curve if r["event"] == "val" or r["step"] % 50 == 0],
    }
    from logdigit.fsutil import atomic_write_text

    atomic_write_text(results / "finetune_cpu.json", json.dumps(summary, indent=1))
    shutil.copyfile(out / "metrics.jsonl", results / "finetune_cpu_metrics.jsonl")
    if (out / "eval" / "predictions.png").is_file():
        shutil.copyfile(out / "eval" / "predictions.png", results / "finetune_cpu_predictions.png")
    print(f"wrote {results / 'finetune_cpu.json'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
