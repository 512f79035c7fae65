"""Shared fixtures for the attack tests: a small CNN trained on scikit-learn's digits (8x8).

Training takes a second or two and is cached per process, so every attack test module shares
one model without touching conftest.py.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import nn


class Digits(NamedTuple):
    model: nn.Module
    x: torch.Tensor  # held-out images [N, 1, 8, 8] in [0, 1]
    y: torch.Tensor  # labels [N]
    clean_accuracy: float


def digits_cnn() -> nn.Module:
    """A tiny CNN for 1x8x8 inputs in [0, 1] (no normalization needed at this scale)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )


@functools.lru_cache(maxsize=1)
def trained_digits(epochs: int = 10, seed: int = 0) -> Digits:
    """Digits CNN trained on 1297 shuffled images (~97% held out); the other 500 are for attacking."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    x_train, y_train, x_test, y_test = x[:-500], y[:-500], x[-500:], y[-500:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = digits_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x_train), generator=g).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x_test).argmax(1) == y_test).float().mean())
    return Digits(model, x_test, y_test, acc)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


class TinySegmenter(nn.Module):
    """A 1x1-conv "segmenter": per-pixel logits [B, K, H, W] from [B, C, H, W]."""

    def __init__(self, channels: int = 3, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(channels, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
