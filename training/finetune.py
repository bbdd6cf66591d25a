"""Multiclass segmentation fine-tuning: ``logdigit-train finetune``.

Usage::

    logdigit-train finetune --config training/configs/cpu.yaml [--init pretrain.pt] [key=value ...]
    torchrun --nproc_per_node 8 -m training.cli finetune --config training/configs/gpu.yaml

Config layering: :class:`FinetuneConfig` defaults < YAML < ``key=value`` overrides
(unknown keys refused). Outputs in ``out_dir``: ``config.yaml`` (resolved),
``metrics.jsonl`` (train / val / epoch records), ``last.pt`` (resume), ``best.pt``
(best validation mean curve IoU), all self-describing (training/checkpoint.py).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import click
import torch

from logdigit.constants import BINARY_CLASS_MAP, CLASS_MAP
from training import engine
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import ConfigError, config_sha256, merge, resolve, save_resolved, to_dict
from training.losses import LossConfig, build_loss
from training.metrics import SegMetrics
from training.models import build_model


# ----------------------------------------------------------------------------- config

@dataclass
class DataConfig:
    """Where tiles come from. ``source``: "synth" (training.data.SynthTileDataset) or "toy"."""

    source: str = "synth"
    task: str = "multiclass"
    count: int = 15000
    seed: int = 0
    size: int = 256
    val_fraction: float = 0.05
    tiles_per_page: int = 8
    cache_dir: str | None = None
    val_count: int = 0  # validation tiles scored during training; 0 = the whole val split
    # RenderConfig overrides for the train split (e.g. {"shading_prob": 0.6}); the val
    # split keeps the renderer defaults, so validation scores compare across runs
    render: dict = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str = "unet_light"
    args: dict = field(default_factory=dict)  # build_model options (num_classes follows data.task)


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0


@dataclass
class FinetuneConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 10
    steps: int = 0            # total optimiser steps; 0 = epochs x steps per epoch
    batch_size: int = 8       # per process
    val_batch_size: int = 16
    num_workers: int = 1
    train_fraction: float = 1.0  # share of the labelled train split used (data-budget runs)
    out_dir: str = "runs/finetune"
    device: str = "auto"
    amp: bool = True          # bf16 autocast on CUDA
    amp_cpu: bool = False     # bf16 autocast on the CPU (fast with AVX512-BF16 / AMX)
    channels_last: bool = False  # NHWC memory format (faster convolutions on CPU and GPU)
    seed: int = 0
    threads: int = 0          # torch CPU threads; 0 = leave torch's default
    val_every: int = 0        # steps between validations; 0 = at each epoch end
    ckpt_every_minutes: float = 5.0
    log_every: int = 20
    resume: bool = True       # continue from out_dir/last.pt when present
    max_minutes: float = 0.0  # wall-clock budget; 0 = none (stops early, checkpointed)
    schedule: str = "steps"   # "steps": cosine over `steps`; "time": cosine over max_minutes
    max_nonfinite: int = 20   # consecutive non-finite losses before giving up
    init: str | None = None   # pretraining checkpoint to start from
    init_parts: list[str] = field(default_factory=lambda: ["encoder", "decoder"])


def num_classes_for(task: str) -> int:
    if task == "multiclass":
        return len(CLASS_MAP)
    if task == "binary":
        return len(BINARY_CLASS_MAP)
    raise ConfigError(f"data.task must be 'multiclass' or 'binary', got {task!r}")


def class_names_for(task: str) -> dict[int, str]:
    return dict(BINARY_CLASS_MAP) if task == "binary" else dict(CLASS_MAP)


# ----------------------------------------------------------------------------- data

def make_dataset(data: DataConfig, split: str, count: int | None = None):
    """The train or val split of the configured tile source ({"image", "mask"} items)."""
    kw = dict(task=data.task, split=split, count=data.count if count is None else count,
              seed=data.seed, size=data.size, val_fraction=data.val_fraction)
    if data.source == "toy":
        from training.toydata import ToyTileDataset

        return ToyTileDataset(**kw)
    if data.source == "synth":
        try:
            from training.data import SynthTileDataset
        except ImportError as e:
            raise ConfigError(f"data.source=synth needs training.data ({e}); use data.source=toy") from None
        return SynthTileDataset(tiles_per_page=data.tiles_per_page, cache_dir=data.cache_dir,
                                cfg=render_config(data) if split == "train" else None, **kw)
    raise ConfigError(f"data.source must be 'synth' or 'toy', got {data.source!r}")


def render_config(data: DataConfig):
    """The renderer ranges of the train split: defaults with ``data.render`` applied.

    Raises
    ------
    ConfigError
        on a key :class:`training.synth.RenderConfig` does not have, or a bad value.
    """
    from training.synth import RenderConfig

    return merge(RenderConfig(), data.render or {}, prefix="data.render.")


def train_indices(n: int, fraction: float) -> list[int]:
    """The first ``round(fraction * n)`` (>= 1) indices of the train split: nested budgets."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"train_fraction must be in (0, 1], got {fraction}")
    return list(range(max(1, int(round(fraction * n)))))


