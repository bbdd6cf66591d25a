"""Self-supervised pretext parts as pure functions: inpainting masks and loss, DenseCL
matching and losses, and line-drawing augmentations.

Nothing here holds state: the pretraining commands (:mod:`training.pretrain_inpaint`,
:mod:`training.pretrain_densecl`) wire these into models and loops, and the unit tests
call them on tensors whose answer is known by construction.

Conventions: images are float32 ``pixel/255`` (paper near 1, ink near 0), shapes are
written ``[N, C, H, W]``; numpy masks are ``bool [H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

# ============================================================================ inpainting


@dataclass
class MaskConfig:
    """How much of a page the inpainting pretext hides.

    Attributes
    ----------
    curve_fraction : (lo, hi) share of each curve's arc length hidden, drawn per curve.
    segment_px : (lo, hi) arc length in px of one hidden stretch.
    bridge_px : gaps up to ~2x this (dashes, dots) are walked across as one line.
    dilate_px : hidden stretches are widened by this many px on each side, so no
        anti-aliased edge of a hidden line stays visible.
    block_px : edge of the random square blocks hidden over the whole page.
    block_fraction : share of the page area covered by blocks (approximate; blocks may overlap).
    """

    curve_fraction: tuple[float, float] = (0.3, 0.7)
    segment_px: tuple[int, int] = (8, 32)
    bridge_px: int = 4
    dilate_px: int = 2
    block_px: int = 32
    block_fraction: float = 0.15


def grow_along(support: np.ndarray, seed: tuple[int, int], steps: int) -> np.ndarray:
    """Pixels of ``support`` reachable from ``seed`` in at most ``steps`` 8-connected moves
    inside ``support`` (a geodesic ball: a stretch of curve of arc length ~``2 * steps``).

    Parameters
    ----------
    support : bool [H, W] where the walk may go (a curve, widened to bridge dash gaps).
    seed : (row, col) inside ``support``.

    Returns
    -------
    bool [H, W].
    """
    h, w = support.shape
    r, c = seed
    r0, r1 = max(0, r - steps), min(h, r + steps + 1)
    c0, c1 = max(0, c - steps), min(w, c + steps + 1)
    sup = support[r0:r1, c0:c1].astype(np.uint8)
    cur = np.zeros_like(sup)
    cur[r - r0, c - c0] = 1
    k = np.ones((3, 3), np.uint8)
    for _ in range(steps):
        nxt = cv2.dilate(cur, k) & sup
        if np.array_equal(nxt, cur):
            break
        cur = nxt
    out = np.zeros((h, w), bool)
    out[r0:r1, c0:c1] = cur.astype(bool)
    return out


def hide_stretches(pixels: np.ndarray, fraction: float, cfg: MaskConfig,
                   rng: np.random.Generator, max_segments: int = 1000) -> np.ndarray:
    """Hide stretches along one curve until ``fraction`` of its pixels (its arc length,
    for a line of even width) is hidden.

    Each stretch is a geodesic ball (:func:`grow_along`) of arc length drawn from
    ``cfg.segment_px`` around a random not-yet-hidden curve pixel, walking on the curve
    widened by ``cfg.bridge_px`` so dashes and dots count as one line. Works for any
    orientation (wraps and horizontal excursions included).

    Parameters
    ----------
    pixels : bool [H, W] the curve's pixels.

    Returns
    -------
    bool [H, W] hidden curve pixels (a subset of ``pixels``); their share of ``pixels`` is
    >= ``fraction`` and exceeds it by at most one stretch.
    """
    hidden = np.zeros_like(pixels, dtype=bool)
    n = int(pixels.sum())
    if n == 0 or fraction <= 0:
        return hidden
    support = dilate(pixels, cfg.bridge_px)
    lo, hi = cfg.segment_px
    for _ in range(max_segments):
        if hidden.sum() >= fraction * n:
            break
        rows, cols = np.nonzero(pixels & ~hidden)
        pick = int(rng.integers(rows.size))
        steps = max(1, int(round(rng.uniform(lo, hi) / 2)))
        hidden |= grow_along(support, (int(rows[pick]), int(cols[pick])), steps) & pixels
    return hidden


def curve_segment_mask(instance: np.ndarray, cfg: MaskConfig, rng: np.random.Generator
                       ) -> tuple[np.ndarray, dict[int, float]]:
    """Hide stretches of every curve instance.

    Parameters
    ----------
    instance : int [H, W] curve instance ids, 0 = no curve.

    Returns
    -------
    mask : bool [H, W], the hidden curve pixels widened by ``cfg.dilate_px``.
    fractions : instance id -> hidden share of its pixels (before widening), each drawn
        in ``cfg.curve_fraction``.
    """
    core = np.zeros(instance.shape, bool)
    fractions: dict[int, float] = {}
    ids = np.unique(instance)
    for cid in ids[ids > 0]:
        pix = instance == cid
        hid = hide_stretches(pix, rng.uniform(*cfg.curve_fraction), cfg, rng)
        fractions[int(cid)] = float(hid.sum() / pix.sum())
        core |= hid
    return dilate(core, cfg.dilate_px), fractions


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """bool [H, W] widened by ``px`` pixels (square structuring element)."""
    if px <= 0 or not mask.any():
        return mask.copy()
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def block_mask(shape: tuple[int, int], cfg: MaskConfig, rng: np.random.Generator) -> np.ndarray:
    """Random ``block_px`` squares over the page (grid, text and curves alike): bool [H, W]."""
    h, w = shape
    mask = np.zeros((h, w), bool)
    b = int(cfg.block_px)
    if b <= 0 or cfg.block_fraction <= 0:
        return mask
    count = max(1, int(round(cfg.block_fraction * h * w / (b * b))))
    ys = rng.integers(0, max(1, h - b + 1), count)
    xs = rng.integers(0, max(1, w - b + 1), count)
    for y, x in zip(ys, xs):
        mask[y:y + b, x:x + b] = True
    return mask


def inpaint_mask(instance: np.ndarray, cfg: MaskConfig, rng: np.random.Generator) -> np.ndarray:
    """The full hidden region of one page: curve stretches | blocks, bool [H, W]."""
    curves, _ = curve_segment_mask(instance, cfg, rng)
    return curves | block_mask(instance.shape, cfg, rng)


def apply_mask(image: torch.Tensor, hidden: torch.Tensor, fill: torch.Tensor | float | None = None
               ) -> torch.Tensor:
    """Blank the hidden pixels of a batch.

    Parameters
    ----------
    image : float [N, 1, H, W].
    hidden : bool [N, 1, H, W].
    fill : value per image [N] (or scalar) written into hidden pixels; default the
        median of each image (its paper level), so a hidden stretch looks like a gap.
    """
    if fill is None:
        fill = image.flatten(1).median(dim=1).values
    fill = torch.as_tensor(fill, dtype=image.dtype, device=image.device)
    if fill.ndim == 1:
        fill = fill.view(-1, 1, 1, 1)
    return torch.where(hidden, fill.expand_as(image), image)


def inpaint_loss(pred: torch.Tensor, clean: torch.Tensor, hidden: torch.Tensor,
                 curve: torch.Tensor, curve_weight: float = 20.0) -> torch.Tensor:
    """L1 reconstruction loss over the hidden region only, curve pixels weighted up.

    Parameters
    ----------
    pred : float [N, 1, H, W] predicted clean intensity in [0, 1] (sigmoid of the head).
    clean : float [N, 1, H, W] the renderer's page before degradation.
    hidden : bool [N, 1, H, W] what was hidden; all other pixels have weight 0.
    curve : bool [N, 1, H, W] curve pixels (instance id > 0); weight ``curve_weight``,
        other hidden pixels weight 1 (paper is ~97 % of a page and would dominate).

    Returns
    -------
    Scalar: weighted mean absolute error; 0 (with a graph) when nothing is hidden.
    """
    w = hidden.to(pred.dtype) * (1.0 + (curve_weight - 1.0) * curve.to(pred.dtype))
    return (w * (pred - clean).abs()).sum() / w.sum().clamp_min(1.0)


# ============================================================================ DenseCL


def info_nce(l_pos: torch.Tensor, l_neg: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with the positive in column 0.

    Parameters
    ----------
    l_pos : [M, 1] cosine similarity to the positive; l_neg : [M, K] to the negatives.
    """
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)


