"""Step loop shared by the pretext commands (MAE-style split: ``main`` in
``pretrain_<pretext>.py`` parses and wires, this module runs the steps).

Built on :mod:`training.engine` (device, DDP, AdamW + warm-up cosine, non-finite guard,
epoch sampler, metrics log) and :func:`training.finetune.load_init`.

- :class:`DataConfig`, :class:`OptimConfig`: settings shared by both pretexts.
- :func:`batches`: an endless, seeded, epoch-reshuffled stream of collated batches.
- :func:`train_steps`: ``cfg.steps`` optimiser steps of a pretext's ``step_fn``.
- :func:`init_strict`: start a network from another checkpoint's parts, refusing gaps.
- :func:`pretext_command`: the thin click command both pretexts share.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from training import engine
from training.finetune import ModelConfig


@dataclass
class DataConfig:
    """Unlabelled pages from the renderer (``training.data.UnlabelledDataset``).

    count: number of distinct pages (the pretraining budget, e.g. 2,000 or 15,000);
    seed: renderer seed; size: square tile edge in px; workers: DataLoader workers;
    cache_dir: render once into ``.npz`` shards there ("" = render on the fly).
    """

    count: int = 2000
    seed: int = 1000
    size: int = 256
    workers: int = 0
    cache_dir: str = ""


@dataclass
class OptimConfig:
    """AdamW, linear warm-up then cosine decay to ``min_lr_ratio * lr`` over ``steps``.

    batch_size is per process; max_nonfinite: consecutive non-finite losses (each
    skipped) before the run stops; amp: bf16 autocast on CUDA; amp_cpu: bf16 autocast on
    the CPU (about 1.5x faster steps on CPUs with AVX512-BF16/AMX; losses stay fp32).
    """

    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    max_nonfinite: int = 20
    amp: bool = True
    amp_cpu: bool = False


@dataclass
class PretextConfig:
    """Settings every pretext run has (each pretext's config extends this).

    init / init_parts: optional checkpoint whose parts (e.g. a DenseCL encoder) start the
    run; seed; device (auto = CUDA when present); log_every / save_every in steps.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    init: str = ""
    init_parts: list[str] = field(default_factory=lambda: ["encoder"])
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    save_every: int = 500


@dataclass
class StepResult:
    """What one pretext step returns: the loss to minimise and scalars to log."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


def unlabelled_dataset(cfg: DataConfig):
    """The renderer's unlabelled pages for ``cfg``: items {"image", "clean", "instance"}."""
    from training.data import UnlabelledDataset

    return UnlabelledDataset(count=cfg.count, seed=cfg.seed, size=cfg.size,
                             cache_dir=cfg.cache_dir or None)


def batches(dataset, batch_size: int, seed: int, workers: int = 0,
            dist: engine.DistInfo | None = None) -> Iterator[Any]:
    """Endless stream of collated batches over ``dataset``: a fresh permutation per epoch
    (:class:`training.engine.EpochSampler`), sharded over ranks, last partial batch dropped.
    A dataset with ``set_epoch(e)`` is told the epoch before its loader starts (per-epoch
    random masks drawn in workers)."""
    dist = dist or engine.DistInfo()
    if len(dataset) < batch_size * dist.world:
        raise ValueError(f"dataset of {len(dataset)} pages is smaller than one batch "
                         f"({batch_size} x {dist.world} processes): raise data.count or lower "
                         f"optim.batch_size")
    idx = list(range(len(dataset)))
    epoch = 0
    while True:
        sampler = engine.EpochSampler(idx, seed, epoch, 0, dist.rank, dist.world)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        yield from torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                               drop_last=True, num_workers=workers)
        epoch += 1


def average_gradients(params: Sequence[torch.Tensor], dist: engine.DistInfo) -> None:
    """Mean of the gradients over processes (plain data parallel; no-op alone)."""
    if not dist.enabled:
        return
    for p in params:
        if p.grad is not None:
            engine.all_reduce_sum(p.grad, dist).div_(dist.world)


