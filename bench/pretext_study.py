"""Pretext study (issue 5): does self-supervised pretraining lift curve-class IoU?

The same network is fine-tuned on the multiclass task from four initialisations:

- ``random``: no pretraining;
- ``inpaint``: curve inpainting (encoder + decoder loaded);
- ``densecl``: DenseCL (encoder loaded);
- ``densecl+inpaint``: DenseCL, then inpainting started from the DenseCL encoder
  (encoder + decoder loaded). This order, not the reverse, because the last stage then
  trains encoder and decoder *together*: inpainting after DenseCL leaves fine-tuning a
  decoder that matches its encoder, while DenseCL after inpainting would move the
  encoder away from the decoder inpainting trained for it.

on label budgets of 1 %, 10 % and 100 % of a labelled training pool, with two
pretraining budgets (number of distinct unlabelled pages), all scored on one
validation split (per-class IoU, tolerant F1). Fine-tuning runs a fixed number of
steps whatever the budget, so the budget is the labelled pool's size.

Usage::

    python bench/pretext_study.py --grid cpu --shard 0/2 &   # ~1.5 h on 2 cores:
    python bench/pretext_study.py --grid cpu --shard 1/2     # one process per core
    python bench/pretext_study.py --grid gpu            # see bench/pretext_study_gpu.sh
    python bench/pretext_study.py --grid smoke --work /tmp/pts --out /tmp/pts.json

Writes the JSON of every run incrementally (a rerun skips finished runs) and a PNG
chart: curve-class IoU vs label budget, one line per initialisation, one panel per
pretraining budget. Prints the table at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INITS = ("random", "inpaint", "densecl", "densecl+inpaint")
#: state-dict parts each initialisation hands to fine-tuning
INIT_PARTS = {"inpaint": ["encoder", "decoder"], "densecl": ["encoder"],
              "densecl+inpaint": ["encoder", "decoder"]}
UNLABELLED_SEED = 1000   # renderer seed of the unlabelled pages (apart from the labelled ones)
LABELLED_SEED = 0


@dataclass(frozen=True)
class Grid:
    """One sizing of the study (every number that differs between machines)."""

    name: str
    size: int                        # tile edge, px
    model: str
    model_args: dict
    pretrain_budgets: tuple[int, ...]  # distinct unlabelled pages
    pretrain_steps: int
    pretrain_batch: int
    pretrain_lr: float
    densecl_momentum: float
    densecl_warmup: int              # steps with dense weight 0
    label_pool: int                  # 100 % = this many labelled tiles
    label_fractions: tuple[float, ...]
    finetune_steps: int
    finetune_batch: int
    finetune_lr: float
    val_tiles: int
    threads: int
    workers: int
    device: str
    note: str = ""
    amp_cpu: bool = False            # bf16 autocast on the CPU (pretraining and fine-tuning)
    render_workers: int = 0          # loader workers rendering the unlabelled pool (0: ``workers``)


GRIDS: dict[str, Grid] = {
    "smoke": Grid("smoke", 32, "unet_light", {"base_width": 4, "depth": 3}, (16, 32), 6, 4, 1e-3,
                  0.9, 2, 40, (0.1, 1.0), 4, 4, 2e-3, 8, 1, 0, "cpu",
                  "plumbing check only: numbers mean nothing"),
    "cpu": Grid("cpu", 128, "unet_light", {"base_width": 8, "depth": 4}, (2000, 15000), 1000, 16,
                2e-3, 0.99, 100, 2000, (0.01, 0.1, 1.0), 1500, 8, 3e-3, 256, 1, 0, "cpu",
                "CPU grid (2 cores, one process per core via --shard K/2, 1 thread each, bf16 "
                "autocast): 128 px tiles, unet_light base_width 8 depth 4; the issue's pretraining "
                "budgets 2,000 / 15,000 pages, 1000 pretraining steps (batch 16, so ~1 epoch of "
                "15,000 and 8 of 2,000), DenseCL momentum 0.99 (0.999 hardly moves the key encoder "
                "in 1000 steps); 1500 fine-tuning steps (batch 8, lr 3e-3, ce+dice), past the "
                "~750-step plateau where a random init still predicts solid curves only; labelled "
                "pool 2000 tiles (1 % = 20 tiles); 256 val tiles from pages disjoint from training",
                amp_cpu=True, render_workers=2),
    "gpu": Grid("gpu", 256, "unet_light", {}, (2000, 15000), 3000, 32, 1e-3,
                0.999, 300, 15000, (0.01, 0.1, 1.0), 2000, 16, 2e-3, 1000, 0, 12, "auto",
                "GPU grid (one GPU, 12 loader workers): 256 px tiles, unet_light default width "
                "(16); the issue's pretraining budgets 2,000 / 15,000 pages; 3000 pretraining "
                "steps (batch 32), DenseCL momentum 0.999; 2000 fine-tuning steps (batch 16); "
                "labelled pool 15,000 tiles; 1000 val tiles. Not run yet: duration unmeasured"),
}
#: grids that share another grid's run folder (pretraining checkpoints, pools, tile cache)
SHARED_WORK: dict[str, str] = {}


# ----------------------------------------------------------------------------- data


class MemoryPages:
    """Unlabelled pages held in memory as uint8 (image, clean) and int16 (instance).

    ``__getitem__`` returns the renderer's item format: image / clean float32 [1, S, S]
    pixel/255 and instance int64 [S, S].
    """

    def __init__(self, image: np.ndarray, clean: np.ndarray, instance: np.ndarray):
        self.image, self.clean, self.instance = image, clean, instance

    def __len__(self) -> int:
        return len(self.image)

    def head(self, n: int) -> "MemoryPages":
        """The first ``n`` pages (budgets are nested: the small pool is in the large one)."""
        return MemoryPages(self.image[:n], self.clean[:n], self.instance[:n])

    def __getitem__(self, i: int) -> dict:
        import torch

        return {"image": torch.from_numpy(self.image[i][None].astype(np.float32) / 255.0),
                "clean": torch.from_numpy(self.clean[i][None].astype(np.float32) / 255.0),
                "instance": torch.from_numpy(self.instance[i].astype(np.int64))}


def unlabelled_pool(grid: Grid, cache: Path) -> MemoryPages:
    """Render (once; cached as ``cache``) the largest unlabelled budget's pages."""
    if cache.is_file():
        z = np.load(cache)
        return MemoryPages(z["image"], z["clean"], z["instance"])
    import torch

    from training.pretrain_engine import DataConfig, unlabelled_dataset

    n = max(grid.pretrain_budgets)
    ds = unlabelled_dataset(DataConfig(count=n, seed=UNLABELLED_SEED, size=grid.size))
    img = np.empty((n, grid.size, grid.size), np.uint8)
    cln = np.empty_like(img)
    ins = np.empty((n, grid.size, grid.size), np.int16)
    t0 = time.time()
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=False,
                                         num_workers=grid.render_workers or grid.workers)
    i = 0
    for b in loader:  # workers render in parallel on the GPU machine's cores
        k = len(b["image"])
        img[i:i + k] = np.round(b["image"][:, 0].numpy() * 255).astype(np.uint8)
        cln[i:i + k] = np.round(b["clean"][:, 0].numpy() * 255).astype(np.uint8)
        ins[i:i + k] = b["instance"].numpy()
        i += k
        log(f"rendered {i}/{n} unlabelled pages ({time.time() - t0:.0f} s)")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, image=img, clean=cln, instance=ins)
    os.replace(tmp, cache)
    return MemoryPages(img, cln, ins)