def dense_match(q_feat: torch.Tensor, k_feat: torch.Tensor) -> torch.Tensor:
    """For each query location the key location of most similar backbone feature.

    Parameters
    ----------
    q_feat, k_feat : [N, C, S] backbone features of the two views (S = h*w locations).

    Returns
    -------
    long [N, S]: ``argmax_j cos(q_feat[:, :, i], k_feat[:, :, j])``.
    """
    q = F.normalize(q_feat, dim=1)
    k = F.normalize(k_feat, dim=1)
    sim = torch.bmm(q.transpose(1, 2), k)  # [N, S_q, S_k]
    return sim.argmax(dim=2)


def densecl_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                 q_grid: torch.Tensor, k_grid: torch.Tensor, queue_dense: torch.Tensor,
                 q_backbone: torch.Tensor, k_backbone: torch.Tensor,
                 temperature: float = 0.2, dense_weight: float = 0.5) -> dict[str, torch.Tensor]:
    """DenseCL loss (Wang et al., CVPR 2021): ``(1 - w) * global + w * dense`` InfoNCE.

    Parameters
    ----------
    q, k : [N, D] global projections of the query / key view (normalised here).
    queue : [D, K] normalised negatives for the global term.
    q_grid, k_grid : [N, D, S] dense (1x1 conv) projections of the two views.
    queue_dense : [D, K2] normalised negatives for the dense term.
    q_backbone, k_backbone : [N, C, S] backbone features, used only to pick each query
        location's positive (:func:`dense_match`).
    temperature : InfoNCE temperature (0.2 in the paper).
    dense_weight : weight of the dense term (0.5; 0 during warm-up).

    Returns
    -------
    dict with ``loss``, ``loss_global``, ``loss_dense`` (scalars) and ``match`` (long [N, S]).
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    q_grid = F.normalize(q_grid, dim=1)
    k_grid = F.normalize(k_grid, dim=1)
    l_pos = (q * k).sum(1, keepdim=True)
    l_neg = q @ queue
    loss_global = info_nce(l_pos, l_neg, temperature)

    match = dense_match(q_backbone.detach(), k_backbone.detach())
    k_sel = torch.gather(k_grid, 2, match.unsqueeze(1).expand(-1, k_grid.shape[1], -1))
    l_pos_d = (q_grid * k_sel).sum(1).reshape(-1, 1)           # [N*S, 1]
    q_flat = q_grid.transpose(1, 2).reshape(-1, q_grid.shape[1])  # [N*S, D]
    l_neg_d = q_flat @ queue_dense
    loss_dense = info_nce(l_pos_d, l_neg_d, temperature)
    loss = (1.0 - dense_weight) * loss_global + dense_weight * loss_dense
    return {"loss": loss, "loss_global": loss_global.detach(), "loss_dense": loss_dense.detach(),
            "match": match}


def dense_weight_at(step: int, weight: float, warmup_steps: int) -> float:
    """Dense-term weight schedule: 0 for the first ``warmup_steps`` steps, then ``weight``."""
    return 0.0 if step < warmup_steps else float(weight)


def queue_size_for(dataset_size: int, batch_size: int, cap: int = 65536,
                   share: float = 0.25) -> int:
    """Negatives queue length that fits the dataset.

    A queue longer than the dataset holds stale keys of the very image being
    contrasted; keep it to ``share`` of the images, a multiple of the global batch,
    at least one batch and at most ``cap``. 2,000 images -> 480, 15,000 -> 3,744 (batch 32).
    """
    k = int(min(cap, share * dataset_size))
    k = max(batch_size, k - k % batch_size)
    return k


@torch.no_grad()
def concat_all_gather(t: torch.Tensor) -> torch.Tensor:
    """Keys of every process concatenated along dim 0 (no gradient); ``t`` alone when not
    under torch.distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def enqueue(queue: torch.Tensor, ptr: int, keys: torch.Tensor) -> int:
    """Write ``keys`` [B, D] into ``queue`` [D, K] at ``ptr`` (wrapping); return the new pointer."""
    kk = queue.shape[1]
    b = keys.shape[0]
    idx = (torch.arange(b, device=queue.device) + ptr) % kk
    queue[:, idx] = keys.T.to(queue.dtype)
    return int((ptr + b) % kk)


