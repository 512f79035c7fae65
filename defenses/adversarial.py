"""Training-time defenses: objectives the training loop calls instead of ``loss_fn(model(x), y)``.

An objective is ``obj(model, x, y, loss_fn) -> scalar loss``; the loop calls ``backward`` on it.
The inner maximization runs with the model in eval mode and its parameters frozen (BatchNorm
statistics do not drift, no parameter gradients are computed) and leaves the model in the mode
it found it for the outer loss. Each objective counts the forward and backward passes it causes
(in full-batch units, the outer backward included) in ``counts``, so FGSM-RS costs 2 and
PGD-k costs k+1 standard steps.

The inner maximizations are ``attacks.PGD`` (the one PGD of the code base) with the arguments
training needs: a fixed budget (``early_stop=False``: exact pass counts), the training loss as
the objective (``LossObjective``), and for TRADES the KL objective and a near-zero start.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.frozen import eval_frozen
from attacks.objectives import Divergence, LossObjective

LossFn = Callable[[Tensor, Tensor], Tensor]
KINDS = ("none", "fgsm-rs", "pgd-at", "segpgd-at", "trades")


class AdversarialObjective(Protocol):
    """``obj(model, x, y, loss_fn) -> loss``: a scalar with gradients on the parameters only."""

    counts: dict[str, float]

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor: ...


class PassCounted:
    """Pass counting shared by the objectives: a forward hook on the model for the duration of a
    call, and a tensor hook on every grad-requiring output for the backward passes."""

    norm = "linf"  # the threat model the inner maximization uses

    def __init__(self) -> None:
        self.counts = {"forward": 0.0, "backward": 0.0}

    def reset_counts(self) -> None:
        """Zero ``counts``."""
        self.counts = {"forward": 0.0, "backward": 0.0}

    @contextmanager
    def _counting(self, model: nn.Module, batch: int) -> Iterator[None]:
        counts = self.counts

        def on_backward(grad: Tensor) -> None:
            counts["backward"] += grad.shape[0] / batch

        def on_forward(_module, _inputs, out) -> None:
            counts["forward"] += out.shape[0] / batch
            if out.requires_grad:
                out.register_hook(on_backward)

        handle = model.register_forward_hook(on_forward)
        try:
            yield
        finally:
            handle.remove()


def _pgd(eps: float, steps: int, step_size: float, objective, **start) -> "PGD":
    """The attacks package's PGD as training needs it: L-inf, fixed budget (no early stop, so
    exactly ``steps`` forward+backward passes), the global RNG for the start."""
    from attacks import PGD

    return PGD(norm="linf", steps=steps, step_size=step_size, objective=objective, early_stop=False, **start)


def inner(model: nn.Module) -> nn.Module:
    """The network an inner maximization differentiates: the module inside a
    DistributedDataParallel wrapper (whose reducer expects parameter gradients), else ``model``."""
    return getattr(model, "module", model)


def _check(eps: float, steps: int, step_size: float | None) -> None:
    if not eps > 0:
        raise ValueError(f"adversarial training eps must be > 0, got {eps}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"adversarial training steps must be an integer >= 1, got {steps}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")


class FGSMRS(PassCounted):
    """Fast adversarial training (Wong, Rice & Kolter 2020, "Fast is better than free").

    ``delta ~ U[-eps, eps]``, one FGSM step of size ``alpha`` on ``loss_fn``, projection to the
    eps ball and [0, 1]; the outer loss is ``loss_fn(model(x_adv), y)``. Cost: 2 forward and
    2 backward passes per batch.
    """

    def __init__(self, eps: float, alpha: float | None = None) -> None:
        super().__init__()
        _check(eps, 1, alpha)
        self.eps, self.alpha = float(eps), 1.25 * float(eps) if alpha is None else float(alpha)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:
        """The adversarial batch (detached, within eps of ``x`` and in [0, 1])."""
        return _pgd(self.eps, 1, self.alpha, LossObjective(loss_fn))(inner(model), x, y, self.eps)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:  # noqa: D102
        with self._counting(model, x.shape[0]):
            return loss_fn(model(self.perturb(model, x, y, loss_fn)), y)


class PGDAT(PassCounted):
    """PGD adversarial training (Madry et al. 2018): L-inf PGD with a uniform random start,
    ``steps`` sign steps of ``step_size`` (default ``2.5 * eps / steps``) on ``loss_fn``; the outer
    loss is ``loss_fn(model(x_adv), y)``. Cost: ``steps + 1`` forward and backward passes.
    """

    def __init__(self, eps: float, steps: int = 10, step_size: float | None = None) -> None:
        super().__init__()
        _check(eps, steps, step_size)
        self.eps, self.steps = float(eps), int(steps)
        self.step_size = 2.5 * self.eps / self.steps if step_size is None else float(step_size)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:
        """The adversarial batch (detached, within eps of ``x`` and in [0, 1])."""
        return _pgd(self.eps, self.steps, self.step_size, LossObjective(loss_fn))(inner(model), x, y, self.eps)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:  # noqa: D102
        with self._counting(model, x.shape[0]):
            return loss_fn(model(self.perturb(model, x, y, loss_fn)), y)


class SegPGDAT(PGDAT):
    """SegPGD adversarial training for segmenters (Gu et al., ECCV 2022, section 5): the inner
    maximization is SegPGD (per-pixel CE, weight moved from still-right to already-fooled pixels
    as the steps go, ``ignore_index`` pixels left out); the outer loss is ``loss_fn(model(x_adv), y)``
    as in PGD-AT. Cost: ``steps + 1`` forward and backward passes.
    """

    def __init__(self, eps: float, steps: int = 10, step_size: float | None = None,
                 ignore_index: int | None = 255) -> None:
        super().__init__(eps, steps, step_size)
        self.ignore_index = ignore_index

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:
        """The adversarial batch (detached, within eps of ``x`` and in [0, 1])."""
        from attacks.objectives import Segmentation

        objective = Segmentation("segpgd", ignore_index=self.ignore_index)
        return _pgd(self.eps, self.steps, self.step_size, objective)(inner(model), x, y, self.eps)


def kl_logits(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """``KL(softmax(p) || softmax(q))`` over the class dim 1, averaged over everything else
    (samples, and pixels for segmentation)."""
    log_p, log_q = F.log_softmax(p_logits, dim=1), F.log_softmax(q_logits, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(1).mean()


class TRADES(PassCounted):
    """TRADES (Zhang et al. 2019): inner ``max KL(p(x) || p(x'))`` from ``x + 0.001 * N(0, 1)``
    by ``steps`` L-inf sign steps (default size ``2.5 * eps / steps``); outer
    ``loss_fn(model(x), y) + beta * KL(p(x) || p(x'))`` with both forwards in train mode
    (separately, as in the reference code). Cost: ``steps + 3`` forwards (one clean, no grad),
    ``steps + 2`` backwards.
    """

    def __init__(self, eps: float, steps: int = 10, beta: float = 6.0, step_size: float | None = None) -> None:
        super().__init__()
        _check(eps, steps, step_size)
        if not beta >= 0:
            raise ValueError(f"TRADES beta must be >= 0, got {beta}")
        self.eps, self.steps, self.beta = float(eps), int(steps), float(beta)
        self.step_size = 2.5 * self.eps / self.steps if step_size is None else float(step_size)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn | None = None) -> Tensor:
        """The adversarial batch maximizing the KL to the clean prediction (``y`` unused)."""
        model = inner(model)
        with eval_frozen(model), torch.no_grad():
            clean = model(x)
        attack = _pgd(self.eps, self.steps, self.step_size, Divergence(), random_start=False, start_sigma=0.001)
        return attack(model, x, clean, self.eps)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:  # noqa: D102
        with self._counting(model, x.shape[0]):
            x_adv = self.perturb(model, x, y)
            logits = model(x)
            return loss_fn(logits, y) + self.beta * kl_logits(logits, model(x_adv))


def build_objective(kind: str, eps: float, steps: int = 10, beta: float = 6.0,
                    step_size: float | None = None, ignore_index: int | None = 255) -> AdversarialObjective | None:
    """The objective for ``kind`` in ``KINDS`` (``"none"`` -> None: standard training).

    ``steps`` and ``step_size`` are ignored by ``fgsm-rs`` (one step of ``1.25 * eps``);
    ``beta`` is used by ``trades`` only, ``ignore_index`` (the masks' void label) by ``segpgd-at``.
    """
    kind = kind.strip().lower()
    if kind == "none":
        return None
    if kind == "fgsm-rs":
        return FGSMRS(eps)
    if kind == "pgd-at":
        return PGDAT(eps, steps, step_size)
    if kind == "segpgd-at":
        return SegPGDAT(eps, steps, step_size, ignore_index)
    if kind == "trades":
        return TRADES(eps, steps, beta, step_size)
    raise ValueError(f"unknown adversarial training {kind!r}; choose from: {', '.join(KINDS)}")