def load_items(ds, count: int = 0) -> list[dict[str, torch.Tensor]]:
    """The first ``count`` items (all when 0) of a dataset, in memory."""
    n = len(ds) if count <= 0 else min(count, len(ds))
    return [ds[i] for i in range(n)]


def batches(items: list[dict], batch_size: int):
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        yield {k: torch.stack([it[k] for it in chunk]) for k in ("image", "mask")}


# ----------------------------------------------------------------------------- init weights

def load_init(model: torch.nn.Module, ckpt_path: str | os.PathLike,
              parts: Sequence[str] = ("encoder", "decoder")) -> dict[str, list[str]]:
    """Copy the tensors under ``parts`` (state-dict prefixes) from a checkpoint into ``model``.

    Returns a report: ``matched`` (loaded), ``missing`` (model tensors of those parts not
    in the checkpoint), ``shape_mismatch`` (present, different shape: left as is) and
    ``skipped`` (checkpoint tensors outside ``parts``).
    """
    ckpt = load_checkpoint(ckpt_path)
    src = ckpt["state_dict"]
    dst = model.state_dict()
    prefixes = tuple(p.rstrip(".") + "." for p in parts)
    report: dict[str, list[str]] = {"matched": [], "missing": [], "shape_mismatch": [], "skipped": []}
    load = {}
    for k, v in dst.items():
        if not k.startswith(prefixes):
            continue
        if k not in src:
            report["missing"].append(k)
        elif tuple(src[k].shape) != tuple(v.shape):
            report["shape_mismatch"].append(k)
        else:
            load[k] = src[k]
            report["matched"].append(k)
    report["skipped"] = [k for k in src if not k.startswith(prefixes)]
    if not load:
        raise ValueError(f"{ckpt_path}: no tensor under {list(parts)} matches the model "
                         f"({ckpt.get('model', {}).get('name')} vs {getattr(model, 'name', '?')})")
    model.load_state_dict(load, strict=False)
    return report


def init_summary(report: dict[str, list[str]]) -> str:
    return ", ".join(f"{len(v)} {k}" for k, v in report.items())


# ----------------------------------------------------------------------------- validation

def validate(model: torch.nn.Module, items: list[dict], batch_size: int, device: torch.device,
             amp: bool, num_classes: int, class_names: dict[int, str],
             tolerances: Sequence[int] = (0, 1, 2)) -> dict[str, Any]:
    """Score ``model`` on in-memory tiles: SegMetrics summary (IoU, tolerant F1, confusion)."""
    m = engine.unwrap(model)
    was_training = m.training
    m.eval()
    met = SegMetrics(num_classes=num_classes, tolerances=tolerances, class_names=class_names)
    for b in batches(items, batch_size):
        met.update(engine.predict_classes(m, b["image"], device, amp), b["mask"].numpy())
    m.train(was_training)
    return met.summary()


def _headline(s: dict) -> dict:
    keys = ("mean_curve_iou", "binary_curve_iou", "mean_curve_f1_tol1", "mean_curve_f1_tol2",
            "min_curve_f1_tol2")
    out = {k: s.get(k) for k in keys}
    out["iou"] = {n: d["iou"] for n, d in s["per_class"].items()}
    out["f1_tol2"] = {n: d.get("f1_tol2") for n, d in s["per_class"].items() if "f1_tol2" in d}
    return out


# ----------------------------------------------------------------------------- run

def run(cfg: FinetuneConfig, quiet: bool = False) -> dict[str, Any]:
    """Train per ``cfg``; returns {"out_dir", "step", "best", "last_val", "best_checkpoint"}."""
    dist = engine.setup_distributed(cfg.device)
    try:
        return _run(cfg, dist, quiet)
    finally:
        engine.cleanup_distributed(dist)


