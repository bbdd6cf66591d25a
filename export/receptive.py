"""Receptive field of a segmentation network, and the tile / halo it implies.

The receptive field is measured, not read off a table: on a copy of the network
whose convolutions have positive weights and biases, whose norms are the identity
and whose max-pools are average pools, every theoretical path from an input pixel to
an output pixel carries a non-zero gradient. The support of the gradient of one
output pixel (in the middle of a large input) is then the theoretical receptive
field. Random positive inputs, several of them, cover ops we cannot swap (functional
max-pools).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output pixel, in input pixels.

    ``up``/``down``/``left``/``right``: how far it reaches from the pixel (0 for a 1x1
    conv); ``size`` = the larger of ``up+down+1`` and ``left+right+1``.
    """

    up: int
    down: int
    left: int
    right: int

    @property
    def size(self) -> int:
        return max(self.up + self.down + 1, self.left + self.right + 1)

    @property
    def reach(self) -> int:
        """The farthest input pixel any output pixel depends on (half the field)."""
        return max(self.up, self.down, self.left, self.right)


def _positive_copy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad():
        for name, mod in list(m.named_modules()):
            if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                mod.weight.copy_(mod.weight.abs() + 1e-3)
                if mod.bias is not None:
                    mod.bias.fill_(1e-2)
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
                if mod.affine:
                    mod.weight.fill_(1.0)
                    mod.bias.fill_(1e-2)
                if mod.running_mean is not None:
                    mod.running_mean.zero_()
                    mod.running_var.fill_(1.0)
            elif isinstance(mod, (nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)):
                if getattr(mod, "weight", None) is not None:
                    mod.weight.fill_(1.0)
                    mod.bias.fill_(1.0)
        for name, mod in list(m.named_modules()):
            for cname, child in list(mod.named_children()):
                if isinstance(child, nn.MaxPool2d):
                    setattr(mod, cname, nn.AvgPool2d(child.kernel_size, child.stride,
                                                     child.padding, ceil_mode=child.ceil_mode))
    return m


def receptive_field(model: nn.Module, *, start: int = 128, limit: int = 2048,
                    trials: int = 3, seed: int = 0) -> ReceptiveField:
    """Measure the theoretical receptive field of ``model`` (input N x 1 x H x W).

    The input edge starts at ``start`` (rounded to the stride) and doubles while the
    field touches the border, up to ``limit``.

    Raises
    ------
    ValueError
        when the field still touches the border at ``limit`` (global context).
    """
    from .onnx_export import model_stride

    stride = model_stride(model)
    m = _positive_copy(model)
    gen = torch.Generator().manual_seed(seed)
    size = -(-max(start, 4 * stride) // stride) * stride
    while True:
        c = (size // stride // 2) * stride  # centre pixel, on the stride grid
        support = torch.zeros(size, size, dtype=torch.bool)
        for _ in range(trials):
            x = (torch.rand(1, 1, size, size, generator=gen) * 0.5 + 0.5).requires_grad_(True)
            y = m(x)
            y[0, :, c, c].sum().backward()
            support |= x.grad[0, 0].abs() > 0
        rows = torch.nonzero(support.any(1)).flatten()
        cols = torch.nonzero(support.any(0)).flatten()
        if len(rows) == 0:
            raise ValueError("the output does not depend on the input (no gradient)")
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        if r0 > 0 and c0 > 0 and r1 < size - 1 and c1 < size - 1:
            return ReceptiveField(up=c - r0, down=r1 - c, left=c - c0, right=c1 - c)
        if size * 2 > limit:
            raise ValueError(f"receptive field exceeds {limit} px; the network sees the "
                             "whole tile, tiling with a halo cannot be exact")
        size *= 2


def recommend_halo(rf: ReceptiveField, stride: int) -> int:
    """Halo (px each side) >= half the receptive field, rounded up to the stride."""
    need = max(rf.reach, math.ceil(rf.size / 2))
    return -(-need // stride) * stride


def recommend_tile(halo: int, stride: int, *, min_tile: int = 512,
                   halo_ratio: float = 4.0) -> int:
    """Tile core edge (px, without the halo): at least ``min_tile`` and at least
    ``halo_ratio`` x halo, so the halo costs at most (1 + 2/ratio)^2 of the compute;
    a multiple of ``stride``."""
    edge = max(min_tile, math.ceil(halo_ratio * halo))
    return -(-edge // stride) * stride
