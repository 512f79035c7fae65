"""APGD: Auto-PGD with momentum, checkpoints and step-size halving (AutoAttack's core)."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from attacks import keyed, losses, norms
from attacks.base import Attack
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective
from attacks.registry import register_attack

BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, active indices) -> [b]
BatchWon = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, active indices) -> bool [b]


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD reconsiders its step size: ``ceil(p_j * steps)`` with
    ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * steps, 9)) for q in p[1:] if q <= 1})


@dataclass
class _State:
    """Per-sample state of the active samples (rows follow ``index``)."""

    index: torch.Tensor  # rows of the caller's batch
    x0: torch.Tensor
    x: torch.Tensor  # current iterate
    previous: torch.Tensor  # previous iterate (momentum)
    grad: torch.Tensor
    loss: torch.Tensor
    best_x: torch.Tensor
    best_loss: torch.Tensor
    best_grad: torch.Tensor
    step: torch.Tensor  # per-sample step size
    rises: torch.Tensor  # steps since the last checkpoint whose loss went up
    checkpoint_step: torch.Tensor  # step size at the last checkpoint
    checkpoint_best: torch.Tensor  # best loss at the last checkpoint

    def keep(self, mask: torch.Tensor) -> "_State":
        return _State(**{name: value[mask] for name, value in vars(self).items()})


class _Descent:
    """One APGD run (one restart) on a batch: ``steps`` gradient evaluations after the start."""

    def __init__(self, model: nn.Module, norm: Norm, eps: float, steps: int, rho: float, early_stop: bool,
                 loss: BatchLoss, won: BatchWon) -> None:
        self.model, self.norm, self.eps, self.steps = model, norm, eps, steps
        self.rho, self.early_stop, self.loss_of, self.won = rho, early_stop, loss, won
        self.alpha = 0.75  # momentum of the paper

    def run(self, x0: torch.Tensor, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first successful iterate per sample (else the best-loss one), and who succeeded."""
        out, fooled = start.clone(), torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        state = self._initial(x0, start)
        state = self._retire(state, out, fooled)
        marks, last_mark = set(checkpoints(self.steps)), 0
        for k in range(1, self.steps + 1):
            if state.index.numel() == 0:
                break
            state = self._advance(state, first=k == 1)
            state = self._retire(state, out, fooled)
            if k in marks:
                self._checkpoint(state, k - last_mark)
                last_mark = k
        unfooled = ~fooled[state.index]
        out[state.index[unfooled]] = state.best_x[unfooled]
        return out, fooled

    def _evaluate(self, x: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        logits = self.model(x)
        loss = self.loss_of(logits, index)
        grad, = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad.detach(), self.won(logits.detach(), index)

    def _initial(self, x0: torch.Tensor, start: torch.Tensor) -> _State:
        index = torch.arange(len(x0), device=x0.device)
        loss, grad, self._won_now = self._evaluate(start, index)
        step = torch.full((len(x0),), 2.0 * self.eps, device=x0.device, dtype=x0.dtype)
        return _State(index, x0, start.detach(), start.detach(), grad, loss, start.detach(), loss.clone(), grad,
                      step, torch.zeros_like(loss), step.clone(), loss.clone())

    def _project(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (x0 + norms.project(self.norm, x - x0, self.eps)).clamp(0.0, 1.0)

    def _advance(self, s: _State, first: bool) -> _State:
        """One step: ``z = P(x + step * dir)``, then momentum toward ``z`` (none on the first)."""
        shape = (-1,) + (1,) * (s.x.dim() - 1)
        z = self._project(s.x0, s.x + s.step.view(shape) * norms.normalize(self.norm, s.grad))
        if not first:
            z = self._project(s.x0, s.x + self.alpha * (z - s.x) + (1 - self.alpha) * (s.x - s.previous))
        loss, grad, self._won_now = self._evaluate(z, s.index)
        s.rises += (loss > s.loss).to(s.rises.dtype)
        better = loss > s.best_loss
        s.best_x[better], s.best_loss[better], s.best_grad[better] = z[better], loss[better], grad[better]
        s.previous, s.x, s.grad, s.loss = s.x, z, grad, loss
        return s

    def _retire(self, s: _State, out: torch.Tensor, fooled: torch.Tensor) -> _State:
        """Write out and drop the samples the current iterate fooled (all of them stay otherwise)."""
        won = self._won_now & ~fooled[s.index]  # the first successful iterate is the one kept
        if not won.any():
            return s
        out[s.index[won]] = s.x[won]
        fooled[s.index[won]] = True
        return s.keep(~won) if self.early_stop else s

    def _checkpoint(self, s: _State, span: int) -> None:
        """Halve the step where too few steps rose the loss, or nothing moved since the last
        checkpoint; those samples restart from their best point."""
        few_rises = s.rises < self.rho * span
        stalled = (s.checkpoint_step == s.step) & (s.checkpoint_best == s.best_loss)
        halve = few_rises | stalled
        s.checkpoint_step, s.checkpoint_best = s.step.clone(), s.best_loss.clone()
        s.step[halve] /= 2
        s.x[halve], s.previous[halve] = s.best_x[halve], s.best_x[halve]
        s.grad[halve], s.loss[halve] = s.best_grad[halve], s.best_loss[halve]
        s.rises.zero_()


class _APGDBase(Attack):
    """Shared arguments and the restart loop of APGD and APGD-T."""

    def __init__(self, norm: Norm | str, steps: int, restarts: int, objective: Objective | str | LossFn,
                 targeted: bool, rho: float, early_stop: bool, seed: int | None) -> None:
        super().__init__(norm=norm, objective=objective, targeted=targeted, seed=seed)
        if int(steps) < 1 or int(restarts) < 1:
            raise ValueError(f"steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
        if not 0 < float(rho) <= 1:
            raise ValueError(f"rho must be in (0, 1], got {rho}")
        self.steps, self.restarts, self.rho, self.early_stop = int(steps), int(restarts), float(rho), bool(early_stop)

    def _restarts(self, model: nn.Module, x: torch.Tensor, eps: float, generator, loss: BatchLoss,
                  won: BatchWon, best: torch.Tensor, fooled: torch.Tensor) -> None:
        """Run the restarts on the samples not yet fooled; updates ``best`` and ``fooled`` in place."""
        for _ in range(self.restarts):
            idx = (~fooled).nonzero().squeeze(1)
            if idx.numel() == 0:
                return
            x0 = x[idx]
            start = (x0 + norms.random_start(self.norm, x0, eps, keyed.subset(generator, idx))).clamp(0.0, 1.0)
            descent = _Descent(model, self.norm, eps, self.steps, self.rho, self.early_stop,
                               lambda logits, rows: loss(logits, idx[rows]), lambda logits, rows: won(logits, idx[rows]))
            x_r, won_r = descent.run(x0, start)
            take = won_r | ~fooled[idx]  # a success always; otherwise the latest restart's best
            best[idx[take]] = x_r[take]
            fooled[idx[won_r]] = True

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "steps": self.steps, "restarts": self.restarts, "rho": self.rho,
                "early_stop": self.early_stop, "seed": self.seed}


@register_attack("apgd")
class APGD(_APGDBase):
    r"""Auto-PGD: PGD with momentum and a step size that halves at checkpoints when progress stalls.

    Paper: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690.

    Distance: L∞ or L2 (``norm``). The step starts at 2·eps; at the checkpoints
    ``ceil(p_j * steps)`` a sample's step halves (and it restarts from its best point) when fewer
    than ``rho`` of its steps since the last checkpoint raised the loss, or when neither its step
    nor its best loss changed. One gradient evaluation at the start, then one per step.

    Arguments:
        norm (Norm | str): ``"linf"`` or ``"l2"``. Default: ``"linf"``.
        steps (int): iterations per restart. Default: ``100``.
        restarts (int): random restarts, each only on the samples still robust. Default: ``1``.
        objective (Objective | str | callable): the task objective; ``"ce"`` (APGD-CE), ``"dlr"``
            (APGD-DLR), or e.g. a :class:`~attacks.objectives.Segmentation` objective (masked
            per-pixel losses). Default: ``"ce"``.
        targeted (bool): minimize the loss toward ``target``. Default: ``False``.
        rho (float): the fraction of loss-raising steps expected between checkpoints. Default: ``0.75``.
        early_stop (bool): stop a sample at its first successful iterate. Default: ``True``.
        seed (int | None): seeds the random starts; ``None`` uses the global RNG. Default: ``None``.

    Shape:
        - x: [B, C, H, W] floating point in [0, 1]; y, target: what the objective takes.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> x_adv = APGD(norm="linf", steps=100, seed=0)(model, x, y, eps=8 / 255)
    """

    def __init__(self, norm: Norm | str = "linf", steps: int = 100, restarts: int = 1,
                 objective: Objective | str | LossFn = "ce", targeted: bool = False, rho: float = 0.75,
                 early_stop: bool = True, seed: int | None = None) -> None:
        super().__init__(norm, steps, restarts, objective, targeted, rho, early_stop, seed)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        sign = -1.0 if self.targeted else 1.0  # a targeted attack lowers the loss toward the target

        def loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return sign * self.objective.loss(logits, labels[rows])

        def won(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return self.objective.success(logits, labels[rows], self.targeted)

        best, fooled = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self._restarts(model, x, eps, generator, loss, won, best, fooled)
        return best


@register_attack("apgd-ce")
class APGDCE(APGD):
    """APGD with the cross-entropy loss (AutoAttack's first attack); see :class:`APGD`."""


@register_attack("apgd-dlr")
class APGDDLR(APGD):
    """APGD with the difference-of-logits-ratio loss; see :class:`APGD`."""

    def __init__(self, norm: Norm | str = "linf", steps: int = 100, restarts: int = 1,
                 objective: Objective | str | LossFn = "dlr", targeted: bool = False, rho: float = 0.75,
                 early_stop: bool = True, seed: int | None = None) -> None:
        super().__init__(norm, steps, restarts, objective, targeted, rho, early_stop, seed)


@register_attack("apgd-t")
class APGDT(_APGDBase):
    r"""APGD-T: targeted DLR toward each of the top other classes in turn, untargeted in effect.

    Paper: Croce & Hein, ICML 2020 (as :class:`APGD`). For each of the ``n_target_classes``
    classes ranked highest after the true one by the clean logits, APGD lowers
    ``-(z_t − z_y) / (z_π1 − (z_π3 + z_π4)/2)``, only on the samples still correctly classified.

    Distance: L∞ or L2 (``norm``).

    Arguments:
        norm (Norm | str): ``"linf"`` or ``"l2"``. Default: ``"linf"``.
        steps (int): iterations per target class and restart. Default: ``100``.
        restarts (int): restarts per target class. Default: ``1``.
        n_target_classes (int): how many target classes to try. Default: ``9``.
        objective (Objective | str): the classification objective whose success test is used
            (needs at least 4 classes). Default: ``"ce"``.
        rho, early_stop, seed: as in :class:`APGD`.

    Shape:
        - x: [B, C, H, W] floating point in [0, 1]; y: [B] long.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> x_adv = APGDT(n_target_classes=9, seed=0)(model, x, y, eps=8 / 255)
    """

    def __init__(self, norm: Norm | str = "linf", steps: int = 100, restarts: int = 1, n_target_classes: int = 9,
                 objective: Objective | str | LossFn = "ce", rho: float = 0.75, early_stop: bool = True,
                 seed: int | None = None) -> None:
        super().__init__(norm, steps, restarts, objective, False, rho, early_stop, seed)
        if int(n_target_classes) < 1:
            raise ValueError(f"n_target_classes must be >= 1, got {n_target_classes}")
        if self.objective.task != "classification":
            raise ValueError("apgd-t needs a classification objective (targets are classes)")
        self.n_target_classes = int(n_target_classes)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        with torch.no_grad():
            clean = model(x)
        if clean.shape[1] < 4:
            raise ValueError(f"apgd-t needs at least 4 classes, the model has {clean.shape[1]}")
        ranked = clean.scatter(1, labels[:, None], float("-inf")).argsort(dim=1, descending=True)
        best, fooled = x.clone(), ~self.objective.correct(clean, labels)
        for rank in range(min(self.n_target_classes, clean.shape[1] - 1)):
            target = ranked[:, rank]

            def loss(logits: torch.Tensor, rows: torch.Tensor, target=target) -> torch.Tensor:
                return losses.dlr_targeted(logits, labels[rows], target[rows])

            def won(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
                return self.objective.success(logits, labels[rows], False)

            self._restarts(model, x, eps, generator, loss, won, best, fooled)
        return best

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "n_target_classes": self.n_target_classes}