@torch.no_grad()
def momentum_update(online: torch.nn.Module, target: torch.nn.Module, momentum: float) -> None:
    """``target = m * target + (1 - m) * online`` for parameters; buffers (BN stats) copied."""
    for p_o, p_t in zip(online.parameters(), target.parameters()):
        p_t.mul_(momentum).add_(p_o.detach(), alpha=1.0 - momentum)
    for b_o, b_t in zip(online.buffers(), target.buffers()):
        b_t.copy_(b_o)


# ============================================================================ augmentations


@dataclass
class AugConfig:
    """Augmentations for line drawings: structure-keeping crops, mild blur, contrast and
    binarisation changes. Grey only: no hue, no colour.

    Attributes
    ----------
    crop_scale : (lo, hi) share of the image area kept by the crop (>= 0.5 keeps most lines).
    crop_ratio : (lo, hi) aspect ratio of the crop.
    blur_p, blur_sigma : probability and (lo, hi) sigma in px of a Gaussian blur.
    contrast, brightness : (lo, hi) factor around the image mean / additive shift.
    gamma : (lo, hi) exponent applied to the intensity.
    binarise_p, binarise_threshold : probability and (lo, hi) threshold of a hard
        black/white conversion (as a 1-bit scan would be).
    """

    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.333)
    blur_p: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    contrast: tuple[float, float] = (0.6, 1.4)
    brightness: tuple[float, float] = (-0.1, 0.1)
    gamma: tuple[float, float] = (0.7, 1.4)
    binarise_p: float = 0.2
    binarise_threshold: tuple[float, float] = (0.35, 0.75)