def _run(cfg: FinetuneConfig, dist: engine.DistInfo, quiet: bool) -> dict[str, Any]:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = engine.pick_device(cfg.device, dist.local_rank)
    engine.seed_everything(cfg.seed + dist.rank)
    out = Path(cfg.out_dir)
    ncls = num_classes_for(cfg.data.task)
    names = class_names_for(cfg.data.task)
    sha = config_sha256(cfg)
    say = (lambda msg: click.echo(msg, err=True)) if dist.is_main and not quiet else (lambda msg: None)

    last_path, best_path = out / "last.pt", out / "best.pt"
    resume_ckpt = None
    if cfg.resume and last_path.is_file():
        resume_ckpt = load_checkpoint(last_path)
        if resume_ckpt["config_sha256"] != sha:
            raise ConfigError(f"{last_path}: holds a run with a different config; "
                              "use another out_dir, or resume=false to start over")
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_resolved(cfg, out)
        if resume_ckpt is None and (out / "metrics.jsonl").exists():
            (out / "metrics.jsonl").unlink()
    log = engine.MetricsLog(out / "metrics.jsonl", enabled=dist.is_main)

    # data
    train_ds = make_dataset(cfg.data, "train")
    idx = train_indices(len(train_ds), cfg.train_fraction)
    per_epoch = len(idx) // dist.world // cfg.batch_size
    if per_epoch < 1:
        raise ConfigError(f"train split has {len(idx)} tiles, fewer than batch_size x processes "
                          f"({cfg.batch_size} x {dist.world}); raise data.count or train_fraction")
    total = cfg.steps if cfg.steps > 0 else cfg.epochs * per_epoch
    val_items = load_items(make_dataset(cfg.data, "val"), cfg.data.val_count) if dist.is_main else []

    # model
    args = dict(cfg.model.args)
    if args.get("num_classes", ncls) != ncls:
        raise ConfigError(f"model.args.num_classes={args['num_classes']} but data.task="
                          f"{cfg.data.task} has {ncls} classes; drop model.args.num_classes")
    args["num_classes"] = ncls
    try:
        model = build_model(cfg.model.name, **args)
    except ValueError as e:
        raise ConfigError(f"model: {e}") from None
    if cfg.data.size % model.stride:
        raise ConfigError(f"data.size={cfg.data.size} must divide by the model stride {model.stride}")
    if cfg.init and resume_ckpt is None:
        rep = load_init(model, cfg.init, cfg.init_parts)
        say(f"init from {cfg.init}: {init_summary(rep)}")
        log.write({"event": "init", "path": cfg.init, **{k: len(v) for k, v in rep.items()}})
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if dist.enabled:
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    bare = engine.unwrap(model)
    opt = engine.make_optimizer(bare, cfg.optim.lr, cfg.optim.weight_decay)
    if cfg.schedule == "time":
        sched = engine.TimeCosine(opt, cfg.optim.warmup_steps, cfg.max_minutes * 60, cfg.optim.min_lr_ratio)
    elif cfg.schedule == "steps":
        sched = engine.warmup_cosine(opt, cfg.optim.warmup_steps, total, cfg.optim.min_lr_ratio)
    else:
        raise ConfigError(f"schedule must be 'steps' or 'time', got {cfg.schedule!r}")
    loss_fn = build_loss(cfg.loss, ncls)
    guard = engine.NonFiniteGuard(cfg.max_nonfinite)

    step, best = 0, {"mean_curve_iou": -1.0, "step": -1}
    if resume_ckpt is not None:
        bare.load_state_dict(resume_ckpt["state_dict"])
        opt.load_state_dict(resume_ckpt["optimizer"])
        sched.load_state_dict(resume_ckpt["scheduler"])
        step = resume_ckpt["step"]
        best = resume_ckpt["metrics"].get("best", best)
        say(f"resumed from {last_path} at step {step}/{total}")
        log.write({"event": "resume", "step": step})

    def save(path: Path, metrics: dict, with_optim: bool) -> None:
        if dist.is_main:
            save_checkpoint(path, kind="finetune", model_name=bare.name, model_args=bare.model_args,
                            state_dict=bare.state_dict(), config=to_dict(cfg), config_sha256=sha,
                            step=step, epoch=step // per_epoch, metrics=metrics,
                            optimizer=opt.state_dict() if with_optim else None,
                            scheduler=sched.state_dict() if with_optim else None)

    last_val: dict[str, Any] | None = None

    def do_validate() -> None:
        nonlocal best, last_val
        if dist.is_main and val_items:
            t0 = time.time()
            s = validate(model, val_items, cfg.val_batch_size, device, cfg.amp, ncls, names)
            last_val = s
            rec = {"event": "val", "step": step, "epoch": step / per_epoch,
                   "val_seconds": round(time.time() - t0, 2), **_headline(s)}
            log.write(rec)
            say(f"step {step}: val mean curve IoU {s['mean_curve_iou']}, "
                f"mean F1@2px {s['mean_curve_f1_tol2']}")
            if (s["mean_curve_iou"] or 0.0) > best["mean_curve_iou"]:
                best = {"mean_curve_iou": s["mean_curve_iou"], "step": step}
                save(best_path, {"best": best, "val": s}, with_optim=False)
        if dist.enabled:
            torch.distributed.barrier()

    t_start = time.time()
    t_ckpt = time.time()
    stop = False
    bar = engine.progress(range(total), total=total, desc="finetune", quiet=quiet or not dist.is_main,
                          initial=step)
    model.train()
    acc: dict[str, float] = {}
    n_acc = 0
    while step < total and not stop:
        epoch, pos = divmod(step, per_epoch)
        sampler = engine.EpochSampler(idx, cfg.seed, epoch, pos * cfg.batch_size, dist.rank, dist.world)
        loader = torch.utils.data.DataLoader(
            train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
            num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
            persistent_workers=False, prefetch_factor=2 if cfg.num_workers > 0 else None)
        t_epoch = time.time()
        for b in loader:
            res = engine.train_step(model, b, loss_fn, opt, sched, device, cfg.amp,
                                    cfg.optim.grad_clip, guard, step, cfg.amp_cpu, cfg.channels_last)
            step += 1
            bar.update(1)
            if res is not None:
                for k, v in res.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc += 1
            if step % cfg.log_every == 0 or step == total:
                rec = {k: round(v / max(n_acc, 1), 6) for k, v in acc.items()}
                log.write({"event": "train", "step": step, "epoch": step / per_epoch,
                           "lr": sched.get_last_lr()[0], "skipped": guard.skipped,
                           "elapsed_s": round(time.time() - t_start, 1), **rec})
                bar.set_postfix(loss=f"{rec.get('loss', float('nan')):.4f}")
                acc, n_acc = {}, 0
            if cfg.val_every > 0 and step % cfg.val_every == 0 and step < total:
                do_validate()
            if time.time() - t_ckpt > cfg.ckpt_every_minutes * 60:
                save(last_path, {"best": best}, with_optim=True)
                t_ckpt = time.time()
            spent = sched.elapsed() if cfg.schedule == "time" else time.time() - t_start
            if cfg.max_minutes > 0 and spent > cfg.max_minutes * 60:
                say(f"max_minutes={cfg.max_minutes} reached at step {step}; stopping")
                stop = True
            if step >= total or stop:
                break
        if step % per_epoch == 0 or step >= total or stop:
            if cfg.val_every == 0 or step >= total or stop:
                do_validate()
            log.write({"event": "epoch", "epoch": epoch, "step": step,
                       "epoch_seconds": round(time.time() - t_epoch, 1),
                       "val": _headline(last_val) if last_val else None})
    bar.close()
    save(last_path, {"best": best, "val": last_val}, with_optim=True)
    if dist.is_main and not best_path.exists():
        save(best_path, {"best": best, "val": last_val}, with_optim=False)
    return {"out_dir": str(out), "step": step, "best": best, "last_val": last_val,
            "best_checkpoint": str(best_path), "skipped_steps": guard.skipped}


