"""The attack contract, owned by one base class (foolbox style).

A subclass writes only :meth:`Attack.run`; the base class validates the inputs, puts the model
in eval mode with frozen parameters, and clips the result to the eps ball around ``x`` and to
[0, 1]. What is optimized and when a sample counts as fooled come from a task
:class:`attacks.objectives.Objective`, so one attack serves classification, segmentation and
multi-label models.
"""
from __future__ import annotations

import abc

import torch
from torch import nn

from attacks import norms
from attacks.frozen import eval_frozen
from attacks.keyed import KeyedGenerator
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective, as_objective


class Attack(abc.ABC):
    """Base class: ``attack(model, x, y, eps, target=None) -> x_adv``.

    Args:
        norm: threat model, ``"linf"`` or ``"l2"`` (a :class:`Norm`).
        objective: the task objective (loss, success, correctness); a string is a
            classification loss name (``"ce"``, ``"margin"``, ``"dlr"``), a callable
            ``(logits, labels) -> [B]`` a classification objective with that loss.
        targeted: if True, ``__call__`` needs ``target`` and the attack minimizes the loss toward it.
        seed: seeds a private generator per call (deterministic); ``None`` uses torch's global RNG.

    Contract of ``__call__``: the input is never modified in place; shape, dtype and device are
    preserved; ``eps == 0`` returns a copy of ``x``; the result lies in the eps ball and in [0, 1];
    the model's previous train/eval mode and ``requires_grad`` flags are restored.
    """

    minimizes: bool = False
    """Whether the attack can also search each sample's smallest adversarial (``minimal``)."""

    # ------------------------------------------- declarations read by an evaluation
    run_settings: tuple[str, ...] = ("norm", "objective", "targeted", "seed")
    """The run's settings this attack takes, by constructor keyword: any of ``norm``,
    ``objective``, ``targeted``, ``seed``, ``steps``, ``step_size``, ``rel_step_size``,
    ``restarts``, ``early_stop``. Without ``targeted`` it is untargeted by design and refuses a
    targeted run."""
    step_budget: str = "steps"
    """Which of the run's step budgets fills ``steps``: ``"steps"`` (PGD) or ``"apgd_steps"``."""
    step_share: int = 1
    """The budget is shared among this many descents (at least one step each)."""
    own_loss: str | None = None
    """The loss the attack's name carries (``apgd-ce``: ``"ce"``), used where the task has it."""
    untargeted_reason: str = "is untargeted by design"
    """Why a targeted run cannot use it (when ``targeted`` is not among ``run_settings``)."""
    norms: tuple[str, ...] = ("linf", "l2", "l1")
    """The threat models whose steps the attack is built for (FGSM and PGD: no L1 step of their own)."""
    cascade_step: bool = False
    """Whether, after other attacks in a run, it attacks only what they left robust (AutoAttack's
    scheme: APGD-CE and APGD-T), its curve then being the cumulative worst case."""

    def __init__(self, norm: Norm | str = "linf", objective: Objective | str | LossFn = "ce",
                 targeted: bool = False, seed: int | None = None) -> None:
        self.norm = Norm.parse(norm)
        self.objective = as_objective(objective)
        self.targeted = bool(targeted)
        self.seed = seed

    # ----------------------------------------------------------------- contract
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                 target: torch.Tensor | None = None, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial examples for ``x`` within ``eps`` (see the class docstring).

        ``keys`` (int64 ``[B]``, e.g. each sample's index in the evaluated set) key the random
        draws per sample, so that with a seed a sample's result does not depend on its batch.
        """
        eps = self._check(x, y, eps, target)
        if eps == 0 or x.shape[0] == 0:
            return x.clone()
        labels = target if self.targeted else y
        x0 = x.detach()
        with eval_frozen(model):
            x_adv = self.run(model, x0, labels, eps, self._generator(x, keys))
        return self.clip(x0, x_adv.detach().to(x.dtype), eps)

    def minimal(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None = None) -> torch.Tensor:
        """A minimization attack's smallest adversarial per sample, with no budget, in [0, 1].

        Samples it could not fool come back as whatever it ended on: judge them. Only for
        attacks with ``minimizes``; same eval-mode and no-in-place contract as ``__call__``.
        """
        if not self.minimizes:
            raise TypeError(f"{type(self).__name__} is not a minimization attack")
        self._check(x, y, 0.0, target)
        if x.shape[0] == 0:
            return x.clone()
        with eval_frozen(model):
            x_adv = self.run_minimal(model, x.detach(), target if self.targeted else y)
        return x_adv.detach().to(x.dtype).clamp_(0.0, 1.0)

    def run_minimal(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The unbounded search behind ``minimal`` (subclasses with ``minimizes``)."""
        raise NotImplementedError

    @abc.abstractmethod
    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
            generator: torch.Generator | None) -> torch.Tensor:
        """The algorithm. ``labels`` are the true labels, or the targets when targeted."""

    def clip(self, x: torch.Tensor, x_adv: torch.Tensor, eps: float) -> torch.Tensor:
        """``x_adv`` projected onto the eps ball around ``x``, then onto [0, 1]."""
        return (x + norms.project(self.norm, x_adv - x, eps)).clamp_(0.0, 1.0)

    # -------------------------------------------------------------------- hooks
    def loss_fn(self, logits: torch.Tensor, labels: torch.Tensor, progress: float = 0.0) -> torch.Tensor:
        """Per-sample loss [B] that an untargeted attack maximizes (a targeted one minimizes).

        ``progress``: ``(t − 1) / T`` at step ``t`` of an iterative attack's ``T`` steps (0 for a
        single step), for scheduled losses such as SegPGD's."""
        return self.objective.loss(logits, labels, targeted=self.targeted, progress=progress)

    def rank(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample score [B] of a point that did not succeed, higher is better: the objective's
        :meth:`~attacks.objectives.Objective.selection_score`, else the loss (negated when targeted)."""
        score = self.objective.selection_score(logits, labels, self.targeted)
        if score is None:
            score = self.loss_fn(logits, labels) * (-1.0 if self.targeted else 1.0)
        return score

    def is_success(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample success [B] (fooled, or target hit when targeted)."""
        return self.objective.success(logits, labels, self.targeted)

    def success_mask(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                     target: torch.Tensor | None = None) -> torch.Tensor:
        """Which samples of ``x_adv`` succeed, from one forward pass without gradients."""
        with eval_frozen(model), torch.no_grad():
            return self.is_success(model(x_adv), target if self.targeted else y)

    # ------------------------------------------------------------------ helpers
    def _generator(self, x: torch.Tensor, keys: torch.Tensor | None) -> torch.Generator | KeyedGenerator | None:
        if self.seed is None:
            return None
        if keys is not None:
            return KeyedGenerator(int(self.seed), keys.to(x.device))
        return torch.Generator(device=x.device).manual_seed(int(self.seed))

    def _check(self, x: torch.Tensor, y: torch.Tensor, eps: float, target: torch.Tensor | None) -> float:
        eps = float(eps)
        if not eps >= 0:  # also rejects nan
            raise ValueError(f"eps must be a number >= 0, got {eps}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating-point image batch in [0, 1], got dtype {x.dtype}")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if self.targeted and target is None:
            raise ValueError(f"{type(self).__name__} is targeted: pass target=...")
        if not self.targeted and target is not None:
            raise ValueError(f"{type(self).__name__} is untargeted: create it with targeted=True to use target")
        if target is not None and target.shape != y.shape:
            raise ValueError(f"target shape {tuple(target.shape)} differs from y shape {tuple(y.shape)}")
        return eps

    def _repr_args(self) -> dict:
        return {"norm": self.norm.value, "objective": repr(self.objective), "targeted": self.targeted}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._repr_args().items())
        return f"{type(self).__name__}({args})"
