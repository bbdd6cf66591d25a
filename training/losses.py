"""Segmentation losses: cross-entropy, Dice over curve classes, clDice, skeleton recall, Lovasz.

All terms take ``logits: float [N, C, H, W]`` and ``target: int64 [N, H, W]`` (class ids)
and return a scalar. :func:`build_loss` combines terms named in ``kind`` (joined by
``+``, e.g. ``"ce+dice"``, ``"ce+dice+cldice"``, ``"ce+lovasz"``) with per-term weights.
Dice, clDice and skeleton recall run over the curve classes (1..C-1) only: the
background dominates the pixels and would swamp them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["LossConfig", "build_loss", "TERMS", "soft_dice_loss", "cldice_loss",
           "skeleton_recall_loss", "lovasz_softmax_loss", "soft_skeleton"]


@dataclass
class LossConfig:
    """Loss section of a training config.

    kind : terms joined by "+", from TERMS (ce, dice, cldice, skel, lovasz).
    weights : per-term weight (default 1.0), e.g. {"cldice": 0.5}.
    class_weights : CE weight per class id (len = num_classes) or None for uniform.
    skeleton_iters : soft-skeleton iterations (~ half the thickest line width + 1).
    """

    kind: str = "ce+dice"
    weights: dict = field(default_factory=dict)
    class_weights: list[float] | None = None
    skeleton_iters: int = 3


def _one_hot(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(target.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).float()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean over curve classes of soft Dice, summed over the whole batch."""
    c = logits.shape[1]
    prob = logits.float().softmax(1)
    oh = _one_hot(target, c)
    dims = (0, 2, 3)
    inter = (prob * oh).sum(dims)
    denom = prob.sum(dims) + oh.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    return 1.0 - dice[1:].mean() if c > 1 else 1.0 - dice.mean()


def soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Min-pool with a plus-shaped 3x3 footprint (soft morphological erosion)."""
    p1 = -F.max_pool2d(-x, (3, 1), 1, (1, 0))
    p2 = -F.max_pool2d(-x, (1, 3), 1, (0, 1))
    return torch.minimum(p1, p2)


def soft_dilate(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, 1, 1)


def soft_skeleton(x: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Soft skeleton (Shit et al., clDice, CVPR 2021) of maps in [0, 1]: [N, C, H, W] -> same."""
    x1 = soft_dilate(soft_erode(x))
    skel = F.relu(x - x1)
    for _ in range(iters):
        x = soft_erode(x)
        x1 = soft_dilate(soft_erode(x))
        delta = F.relu(x - x1)
        skel = skel + F.relu(delta - skel * delta)
    return skel


def cldice_loss(logits: torch.Tensor, target: torch.Tensor, iters: int = 3,
                eps: float = 1.0) -> torch.Tensor:
    """1 - clDice over curve classes: harmonic mean of topology precision and sensitivity."""
    c = logits.shape[1]
    prob = logits.float().softmax(1)[:, 1:]
    oh = _one_hot(target, c)[:, 1:]
    sp, st = soft_skeleton(prob, iters), soft_skeleton(oh, iters)
    dims = (0, 2, 3)
    tprec = ((sp * oh).sum(dims) + eps) / (sp.sum(dims) + eps)
    tsens = ((st * prob).sum(dims) + eps) / (st.sum(dims) + eps)
    cl = 2 * tprec * tsens / (tprec + tsens)
    return 1.0 - cl.mean()


def skeleton_recall_loss(logits: torch.Tensor, target: torch.Tensor, iters: int = 3,
                         eps: float = 1.0) -> torch.Tensor:
    """1 - recall of the true skeleton (Kirchhoff et al., ECCV 2024), over curve classes.

    The skeleton of the one-hot truth is computed without gradient; only the
    probabilities on it are pushed up, which protects thin and broken (dotted) lines.
    """
    c = logits.shape[1]
    prob = logits.float().softmax(1)[:, 1:]
    with torch.no_grad():
        st = (soft_skeleton(_one_hot(target, c)[:, 1:], iters) > 0.5).float()
    dims = (0, 2, 3)
    rec = ((st * prob).sum(dims) + eps) / (st.sum(dims) + eps)
    return 1.0 - rec.mean()


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    gts = gt_sorted.sum()
    inter = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jac = 1.0 - inter / union
    if gt_sorted.numel() > 1:
        jac[1:] = jac[1:] - jac[:-1]
    return jac


def lovasz_softmax_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovasz-softmax (Berman et al., CVPR 2018) over the batch, classes present in the truth."""
    c = logits.shape[1]
    prob = logits.float().softmax(1).permute(0, 2, 3, 1).reshape(-1, c)
    lab = target.reshape(-1)
    losses = []
    for k in range(c):
        fg = (lab == k).float()
        if fg.sum() == 0:
            continue
        err = (fg - prob[:, k]).abs()
        err_sorted, perm = torch.sort(err, descending=True)
        losses.append(torch.dot(err_sorted, _lovasz_grad(fg[perm])))
    if not losses:
        return logits.sum() * 0.0
    return torch.stack(losses).mean()


#: term name -> fn(logits, target, cfg, ce_weight) -> scalar
TERMS: dict[str, Callable[..., torch.Tensor]] = {
    "ce": lambda lg, t, cfg, w: F.cross_entropy(lg.float(), t, weight=w),
    "dice": lambda lg, t, cfg, w: soft_dice_loss(lg, t),
    "cldice": lambda lg, t, cfg, w: cldice_loss(lg, t, cfg.skeleton_iters),
    "skel": lambda lg, t, cfg, w: skeleton_recall_loss(lg, t, cfg.skeleton_iters),
    "lovasz": lambda lg, t, cfg, w: lovasz_softmax_loss(lg, t),
}


def parse_kind(kind: str) -> list[str]:
    """``"ce+dice"`` -> ["ce", "dice"]; refuses unknown terms, naming the valid ones."""
    terms = [k.strip() for k in kind.split("+") if k.strip()]
    bad = [k for k in terms if k not in TERMS]
    if not terms or bad:
        raise ValueError(f"loss.kind {kind!r}: unknown term(s) {bad}; combine with '+' from "
                         f"{', '.join(TERMS)} (e.g. ce+dice)")
    return terms


def build_loss(cfg: LossConfig, num_classes: int) -> Callable[[torch.Tensor, torch.Tensor],
                                                                tuple[torch.Tensor, dict]]:
    """Return ``loss_fn(logits, target) -> (total, {term: detached scalar tensor})``.

    Raises
    ------
    ValueError
        on an unknown term or weight key, or class_weights of the wrong length.
    """
    terms = parse_kind(cfg.kind)
    bad_w = [k for k in cfg.weights if k not in terms]
    if bad_w:
        raise ValueError(f"loss.weights has {bad_w} which are not in loss.kind {cfg.kind!r}")
    weights = {k: float(cfg.weights.get(k, 1.0)) for k in terms}
    cw: Sequence[float] | None = cfg.class_weights
    if cw is not None and len(cw) != num_classes:
        raise ValueError(f"loss.class_weights has {len(cw)} entries, the model has {num_classes} classes")

    def loss_fn(logits: torch.Tensor, target: torch.Tensor):
        w = torch.tensor(cw, dtype=torch.float32, device=logits.device) if cw is not None else None
        parts = {k: TERMS[k](logits, target, cfg, w) for k in terms}
        total = sum(weights[k] * v for k, v in parts.items())
        return total, {k: v.detach() for k, v in parts.items()}

    return loss_fn
