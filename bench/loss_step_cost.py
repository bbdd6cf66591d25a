"""Cost of one training step per loss on the cpu config: what an equal wall-clock budget
buys each loss in steps, measured apart from machine load.

The losses take turns on the same batch in one process (round robin, ``--rounds``
each), so a busy machine slows every loss alike; the medians and their ratio to
CE+Dice are what ``bench/loss_comparison.py``'s equal-time table should be read with.

    nice -n 5 python bench/loss_step_cost.py --rounds 5
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loss_comparison import KINDS  # noqa: E402  (the same losses, in the same order)
from training.config import resolve  # noqa: E402
from training.finetune import FinetuneConfig, make_dataset, num_classes_for  # noqa: E402


def main(argv=None) -> int:
    import torch

    from training import engine
    from training.losses import build_loss
    from training.models import build_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "training/configs/cpu.yaml"))
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--results", default=str(ROOT / "bench/results/loss_step_cost.json"))
    a = ap.parse_args(argv)
    cfg = resolve(FinetuneConfig(), a.config)
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(0)
    ds = make_dataset(cfg.data, "train")
    batch = {k: torch.stack([ds[i][k] for i in range(cfg.batch_size)]) for k in ("image", "mask")}
    ncls = num_classes_for(cfg.data.task)
    model = build_model(cfg.model.name, num_classes=ncls, **cfg.model.args)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = batch["image"].contiguous(memory_format=torch.channels_last) if cfg.channels_last else batch["image"]
    kinds = a.kinds.split(",")
    fns = {k: build_loss(dataclasses.replace(cfg.loss, kind=k), ncls) for k in kinds}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    dev = torch.device("cpu")
    for r in range(a.rounds + 1):  # round 0 warms up allocator and kernels
        for k in kinds:
            t0 = time.perf_counter()
            with engine.autocast(dev, cfg.amp, cfg.amp_cpu):
                logits = model(x)
            loss, _ = fns[k](logits, batch["mask"])
            loss.backward()
            model.zero_grad(set_to_none=True)
            if r:
                times[k].append(time.perf_counter() - t0)
    base = statistics.median(times[kinds[0]])
    rows = [{"loss": k, "median_s_per_step": round(statistics.median(v), 3),
             "relative_to_" + kinds[0]: round(statistics.median(v) / base, 2)} for k, v in times.items()]
    print(f"{'loss':<18} {'s/step':>7} {'x ' + kinds[0]:>12}")
    for row in rows:
        print(f"{row['loss']:<18} {row['median_s_per_step']:>7.3f} {row['relative_to_' + kinds[0]]:>12.2f}")
    from bench._results import write_results

    write_results({"bench": "loss_step_cost", "command": "python bench/loss_step_cost.py " + " ".join(sys.argv[1:]),
                   "batch": [cfg.batch_size, 1, cfg.data.size, cfg.data.size], "threads": max(1, cfg.threads),
                   "bf16_cpu": cfg.amp_cpu, "rounds": a.rounds, "rows": rows}, Path(a.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
