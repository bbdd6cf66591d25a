"""DenseCL pretext (Wang et al., CVPR 2021): ``logdigit-train pretrain-densecl``.

Query and momentum key encoders (the segmentation network's encoder), each with a
global projection head (avg-pool -> MLP) and a dense projection head (1x1 conv ->
ReLU -> 1x1 conv). The loss is ``(1 - w) * global InfoNCE + w * dense InfoNCE``
(:func:`training.ssl.densecl_loss`): each query location's positive is the key location
whose *backbone* feature is most similar; negatives come from two queues (global keys,
and the pooled dense keys). ``w`` is 0 during ``dense_warmup_steps``, then 0.5.
Temperature 0.2, momentum 0.999, queue length fitted to the dataset
(:func:`training.ssl.queue_size_for`) unless set.

Single process needs no shuffle-BN; under ``torchrun`` keys are gathered across
processes before they enter the queues. The checkpoint (kind ``densecl``) holds the
query encoder only (``encoder.*``), for ``finetune --init``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training import engine, ssl
from training.pretrain_engine import (PretextConfig, StepResult, batches, init_strict,
                                      pretext_command, train_steps, unlabelled_dataset)

KIND = "densecl"


@dataclass
class DenseCLConfig(PretextConfig):
    """Resolved settings of one DenseCL run (see training/configs/pretrain_densecl.yaml).

    dim / hidden: projection output and hidden widths. queue: negatives per queue
    (0 = fit the dataset).
    """

    aug: ssl.AugConfig = field(default_factory=ssl.AugConfig)
    dim: int = 128
    hidden: int = 512
    queue: int = 0
    momentum: float = 0.999
    temperature: float = 0.2
    dense_weight: float = 0.5
    dense_warmup_steps: int = 200


# ----------------------------------------------------------------------------- model


class ProjectionHeads(nn.Module):
    """Global MLP and dense 1x1-conv projections of a backbone map.

    ``forward(f [N, C, h, w])`` -> (global [N, dim], dense [N, dim, h*w], pooled dense [N, dim]).
    """

    def __init__(self, in_channels: int, hidden: int, dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, dim))
        self.dense = nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True),
                                   nn.Conv2d(hidden, dim, 1))

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.mlp(f.mean(dim=(2, 3)))
        d = self.dense(f)
        return g, d.flatten(2), d.mean(dim=(2, 3))


class DenseCL(nn.Module):
    """Query encoder + heads (trained) and their momentum copies + two key queues.

    Parameters
    ----------
    encoder : the segmentation network's encoder (returns its feature list; the deepest
        map [N, C, h, w] is used).
    channels : C, the deepest map's channels.
    queue : length K of both queues.
    """

    def __init__(self, encoder: nn.Module, channels: int, hidden: int, dim: int, queue: int):
        super().__init__()
        self.encoder = encoder
        self.heads = ProjectionHeads(channels, hidden, dim)
        self.encoder_k = copy.deepcopy(encoder)
        self.heads_k = copy.deepcopy(self.heads)
        for p in list(self.encoder_k.parameters()) + list(self.heads_k.parameters()):
            p.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue), dim=0))
        self.register_buffer("queue_dense", F.normalize(torch.randn(dim, queue), dim=0))
        self.ptr = 0
        self.ptr_dense = 0

    def trainable(self) -> nn.Module:
        """The part the optimiser updates: query encoder + heads."""
        return nn.ModuleList([self.encoder, self.heads])

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor, temperature: float,
                dense_weight: float) -> dict[str, torch.Tensor]:
        """Loss for a batch of view pairs ``im_q``, ``im_k`` [N, 1, H, W]; enqueues the keys."""
        fq = self.encoder(im_q)[-1]
        q, q_grid, _ = self.heads(fq)
        with torch.no_grad():
            fk = self.encoder_k(im_k)[-1]
            k, k_grid, k_pool = self.heads_k(fk)
        with torch.autocast(device_type=im_q.device.type, enabled=False):  # loss in fp32
            out = ssl.densecl_loss(q.float(), k.float(), self.queue.clone(), q_grid.float(),
                                   k_grid.float(), self.queue_dense.clone(), fq.flatten(2).float(),
                                   fk.flatten(2).float(), temperature, dense_weight)
        self.ptr = ssl.enqueue(self.queue, self.ptr, ssl.concat_all_gather(F.normalize(k, dim=1)))
        self.ptr_dense = ssl.enqueue(self.queue_dense, self.ptr_dense,
                                     ssl.concat_all_gather(F.normalize(k_pool, dim=1)))
        return out

    @torch.no_grad()
    def update_keys(self, momentum: float) -> None:
        """Momentum update of the key encoder and heads."""
        ssl.momentum_update(self.encoder, self.encoder_k, momentum)
        ssl.momentum_update(self.heads, self.heads_k, momentum)


# ----------------------------------------------------------------------------- engine


def densecl_step(net: DenseCL, batch: dict, cfg: DenseCLConfig, gen: torch.Generator,
                 step: int, device: torch.device) -> StepResult:
    """Two augmented views (made on ``device``) of the batch's degraded pages -> DenseCL loss."""
    v1, v2 = ssl.two_views(batch["image"].to(device), cfg.aug, gen)
    w = ssl.dense_weight_at(step, cfg.dense_weight, cfg.dense_warmup_steps)
    with engine.autocast(device, cfg.optim.amp, cfg.optim.amp_cpu):
        out = net(v1, v2, cfg.temperature, w)
    return StepResult(out["loss"], {"loss_global": float(out["loss_global"]),
                                    "loss_dense": float(out["loss_dense"]), "dense_weight": w})