# ----------------------------------------------------------------------------- runs


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def pretrain_name(pretext: str, budget: int) -> str:
    return f"{pretext.replace('+', '_')}_{budget}"


def pretrain_dir(work: Path, pretext: str, budget: int) -> Path:
    """Run folder of one pretraining (its ``checkpoint.pt``, ``log.jsonl``)."""
    return work / "pretrain" / pretrain_name(pretext, budget)


def pretrain(grid: Grid, pretext: str, budget: int, get_pool, work: Path) -> dict:
    """Run one pretraining (skipped when its checkpoint exists); returns its record.
    ``get_pool()`` gives the unlabelled :class:`MemoryPages`, called only when the
    pretraining has to run."""
    from training.engine import read_metrics
    from training.pretrain_engine import DataConfig, OptimConfig

    out = pretrain_dir(work, pretext, budget)
    ckpt = out / "checkpoint.pt"
    data = DataConfig(count=budget, seed=UNLABELLED_SEED, size=grid.size, workers=grid.workers)
    optim = OptimConfig(steps=grid.pretrain_steps, batch_size=grid.pretrain_batch,
                        lr=grid.pretrain_lr, warmup_steps=max(1, grid.pretrain_steps // 20),
                        amp_cpu=grid.amp_cpu)
    common = dict(data=data, optim=optim, device=grid.device, log_every=max(1, grid.pretrain_steps // 10),
                  save_every=0)
    t0 = time.time()
    if not ckpt.is_file():
        (out / "log.jsonl").unlink(missing_ok=True)  # a run cut short starts over
        ds = get_pool().head(budget)
        if pretext == "densecl":
            from training.pretrain_densecl import DenseCLConfig, pretrain_densecl

            cfg = DenseCLConfig(momentum=grid.densecl_momentum, dense_warmup_steps=grid.densecl_warmup,
                                **common)
            cfg.model.name, cfg.model.args = grid.model, dict(grid.model_args)
            pretrain_densecl(cfg, out, dataset=ds, quiet=True)
        else:
            from training.pretrain_inpaint import InpaintConfig, pretrain_inpaint

            init = ""
            if pretext == "densecl+inpaint":
                init = str(pretrain_dir(work, "densecl", budget) / "checkpoint.pt")
            cfg = InpaintConfig(init=init, init_parts=["encoder"], **common)
            cfg.model.name, cfg.model.args = grid.model, dict(grid.model_args)
            pretrain_inpaint(cfg, out, dataset=ds, quiet=True)
        log(f"pretrained {pretext} on {budget} pages in {time.time() - t0:.0f} s")
    recs = [r for r in read_metrics(out / "log.jsonl") if "loss" in r]
    return {"pretext": pretext, "budget": budget, "checkpoint": str(ckpt),
            "first": recs[0] if recs else None, "last": recs[-1] if recs else None}


def finetune_cfg(grid: Grid, init: str, ckpt: str | None, fraction: float, out: Path,
                 seed: int = 0):
    """The fine-tuning config of one study run (same data, network and steps for all)."""
    from training.finetune import FinetuneConfig

    cfg = FinetuneConfig()
    count = grid.label_pool + grid.val_tiles
    cfg.data = dataclasses.replace(cfg.data, source="synth", task="multiclass", count=count,
                                   seed=LABELLED_SEED, size=grid.size,
                                   val_fraction=grid.val_tiles / count, val_count=0,
                                   cache_dir=str(out.parent.parent / "tile_cache"))
    cfg.model.name, cfg.model.args = grid.model, dict(grid.model_args)
    cfg.optim = dataclasses.replace(cfg.optim, lr=grid.finetune_lr,
                                    warmup_steps=max(1, grid.finetune_steps // 20))
    return dataclasses.replace(
        cfg, steps=grid.finetune_steps, batch_size=grid.finetune_batch, val_batch_size=16,
        num_workers=grid.workers, train_fraction=fraction, out_dir=str(out), device=grid.device,
        amp=grid.device != "cpu", amp_cpu=grid.amp_cpu, seed=seed, threads=grid.threads, val_every=grid.finetune_steps,
        ckpt_every_minutes=30.0, log_every=max(1, grid.finetune_steps // 10), resume=True,
        init=ckpt, init_parts=INIT_PARTS.get(init, ["encoder", "decoder"]))


def prebuild_tiles(grid: Grid, work: Path) -> None:
    """Render the labelled train and val tiles into the fine-tuning cache once, in parallel:
    a sequential loader with batches of one cache shard gives each worker whole shards."""
    import torch

    from training import finetune as ft
    from training.data import SHARD_ITEMS

    cfg = finetune_cfg(grid, "random", None, 1.0, work / "finetune" / "_cache")
    t0 = time.time()
    for split in ("train", "val"):
        ds = ft.make_dataset(cfg.data, split)
        for _ in torch.utils.data.DataLoader(ds, batch_size=SHARD_ITEMS, shuffle=False,
                                             num_workers=grid.workers):
            pass
    log(f"labelled tiles cached in {time.time() - t0:.0f} s")


def finetune(grid: Grid, init: str, budget: int | None, fraction: float, ckpt: str | None,
             work: Path, seed: int = 0) -> dict:
    """One fine-tuning run; returns the record written to the JSON."""
    from training import finetune as ft

    name = run_name(init, budget, fraction, seed)
    out = work / "finetune" / name
    cfg = finetune_cfg(grid, init, ckpt, fraction, out, seed)
    t0 = time.time()
    res = ft.run(cfg, quiet=True)
    s = res["last_val"] or {}
    pc = s.get("per_class", {})
    n_train = len(ft.train_indices(grid.label_pool, fraction))
    rec = {
        "init": init, "pretrain_budget": budget, "label_fraction": fraction, "seed": seed,
        "label_tiles": n_train,
        "mean_curve_iou": s.get("mean_curve_iou"), "binary_curve_iou": s.get("binary_curve_iou"),
        "mean_curve_f1_tol1": s.get("mean_curve_f1_tol1"),
        "mean_curve_f1_tol2": s.get("mean_curve_f1_tol2"),
        "iou": {k: v.get("iou") for k, v in pc.items()},
        "f1_tol2": {k: v.get("f1_tol2") for k, v in pc.items() if "f1_tol2" in v},
        "val_tiles": s.get("tiles"), "steps": res["step"], "skipped_steps": res["skipped_steps"],
        "seconds": round(time.time() - t0, 1),
    }
    log(f"finetuned {name}: mean curve IoU {rec['mean_curve_iou']} ({rec['seconds']} s)")
    return rec


def run_key(r: dict) -> tuple:
    return (r["init"], r["pretrain_budget"], r["label_fraction"], r.get("seed", 0))


METRICS = ("mean_curve_iou", "mean_curve_f1_tol2", "binary_curve_iou")


def aggregate(runs: list[dict]) -> dict[tuple, dict]:
    """(init, budget, fraction) -> mean of each metric over fine-tuning seeds, with
    ``n`` (seeds) and ``<metric>_range`` (min, max)."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(run_key(r)[:3], []).append(r)
    out = {}
    for k, rs in groups.items():
        a = {"n": len(rs), "seeds": sorted(r.get("seed", 0) for r in rs)}
        for m in METRICS:
            vals = [r[m] for r in rs if r.get(m) is not None]
            a[m] = float(np.mean(vals)) if vals else None
            a[f"{m}_range"] = [min(vals), max(vals)] if vals else None
        out[k] = a
    return out


def plan(grid: Grid, seeds: tuple[int, ...] = (0,),
         fractions: tuple[float, ...] | None = None, inits: tuple[str, ...] | None = None,
         budgets: tuple[int, ...] | None = None) -> list[tuple[str, int | None, float, int]]:
    """Every fine-tuning run: (init, pretraining budget or None, label fraction, seed),
    the small label budgets of every init first, then 100 %; seed after seed. ``inits``
    / ``budgets`` keep only those initialisations / pretraining budgets."""
    runs = []
    for seed in seeds:
        for frac in fractions or grid.label_fractions:
            if inits is None or "random" in inits:
                runs.append(("random", None, frac, seed))
            for budget in budgets or grid.pretrain_budgets:
                for init in INITS[1:]:
                    if inits is None or init in inits:
                        runs.append((init, budget, frac, seed))
    return runs


def summary_table(runs: list[dict], grid: Grid) -> list[str]:
    """Rows: init (pretraining budget); columns per label budget: mean curve-class IoU,
    mean curve-class F1 at 2 px tolerance, binary (any curve vs background) IoU."""
    head = f"{'init':<18}{'pretrain':>9}" + "".join(f"{f'IoU@{f:.0%}':>11}" for f in grid.label_fractions)
    head += "".join(f"{f'F1t2@{f:.0%}':>11}" for f in grid.label_fractions)
    head += "".join(f"{f'bIoU@{f:.0%}':>11}" for f in grid.label_fractions)
    lines = [head]
    rows = [("random", None)] + [(i, b) for b in grid.pretrain_budgets for i in INITS[1:]]
    by = aggregate(runs)
    for init, budget in rows:
        cells = []
        for key in METRICS:
            for f in grid.label_fractions:
                r = by.get((init, budget, f))
                v = r.get(key) if r else None
                cells.append(f"{v:>11.3f}" if v is not None else f"{'-':>11}")
        n = sorted({by[(init, budget, f)]["n"] for f in grid.label_fractions if (init, budget, f) in by})
        lines.append(f"{init:<18}{budget or '-':>9}" + "".join(cells)
                     + (f"  (mean of {'/'.join(map(str, n))} seeds)" if n and n != [1] else ""))
    return lines


def lift(runs: list[dict], grid: Grid) -> dict:
    """Best pretext's IoU minus random init's (seed means), per label fraction and
    pretraining budget."""
    by = aggregate(runs)
    out = {}
    for f in grid.label_fractions:
        base = by.get(("random", None, f))
        for b in grid.pretrain_budgets:
            cands = [(by[(i, b, f)]["mean_curve_iou"], i) for i in INITS[1:]
                     if (i, b, f) in by and by[(i, b, f)]["mean_curve_iou"] is not None]
            if base and base["mean_curve_iou"] is not None and cands:
                best, who = max(cands)
                out[f"{f:g}@{b}"] = {"best_init": who, "lift": round(best - base["mean_curve_iou"], 4),
                                    "random": round(base["mean_curve_iou"], 4),
                                    "best": round(best, 4), "seeds": by[(who, b, f)]["n"]}
    return out


# ----------------------------------------------------------------------------- chart

COLOURS = {"random": (90, 90, 90), "inpaint": (40, 110, 230), "densecl": (40, 170, 40),
           "densecl+inpaint": (200, 60, 160)}  # BGR


def draw_chart(runs: list[dict], grid: Grid, path: Path) -> None:
    """PNG: one panel per pretraining budget, curve-class IoU (y) vs label budget (x, log)."""
    import cv2

    W, H, M = 520, 380, 60
    budgets = list(grid.pretrain_budgets)
    canvas = np.full((H + 70, W * len(budgets), 3), 255, np.uint8)
    vals = [r["mean_curve_iou"] for r in runs if r["mean_curve_iou"] is not None]
    ymax = max(0.1, float(np.ceil((max(vals) if vals else 0.1) * 10 + 0.5) / 10))
    fr = list(grid.label_fractions)
    lx = np.log10(fr)
    x0, x1 = M, W - 30
    y0, y1 = H - M, 40

    def px(f, v, off):
        t = 0.5 if len(fr) == 1 else (np.log10(f) - lx.min()) / (lx.max() - lx.min())
        return int(off + x0 + 25 + t * (x1 - x0 - 50)), int(y0 - v / ymax * (y0 - y1))

    font = cv2.FONT_HERSHEY_SIMPLEX
    by = aggregate(runs)
    for p, b in enumerate(budgets):
        off = p * W
        for k in range(0, 11):
            v = ymax * k / 10
            _, y = px(fr[0], v, off)
            cv2.line(canvas, (off + x0, y), (off + x1, y), (230, 230, 230), 1)
            if k % 2 == 0:
                cv2.putText(canvas, f"{v:.2f}", (off + 8, y + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(canvas, (off + x0, y1), (off + x1, y0), (0, 0, 0), 1)
        for f in fr:
            x, _ = px(f, 0, off)
            cv2.line(canvas, (x, y0), (x, y0 + 5), (0, 0, 0), 1)
            cv2.putText(canvas, f"{f:.0%}", (x - 14, y0 + 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(canvas, f"pretraining budget {b} pages", (off + x0, 25), font, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
        cv2.putText(canvas, "labelled share of the pool", (off + x0 + 110, y0 + 42), font, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        for li, init in enumerate(INITS):
            key_b = None if init == "random" else b
            pts = [px(f, by[(init, key_b, f)]["mean_curve_iou"], off) for f in fr
                   if (init, key_b, f) in by and by[(init, key_b, f)]["mean_curve_iou"] is not None]
            col = COLOURS[init]
            for f in fr:  # min-max over fine-tuning seeds
                a = by.get((init, key_b, f))
                if a and a["n"] > 1 and a["mean_curve_iou_range"]:
                    lo, hi = a["mean_curve_iou_range"]
                    cv2.line(canvas, px(f, lo, off), px(f, hi, off), col, 1, cv2.LINE_AA)
            for a, c in zip(pts, pts[1:]):
                cv2.line(canvas, a, c, col, 2, cv2.LINE_AA)
            for q in pts:
                cv2.circle(canvas, q, 4, col, -1, cv2.LINE_AA)
            lx0, ly = off + x0 + 115 * li, y0 + 65
            cv2.line(canvas, (lx0, ly - 4), (lx0 + 20, ly - 4), col, 2, cv2.LINE_AA)
            cv2.putText(canvas, init, (lx0 + 24, ly), font, 0.42, col, 1, cv2.LINE_AA)
    cv2.putText(canvas, f"mean curve-class IoU on {grid.val_tiles} val tiles ({grid.name} grid, "
                f"{grid.finetune_steps} fine-tuning steps)", (10, H + 60), font, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", canvas)
    from logdigit.fsutil import atomic_write_bytes

    atomic_write_bytes(path, buf.tobytes())


# ----------------------------------------------------------------------------- main


def write_results(path: Path, grid: Grid, pre: list[dict], runs: list[dict], t0: float, done: bool) -> None:
    from logdigit.fsutil import atomic_write_text

    data = {"study": "pretext_study", "grid": dataclasses.asdict(grid), "complete": done,
            "inits": list(INITS), "init_parts": INIT_PARTS,
            "order_reason": "DenseCL then inpainting: the last stage trains encoder and decoder "
                            "together, so fine-tuning gets a decoder matched to its encoder",
            "metric": "mean IoU over the 4 curve classes (strict), tolerant F1 at 2 px, on the "
                      "same validation split, after a fixed number of fine-tuning steps",
            "wall_seconds": round(time.time() - t0, 1), **compute_seconds(pre, runs),
            "pretraining": pre, "runs": runs,
            "lift_best_pretext_minus_random": lift(runs, grid),
            "table": summary_table(runs, grid)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def compute_seconds(pre: list[dict], runs: list[dict]) -> dict:
    """Process time the grid took, summed over its records (``wall_seconds`` is only the
    last invocation's, which may have found everything done)."""
    return {"pretrain_seconds_sum": round(sum((p.get("last") or {}).get("seconds", 0.0)
                                              for p in pre), 1),
            "finetune_seconds_sum": round(sum(r.get("seconds", 0.0) for r in runs), 1)}


class Records:
    """One JSON file per finished pretraining / fine-tuning run under ``folder``, so that
    several processes (``--shard K/N``) can share a grid; the results JSON is rebuilt from
    all of them on every write."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def put(self, kind: str, name: str, rec: dict) -> None:
        from logdigit.fsutil import atomic_write_text

        atomic_write_text(self.folder / f"{kind}__{name}.json", json.dumps(rec, indent=1) + "\n")

    def get(self, kind: str) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob(f"{kind}__*.json"))]


def run_name(init: str, budget: int | None, fraction: float, seed: int) -> str:
    return f"{init.replace('+', '_')}_{budget or 0}_{fraction:g}" + (f"_s{seed}" if seed else "")


def wait_for(path: Path, what: str, poll_s: float = 15.0) -> None:
    """Block until another shard has written ``path``."""
    if not path.is_file():
        log(f"waiting for {what} ({path}) from another shard")
        while not path.is_file():
            time.sleep(poll_s)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard {text!r}: expected K/N, e.g. 0/2") from None
    if not (n >= 1 and 0 <= k < n):
        raise SystemExit(f"--shard {text!r}: need 0 <= K < N")
    return k, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", choices=sorted(GRIDS), default="cpu")
    ap.add_argument("--work", default=None, help="run folder (default runs/pretext_study_<grid>)")
    ap.add_argument("--out", default=None, help="JSON (default bench/results/pretext_study[_gpu].json)")
    ap.add_argument("--png", default=None, help="chart (default: the JSON's path with .png)")
    ap.add_argument("--seeds", default="0",
                    help="fine-tuning seeds, comma-separated (tables average over them)")
    ap.add_argument("--label-fractions", default=None,
                    help="run only these label fractions (e.g. 0.01,0.1); default the grid's")
    ap.add_argument("--inits", default=None,
                    help="run only these initialisations, comma-separated (default all)")
    ap.add_argument("--budgets", default=None,
                    help="run only these pretraining budgets, comma-separated (default the grid's)")
    ap.add_argument("--shard", default="0/1",
                    help="K/N: this process runs every N-th job from the K-th (start N processes "
                         "with the same arguments, K = 0..N-1, one per core); they share --work")
    ap.add_argument("--redraw", action="store_true",
                    help="only redo the table, lift and chart from the existing JSON")
    args = ap.parse_args(argv)
    grid = GRIDS[args.grid]
    seeds = tuple(int(x) for x in args.seeds.split(","))
    fractions = tuple(float(x) for x in args.label_fractions.split(",")) if args.label_fractions else None
    shard, nshards = parse_shard(args.shard)
    inits = tuple(args.inits.split(",")) if args.inits else None
    if inits and not set(inits) <= set(INITS):
        raise SystemExit(f"--inits {args.inits!r}: choose from {', '.join(INITS)}")
    budgets = tuple(int(x) for x in args.budgets.split(",")) if args.budgets else None
    if budgets and not set(budgets) <= set(grid.pretrain_budgets):
        raise SystemExit(f"--budgets {args.budgets!r}: the {grid.name} grid has "
                         f"{', '.join(map(str, grid.pretrain_budgets))}")
    suffix = "" if grid.name == "cpu" else f"_{grid.name}"
    out = Path(args.out or ROOT / "bench" / "results" / f"pretext_study{suffix}.json")
    png = Path(args.png) if args.png else out.with_suffix(".png")
    work = Path(args.work or ROOT / "runs" / f"pretext_study_{SHARED_WORK.get(grid.name, grid.name)}")

    if args.redraw:
        data = json.loads(out.read_text())
        data["table"] = summary_table(data["runs"], grid)
        data["lift_best_pretext_minus_random"] = lift(data["runs"], grid)
        data.update(compute_seconds(data.get("pretraining", []), data["runs"]))
        from logdigit.fsutil import atomic_write_text

        atomic_write_text(out, json.dumps(data, indent=2) + "\n")
        draw_chart(data["runs"], grid, png)
        print("\n".join(data["table"]))
        print(json.dumps(data["lift_best_pretext_minus_random"], indent=2))
        return 0

    import torch

    if grid.threads > 0:
        torch.set_num_threads(grid.threads)
    t0 = time.time()
    records = Records(work / f"records_{grid.name}")
    if out.is_file():  # results of an earlier run of this grid (before records existed)
        old = json.loads(out.read_text())
        if old.get("grid") == json.loads(json.dumps(dataclasses.asdict(grid))):
            for r in old.get("runs", []):
                records.put("finetune", run_name(r["init"], r["pretrain_budget"], r["label_fraction"],
                                                 r.get("seed", 0)), r)
            for p in old.get("pretraining", []):
                records.put("pretrain", pretrain_name(p["pretext"], p["budget"]), p)
    todo = plan(grid, seeds, fractions, inits, budgets)

    def publish(final: bool = False) -> None:
        runs = records.get("finetune")
        done = {run_key(r) for r in runs} >= set(todo)
        write_results(out, grid, records.get("pretrain"), runs, t0, final and done)
        if runs:
            draw_chart(runs, grid, png)

    log(f"grid {grid.name} (shard {shard}/{nshards}): {grid.note}")
    pool_path = work / f"unlabelled_{grid.size}_{max(grid.pretrain_budgets)}.npz"
    pool: MemoryPages | None = None

    def get_pool() -> MemoryPages:
        """The unlabelled pool, loaded on first use (shard 0 renders it, the others wait)."""
        nonlocal pool
        if pool is None:
            if shard:
                wait_for(pool_path, "the unlabelled pool")
            pool = unlabelled_pool(grid, pool_path)
        return pool

    ckpts = {(p, b): pretrain_dir(work, p, b) / "checkpoint.pt"
             for b in grid.pretrain_budgets for p in INITS[1:]}
    if shard == 0 and not all(c.is_file() for c in ckpts.values()):
        get_pool()   # some shard still pretrains: render the pool it waits for
    for i, budget in enumerate(grid.pretrain_budgets):
        if i % nshards != shard:  # a budget's three pretexts stay together: one needs another
            continue
        for pretext in INITS[1:]:
            rec = pretrain(grid, pretext, budget, get_pool, work)
            records.put("pretrain", pretrain_name(pretext, budget), rec)
            publish()
    pool = None   # free it before fine-tuning

    if shard == 0:
        prebuild_tiles(grid, work)
        (work / f"tiles_ready_{grid.name}").touch()
    else:
        wait_for(work / f"tiles_ready_{grid.name}", "the labelled tile cache")
    done = {run_key(r) for r in records.get("finetune")}
    for j, (init, budget, frac, seed) in enumerate(todo):
        if j % nshards != shard or (init, budget, frac, seed) in done:
            continue
        ckpt = None
        if init != "random":
            wait_for(ckpts[(init, budget)], f"the {init} pretraining on {budget} pages")
            ckpt = str(ckpts[(init, budget)])
        rec = finetune(grid, init, budget, frac, ckpt, work, seed)
        records.put("finetune", run_name(init, budget, frac, seed), rec)
        publish()
    publish(final=True)
    runs = records.get("finetune")
    print("\n".join(summary_table(runs, grid)))
    print(json.dumps(lift(runs, grid), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