def train_steps(step_fn: Callable[[Any, int], StepResult], data: Iterator[Any], module: nn.Module,
                cfg: OptimConfig, *, dist: engine.DistInfo | None = None,
                after_step: Callable[[int], None] | None = None,
                checkpoint: Callable[[int, dict, torch.optim.Optimizer], None] | None = None,
                save_every: int = 0, log_path: str | Path | None = None, log_every: int = 50,
                quiet: bool = False) -> list[dict]:
    """Run ``cfg.steps`` optimiser steps of ``step_fn(batch, step)`` over ``module``'s
    trainable parameters.

    A non-finite loss or gradient norm skips the update (:class:`training.engine.NonFiniteGuard`;
    ``cfg.max_nonfinite`` in a row raise :class:`training.engine.NonFiniteLossError`).
    ``after_step(step)`` runs after each applied update (momentum encoders);
    ``checkpoint(step, last_record, optimizer)`` every ``save_every`` steps and at the end,
    on rank 0. Records (means over ``log_every`` steps) go to the JSON-lines ``log_path``.

    Returns
    -------
    The logged records.
    """
    dist = dist or engine.DistInfo()
    params = [p for p in module.parameters() if p.requires_grad]
    opt = engine.make_optimizer(module, cfg.lr, cfg.weight_decay)
    sched = engine.warmup_cosine(opt, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    guard = engine.NonFiniteGuard(cfg.max_nonfinite)
    log = engine.MetricsLog(log_path, enabled=dist.is_main) if log_path else None
    history: list[dict] = []
    acc: dict[str, float] = {}
    n_acc = 0
    last: dict = {}
    t0 = time.time()
    bar = engine.progress(range(cfg.steps), total=cfg.steps, desc="pretrain",
                          quiet=quiet or not dist.is_main)
    for step in range(cfg.steps):
        batch = next(data)
        opt.zero_grad(set_to_none=True)
        res = step_fn(batch, step)
        if guard.check(res.loss.detach(), step):
            res.loss.backward()
            average_gradients(params, dist)
            clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
            gn = torch.nn.utils.clip_grad_norm_(params, clip)
            if guard.check(gn, step):
                opt.step()
                if after_step is not None:
                    after_step(step)
                for k, v in {"loss": float(res.loss.detach()), **res.logs}.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc += 1
        opt.zero_grad(set_to_none=True)
        sched.step()
        bar.update(1)
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            last = {"step": step + 1, "lr": sched.get_last_lr()[0], "skipped": guard.skipped,
                    "seconds": round(time.time() - t0, 2),
                    **{k: v / max(n_acc, 1) for k, v in acc.items()}}
            history.append(last)
            acc, n_acc = {}, 0
            bar.set_postfix(loss=f"{last.get('loss', float('nan')):.4f}")
            if log is not None:
                log.write(last)
        if checkpoint is not None and dist.is_main and save_every > 0 \
                and (step + 1) % save_every == 0 and step + 1 < cfg.steps:
            checkpoint(step + 1, last, opt)
    bar.close()
    if checkpoint is not None and dist.is_main:
        checkpoint(cfg.steps, last, opt)
    return history


def init_strict(model: nn.Module, path: str | Path, parts: Sequence[str]) -> dict[str, list[str]]:
    """Load ``parts`` of checkpoint ``path`` into ``model`` (:func:`training.finetune.load_init`),
    refusing missing or mis-shaped tensors.

    Raises
    ------
    ValueError
        naming the file, the gaps and the fix.
    """
    from training.finetune import load_init

    rep = load_init(model, path, parts)
    if rep["missing"] or rep["shape_mismatch"]:
        raise ValueError(
            f"{path}: cannot initialise {'/'.join(parts)}: {len(rep['missing'])} tensors missing "
            f"(e.g. {rep['missing'][:3]}), {len(rep['shape_mismatch'])} of another shape "
            f"(e.g. {rep['shape_mismatch'][:3]}); use the model name and args it was trained with")
    return rep


def pretext_command(name: str, default: Callable[[], Any], run: Callable[..., Path],
                    help_text: str):
    """A click command ``name``: ``-c/--config YAML``, ``-o/--out DIR``, ``-q``, then
    ``key=value`` overrides; resolves ``default()`` through :func:`training.config.resolve`
    and calls ``run(cfg, out_dir, quiet=...)``. Config errors exit 2 (usage); a bad init
    checkpoint or a diverged run prints one line and exits 1."""
    import click

    from logdigit._lazycli import InputError
    from training.config import ConfigError, resolve

    @click.command(name, help=help_text)
    @click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                  help=f"YAML config (e.g. training/configs/{name.replace('-', '_')}.yaml).")
    @click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
                  help="Output folder: checkpoint.pt, config.yaml, log.jsonl.")
    @click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
    @click.argument("overrides", nargs=-1)
    def command(config_path, out_dir, quiet, overrides):
        try:
            cfg = resolve(default(), config_path, overrides)
        except ConfigError as e:
            raise click.UsageError(str(e)) from None
        try:
            path = run(cfg, out_dir, quiet=quiet)
        except (FileNotFoundError, ValueError, engine.NonFiniteLossError) as e:
            raise InputError(str(e), prog="logdigit-train") from None
        click.echo(f"wrote {path}")

    return command