def _uniform(n: int, lohi: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    lo, hi = lohi
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def random_crop_boxes(n: int, scale: tuple[float, float], ratio: tuple[float, float],
                      gen: torch.Generator) -> torch.Tensor:
    """Random crop boxes in normalised coordinates: float [n, 4] = (cx, cy, w, h), all in
    (0, 1] of the image size, box inside the image."""
    area = _uniform(n, scale, gen)
    log_r = _uniform(n, (float(np.log(ratio[0])), float(np.log(ratio[1]))), gen)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = w / 2 + (1 - w) * torch.rand(n, generator=gen)
    cy = h / 2 + (1 - h) * torch.rand(n, generator=gen)
    return torch.stack([cx, cy, w, h], dim=1)


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int] | None = None
                ) -> torch.Tensor:
    """Crop ``boxes`` (from :func:`random_crop_boxes`) out of ``x`` [N, C, H, W] and resize
    to ``size`` (default H, W) with bilinear sampling."""
    n, c, h, w = x.shape
    size = size or (h, w)
    cx, cy, bw, bh = boxes.to(x).unbind(1)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = bw
    theta[:, 1, 1] = bh
    theta[:, 0, 2] = 2 * cx - 1
    theta[:, 1, 2] = 2 * cy - 1
    grid = F.affine_grid(theta, [n, c, *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of ``x`` [N, 1, H, W] with its own ``sigma`` [N] (px; 0 = unchanged)."""
    n = x.shape[0]
    radius = max(1, int(np.ceil(3 * float(sigma.max())))) if n else 1
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.to(x).clamp_min(1e-3).view(n, 1)
    k1 = torch.exp(-0.5 * (t.view(1, -1) / s) ** 2)
    k1 = k1 / k1.sum(1, keepdim=True)                        # [N, K]
    xr = x.transpose(0, 1)                                   # [1, N, H, W]: one group per image
    xr = F.conv2d(F.pad(xr, (radius, radius, 0, 0), mode="replicate"),
                  k1.view(n, 1, 1, -1), groups=n)
    xr = F.conv2d(F.pad(xr, (0, 0, radius, radius), mode="replicate"),
                  k1.view(n, 1, -1, 1), groups=n)
    out = xr.transpose(0, 1)
    keep = (sigma <= 0).view(n, 1, 1, 1).to(x.device)
    return torch.where(keep, x, out)


def photometric(x: torch.Tensor, cfg: AugConfig, gen: torch.Generator) -> torch.Tensor:
    """Blur, contrast/brightness/gamma and occasional binarisation of ``x`` [N, 1, H, W],
    each drawn per image; output clipped to [0, 1]."""
    n = x.shape[0]
    dev = x.device
    sig = _uniform(n, cfg.blur_sigma, gen) * (torch.rand(n, generator=gen) < cfg.blur_p)
    if bool((sig > 0).any()):
        x = gaussian_blur(x, sig)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    c = _uniform(n, cfg.contrast, gen).view(n, 1, 1, 1).to(dev)
    b = _uniform(n, cfg.brightness, gen).view(n, 1, 1, 1).to(dev)
    x = ((x - mean) * c + mean + b).clamp(0, 1)
    g = _uniform(n, cfg.gamma, gen).view(n, 1, 1, 1).to(dev)
    x = x.clamp_min(1e-6) ** g
    binar = (torch.rand(n, generator=gen) < cfg.binarise_p).view(n, 1, 1, 1).to(dev)
    thr = _uniform(n, cfg.binarise_threshold, gen).view(n, 1, 1, 1).to(dev)
    x = torch.where(binar, (x > thr).to(x.dtype), x)
    return x.clamp(0, 1)


def two_views(x: torch.Tensor, cfg: AugConfig, gen: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently cropped and photometrically changed views of ``x`` [N, 1, H, W]."""
    n = x.shape[0]
    views = []
    for _ in range(2):
        boxes = random_crop_boxes(n, cfg.crop_scale, cfg.crop_ratio, gen)
        views.append(photometric(crop_resize(x, boxes), cfg, gen))
    return views[0], views[1]
