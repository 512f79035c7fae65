"""Ascending eps sweeps that attack only the survivors of the previous budget."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from attacks.base import Attack
from attacks.frozen import eval_frozen


class CountingModel(nn.Module):
    """Wraps a model and counts per-sample forward passes made with an input that needs a gradient.

    Every gradient attack (ours, torchattacks, foolbox, ART) feeds the model an input with
    ``requires_grad`` when it wants a gradient, so ``grad_calls`` counts forward+backward
    evaluations, one per sample, whoever runs the attack. Forward-only passes are not counted.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.grad_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            self.grad_calls += x.shape[0]
        return self.model(x)


@dataclass
class SweepResult:
    """Per-eps outcome of :func:`eps_sweep` (all lists indexed like ``eps``, ascending).

    Attributes:
        eps: the budgets, ascending.
        x_adv: per eps, the full batch [B, ...]: a sample fooled at a smaller eps keeps that
            adversarial (it lies inside every larger ball).
        fooled: per eps, bool [B], non-decreasing with eps by construction.
        min_eps: float [B], the smallest eps on the grid that fooled each sample, ``nan`` if none.
        seconds: per eps, wall-clock seconds spent.
        grad_calls: per-sample forward+backward evaluations over the whole sweep.
    """

    eps: list[float]
    x_adv: list[torch.Tensor] = field(default_factory=list)
    fooled: list[torch.Tensor] = field(default_factory=list)
    min_eps: torch.Tensor | None = None
    seconds: list[float] = field(default_factory=list)
    grad_calls: int = 0

    @property
    def robust_accuracy(self) -> list[float]:
        """Per eps, the fraction of samples not fooled (classification: still correct)."""
        return [float((~f).float().mean()) if f.numel() else float("nan") for f in self.fooled]


def _check_grid(eps_grid) -> list[float]:
    grid = sorted(float(e) for e in eps_grid)
    if not grid or not all(e >= 0 for e in grid):
        raise ValueError(f"eps_grid must be a non-empty list of numbers >= 0, got {list(eps_grid)}")
    return grid


def eps_sweep(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_grid,
              target: torch.Tensor | None = None, skip: torch.Tensor | None = None,
              keys: torch.Tensor | None = None) -> SweepResult:
    """Run ``attack`` at every eps of ``eps_grid`` (sorted ascending), survivors only.

    Eps 0 is the clean prediction. A sample fooled at some eps keeps its adversarial for every
    larger eps and is not attacked again; each larger eps attacks only the survivors, starting
    from the clean input. Robust accuracy is therefore non-increasing in eps by construction.
    For segmentation the default success test never fires, so every eps attacks every sample.

    Args:
        attack: any :class:`attacks.base.Attack` (native or adapter).
        model: images in [0, 1] -> logits.
        x: [B, C, H, W] in [0, 1]; y: labels [B] (or [B, H, W]).
        eps_grid: budgets; sorted ascending here.
        target: target labels for a targeted attack.
        skip: optional bool ``[E, B]`` (grid order): samples not to attack at each eps because
            another attack already fooled them there (a cascade, AutoAttack's scheme); they keep
            their previous iterate and are not counted as fooled by this attack.
        keys: optional int64 ``[B]`` sample keys for per-sample random draws (see ``Attack``).

    Returns:
        SweepResult with per-eps adversarials, fooled masks, seconds, per-sample minimal eps and
        the number of per-sample forward+backward evaluations.
    """
    grid = _check_grid(eps_grid)
    counter = CountingModel(model)
    result = SweepResult(eps=grid, min_eps=torch.full((x.shape[0],), float("nan"), device=x.device))
    x_cur = x.detach().clone()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    with eval_frozen(model):
        for j, eps in enumerate(grid):
            start = time.perf_counter()
            wanted = ~fooled if skip is None else ~fooled & ~skip[j].to(fooled.device)
            alive = wanted.nonzero().squeeze(1)
            if alive.numel():
                _attack_survivors(attack, counter, x, y, target, eps, alive, x_cur, fooled, result.min_eps, keys)
            result.x_adv.append(x_cur.clone())
            result.fooled.append(fooled.clone())
            result.seconds.append(time.perf_counter() - start)
    result.grad_calls = counter.grad_calls
    return result


def _attack_survivors(attack: Attack, model: nn.Module, x, y, target, eps: float, alive: torch.Tensor,
                      x_cur: torch.Tensor, fooled: torch.Tensor, min_eps: torch.Tensor,
                      keys: torch.Tensor | None = None) -> None:
    """Attack ``x[alive]`` at ``eps`` and update ``x_cur``, ``fooled`` and ``min_eps`` in place."""
    t = None if target is None else target[alive]
    x_alive, y_alive = x[alive], y[alive]
    extra = {} if t is None else {"target": t}
    if keys is not None:
        extra["keys"] = keys[alive.to(keys.device)]
    adv = x_alive.clone() if eps == 0 else attack(model, x_alive, y_alive, eps, **extra)
    won = attack.success_mask(model, adv, y_alive, t)
    x_cur[alive] = adv
    fooled[alive[won]] = True
    min_eps[alive[won]] = eps
