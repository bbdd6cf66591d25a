"""Curve-inpainting pretext: ``logdigit-train pretrain-inpaint``.

Stretches of every curve (30-70 % of its arc length) and random 32-px blocks (grid and
text included) are blanked in the degraded page; the full encoder-decoder, with a
1-channel head (``build_model(name, num_classes=1)``), restores the renderer's clean page
there. The loss is an L1 over the hidden region only, curve pixels weighted up
(:func:`training.ssl.inpaint_loss`). The checkpoint (kind ``inpaint``) holds
``encoder.``, ``decoder.`` and ``head.`` weights; fine-tuning loads encoder + decoder.

Layout (MAE style): config + model here, masks and loss in :mod:`training.ssl`, the
step loop in :mod:`training.pretrain_engine`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from training import engine, ssl
from training.pretrain_engine import (PretextConfig, StepResult, batches, init_strict,
                                      pretext_command, train_steps, unlabelled_dataset)

KIND = "inpaint"


@dataclass
class InpaintConfig(PretextConfig):
    """Resolved settings of one inpainting run (see training/configs/pretrain_inpaint.yaml).

    curve_weight: loss weight of hidden curve pixels relative to hidden paper/grid/text.
    """

    mask: ssl.MaskConfig = field(default_factory=ssl.MaskConfig)
    curve_weight: float = 20.0


# ----------------------------------------------------------------------------- model


def build_inpaint_model(cfg: InpaintConfig):
    """The segmentation network with a 1-channel reconstruction head."""
    from training.models import build_model

    return build_model(cfg.model.name, **{**cfg.model.args, "num_classes": 1})


# ----------------------------------------------------------------------------- engine


class MaskedPages(torch.utils.data.Dataset):
    """Wrap unlabelled pages with their hidden region, drawn in the loader's workers.

    Item = the page's item plus ``hidden``: bool [1, S, S]. The mask of page ``i`` in
    epoch ``e`` comes from ``rng(seed, i, e)``: deterministic, new every epoch
    (:func:`training.pretrain_engine.batches` calls :meth:`set_epoch`).
    """

    def __init__(self, pages, cfg: ssl.MaskConfig, seed: int = 0):
        self.pages, self.cfg, self.seed, self.epoch = pages, cfg, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pages)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.pages[i])
        rng = np.random.default_rng([self.seed, int(i), self.epoch])
        hidden = ssl.inpaint_mask(item["instance"].numpy(), self.cfg, rng)
        item["hidden"] = torch.from_numpy(hidden)[None]
        return item


def inpaint_step(model, batch: dict, cfg: InpaintConfig, device: torch.device) -> StepResult:
    """One forward pass on a :class:`MaskedPages` batch: blank the hidden region, restore
    the clean page, L1 over the hidden region (curve pixels weighted up)."""
    hidden = batch["hidden"].to(device)
    curve = (batch["instance"] > 0).unsqueeze(1).to(device)
    masked = ssl.apply_mask(batch["image"].to(device), hidden)
    clean = batch["clean"].to(device)
    with engine.autocast(device, cfg.optim.amp, cfg.optim.amp_cpu):
        logits = model(masked)
    pred = torch.sigmoid(logits.float())
    loss = ssl.inpaint_loss(pred, clean, hidden, curve, cfg.curve_weight)
    with torch.no_grad():
        hc = hidden & curve
        curve_mae = ((pred - clean).abs()[hc].mean() if bool(hc.any())
                     else torch.zeros((), device=device))
    return StepResult(loss, {"hidden_curve_mae": float(curve_mae),
                             "hidden_share": float(hidden.float().mean())})


# ----------------------------------------------------------------------------- main


def pretrain_inpaint(cfg: InpaintConfig, out_dir: str | Path, dataset=None,
                     quiet: bool = False) -> Path:
    """Run the inpainting pretext; write ``checkpoint.pt``, ``config.yaml``, ``log.jsonl``
    into ``out_dir`` and return the checkpoint path.

    ``dataset`` (items {"image", "clean", "instance"}) defaults to the renderer's
    ``UnlabelledDataset`` for ``cfg.data``.
    """
    from training.checkpoint import save_checkpoint
    from training.config import config_sha256, save_resolved, to_dict

    out = Path(out_dir)
    dist = engine.setup_distributed(cfg.device)
    try:
        device = engine.pick_device(cfg.device, dist.local_rank)
        engine.seed_everything(cfg.seed + dist.rank)
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_resolved(cfg, out)
        dataset = dataset if dataset is not None else unlabelled_dataset(cfg.data)
        model = build_inpaint_model(cfg)
        if cfg.init:
            init_strict(model, cfg.init, cfg.init_parts)
        model.to(device).train()
        masked = MaskedPages(dataset, cfg.mask, cfg.seed)
        data = batches(masked, cfg.optim.batch_size, cfg.seed, cfg.data.workers, dist)
        ckpt_path = out / "checkpoint.pt"
        sha = config_sha256(cfg)

        def save(step: int, last: dict, opt) -> None:
            save_checkpoint(ckpt_path, kind=KIND, model_name=model.name,
                            model_args=model.model_args, state_dict=model.state_dict(),
                            config=to_dict(cfg), config_sha256=sha, step=step, metrics=last,
                            optimizer=opt.state_dict())

        train_steps(lambda b, s: inpaint_step(model, b, cfg, device), data, model, cfg.optim,
                    dist=dist, checkpoint=save, save_every=cfg.save_every,
                    log_path=out / "log.jsonl", log_every=cfg.log_every, quiet=quiet)
    finally:
        engine.cleanup_distributed(dist)
    return ckpt_path


#: ``logdigit-train pretrain-inpaint``
cli = pretext_command("pretrain-inpaint", InpaintConfig, pretrain_inpaint,
                      "Curve-inpainting pretraining. OVERRIDES are key=value (e.g. optim.steps=100).")
