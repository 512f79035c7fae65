"""The shape every network shares: ``backbone`` (image -> pooled features) + ``head``.

Freeze plans, weight loading and dual models rely only on this shape, so every family (scratch
CNNs, torchvision backbones, dual) plugs in the same way.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Backbone(nn.Module):
    """Feature extractor ending in global pooling: ``[B, C, H, W] -> [B, out_features]``.

    Subclasses set ``out_features`` and override ``blocks`` (ordered input -> output, together
    covering every parameter) and ``load_weights``.
    """

    out_features: int

    def blocks(self) -> list[nn.Module]:
        """The ordered stages that ``last:N`` freeze plans count from the end."""
        return list(self.children())

    def block_groups(self) -> list[list[nn.Module]]:
        """Independent block sequences (one per backbone; two for dual models)."""
        return [self.blocks()]

    def load_weights(self, source: str) -> None:
        """Load pretrained weights (``"imagenet"`` or a local file) into this backbone."""
        raise NotImplementedError


class Head(nn.Sequential):
    """``dropout -> [Linear(hidden) -> ReLU -> dropout] -> Linear(num_classes)`` on pooled features."""

    def __init__(self, in_features: int, num_classes: int, *, hidden: int = 0, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        if hidden > 0:
            layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
            layers += [nn.Dropout(dropout)] if dropout > 0 else []
            in_features = hidden
        layers.append(nn.Linear(in_features, num_classes))
        super().__init__(*layers)


class ClassifierNet(nn.Module):
    """``head(backbone(x))``: normalized images in, logits ``[B, num_classes]`` out."""

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class InputAdapter(nn.Module):
    """Makes any input fit a backbone, differentiably, inside the net (so attacks see through it).

    Rule: grayscale is repeated to 3 channels when ``to_rgb``; then, if ``size`` is given, the
    image is resized (bilinear) to ``size x size``; otherwise, if its shorter side is below
    ``min_size``, it is upscaled (bilinear, aspect kept) until the shorter side is ``min_size``.
    Inputs that already fit pass through untouched.
    """

    def __init__(self, *, size: int | None = None, min_size: int = 0, to_rgb: bool = False) -> None:
        super().__init__()
        self.size = size
        self.min_size = min_size
        self.to_rgb = to_rgb

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size, self.size
        short = min(height, width)
        if short >= self.min_size:
            return height, width
        scale = self.min_size / short
        return max(self.min_size, math.ceil(height * scale - 1e-6)), max(self.min_size, math.ceil(width * scale - 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.to_rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self.target_size(x.shape[-2], x.shape[-1])
        if size != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def extra_repr(self) -> str:
        return f"size={self.size}, min_size={self.min_size}, to_rgb={self.to_rgb}"
