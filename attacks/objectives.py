"""Task objectives: what an attack optimizes and when it has won (foolbox's Criterion idea).

An :class:`Objective` is the one place in ``attacks`` that knows what a label is. It gives

* ``loss(logits, labels, targeted=False, progress=0.0) -> [B]``: a per-sample loss; untargeted
  attacks maximize it toward the true labels, targeted attacks minimize it toward the targets.
  Most losses serve both directions alike and ignore the keywords; losses that weigh the pixels an
  attack still has to flip need ``targeted``, and SegPGD's schedule needs ``progress``, the share
  ``(t − 1) / T`` of an iterative attack's steps already taken (0 for a single step);
* ``success(logits, labels, targeted) -> bool [B]``: fooled (untargeted) or target reached;
* ``correct(logits, y) -> bool [B]``: the sample still counts as robust;
* ``selection_score(logits, labels, targeted) -> [B] | None``: how to rank iterates and restarts
  that did not succeed, higher is better; ``None`` (the default) ranks them by the loss.

Four tasks: :class:`Classification` (labels ``[B]``), :class:`Segmentation` (masks ``[B, H, W]``
with an ``ignore_index``; an image is fooled when the fraction of fooled valid pixels reaches a
threshold), :class:`Multilabel` (0/1 vectors ``[B, K]``, sigmoid decisions) and :class:`Binary`
(one logit ``[B]`` or ``[B, 1]`` against a threshold, 0/1 labels). Two objectives
serve training-time attacks: :class:`Divergence` (TRADES' KL to the clean prediction, labels are
the clean logits) and :class:`LossObjective` (any scalar training loss; never "succeeds").
Losses are chosen by name (``ce``, ``margin``, ``dlr``, ``bce``; for binary ``bce`` and
``margin``; for segmentation also ``segpgd``, ``cospgd``, ``mce``, ``mce-bal``, ``js`` and
``mask-sph``) or given as a callable.
"""
from __future__ import annotations

