"""FAB and FAB-T: the fast adaptive boundary attack, a minimum-norm attack (L∞, L2, L1)."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from attacks import keyed, norms
from attacks.base import Attack
from attacks.fab_projections import project_hyperplane_box
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective
from attacks.registry import register_attack

DEFAULT_START = {Norm.LINF: 0.3, Norm.L2: 1.0, Norm.L1: 5.0}
"""AutoAttack's start radius where no eps is given (``minimal``); with a budget it is eps."""
_DUAL = {Norm.LINF: 1.0, Norm.L2: 2.0, Norm.L1: float("inf")}  # the norm that measures a gradient


class _Boundary:
    """One FAB run from given starting points: steps toward the closest linearized decision
    boundary, each biased back toward the clean input, keeping the smallest adversarial found."""

    def __init__(self, model: nn.Module, fab: "FAB") -> None:
        self.model, self.fab = model, fab

    def run(self, x0: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None, x: torch.Tensor,
            stop_at: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: the smallest adversarial found (else ``x0``) and its norm (else inf).
        ``x``: the starting points, moved in place. With ``stop_at``, a sample stops once it has
        an adversarial of norm ``<= stop_at``."""
        best = x0.clone()
        best_dist = torch.full((len(x0),), float("inf"), device=x0.device, dtype=x0.dtype)
        active = torch.arange(len(x0), device=x0.device)
        for _ in range(self.fab.steps):
            if active.numel() == 0:
                break
            rows = active
            moved = self._step(x0[rows], x[rows], labels[rows], None if target is None else target[rows])
            with torch.no_grad():
                won = self.fab.objective.success(self.model(moved), labels[rows], False)
            dist = norms.distance(self.fab.norm, moved - x0[rows])
            better = won & (dist < best_dist[rows])
            best[rows[better]], best_dist[rows[better]] = moved[better], dist[better]
            # FAB's backward step: from an adversarial, move part of the way back to the clean input.
            moved[won] = x0[rows][won] + self.fab.beta * (moved[won] - x0[rows][won])
            x[rows] = moved
            if stop_at is not None:
                active = active[best_dist[active] > stop_at]
        return best, best_dist

    def _step(self, x0: torch.Tensor, x: torch.Tensor, labels: torch.Tensor,
              target: torch.Tensor | None) -> torch.Tensor:
        """Project ``x`` and ``x0`` onto the closest linearized boundary (inside the box), then
        move to their mix ``(1 - α)(x + η d) + α (x0 + η d0)`` with ``α <= alpha_max``."""
        fab = self.fab
        gap, normal = self._linearize(x, labels, target)
        flat_x, flat_x0 = x.flatten(1), x0.flatten(1)
        offset = (normal * flat_x).sum(dim=1) - gap
        moves = project_hyperplane_box(fab.norm, torch.cat((flat_x, flat_x0)), normal.repeat(2, 1),
                                       offset.repeat(2))
        d, d0 = moves.view(2, *x.shape).unbind(0)
        size, size0 = (norms.distance(fab.norm, m).clamp_min(1e-8) for m in (d, d0))
        alpha = (size / (size + size0)).clamp(0.0, fab.alpha_max).view(-1, *([1] * (x.dim() - 1)))
        return ((x + fab.eta * d) * (1 - alpha) + (x0 + fab.eta * d0) * alpha).clamp(0.0, 1.0)

    def _linearize(self, x: torch.Tensor, labels: torch.Tensor,
                   target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The boundary to cross, linearized at ``x``: logit gap ``f_k − f_y`` [b] and its gradient
        [b, D]; ``k`` the target, or the class whose boundary is closest in the norm."""
        rows = torch.arange(len(x), device=x.device)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            logits = self.model(x)
            if target is not None:
                gap = logits[rows, target] - logits[rows, labels]
                return gap.detach(), torch.autograd.grad(gap.sum(), x)[0].flatten(1)
            classes = logits.shape[1]
            grads = torch.stack([torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k < classes - 1)[0]
                                 for k in range(classes)], dim=1).flatten(2)
        logits = logits.detach()
        gaps = logits - logits[rows, labels][:, None]
        normals = grads - grads[rows, labels][:, None]
        reach = gaps.abs() / (normals.norm(p=_DUAL[self.fab.norm], dim=2) + 1e-12)
        reach[rows, labels] = float("inf")
        k = reach.argmin(dim=1)
        return gaps[rows, k], normals[rows, k]


