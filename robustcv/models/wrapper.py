"""RobustModel: the pixel-space wrapper every model goes through (design rule 1)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as a differentiable layer."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class RobustModel(nn.Module):
    """``Normalize -> net``: takes images in ``[0, 1]`` and returns logits.

    Attacks, eps and clipping therefore all live in ``[0, 1]`` pixel space.

    Args:
        net: the network proper, fed normalized images.
        mean: per-channel mean of the training data.
        std: per-channel standard deviation of the training data.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))