import abc
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from attacks import losses

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Objective(abc.ABC):
    """Base class: a named per-sample loss plus the task's success and correctness tests.

    Args:
        loss: a name from the subclass's ``LOSSES`` or a callable ``(logits, labels) -> [B]``.
    """

    LOSSES: dict[str, LossFn] = {}
    DEFAULT_LOSS = "ce"
    task = "custom"
    # The logits are one softmax over classes per sample (``[B, K]``, labels ``[B]``), so another
    # class can be a target: what APGD-T and FAB-T need.
    class_targets = False

    def __init__(self, loss: str | LossFn = "ce") -> None:
        if not callable(loss) and loss not in self.LOSSES:
            raise ValueError(f"unknown loss {loss!r} for {self.task}; choose from "
                             f"{', '.join(self.LOSSES)} or pass a callable")
        self.loss_name = loss if isinstance(loss, str) else "custom"
        self._loss = loss if callable(loss) else self.LOSSES[loss]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
             progress: float = 0.0) -> torch.Tensor:
        """Per-sample loss ``[B]`` toward ``labels`` (true labels or targets).

        Args:
            targeted: the attack lowers the loss toward targets (else raises it toward the truth).
            progress: ``(t − 1) / T`` at step ``t`` of an attack's ``T`` steps, in [0, 1].
        Both are ignored here; :class:`Segmentation` passes them to the losses that use them.
        """
        return self._loss(logits, labels)

    @abc.abstractmethod
    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample bool ``[B]``: the prediction still counts as right for the true ``y``."""

    @abc.abstractmethod
    def success(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
        """Per-sample bool ``[B]``: fooled (untargeted) or ``labels`` (the target) reached."""

    def quality(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample score ``[B]`` in [0, 1] of the prediction against the true ``y`` (higher is
        better for the model): 1/0 correctness here; a segmenter's share of right pixels."""
        return self.correct(logits, y).float()

    def confidence(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample probability the model gives the true labels ``[B]`` (nan when undefined)."""
        return torch.full((logits.shape[0],), float("nan"), device=logits.device)

    def selection_score(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor | None:
        """Per-sample score ``[B]`` (higher is better) that picks an attack's returned point among
        iterates and restarts that did not succeed; ``None``: rank by the loss (AutoAttack's rule)."""
        return None

    def with_loss(self, loss: str | LossFn | None) -> "Objective":
        """A copy of this objective with another loss (``None``: the task's default loss)."""
        loss = self.DEFAULT_LOSS if loss is None else loss
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        Objective.__init__(clone, loss)
        return clone

    def __repr__(self) -> str:
        return f"{type(self).__name__}(loss={self.loss_name!r})"


class Classification(Objective):
    """One class per image: logits ``[B, K]``, labels ``[B]`` long; correct = argmax equals ``y``."""

    LOSSES = {"ce": losses.cross_entropy, "margin": losses.margin, "dlr": losses.dlr}
    task = "classification"
    class_targets = True

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return logits.argmax(dim=1) == y

    def success(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:  # noqa: D102
        hit = logits.argmax(dim=1) == labels
        return hit if targeted else ~hit

    def confidence(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.softmax(logits.float(), dim=1).gather(1, y[:, None]).squeeze(1)


class Segmentation(Objective):
    """One class per pixel: logits ``[B, K, H, W]``, masks ``[B, H, W]`` with ``ignore_index``.

    Losses are per-pixel values averaged over each image's valid pixels. An image is fooled when
    the fraction of its valid pixels that are wrong (untargeted) or on target (targeted) reaches
    ``threshold``; it stays "correct" while that fraction is below it.

    Args:
        loss: ``ce``, ``margin``, ``segpgd`` (SegPGD's scheduled weighting, Gu et al. 2022),
            ``cospgd`` (CosPGD's cosine weighting, Agnihotri et al. 2024), ``mce`` (SEA's masked
            CE), ``mce-bal`` (its class-balanced version), ``js`` (SEA's Jensen–Shannon
            divergence) or ``mask-sph`` (SEA's masked spherical loss; Croce et al. 2024), see
            :mod:`attacks.losses`; or a callable ``(logits, masks, ignore_index) -> [B]``.
        ignore_index: mask value left out of losses and fractions (``None``: every pixel counts).
        threshold: fooled-pixel fraction at which an image counts as fooled. Default 0.99.
    """

    LOSSES = {"ce": losses.pixel_cross_entropy, "margin": losses.pixel_margin,
              "segpgd": losses.segpgd_cross_entropy, "cospgd": losses.cospgd_cross_entropy,
              "mce": losses.masked_cross_entropy, "mce-bal": losses.masked_balanced_cross_entropy,
              "js": losses.pixel_js_divergence, "mask-sph": losses.masked_spherical}
    DIRECTED = frozenset({"segpgd", "cospgd", "mce", "mce-bal", "mask-sph"})  # weigh the pixels still to flip: need ``targeted``
    SCHEDULED = frozenset({"segpgd"})  # change over the steps: need ``progress``
    task = "segmentation"

    def __init__(self, loss: str | LossFn = "ce", ignore_index: int | None = 255,
                 threshold: float = 0.99) -> None:
        if not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.ignore_index, self.threshold = ignore_index, float(threshold)
        super().__init__(loss)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
             progress: float = 0.0) -> torch.Tensor:  # noqa: D102
        context: dict = {}
        if self.loss_name in self.DIRECTED:
            context["targeted"] = targeted
        if self.loss_name in self.SCHEDULED:
            context["progress"] = progress
        return self._loss(logits, labels, self.ignore_index, **context)

    def valid(self, labels: torch.Tensor) -> torch.Tensor:
        """Bool mask ``[B, H, W]`` of the pixels that count."""
        return torch.ones_like(labels, dtype=torch.bool) if self.ignore_index is None else labels != self.ignore_index

    def hit_fraction(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per image, the fraction of valid pixels predicted as ``labels`` (1 when none is valid)."""
        valid = self.valid(labels)
        hits = ((logits.argmax(dim=1) == labels) & valid).flatten(1).sum(1)
        count = valid.flatten(1).sum(1)
        return torch.where(count > 0, hits / count.clamp_min(1), torch.ones_like(hits, dtype=torch.float))

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (1.0 - self.hit_fraction(logits, y)) < self.threshold

    def quality(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.hit_fraction(logits, y)

    def success(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:  # noqa: D102
        hit = self.hit_fraction(logits, labels)
        return hit >= self.threshold if targeted else (1.0 - hit) >= self.threshold

    def selection_score(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor | None:
        """The share of valid pixels fooled (on target when targeted), whatever the loss: what the
        evaluation measures is right pixels, not the loss. For the losses that stop counting a
        pixel once it flips (``DIRECTED``) the highest-loss point would even be an early one; SEA
        (Croce et al. 2024) keeps the lowest-accuracy iterate for every loss."""
        hit = self.hit_fraction(logits, labels)
        return hit if targeted else 1.0 - hit

    def confidence(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        valid = self.valid(y)
        safe = y.masked_fill(~valid, 0)
        probs = torch.softmax(logits.float(), dim=1).gather(1, safe[:, None]).squeeze(1)
        return (probs * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)

    def __repr__(self) -> str:
        return (f"Segmentation(loss={self.loss_name!r}, ignore_index={self.ignore_index}, "
                f"threshold={self.threshold})")


class Multilabel(Objective):
    """Independent 0/1 decisions: logits ``[B, K]``, labels ``[B, K]`` in {0, 1}.

    A label is predicted present when its logit exceeds the logit of its probability
    threshold. The whole label set must match to be correct (exact match); an untargeted attack
    succeeds when any decision flips, a targeted one when every decision equals the target.

    Args:
        loss: ``bce`` (sum over labels), ``margin`` (the smallest per-label signed margin) or a callable.
        thresholds: probability threshold, one float or a ``[K]`` tensor (per class).
    """

    LOSSES = {"bce": losses.multilabel_bce, "margin": losses.multilabel_margin}
    DEFAULT_LOSS = "bce"
    task = "multilabel"

    def __init__(self, loss: str | LossFn = "bce", thresholds: float | torch.Tensor = 0.5) -> None:
        probs = torch.as_tensor(thresholds, dtype=torch.float32)
        if probs.numel() == 0 or not bool(((probs > 0) & (probs < 1)).all()):
            raise ValueError(f"thresholds must lie in (0, 1), got {thresholds}")
        self.logit_thresholds = torch.logit(probs.double()).float()
        super().__init__(loss)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
             progress: float = 0.0) -> torch.Tensor:  # noqa: D102
        return self._loss(logits, labels, self._thresholds(logits))

    def margins(self, logits: torch.Tensor) -> torch.Tensor:
        """``[B, K]`` logits minus their class's threshold logit: positive = predicted present.

        A per-class shift keeps each class's ranking, so average precision is the same on the
        margins as on the probabilities."""
        return logits - self._thresholds(logits)

    def decisions(self, logits: torch.Tensor) -> torch.Tensor:
        """Bool ``[B, K]``: which labels are predicted present."""
        return self.margins(logits) > 0

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (self.decisions(logits) == y.bool()).all(dim=1)

    def success(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:  # noqa: D102
        same = (self.decisions(logits) == labels.bool()).all(dim=1)
        return same if targeted else ~same

    def confidence(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p = torch.sigmoid(logits.float() - self._thresholds(logits).float())
        return torch.where(y.bool(), p, 1 - p).mean(dim=1)

    def _thresholds(self, logits: torch.Tensor) -> torch.Tensor:
        return self.logit_thresholds.to(device=logits.device, dtype=logits.dtype)


class Divergence(Objective):
    """TRADES' inner objective: ``KL(softmax(clean) || softmax(logits))`` per sample.

    ``labels`` are the clean logits (float, same shape as ``logits``); per-pixel divergences are
    averaged for segmentation logits. No sample ever "succeeds": the attack spends its budget.
    """

    task = "divergence"

    def __init__(self) -> None:
        super().__init__(losses.kl_divergence)
        self.loss_name = "kl"

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return logits.argmax(dim=1) == y.argmax(dim=1)

    def success(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:  # noqa: D102
        return torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)


class LossObjective(Objective):
    """Any training loss ``(logits, labels) -> scalar`` (a batch mean), for training-time attacks.

    The scalar is spread over the batch as ``[B]`` (each entry ``loss / B``), so the summed loss
    an attack differentiates is the training loss itself. Success never fires.
    """

    task = "training"

    def __init__(self, loss_fn: LossFn) -> None:
        super().__init__(loss_fn)
        self.loss_name = "training"

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
             progress: float = 0.0) -> torch.Tensor:  # noqa: D102
        batch = logits.shape[0]
        return self._loss(logits, labels).expand(batch) / batch

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)

    def success(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:  # noqa: D102
        return torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)


def binary_bce(shifted: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy ``[B]`` of the logit against its threshold (``z − τ``, ``[B]``) toward
    the 0/1 label ``y``: the two-class cross-entropy of the logits ``[−(z − τ)/2, (z − τ)/2]``."""
    return F.binary_cross_entropy_with_logits(shifted, y.to(shifted.dtype), reduction="none")


def binary_margin(shifted: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The signed logit against the threshold ``[B]``, oriented like the CW margin: ``(1 − 2y)(z − τ)``.

    Positive once the decision is wrong; an untargeted attack raises it, a targeted one lowers it
    toward the target. It is the two-class CW margin of ``[−(z − τ)/2, (z − τ)/2]``."""
    return (1 - 2 * y.to(shifted.dtype)) * shifted


class Binary(Objective):
    """One logit per image (a sigmoid score and a threshold): logits ``[B]`` or ``[B, 1]``,
    labels ``[B]`` in {0, 1} (any dtype).

    An image is predicted positive when its logit exceeds ``threshold`` (logit space: 0 is
    probability 0.5); correct when that decision equals the label. Losses see the logit minus the
    threshold, ``[B]``, so they are centred on the decision: ``bce`` (binary cross-entropy, the
    default) and ``margin`` (the signed logit, positive once wrong), see :func:`binary_bce` and
    :func:`binary_margin`; a callable takes the same ``(z − τ, labels) -> [B]``. Both equal the
    two-class losses of ``[−(z − τ)/2, (z − τ)/2]``, so one-logit attacks match two-logit ones.
    Losses that need three or more classes (AutoAttack's DLR) are refused with a ``ValueError``.

    Args:
        loss: ``bce``, ``margin`` or a callable.
        threshold: the decision threshold on the logit. Default 0 (probability 0.5).
    """

    LOSSES = {"bce": binary_bce, "margin": binary_margin}
    DEFAULT_LOSS = "bce"
    MULTICLASS_LOSSES = frozenset({"dlr", "dlr-targeted"})  # divide by gaps between 3 or 4 logits
    task = "binary"

    def __init__(self, loss: str | LossFn = "bce", threshold: float = 0.0) -> None:
        if not math.isfinite(float(threshold)):
            raise ValueError(f"threshold must be a finite logit, got {threshold}")
        self.threshold = float(threshold)
        _refuse_multiclass(loss)
        super().__init__(loss)

    def with_loss(self, loss: str | LossFn | None) -> "Binary":  # noqa: D102
        _refuse_multiclass(loss)
        return super().with_loss(loss)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
             progress: float = 0.0) -> torch.Tensor:  # noqa: D102
        return self._loss(self.shifted(logits), labels)

    def shifted(self, logits: torch.Tensor) -> torch.Tensor:
        """The logit minus the threshold ``[B]`` (positive: predicted positive).

        Raises:
            ValueError: ``logits`` is not ``[B]`` or ``[B, 1]`` (e.g. a two-class head).
        """
        if logits.dim() == 2 and logits.shape[1] == 1:
            logits = logits.squeeze(1)
        if logits.dim() != 1:
            raise ValueError(f"a binary objective needs one logit per image, [B] or [B, 1]; got logits of shape "
                             f"{tuple(logits.shape)} (a K-class head is a classification model)")
        return logits - self.threshold

    def decisions(self, logits: torch.Tensor) -> torch.Tensor:
        """Bool ``[B]``: which images are predicted positive (logit above the threshold)."""
        return self.shifted(logits) > 0

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.decisions(logits) == y.bool()

    def success(self, logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:  # noqa: D102
        same = self.correct(logits, labels)
        return same if targeted else ~same

    def confidence(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p = torch.sigmoid(self.shifted(logits).float())
        return torch.where(y.bool(), p, 1 - p)

    def __repr__(self) -> str:
        return f"Binary(loss={self.loss_name!r}, threshold={self.threshold})"


def _refuse_multiclass(loss: "str | LossFn | None") -> None:
    """Refuse, in one line, a loss a one-logit model cannot have."""
    if isinstance(loss, str) and loss in Binary.MULTICLASS_LOSSES:
        raise ValueError(f"the {loss} loss needs 3 or more classes (it divides by gaps between logits); "
                         f"a binary model has one logit: choose from {', '.join(Binary.LOSSES)}")


def as_objective(objective: "Objective | str | LossFn") -> Objective:
    """An objective from itself, a classification loss name, or a ``(logits, labels) -> [B]`` callable."""
    if isinstance(objective, Objective):
        return objective
    return Classification(objective)


def as_segmentation(objective: "Objective | None", loss: str, attack: str) -> Segmentation:
    """A :class:`Segmentation` objective with ``loss``, keeping ``objective``'s ignore_index and
    threshold (``None``: the defaults, ignore_index 255 and threshold 0.99).

    Raises:
        ValueError: ``objective`` is not a segmentation objective (``attack`` names the caller).
    """
    if objective is None:
        return Segmentation(loss)
    if not isinstance(objective, Segmentation):
        raise ValueError(f"{attack} attacks per-pixel labels: it needs a Segmentation objective, "
                         f"got {objective!r}")
    return objective.with_loss(loss)
