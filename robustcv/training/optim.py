"""Optimizers and learning-rate schedules (with warm-up) as plain, rebuildable pieces.

The schedule is a multiplier on each parameter group's base learning rate, computed per step.
Keeping it independent of the optimizer object lets a staged freeze plan rebuild the optimizer
mid-training without losing the schedule.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from robustcv.training.recipe import Recipe


def build_optimizer(groups: Iterable[dict[str, Any]], recipe: Recipe) -> torch.optim.Optimizer:
    """An optimizer over parameter groups (each group carries its own ``lr``)."""
    groups = [dict(g, base_lr=g["lr"]) for g in groups]
    wd = recipe.weight_decay
    name = recipe.optimizer
    if name == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=wd)
    if name == "nadam":
        return torch.optim.NAdam(groups, lr=recipe.lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=recipe.lr, momentum=recipe.momentum, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=recipe.lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}")


class LRSchedule:
    """Learning-rate multiplier per step: warm-up, then cosine / step / one-cycle / constant,
    or reduce-on-plateau driven by the validation metric.

    Args:
        recipe: supplies schedule, epochs, warmup_epochs, step_size and gamma.
        steps_per_epoch: optimizer steps in one epoch.
        mode: "max" when a larger monitored value is better (accuracy), "min" for a loss.
    """

    def __init__(self, recipe: Recipe, steps_per_epoch: int, mode: str = "max") -> None:
        self.recipe = recipe
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.mode = mode
        self._plateau_scale = 1.0
        self._best: float | None = None
        self._bad_epochs = 0

    def multiplier(self, epoch: int, step: int) -> float:
        """Multiplier at 0-based ``epoch`` and ``step`` within it."""
        r = self.recipe
        t = epoch + step / self.steps_per_epoch  # fractional epochs elapsed
        if r.schedule == "onecycle":
            return _one_cycle(t / r.epochs)
        if r.warmup_epochs > 0 and t < r.warmup_epochs:
            return (t + 1 / self.steps_per_epoch) / r.warmup_epochs
        if r.schedule == "cosine":
            span = max(1e-9, r.epochs - r.warmup_epochs)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (t - r.warmup_epochs) / span)))
        if r.schedule == "step":
            return r.gamma ** (epoch // max(1, r.step_size))
        if r.schedule == "plateau":
            return self._plateau_scale
        return 1.0

    def observe(self, value: float) -> None:
        """Feed the epoch's monitored validation value (used by ``plateau``)."""
        better = self._best is None or (value > self._best if self.mode == "max" else value < self._best)
        if better:
            self._best, self._bad_epochs = value, 0
            return
        self._bad_epochs += 1
        if self._bad_epochs > 2:  # patience of 2 epochs, like a cautious ReduceLROnPlateau
            self._plateau_scale *= self.recipe.gamma
            self._bad_epochs = 0

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int, step: int) -> float:
        """Set every group's lr to ``base_lr * multiplier``; returns the multiplier."""
        mult = self.multiplier(epoch, step)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * mult
        return mult


def _one_cycle(progress: float, pct_start: float = 0.3, div: float = 25.0, final_div: float = 1e4) -> float:
    """Smith's one-cycle policy as a multiplier of the peak learning rate."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < pct_start:
        return _cos_interp(1 / div, 1.0, progress / pct_start)
    return _cos_interp(1.0, 1 / final_div, (progress - pct_start) / (1 - pct_start))


def _cos_interp(start: float, end: float, frac: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * frac))
