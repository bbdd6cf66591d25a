"""Segmentation networks: a U-Net family with full-resolution output.

Curves are 1-3 px wide, so every model predicts at the input resolution (no H/4
heads) and keeps a full-resolution skip connection. Models come from a small
registry::

    from training.models import build_model, list_models
    m = build_model("unet_light", num_classes=5)
    logits = m(x)            # x: float32 [N, 1, H, W] (pixel/255) -> [N, C, H, W]
    feats = m.encode(x)      # deepest encoder map [N, m.encoder_channels, H/s, W/s]

Every model exposes ``name``, ``num_classes``, ``stride`` (H and W should divide
by it), ``model_args`` (``build_model(m.name, **m.model_args)`` rebuilds it) and
``encoder_channels``. Weights live under three prefixes: ``encoder.``,
``decoder.`` and ``head.`` (the final 1x1 classifier), so pretext checkpoints
(DenseCL: encoder; inpainting: encoder + decoder, with a 1-channel head from
``build_model(name, num_classes=1)``) load into fine-tuning part by part.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from logdigit.constants import NUM_CLASSES

__all__ = ["MODELS", "build_model", "list_models", "SegmentationModel", "UNetDecoder",
           "LightEncoder", "ResNetEncoder", "count_parameters"]


# ----------------------------------------------------------------------------- blocks

def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """3x3 (or k x k) conv -> BatchNorm -> ReLU; padding keeps the size (stride 1)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DoubleConv(nn.Sequential):
    """Two conv-BN-ReLU layers: [N, cin, H, W] -> [N, cout, H, W]."""

    def __init__(self, cin: int, cout: int):
        super().__init__(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


# ----------------------------------------------------------------------------- encoders

class LightEncoder(nn.Module):
    """Plain U-Net encoder: ``depth`` stages, stage i at H/2^i with ``widths[i]`` channels.

    ``forward(x)`` returns the list of stage outputs, shallow (full resolution) to deep.
    """

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        self.widths = list(widths)
        self.stages = nn.ModuleList()
        cin = in_channels
        for i, w in enumerate(self.widths):
            layers: list[nn.Module] = [] if i == 0 else [nn.MaxPool2d(2)]
            layers.append(DoubleConv(cin, w))
            self.stages.append(nn.Sequential(*layers))
            cin = w
        self.channels = list(self.widths)
        self.stride = 2 ** (len(self.widths) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class ResNetEncoder(nn.Module):
    """torchvision ResNet-18/34 adapted to ``in_channels`` inputs (random init, nothing downloaded).

    A full-resolution DoubleConv stem (``stem_width`` channels) is added in front so
    that 1-px curves reach the decoder undiluted. Feature list (shallow to deep):
    stem H, conv1 H/2, layer1 H/4, layer2 H/8, layer3 H/16, layer4 H/32.
    """

    def __init__(self, arch: str, in_channels: int, stem_width: int):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None)
        self.full = DoubleConv(in_channels, stem_width)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1 = net.bn1
        self.relu = net.relu
        self.maxpool = net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = [stem_width, 64, 64, 128, 256, 512]
        self.stride = 32

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.full(x)
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        f5 = self.layer4(f4)
        return [f0, f1, f2, f3, f4, f5]


# ----------------------------------------------------------------------------- decoder

class UNetDecoder(nn.Module):
    """U-Net decoder: upsample (bilinear, to the skip's exact size), concat skip, DoubleConv.

    Parameters
    ----------
    encoder_channels : channels of the encoder features, shallow to deep.
    widths : output channels of each decoder block, deep to shallow
        (``len(encoder_channels) - 1`` entries); the last one feeds the head.
    """

    def __init__(self, encoder_channels: Sequence[int], widths: Sequence[int]):
        super().__init__()
        enc = list(encoder_channels)
        if len(widths) != len(enc) - 1:
            raise ValueError(f"decoder needs {len(enc) - 1} widths, got {len(widths)}")
        self.blocks = nn.ModuleList()
        cin = enc[-1]
        for skip_c, w in zip(reversed(enc[:-1]), widths):
            self.blocks.append(DoubleConv(cin + skip_c, w))
            cin = w
        self.out_channels = cin

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x


# ----------------------------------------------------------------------------- model

class SegmentationModel(nn.Module):
    """Encoder + U-Net decoder + 1x1 head: [N, in_channels, H, W] -> logits [N, num_classes, H, W]."""

    def __init__(self, name: str, model_args: dict[str, Any], encoder: nn.Module,
                 decoder_widths: Sequence[int], num_classes: int):
        super().__init__()
        self.name = name
        self.model_args = dict(model_args)
        self.num_classes = int(num_classes)
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder.channels, decoder_widths)
        self.head = nn.Conv2d(self.decoder.out_channels, self.num_classes, kernel_size=1)
        self.stride = int(encoder.stride)
        self.encoder_channels = int(encoder.channels[-1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest encoder feature map [N, encoder_channels, H/stride, W/stride] (DenseCL)."""
        return self.encoder(x)[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output before the head: [N, decoder.out_channels, H, W]."""
        return self.decoder(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _widths(base_width: int, depth: int, max_width: int) -> list[int]:
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    if base_width < 1:
        raise ValueError(f"base_width must be >= 1, got {base_width}")
    return [min(base_width * 2 ** i, max_width) for i in range(depth)]


def unet_light(num_classes: int = NUM_CLASSES, in_channels: int = 1, base_width: int = 16,
               depth: int = 4, max_width: int = 256) -> SegmentationModel:
    """Light U-Net for CPU inference: widths base*2^i (capped), ``depth`` levels, stride 2^(depth-1).

    Defaults: widths 16-32-64-128, stride 8, about 0.5 M parameters.
    """
    args = dict(num_classes=num_classes, in_channels=in_channels, base_width=base_width,
                depth=depth, max_width=max_width)
    widths = _widths(base_width, depth, max_width)
    enc = LightEncoder(in_channels, widths)
    return SegmentationModel("unet_light", args, enc, list(reversed(widths[:-1])), num_classes)


def _unet_resnet(arch: str, name: str, num_classes: int, in_channels: int, stem_width: int,
                 decoder_widths: Sequence[int] | None) -> SegmentationModel:
    dec = list(decoder_widths) if decoder_widths is not None else [256, 128, 64, 32, stem_width]
    args = dict(num_classes=num_classes, in_channels=in_channels, stem_width=stem_width,
                decoder_widths=dec)
    enc = ResNetEncoder(arch, in_channels, stem_width)
    return SegmentationModel(name, args, enc, dec, num_classes)


def unet_resnet18(num_classes: int = NUM_CLASSES, in_channels: int = 1, stem_width: int = 32,
                  decoder_widths: Sequence[int] | None = None) -> SegmentationModel:
    """U-Net on a ResNet-18 encoder (1-channel conv1, full-res stem), stride 32."""
    return _unet_resnet("resnet18", "unet_resnet18", num_classes, in_channels, stem_width, decoder_widths)


def unet_resnet34(num_classes: int = NUM_CLASSES, in_channels: int = 1, stem_width: int = 32,
                  decoder_widths: Sequence[int] | None = None) -> SegmentationModel:
    """U-Net on a ResNet-34 encoder (1-channel conv1, full-res stem), stride 32."""
    return _unet_resnet("resnet34", "unet_resnet34", num_classes, in_channels, stem_width, decoder_widths)


#: registry: name -> constructor(**model_args)
MODELS: dict[str, Callable[..., SegmentationModel]] = {
    "unet_light": unet_light,
    "unet_resnet18": unet_resnet18,
    "unet_resnet34": unet_resnet34,
}


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def build_model(name: str, **model_args: Any) -> SegmentationModel:
    """Build a registered model; ``build_model(m.name, **m.model_args)`` rebuilds ``m``.

    Raises
    ------
    ValueError
        for an unknown name (listing the registered ones) or unknown options.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(list_models())}")
    try:
        return MODELS[name](**model_args)
    except TypeError as e:
        import inspect

        opts = ", ".join(p for p in inspect.signature(MODELS[name]).parameters)
        raise ValueError(f"bad options for model {name!r} ({e}); valid options: {opts}") from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
