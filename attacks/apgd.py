"""APGD: Auto-PGD with momentum, checkpoints and step-size halving (AutoAttack's core)."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from attacks import apgd_l1, keyed, losses, norms
from attacks.base import Attack
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective
from attacks.registry import register_attack

BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, rows of the batch) -> [b], maximized
BatchWon = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, rows of the batch) -> bool [b]
BatchScore = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | None"]  # -> [b], higher is better; None: the loss

MOMENTUM = 0.75  # alpha of the paper: weight of the new step against the previous one
INITIAL_STEP = 2.0  # the step starts at 2 * eps (L-inf and L2)


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD reconsiders its step size: ``ceil(p_j * steps)`` with
    ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` (the paper's rule;
    AutoAttack's code rounds the intervals down instead, which agrees at 100 steps)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * steps, 9)) for q in p[1:] if q <= 1})


@dataclass
class _State:
    """Per-sample state of the active samples (rows follow ``index``)."""

    index: torch.Tensor  # rows of the descent's batch
    x0: torch.Tensor  # clean inputs
    x: torch.Tensor  # current iterate
    previous: torch.Tensor  # previous iterate (momentum)
    grad: torch.Tensor | None  # gradient at ``x`` (None after the last step)
    loss: torch.Tensor  # loss at ``x``
    best_x: torch.Tensor
    best_loss: torch.Tensor
    best_grad: torch.Tensor
    score: torch.Tensor  # selection score at ``x`` (the loss unless the objective ranks otherwise)
    pick_x: torch.Tensor  # the point returned if the sample is never fooled: highest score
    pick_score: torch.Tensor
    step: torch.Tensor  # per-sample step size
    rises: torch.Tensor  # steps since the last checkpoint that raised the loss
    checkpoint_step: torch.Tensor  # step size at the last checkpoint
    checkpoint_best: torch.Tensor  # best loss at the last checkpoint
    topk: torch.Tensor | None = None  # L1: share of the coordinates a sparse step moves
    sparsity: torch.Tensor | None = None  # L1: nonzero coordinates of the best point at the last checkpoint

    def keep(self, mask: torch.Tensor) -> "_State":
        return _State(**{name: None if value is None else value[mask] for name, value in vars(self).items()})


class _Descent:
    """One APGD run (one restart) from given starting points.

    Gradient evaluations: one at the start, one after each of the first ``steps - 1`` steps; the
    iterate after the last step is only judged (forward pass), since its gradient would never be
    used. So ``steps`` forward+backward passes per sample that stays active.
    """

    def __init__(self, model: nn.Module, norm: Norm, eps: float, steps: int, rho: float, early_stop: bool,
                 loss: BatchLoss, won: BatchWon, score: BatchScore | None = None) -> None:
        self.model, self.norm, self.eps, self.steps = model, norm, eps, steps
        self.rho, self.early_stop, self.loss_of, self.won_of = rho, early_stop, loss, won
        self.score_of = score

    def run(self, x0: torch.Tensor, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per sample: the first successful iterate (else the highest-score one: the best loss
        unless ``score`` ranks otherwise), whether it succeeded, and that score."""
        out, fooled = start.clone(), torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        best_loss = torch.empty(len(x0), device=x0.device)
        state, won = self._initial(x0, start)
        state = self._retire(state, won, out, fooled, best_loss)
        marks = set(self._marks())
        last_mark = 0
        for k in range(1, self.steps + 1):
            if state.index.numel() == 0:
                break
            state, won = self._advance(state, first=k == 1, last=k == self.steps)
            state = self._retire(state, won, out, fooled, best_loss)
            if k in marks and k < self.steps:  # a checkpoint after the last step changes nothing
                self._checkpoint(state, k - last_mark)
                last_mark = k
        left = ~fooled[state.index]
        out[state.index[left]] = state.pick_x[left]
        best_loss[state.index] = state.pick_score.to(best_loss.dtype)
        return out, fooled, best_loss

    def _marks(self) -> list[int]:
        return checkpoints(self.steps)

    def _evaluate(self, x: torch.Tensor, index: torch.Tensor, with_grad: bool = True):
        """Loss ``[b]``, gradient (None without ``with_grad``), success ``[b]`` and selection
        score ``[b]`` at ``x``."""
        if not with_grad:
            with torch.no_grad():
                logits = self.model(x)
                loss = self.loss_of(logits, index)
                return loss, None, self.won_of(logits, index), self._score(logits, index, loss)
        with torch.enable_grad():  # also when the caller runs under torch.no_grad()
            x = x.detach().requires_grad_(True)
            logits = self.model(x)
            loss = self.loss_of(logits, index)
            grad, = torch.autograd.grad(loss.sum(), x)
        logits, loss = logits.detach(), loss.detach()
        return loss, grad, self.won_of(logits, index), self._score(logits, index, loss)

    def _score(self, logits: torch.Tensor, index: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        score = None if self.score_of is None else self.score_of(logits, index)
        return loss.clone() if score is None else score.to(loss.dtype)

    def _initial(self, x0: torch.Tensor, start: torch.Tensor) -> tuple[_State, torch.Tensor]:
        index = torch.arange(len(x0), device=x0.device)
        loss, grad, won, score = self._evaluate(start, index)
        step = torch.full((len(x0),), INITIAL_STEP * self.eps, device=x0.device, dtype=x0.dtype)
        start = start.detach()
        state = _State(index, x0, start, start, grad, loss, start.clone(), loss.clone(), grad, score,
                       start.clone(), score.clone(), step, torch.zeros_like(loss), step.clone(), loss.clone())
        return state, won

    def _project(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (x0 + norms.project(self.norm, x - x0, self.eps)).clamp_(0.0, 1.0)

    def _advance(self, s: _State, first: bool, last: bool) -> tuple[_State, torch.Tensor]:
        """One step: ``z = P(x + step * dir(grad))``, then ``P(x + a (z - x) + (1 - a)(x - x_prev))``
        (no momentum on the first step); evaluate the new iterate and track the best point."""
        z = self._step(s, first)
        loss, grad, won, score = self._evaluate(z, s.index, with_grad=not last)
        s.rises += (loss > s.loss).to(s.rises.dtype)
        better = loss > s.best_loss
        s.best_x[better], s.best_loss[better] = z[better], loss[better]
        if grad is not None:
            s.best_grad[better] = grad[better]
        picked = score > s.pick_score
        s.pick_x[picked], s.pick_score[picked] = z[picked], score[picked]
        s.previous, s.x, s.grad, s.loss, s.score = s.x, z, grad, loss, score
        return s, won

    def _step(self, s: _State, first: bool) -> torch.Tensor:
        """The next iterate: a projected step along ``dir(grad)``, mixed with the previous step."""
        shape = (-1,) + (1,) * (s.x.dim() - 1)
        z = self._project(s.x0, s.x + s.step.view(shape) * norms.normalize(self.norm, s.grad))
        if not first:
            z = self._project(s.x0, s.x + MOMENTUM * (z - s.x) + (1 - MOMENTUM) * (s.x - s.previous))
        return z

    def _retire(self, s: _State, won: torch.Tensor, out: torch.Tensor, fooled: torch.Tensor,
                best_loss: torch.Tensor) -> _State:
        """Write out the samples the current iterate fooled for the first time; with early
        stopping, drop them from the active state."""
        won = won & ~fooled[s.index]
        if not won.any():
            return s
        rows = s.index[won]
        out[rows], fooled[rows] = s.x[won], True
        best_loss[rows] = s.score[won].to(best_loss.dtype)
        return s.keep(~won) if self.early_stop else s

    def _checkpoint(self, s: _State, span: int) -> None:
        """Halve the step where too few steps since the last checkpoint raised the loss, or where
        neither the step nor the best loss changed; those samples go back to their best point."""
        few_rises = s.rises < self.rho * span
        stalled = (s.checkpoint_step == s.step) & (s.checkpoint_best == s.best_loss)
        halve = few_rises | stalled
        s.checkpoint_step, s.checkpoint_best = s.step.clone(), s.best_loss.clone()
        s.step[halve] /= 2
        s.x[halve], s.previous[halve] = s.best_x[halve], s.best_x[halve]  # no momentum across a restart
        s.grad[halve], s.loss[halve] = s.best_grad[halve], s.best_loss[halve]
        s.rises.zero_()


class _SparseDescent(_Descent):
    """One APGD-L1 run ("Mind the box", as AutoAttack runs it): projections onto the L1 ball ∩ the
    [0, 1] box, sparse steps of size ``step`` (from ``eps``) without momentum, and every 4% of the
    iterations a checkpoint that sets the step's sparsity from the best point's: where it dropped
    below 95% of the last checkpoint's, the step goes back to eps and the sample to its best point;
    elsewhere the step shrinks by 1.5 (never below eps / 10). A ``warm`` start (a given point,
    e.g. the previous eps of the large-eps schedule) sets the first sparsity from that point."""

    def __init__(self, *args, warm: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.warm = warm

    def _marks(self) -> list[int]:
        return list(range(apgd_l1.checkpoint_period(self.steps), self.steps + 1,
                          apgd_l1.checkpoint_period(self.steps)))

    def _initial(self, x0: torch.Tensor, start: torch.Tensor) -> tuple[_State, torch.Tensor]:
        state, won = super()._initial(x0, start)
        state.step.fill_(self.eps)
        width = x0.flatten(1).shape[1]
        if self.warm:
            state.sparsity = apgd_l1.sparsity(start - x0)
            state.topk = state.sparsity / width / apgd_l1.TOPK_DIVISOR
        else:
            state.topk = torch.full_like(state.step, apgd_l1.INITIAL_TOPK)
            state.sparsity = torch.full_like(state.step, float(width))
        return state, won

    def _project(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 + norms.project_l1_box(x0, x - x0, self.eps)

    def _step(self, s: _State, first: bool) -> torch.Tensor:
        shape = (-1,) + (1,) * (s.x.dim() - 1)
        return self._project(s.x0, s.x + s.step.view(shape) * apgd_l1.sparse_direction(s.grad, s.topk))

    def _checkpoint(self, s: _State, span: int) -> None:
        current = apgd_l1.sparsity(s.best_x - s.x0)
        fresh = current < apgd_l1.SPARSITY_DROP * s.sparsity
        s.topk = current / s.x0.flatten(1).shape[1] / apgd_l1.TOPK_DIVISOR
        s.step[fresh] = self.eps
        s.step[~fresh] /= apgd_l1.STEP_SHRINK
        s.step.clamp_(apgd_l1.MIN_STEP_SHARE * self.eps, self.eps)
        s.sparsity = current
        s.x[fresh], s.grad[fresh], s.loss[fresh] = s.best_x[fresh], s.best_grad[fresh], s.best_loss[fresh]


def _never(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """No success: the stages of the large-eps schedule above eps only look for the highest loss."""
    return torch.zeros(len(rows), dtype=torch.bool, device=logits.device)


class _APGDBase(Attack):
    """Shared arguments and the restart loop of APGD and APGD-T."""

    def __init__(self, norm: Norm | str, steps: int, restarts: int, objective: Objective | str | LossFn,
                 targeted: bool, rho: float, early_stop: bool, seed: int | None, large_reps: bool = False) -> None:
        super().__init__(norm=norm, objective=objective, targeted=targeted, seed=seed)
        if int(steps) < 1 or int(restarts) < 1:
            raise ValueError(f"steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
        if not 0 < float(rho) <= 1:
            raise ValueError(f"rho must be in (0, 1], got {rho}")
        if large_reps and (self.norm is not Norm.L1 or int(steps) < len(apgd_l1.LARGE_REPS)):
            raise ValueError(f"large_reps is APGD-L1's schedule: it needs norm='l1' and steps >= "
                             f"{len(apgd_l1.LARGE_REPS)}, got norm={self.norm.value!r}, steps={steps}")
        self.steps, self.restarts, self.rho, self.early_stop = int(steps), int(restarts), float(rho), bool(early_stop)
        self.large_reps = bool(large_reps)

    def _restarts(self, model: nn.Module, x: torch.Tensor, eps: float, generator, loss: BatchLoss,
                  won: BatchWon, best: torch.Tensor, fooled: torch.Tensor, score: torch.Tensor,
                  rank: BatchScore | None = None) -> None:
        """Run the restarts, each from a fresh random start and only on the samples not yet
        fooled. Updates in place: ``best`` (a success, else the highest-``score`` point),
        ``fooled`` and ``score`` (the best loss so far, or the best ``rank`` where it gives one)."""
        for _ in range(self.restarts):
            idx = (~fooled).nonzero().squeeze(1)
            if idx.numel() == 0:
                return
            x_r, won_r, loss_r = self._descend(
                model, x[idx], eps, keyed.subset(generator, idx), lambda logits, rows: loss(logits, idx[rows]),
                lambda logits, rows: won(logits, idx[rows]),
                None if rank is None else lambda logits, rows: rank(logits, idx[rows]))
            take = won_r | (loss_r > score[idx])
            best[idx[take]] = x_r[take]
            score[idx[take]] = loss_r[take].to(score.dtype)
            fooled[idx[won_r]] = True

    def _descend(self, model: nn.Module, x0: torch.Tensor, eps: float, generator, loss: BatchLoss,
                 won: BatchWon, rank: BatchScore | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One restart from a random start: the descent's (points, fooled, scores)."""
        if self.norm is Norm.L1:
            return self._descend_l1(model, x0, eps, generator, loss, won, rank)
        start = (x0 + norms.random_start(self.norm, x0, eps, generator)).clamp_(0.0, 1.0)
        descent = _Descent(model, self.norm, eps, self.steps, self.rho, self.early_stop, loss, won, rank)
        return descent.run(x0, start)

    def _descend_l1(self, model: nn.Module, x0: torch.Tensor, eps: float, generator, loss: BatchLoss,
                    won: BatchWon, rank: BatchScore | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """APGD-L1 from Gaussian noise projected onto the L1 ball ∩ box (AutoAttack's start); with
        ``large_reps`` through the stages 3ε, 2ε, ε, each warm-started from the previous one's
        highest-loss point (successes count at ε only)."""
        schedule = apgd_l1.large_reps_schedule(eps, self.steps) if self.large_reps else [(eps, self.steps)]
        noise = keyed.randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
        start = x0 + norms.project_l1_box(x0, noise, schedule[0][0])
        for stage_eps, stage_steps in schedule[:-1]:
            start = x0 + norms.project_l1_box(x0, start - x0, stage_eps)
            start, _, _ = _SparseDescent(model, self.norm, stage_eps, stage_steps, self.rho, False, loss, _never,
                                         rank, warm=True).run(x0, start)
        start = x0 + norms.project_l1_box(x0, start - x0, eps)
        return _SparseDescent(model, self.norm, eps, schedule[-1][1], self.rho, self.early_stop, loss, won, rank,
                              warm=self.large_reps).run(x0, start)

    def _start_fooled(self, model: nn.Module, x: torch.Tensor, won: BatchWon) -> torch.Tensor:
        """Samples already successful at ``x`` (kept as ``x``, not attacked) when stopping early;
        one forward pass."""
        if not self.early_stop:
            return torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with torch.no_grad():
            return won(model(x), torch.arange(len(x), device=x.device))

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "steps": self.steps, "restarts": self.restarts, "rho": self.rho,
                "early_stop": self.early_stop, "seed": self.seed,
                **({"large_reps": True} if self.large_reps else {})}


@register_attack("apgd")
class APGD(_APGDBase):
    r"""Auto-PGD: PGD with momentum and a step size that halves at checkpoints when progress stalls.

    Paper: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690.

    Distance: L∞ or L2 (``norm``); one algorithm through the per-norm hooks in :mod:`attacks.norms`
    (L2 steps along the normalized gradient and projects onto the L2 ball). The step starts at
    2·eps per sample; the first step has no momentum, later ones mix in the previous step
    (momentum 0.75). At the checkpoints ``ceil(p_j * steps)`` (``p = 0, 0.22, 0.41, 0.57, ...``) a
    sample's step halves, and it restarts from its best point, when fewer than ``rho`` of its
    steps since the last checkpoint raised the loss, or when neither its step nor its best loss
    changed. Per sample the result is the first successful iterate, else the highest-loss one (or
    the one the objective's ``selection_score`` ranks highest: for segmentation, SEA's rule, the
    most fooled pixels).

    Cost: per restart, ``steps`` forward+backward passes per active sample (one at the random
    start, one after each step but the last, whose iterate only needs a forward pass); with
    ``early_stop`` one more forward pass on the clean input. AutoAttack and torchattacks spend
    ``steps + 1`` forward+backward passes for the same iterates.

    Arguments:
        norm (Norm | str): ``"linf"``, ``"l2"`` or ``"l1"`` (APGD-L1: sparse steps, projection onto
            the L1 ball ∩ [0, 1] box; Croce & Hein, "Mind the box", ICML 2021). Default: ``"linf"``.
        steps (int): iterations per restart. Default: ``100``.
        restarts (int): runs from fresh random starts, each only on the samples not yet fooled;
            a sample never fooled keeps its highest-loss point over all runs. Default: ``1``.
        objective (Objective | str | callable): the task objective; ``"ce"`` (APGD-CE), ``"dlr"``
            (APGD-DLR), ``"margin"``, a callable, or e.g. a
            :class:`~attacks.objectives.Segmentation` objective (per-pixel losses with
            ``ignore_index``; SEA's ``"mce"`` and ``"js"``: Croce, Singh & Hein, ECCV 2024).
            Scheduled losses (``"segpgd"``) stay at their first step: the checkpoints compare
            losses across steps. Default: ``"ce"``.
        targeted (bool): minimize the loss toward ``target``. Default: ``False``.
        rho (float): the fraction of loss-raising steps expected between checkpoints. Default: ``0.75``.
        early_stop (bool): samples already successful on the clean input are returned as is, and
            a sample is frozen at its first successful iterate and leaves the active batch (only
            the active subset is computed). ``False`` spends every step on every sample (the
            first success is still what is returned). Default: ``True``.
        seed (int | None): seeds the random starts per call; ``None`` uses the global RNG. Default: ``None``.
        large_reps (bool): L1 only: AutoAttack's schedule 3ε, 2ε, ε over 30/30/40% of ``steps``,
            each stage warm-started from the previous one's highest-loss point. Default: ``False``.

    Shape:
        - model: images in [0, 1] -> logits [B, K] (or [B, K, H, W] for segmentation).
        - x: [B, C, H, W] floating point in [0, 1].
        - y, target: what the objective takes: [B] long, [B, H, W] masks or [B, K] 0/1 vectors.
        - eps: float >= 0 in pixel units.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> attack = APGD(norm="linf", steps=100, objective="ce", seed=0)  # APGD-CE
        >>> x_adv = attack(model, x, y, eps=8 / 255)
    """

    run_settings = ("norm", "objective", "targeted", "steps", "seed", "early_stop")
    step_budget = "apgd_steps"

    def __init__(self, norm: Norm | str = "linf", steps: int = 100, restarts: int = 1,
                 objective: Objective | str | LossFn = "ce", targeted: bool = False, rho: float = 0.75,
                 early_stop: bool = True, seed: int | None = None,
                 large_reps: bool = False) -> None:
        super().__init__(norm, steps, restarts, objective, targeted, rho, early_stop, seed, large_reps)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        sign = -1.0 if self.targeted else 1.0  # a targeted attack lowers the loss toward the target

        def loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            # progress stays 0: the checkpoints compare losses across steps, so the loss must not drift.
            return sign * self.objective.loss(logits, labels[rows], targeted=self.targeted)

        def won(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return self.objective.success(logits, labels[rows], self.targeted)

        def rank(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
            return self.objective.selection_score(logits, labels[rows], self.targeted)

        best, fooled = x.clone(), self._start_fooled(model, x, won)
        score = torch.full((len(x),), float("-inf"), device=x.device)
        self._restarts(model, x, eps, generator, loss, won, best, fooled, score, rank)
        return best


@register_attack("apgd-ce")
class APGDCE(APGD):
    """APGD with the cross-entropy loss (AutoAttack's first attack); arguments as :class:`APGD`.

    Example:
        >>> x_adv = get_attack("apgd-ce", steps=100, seed=0)(model, x, y, eps=8 / 255)
    """

    own_loss = "ce"
    cascade_step = True

@register_attack("apgd-dlr")
class APGDDLR(APGD):
    """APGD with the difference-of-logits-ratio loss by default; arguments as :class:`APGD`.

    Example:
        >>> x_adv = get_attack("apgd-dlr", steps=100, seed=0)(model, x, y, eps=8 / 255)
    """

    own_loss = "dlr"

    def __init__(self, norm: Norm | str = "linf", steps: int = 100, restarts: int = 1,
                 objective: Objective | str | LossFn = "dlr", targeted: bool = False, rho: float = 0.75,
                 early_stop: bool = True, seed: int | None = None,
                 large_reps: bool = False) -> None:
        if isinstance(objective, Objective) and "dlr" not in objective.LOSSES:  # never another loss in its name
            raise ValueError(f"apgd-dlr needs the DLR loss, which a {objective.task} objective does not offer "
                             "(it needs one softmax over 3 or more classes); use apgd-ce")
        super().__init__(norm, steps, restarts, objective, targeted, rho, early_stop, seed, large_reps)


@register_attack("apgd-t")
class APGDT(_APGDBase):
    r"""APGD-T: APGD on the targeted DLR loss toward each of the top other classes in turn.

    Paper: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690.

    Untargeted from the user's view (success = misclassified; create it without ``targeted``).
    For each of the ``n_target_classes`` classes ranked highest after the true one by the clean
    logits, APGD (as in :class:`APGD`) maximizes :func:`attacks.losses.dlr_targeted`
    ``(z_t − z_y) / (z_π1 − (z_π3 + z_π4) / 2)``, only on the samples still correctly
    classified. Samples misclassified on the clean input are returned as they are; a sample
    never fooled gets its highest targeted-DLR point over all targets. Needs at least 4 classes.

    Distance: L∞, L2 or L1 (``norm``).

    Cost: per target and restart, ``steps`` forward+backward passes per sample still robust
    (see :class:`APGD`), plus one forward pass on the clean input.

    Arguments:
        norm (Norm | str): ``"linf"``, ``"l2"`` or ``"l1"`` (APGD-L1: sparse steps, projection onto
            the L1 ball ∩ [0, 1] box; Croce & Hein, "Mind the box", ICML 2021). Default: ``"linf"``.
        steps (int): iterations per target class and restart. Default: ``100``.
        restarts (int): restarts per target class. Default: ``1``.
        n_target_classes (int): how many target classes to try (at most ``K - 1``). Default: ``9``.
        objective (Objective | str): the classification objective whose success test judges
            (its loss is not used). Default: ``"ce"``.
        rho (float): as in :class:`APGD`. Default: ``0.75``.
        early_stop (bool): as in :class:`APGD`; ``False`` also attacks the samples misclassified
            on the clean input. Default: ``True``.
        seed (int | None): seeds the random starts per call. Default: ``None``.
        large_reps (bool): as in :class:`APGD` (L1 only). Default: ``False``.

    Shape:
        - model: images in [0, 1] -> logits [B, K], K >= 4.
        - x: [B, C, H, W] floating point in [0, 1].
        - y: [B] long.
        - eps: float >= 0 in pixel units.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> attack = APGDT(norm="linf", steps=100, n_target_classes=9, seed=0)
        >>> x_adv = attack(model, x, y, eps=8 / 255)
    """

    run_settings = ("norm", "objective", "steps", "seed", "early_stop")
    step_budget = "apgd_steps"
    step_share = 2  # its targets share the budget: half the steps each keeps the cascade cheap
    untargeted_reason = "aims at every other class in turn (untargeted by design)"
    cascade_step = True

    def __init__(self, norm: Norm | str = "linf", steps: int = 100, restarts: int = 1, n_target_classes: int = 9,
                 objective: Objective | str | LossFn = "ce", rho: float = 0.75, early_stop: bool = True,
                 seed: int | None = None, large_reps: bool = False) -> None:
        super().__init__(norm, steps, restarts, objective, False, rho, early_stop, seed, large_reps)
        if int(n_target_classes) < 1:
            raise ValueError(f"n_target_classes must be >= 1, got {n_target_classes}")
        if not self.objective.class_targets:
            raise ValueError(f"apgd-t needs a classification objective (targets are classes), got {self.objective!r}")
        self.n_target_classes = int(n_target_classes)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        with torch.no_grad():
            clean = model(x)
        if clean.dim() != 2 or clean.shape[1] < 4:
            raise ValueError(f"apgd-t needs logits [B, K] with at least 4 classes, got {tuple(clean.shape)}")
        ranked = clean.scatter(1, labels[:, None], float("-inf")).argsort(dim=1, descending=True)

        def won(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return self.objective.success(logits, labels[rows], False)

        best = x.clone()
        fooled = won(clean, torch.arange(len(x), device=x.device)) if self.early_stop else \
            torch.zeros(len(x), dtype=torch.bool, device=x.device)
        score = torch.full((len(x),), float("-inf"), device=x.device)
        for rank in range(min(self.n_target_classes, clean.shape[1] - 1)):
            target = ranked[:, rank]

            def loss(logits: torch.Tensor, rows: torch.Tensor, target=target) -> torch.Tensor:
                return losses.dlr_targeted(logits, labels[rows], target[rows])

            self._restarts(model, x, eps, generator, loss, won, best, fooled, score)
        return best

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "n_target_classes": self.n_target_classes}