# ----------------------------------------------------------------------------- CLI

def _fail(msg: str):
    from logdigit._lazycli import InputError

    raise InputError(msg, prog="logdigit-train")


@click.command("finetune")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML config (training/configs/{tiny,cpu,gpu}.yaml).")
@click.option("--init", "init", type=click.Path(dir_okay=False),
              help="Pretraining checkpoint to start from (see --init-parts).")
@click.option("--init-parts", default=None,
              help="Comma-separated state-dict parts to load from --init (default encoder,decoder).")
@click.option("--train-fraction", type=float, default=None,
              help="Share of the labelled train split to use, in (0, 1].")
@click.option("--out-dir", default=None, help="Output folder (overrides out_dir).")
@click.option("--quiet", is_flag=True, help="No progress bar or messages.")
@click.argument("overrides", nargs=-1)
def cli(config_path, init, init_parts, train_fraction, out_dir, quiet, overrides):
    """Fine-tune a segmentation model. OVERRIDES are key=value, e.g. optim.lr=1e-3 steps=500."""
    extra = list(overrides)
    if init is not None:
        extra.append(f"init={init}")
    if init_parts is not None:
        extra.append(f"init_parts=[{init_parts}]")
    if train_fraction is not None:
        extra.append(f"train_fraction={train_fraction}")
    if out_dir is not None:
        extra.append(f"out_dir={out_dir}")
    try:
        cfg = resolve(FinetuneConfig(), config_path, extra)
        if cfg.init is not None and not Path(cfg.init).is_file():
            _fail(f"{cfg.init}: init checkpoint not found")
        res = run(cfg, quiet=quiet)
    except (ConfigError, FileNotFoundError, engine.NonFiniteLossError) as e:
        _fail(str(e))
    except ValueError as e:  # bad checkpoints, loss options
        _fail(str(e))
    if not quiet:
        click.echo(f"done: step {res['step']}, best mean curve IoU {res['best']['mean_curve_iou']} "
                   f"at step {res['best']['step']}; {res['best_checkpoint']}")

