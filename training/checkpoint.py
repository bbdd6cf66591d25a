"""Self-describing checkpoints, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict of plain types and tensors::

    {"format": "logdigit-checkpoint/1",
     "kind": "finetune" | "inpaint" | "densecl",
     "model": {"name": "unet_light", "args": {...}},   # training.models.build_model(name, **args)
     "state_dict": {...},                               # model weights (encoder.*, decoder.*, head.*)
     "config": {...}, "config_sha256": "...",           # the resolved run config
     "step": int, "epoch": int, "metrics": {...},
     "optimizer": {...} | None, "scheduler": {...} | None}   # for resume only

Export and ``finetune --init`` rebuild the network from this file alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "logdigit-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, *, kind: str, model_name: str,
                    model_args: dict[str, Any], state_dict: dict[str, torch.Tensor],
                    config: dict[str, Any], config_sha256: str, step: int, epoch: int = 0,
                    metrics: dict[str, Any] | None = None, optimizer: dict | None = None,
                    scheduler: dict | None = None) -> Path:
    """Write a checkpoint atomically (temp file + rename)."""
    from logdigit.fsutil import atomic_path

    ckpt = {
        "format": FORMAT, "kind": kind,
        "model": {"name": model_name, "args": dict(model_args)},
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config": config, "config_sha256": config_sha256,
        "step": int(step), "epoch": int(epoch), "metrics": dict(metrics or {}),
        "optimizer": optimizer, "scheduler": scheduler,
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` and check its format.

    Raises
    ------
    ValueError
        when the file is not a logdigit checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        raise ValueError(f"{path}: not a readable torch checkpoint ({e.__class__.__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a logdigit checkpoint (missing format {FORMAT!r})")
    return ckpt


def average_checkpoints(paths: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write the mean of the weights of several checkpoints of one network (a "model
    soup": runs continued from a common ancestor often score better averaged than
    either alone) to ``out``, with the first one's config beside it as
    ``config.yaml``.

    Floating-point tensors are averaged; integer ones (BatchNorm's
    ``num_batches_tracked``) are taken from the first checkpoint. The result has no
    optimizer state (it cannot be resumed) and records its sources in
    ``metrics["weight_average_of"]``.

    Raises
    ------
    ValueError
        for fewer than two checkpoints, or ones of different networks or kinds.
    """
    import yaml

    from logdigit.fsutil import atomic_write_text

    if len(paths) < 2:
        raise ValueError("average needs at least two checkpoints")
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]
    for p, c in zip(paths[1:], ckpts[1:]):
        if c["model"] != first["model"] or c["kind"] != first["kind"]:
            raise ValueError(f"{p}: {c['kind']} {c['model']} differs from {paths[0]}'s "
                             f"{first['kind']} {first['model']}: only checkpoints of one "
                             "network can be averaged")
        if set(c["state_dict"]) != set(first["state_dict"]):
            raise ValueError(f"{p}: its weights are not those of {paths[0]}")
    sd = {}
    for k, v in first["state_dict"].items():
        if v.is_floating_point():
            sd[k] = (sum(c["state_dict"][k].double() for c in ckpts) / len(ckpts)).to(v.dtype)
        else:
            sd[k] = v
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, kind=first["kind"], model_name=first["model"]["name"],
                    model_args=first["model"]["args"], state_dict=sd, config=first["config"],
                    config_sha256=first["config_sha256"],
                    step=max(int(c["step"]) for c in ckpts), epoch=int(first["epoch"]),
                    metrics={"weight_average_of": [f"{p} (step {c['step']})"
                                                   for p, c in zip(paths, ckpts)]})
    atomic_write_text(out.parent / "config.yaml", yaml.safe_dump(first["config"], sort_keys=False))
    return out