# ----------------------------------------------------------------------------- main


def build_backbone(cfg: DenseCLConfig):
    """The full segmentation network (its encoder is pretrained; name/args go in the checkpoint)."""
    from training.models import build_model

    return build_model(cfg.model.name, **cfg.model.args)


def pretrain_densecl(cfg: DenseCLConfig, out_dir: str | Path, dataset=None,
                     quiet: bool = False) -> Path:
    """Run DenseCL; write ``checkpoint.pt`` (encoder only), ``config.yaml``, ``log.jsonl``
    into ``out_dir`` and return the checkpoint path.

    ``dataset`` (items with "image") defaults to the renderer's ``UnlabelledDataset``.
    """
    from training.checkpoint import save_checkpoint
    from training.config import config_sha256, save_resolved, to_dict

    out = Path(out_dir)
    dist = engine.setup_distributed(cfg.device)
    try:
        device = engine.pick_device(cfg.device, dist.local_rank)
        engine.seed_everything(cfg.seed + dist.rank)
        dataset = dataset if dataset is not None else unlabelled_dataset(cfg.data)
        batch = cfg.optim.batch_size * dist.world
        queue = cfg.queue or ssl.queue_size_for(len(dataset), batch)
        if queue % batch:
            raise ValueError(f"queue={queue} must be a multiple of the global batch ({batch}); "
                             f"set queue=0 to fit it to the dataset")
        cfg = replace(cfg, queue=queue)
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_resolved(cfg, out)
        model = build_backbone(cfg)
        if cfg.init:
            init_strict(model, cfg.init, cfg.init_parts)
        net = DenseCL(model.encoder, model.encoder_channels, cfg.hidden, cfg.dim, queue)
        net.to(device).train()
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + dist.rank)
        data = batches(dataset, cfg.optim.batch_size, cfg.seed, cfg.data.workers, dist)
        ckpt_path = out / "checkpoint.pt"
        sha = config_sha256(cfg)

        def save(step: int, last: dict, opt) -> None:
            enc = {f"encoder.{k}": v for k, v in net.encoder.state_dict().items()}
            save_checkpoint(ckpt_path, kind=KIND, model_name=model.name,
                            model_args=model.model_args, state_dict=enc, config=to_dict(cfg),
                            config_sha256=sha, step=step, metrics={**last, "queue": queue})

        train_steps(lambda b, s: densecl_step(net, b, cfg, gen, s, device), data, net.trainable(),
                    cfg.optim, dist=dist, after_step=lambda s: net.update_keys(cfg.momentum),
                    checkpoint=save, save_every=cfg.save_every, log_path=out / "log.jsonl",
                    log_every=cfg.log_every, quiet=quiet)
    finally:
        engine.cleanup_distributed(dist)
    return ckpt_path


#: ``logdigit-train pretrain-densecl``
cli = pretext_command("pretrain-densecl", DenseCLConfig, pretrain_densecl,
                      "DenseCL pretraining of the encoder. OVERRIDES are key=value (e.g. optim.steps=100).")
