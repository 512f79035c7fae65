"""AutoAttack's versions as composite attacks: a cascade of parts on what is still robust.

Each version (``standard``, ``plus``, ``rand``) runs the parts AutoAttack's ``set_version``
configures for the norm (attacks, steps, restarts, target classes, EOT iterations, Square's
queries; read from the authors' ``pyautoattack`` 0.2.0), each part only on the samples every
earlier part left robust. The parts are built by name from the attack catalogue.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from attacks.base import Attack
from attacks.keyed import KeyedGenerator
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective
from attacks.registry import get_attack, register_attack

VERSIONS = ("standard", "plus", "rand")
RAND_EOT = 20  # AutoAttack's rand version: gradients averaged over 20 draws of the model
APGD = {"steps": 100, "rho": 0.75}  # AutoAttack's APGD settings for every version
FAB = {"steps": 100, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}
SQUARE = {"queries": 5000, "p_init": 0.8, "restarts": 1, "rescale_schedule": False}


@dataclass(frozen=True)
class Part:
    """One attack of a version: its catalogue name and AutoAttack's settings for it.

    Attributes:
        name: the registered attack name (``apgd-ce``, ``fab-t``...).
        settings: constructor keywords (steps, restarts, target classes...).
        loss: the loss of the run's objective it optimizes (``None``: the part's own objective).
        eot: gradient draws per step (AutoAttack's ``eot_iter``; more than 1 only for ``rand``).
    """

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    loss: str | None = None
    eot: int = 1


def version_parts(version: str, norm: Norm | str) -> list[Part]:
    """AutoAttack's parts, in order, for ``version`` and ``norm`` (``pyautoattack``'s ``set_version``).

    Raises:
        ValueError: an unknown version.
    """
    norm = Norm.parse(norm)
    if version == "standard":
        return _standard(norm)
    if version == "plus":
        return [Part("apgd-ce", {**APGD, "restarts": 5}, "ce"), Part("apgd-dlr", {**APGD, "restarts": 5}, "dlr"),
                Part("fab", {**FAB, "restarts": 5}), Part("square", dict(SQUARE)),
                Part("apgd-t", {**APGD, "restarts": 1, "n_target_classes": 9}),
                Part("fab-t", {**FAB, "restarts": 1, "n_target_classes": 9})]
    if version == "rand":
        return [Part("apgd-ce", {**APGD, "restarts": 1}, "ce", RAND_EOT),
                Part("apgd-dlr", {**APGD, "restarts": 1}, "dlr", RAND_EOT)]
    raise ValueError(f"unknown AutoAttack version {version!r}; choose from {', '.join(VERSIONS)}")


def _standard(norm: Norm) -> list[Part]:
    # L1: APGD on the large-eps schedule, five restarts of APGD-CE and five target classes for APGD-T.
    large = {"large_reps": True} if norm is Norm.L1 else {}
    restarts, targets = (5, 5) if norm is Norm.L1 else (1, 9)
    return [Part("apgd-ce", {**APGD, "restarts": restarts, **large}, "ce"),
            Part("apgd-t", {**APGD, "restarts": 1, "n_target_classes": targets, **large}),
            Part("fab-t", {**FAB, "restarts": 1, "n_target_classes": 9}),
            Part("square", dict(SQUARE))]


def min_classes(version: str) -> int:
    """The fewest classes ``version`` can attack: 4 with the targeted DLR loss (APGD-T), else 3 (DLR)."""
    return 4 if any(p.name == "apgd-t" for p in version_parts(version, Norm.LINF)) else 3


class StackedDraws(nn.Module):
    """``draws`` forward passes of a (randomized) model, stacked: logits ``[B, draws, K]``. Unlike
    ``defenses.wrappers.EOTModel`` (mean logits), the draws stay apart so that :class:`EOTObjective`
    averages the per-draw losses, as AutoAttack's EOT does."""

    def __init__(self, model: nn.Module, draws: int) -> None:
        super().__init__()
        self.model, self.draws = model, int(draws)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.stack([self.model(x) for _ in range(self.draws)], dim=1)