@register_attack("fab")
class FAB(Attack):
    r"""FAB: the fast adaptive boundary attack, a minimum-norm attack run with a budget.

    Paper: Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive boundary
    attack", ICML 2020, https://arxiv.org/abs/1907.02044 (AutoAttack's ``fab``).

    Distance: L∞, L2 or L1 (``norm``). Each step linearizes the classifier at the iterate, takes
    the decision boundary closest in the norm (the class ``k`` minimizing
    ``|f_k − f_y| / ‖∇f_k − ∇f_y‖_dual``), projects both the iterate and the clean input onto
    that hyperplane inside [0, 1] (:mod:`attacks.fab_projections`), and moves to
    ``(1 − α)(x + η d) + α (x0 + η d0)`` with ``α = min(‖d‖ / (‖d‖ + ‖d0‖), alpha_max)``. An
    adversarial iterate is kept when it is the smallest so far and pulled back toward the clean
    input (factor ``beta``). The first run starts at the clean input, each further restart at a
    random point at distance eps/2. A sample counts as fooled when an adversarial of norm
    ``<= eps`` was found (the result is then that point, else the clean input). Samples
    misclassified on the clean input are returned as they are. ``minimal`` (no budget) runs
    every restart and target on every sample, then shrinks each adversarial by bisection on the
    segment from the clean input (a final search that AutoAttack's code does not run).

    Cost: per step and sample still searching, one forward pass and ``K`` backward passes (the
    gradient of every logit), plus one forward pass to judge the new iterate.

    Arguments:
        norm (Norm | str): ``"linf"``, ``"l2"`` or ``"l1"``. Default: ``"linf"``.
        steps (int): iterations per run. Default: ``100``.
        restarts (int): runs, each only on the samples not yet fooled within eps (AutoAttack's
            ``plus`` version uses 5). Default: ``1``.
        alpha_max (float): the largest bias toward the clean input. Default: ``0.1``.
        eta (float): overshoot past the hyperplane. Default: ``1.05``.
        beta (float): the backward step after an adversarial. Default: ``0.9``.
        objective (Objective | str): a classification objective; its success test judges (its
            loss is not used). Default: ``"ce"``.
        early_stop (bool): a sample stops once fooled within eps. ``False`` spends every step and
            restart on it, still keeping the smallest adversarial. Default: ``True``.
        seed (int | None): seeds the random restarts per call. Default: ``None``.

    Shape:
        - model: images in [0, 1] -> logits [B, K], K >= 2.
        - x: [B, C, H, W] floating point in [0, 1]; y: [B] long.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> x_adv = FAB(norm="l2", seed=0)(model, x, y, eps=1.0)
        >>> smallest = FAB(norm="l2", seed=0).minimal(model, x, y)  # no budget, then a final search
    """

    name = "fab"
    minimizes = True
    # AutoAttack's 100 steps unless the spec says; no early_stop from the run: pushing on after a
    # success would only shrink the adversarial (FAB keeps the smallest), never strengthen it.
    run_settings = ("norm", "objective", "seed")
    untargeted_reason = "is untargeted by design (fab-t aims at the other classes in turn)"

    def __init__(self, norm: Norm | str = "linf", steps: int = 100, restarts: int = 1, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, objective: Objective | str | LossFn = "ce",
                 early_stop: bool = True, seed: int | None = None) -> None:
        super().__init__(norm=norm, objective=objective, targeted=False, seed=seed)
        if int(steps) < 1 or int(restarts) < 1:
            raise ValueError(f"steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
        if not (0 <= float(alpha_max) <= 1 and float(eta) >= 1 and 0 < float(beta) <= 1):
            raise ValueError(f"FAB needs 0 <= alpha_max <= 1, eta >= 1 and 0 < beta <= 1, got "
                             f"{alpha_max}, {eta}, {beta}")
        if not self.objective.class_targets:
            raise ValueError(f"{self.name} needs a classification objective (logits [B, K]), got {self.objective!r}")
        self.steps, self.restarts, self.early_stop = int(steps), int(restarts), bool(early_stop)
        self.alpha_max, self.eta, self.beta = float(alpha_max), float(eta), float(beta)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        best, dist = self._search(model, x, labels, eps, generator)
        fooled = (dist <= eps).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(fooled, best, x)

    def run_minimal(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        best, dist = self._search(model, x, labels, None, self._generator(x, None))
        return self._shrink(model, x, best, labels, dist.isfinite() & (dist > 0))

    def _shrink(self, model: nn.Module, x: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor,
                found: torch.Tensor, halvings: int = 10) -> torch.Tensor:
        """A final search on the segment from ``x`` to each adversarial found: bisection on
        the scale, always keeping an adversarial end, so the norm can only shrink."""
        shape = (-1,) + (1,) * (x.dim() - 1)
        low = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        high = torch.ones_like(low)
        with torch.no_grad():
            for _ in range(halvings):
                mid = (low + high) / 2
                won = self.objective.success(model(x + mid.view(shape) * (adv - x)), labels, False)
                high, low = torch.where(won, mid, high), torch.where(won, low, mid)
        return torch.where(found.view(shape), x + high.view(shape) * (adv - x), adv)

    def _search(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float | None,
                generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Every run (restart, target) on the samples still to fool; per sample the smallest
        adversarial (else ``x``) and its norm (0 where misclassified clean, inf where none)."""
        with torch.no_grad():
            clean = model(x)
        self._check_logits(clean)
        correct = ~self.objective.success(clean, labels, False)
        best, dist = x.clone(), torch.where(correct, float("inf"), 0.0).to(x.dtype)
        boundary = _Boundary(model, self)
        for target_rank, restart in self._runs(clean.shape[1]):
            todo = correct & (dist > eps) if eps is not None and self.early_stop else correct
            idx = todo.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            x0 = x[idx]
            start = x0.clone() if restart == 0 else self._random_start(
                x0, dist[idx], eps, keyed.subset(generator, idx))
            target = None if target_rank is None else self._target(clean[idx], labels[idx], target_rank)
            adv, adv_dist = boundary.run(x0, labels[idx], target, start, eps if self.early_stop else None)
            better = adv_dist < dist[idx]
            best[idx[better]], dist[idx[better]] = adv[better], adv_dist[better]
        return best, dist

    def _runs(self, classes: int) -> Iterator[tuple[int | None, int]]:
        """(target rank or None, restart) of each run, in order."""
        return ((None, r) for r in range(self.restarts))

    @staticmethod
    def _target(clean: torch.Tensor, labels: torch.Tensor, rank: int) -> torch.Tensor:
        """The class ranked ``rank`` (0: highest) among the others by the clean logits."""
        others = clean.scatter(1, labels[:, None], float("-inf"))
        return others.argsort(dim=1, descending=True)[:, rank]

    def _random_start(self, x0: torch.Tensor, found: torch.Tensor, eps: float | None, generator) -> torch.Tensor:
        """A random point at distance ``radius / 2`` from ``x0`` (AutoAttack's restarts), in [0, 1];
        the radius is eps, or without a budget the smaller of the smallest adversarial found and
        :data:`DEFAULT_START`."""
        radius = torch.full_like(found, DEFAULT_START[self.norm] if eps is None else eps)
        radius = torch.minimum(radius, found)
        if self.norm is Norm.LINF:
            noise = 2 * keyed.rand(x0.shape, generator, x0.device, x0.dtype) - 1
        else:
            noise = keyed.randn(x0.shape, generator, x0.device, x0.dtype)
        size = norms.distance(self.norm, noise).clamp_min(1e-12)
        return (x0 + noise * (radius / (2 * size)).view(-1, *([1] * (x0.dim() - 1)))).clamp(0.0, 1.0)

    def _check_logits(self, logits: torch.Tensor) -> None:
        if logits.dim() != 2 or logits.shape[1] < 2:
            raise ValueError(f"{self.name} needs classification logits [B, K] with K >= 2, "
                             f"got {tuple(logits.shape)}")

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "steps": self.steps, "restarts": self.restarts, "alpha_max": self.alpha_max,
                "eta": self.eta, "beta": self.beta, "early_stop": self.early_stop, "seed": self.seed}


@register_attack("fab-t")
class FABT(FAB):
    r"""FAB-T: FAB toward one target class at a time (AutoAttack standard's third attack).

    Paper: Croce & Hein, ICML 2020, https://arxiv.org/abs/1907.02044; targeted version as in
    Croce & Hein, "Reliable evaluation of adversarial robustness...", ICML 2020.

    As :class:`FAB`, but each run linearizes only the boundary between the true class and one
    target: the ``n_target_classes`` classes ranked highest after the true one by the clean
    logits, in turn, each only on the samples not yet fooled within eps. One backward pass per
    step instead of ``K``. Untargeted from the user's view (success = misclassified).

    Arguments:
        n_target_classes (int): targets tried, at most ``K − 1`` of them. Default: ``9``.
        others: as :class:`FAB` (AutoAttack standard: ``steps=100, restarts=1``).

    Example:
        >>> x_adv = FABT(norm="linf", n_target_classes=9, seed=0)(model, x, y, eps=8 / 255)
    """

    name = "fab-t"
    untargeted_reason = "aims at every other class in turn (untargeted by design)"

    def __init__(self, norm: Norm | str = "linf", steps: int = 100, restarts: int = 1, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, objective: Objective | str | LossFn = "ce",
                 early_stop: bool = True, seed: int | None = None, n_target_classes: int = 9) -> None:
        super().__init__(norm, steps, restarts, alpha_max, eta, beta, objective, early_stop, seed)
        if int(n_target_classes) < 1:
            raise ValueError(f"n_target_classes must be >= 1, got {n_target_classes}")
        self.n_target_classes = int(n_target_classes)

    def _runs(self, classes: int) -> Iterator[tuple[int | None, int]]:
        return ((rank, r) for rank in range(min(self.n_target_classes, classes - 1)) for r in range(self.restarts))

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "n_target_classes": self.n_target_classes}