class EOTObjective(Objective):
    """An objective over :class:`StackedDraws`'s stacked draws: the loss is the mean over draws (so its
    gradient is the mean of the draws' gradients, AutoAttack's EOT), success and correctness come
    from the last draw (as AutoAttack judges within an EOT step)."""

    def __init__(self, base: Objective) -> None:
        self.base = base
        self.LOSSES = base.LOSSES
        self.task, self.class_targets = base.task, base.class_targets
        super().__init__(base.loss_name if base.loss_name in self.LOSSES else base.DEFAULT_LOSS)  # loss() delegates

    def with_loss(self, loss: str | LossFn | None) -> "EOTObjective":  # noqa: D102
        return EOTObjective(self.base.with_loss(loss))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
             progress: float = 0.0) -> torch.Tensor:  # noqa: D102
        b, draws = logits.shape[:2]
        flat = self.base.loss(logits.flatten(0, 1), labels.repeat_interleave(draws, dim=0), targeted=targeted,
                              progress=progress)
        return flat.view(b, draws).mean(dim=1)

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.base.correct(logits[:, -1], y)

    def success(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:  # noqa: D102
        return self.base.success(logits[:, -1], labels, targeted)


class AutoAttack(Attack):
    r"""AutoAttack: a parameter-free ensemble, run as a cascade on the samples still robust.

    Paper: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020, https://arxiv.org/abs/2003.01690; the reference
    is the authors' code (``pyautoattack`` 0.2.0).

    Distance: L∞, L2 or L1 (``norm``). The parts and their settings are ``pyautoattack``'s
    ``set_version`` for the version and norm (:func:`version_parts`): ``standard`` runs APGD-CE,
    APGD-T, FAB-T and Square (5000 queries); ``plus`` APGD-CE, APGD-DLR, FAB, Square, APGD-T and
    FAB-T with more restarts; ``rand`` APGD-CE and APGD-DLR with gradients averaged over 20
    draws (EOT) for randomized defenses. A part attacks only what the earlier ones left robust;
    per sample the result is the first adversarial found, else the clean input. Each part is
    seeded with its own key of ``seed``, so per-sample results do not depend on the batch.

    Cost: the sum of the parts' on their survivors (the first part dominates on most models).

    Arguments:
        norm (Norm | str): ``"linf"``, ``"l2"`` or ``"l1"``. Default: ``"linf"``.
        objective (Objective | str | callable): a classification objective (3 or more classes;
            4 with APGD-T); its success test judges the cascade. Default: ``"ce"``.
        seed (int | None): seeds every part (each with its own derived seed). Default: ``None``.

    Shape:
        - model: images in [0, 1] -> logits [B, K].
        - x: [B, C, H, W] floating point in [0, 1]; y: [B] long.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> x_adv = get_attack("autoattack-standard", seed=0)(model, x, y, eps=8 / 255)
    """

    version = "standard"
    run_settings = ("norm", "objective", "seed")
    untargeted_reason = "runs AutoAttack's untargeted protocol"

    def __init__(self, norm: Norm | str = "linf", objective: Objective | str | LossFn = "ce",
                 seed: int | None = None) -> None:
        super().__init__(norm=norm, objective=objective, targeted=False, seed=seed)
        if not self.objective.class_targets:
            raise ValueError(f"AutoAttack needs a classification objective, got {self.objective!r}")
        self.parts = version_parts(self.version, self.norm)
        self.attacks = [self._build(i, part) for i, part in enumerate(self.parts)]

    def _build(self, index: int, part: Part) -> Attack:
        kwargs: dict[str, Any] = {"norm": self.norm, "seed": part_seed(self.seed, index), **part.settings}
        if part.loss is not None:
            objective = self.objective.with_loss(part.loss)
            kwargs["objective"] = EOTObjective(objective) if part.eot > 1 else objective
        return get_attack(part.name, **kwargs)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        keys = generator.keys if isinstance(generator, KeyedGenerator) else None
        with torch.no_grad():
            logits = model(x)
        self._check_classes(logits)
        steps = [(attack, part.eot) for part, attack in zip(self.parts, self.attacks)]
        robust = self.objective.correct(logits, labels)
        return cascade(model, steps, x, labels, eps, self.objective, keys, robust)[0]

    def _check_classes(self, logits: torch.Tensor) -> None:
        needed = min_classes(self.version)
        if logits.dim() != 2 or logits.shape[1] < needed:
            raise ValueError(f"AutoAttack {self.version} needs logits [B, K] with at least {needed} classes, "
                             f"got {tuple(logits.shape)}")

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "version": self.version, "seed": self.seed}


def cascade(model: nn.Module, steps: list[tuple[Attack, int]], x: torch.Tensor, labels: torch.Tensor, eps: float,
            objective: Objective, keys: torch.Tensor | None = None,
            robust: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``steps`` (attack, EOT draws) in order, each on the samples every earlier one left robust.

    A sample wrong on the clean input (``robust``: bool ``[B]``, computed when not given) is not
    attacked. Returns the adversarials (per sample the first successful one, else the clean
    input) and, per sample, the index of the step that fooled it (``-1``: none, or wrong on the
    clean input). ``keys`` key the parts' random draws per sample (see :class:`Attack`).
    """
    if robust is None:
        with torch.no_grad():
            robust = objective.correct(model(x), labels)
    robust = robust.clone()
    x_adv, fooled_by = x.clone(), torch.full((len(x),), -1, dtype=torch.long, device=x.device)
    for i, (attack, draws) in enumerate(steps):
        idx = robust.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        extra = {} if keys is None else {"keys": keys[idx]}
        adv = attack(StackedDraws(model, draws) if draws > 1 else model, x[idx], labels[idx], eps, **extra)
        with torch.no_grad():
            won = ~objective.correct(model(adv), labels[idx])
        x_adv[idx[won]], fooled_by[idx[won]] = adv[won], i
        robust[idx[won]] = False
    return x_adv, fooled_by


def part_seed(seed: int | None, index: int) -> int | None:
    """The seed of a version's ``index``-th part: its own stream of the run's ``seed``."""
    return None if seed is None else int(seed) * 1_000 + 7919 * (index + 1)


@register_attack("autoattack-standard")
class AutoAttackStandard(AutoAttack):
    """AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square); arguments as :class:`AutoAttack`."""

    version = "standard"


@register_attack("autoattack-plus")
class AutoAttackPlus(AutoAttack):
    """AutoAttack plus (APGD-CE, APGD-DLR, FAB, Square, APGD-T, FAB-T); arguments as :class:`AutoAttack`."""

    version = "plus"


@register_attack("autoattack-rand")
class AutoAttackRand(AutoAttack):
    """AutoAttack rand (APGD-CE and APGD-DLR with EOT over 20 draws); arguments as :class:`AutoAttack`."""

    version = "rand"
