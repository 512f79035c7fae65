"""Per-sample attack losses, one function per (task, loss); the objectives pick among them.

Every function returns one value per sample ``[B]``. Classification losses take logits
``[B, K]`` and labels ``[B]``; per-pixel losses take ``[B, K, H, W]`` and masks ``[B, H, W]``
and average over each image's valid pixels; multi-label losses take ``[B, K]`` logits and
0/1 label vectors. Nothing here guesses the task from a shape.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy ``[B]``."""
    return F.cross_entropy(logits, y, reduction="none")


def _own_and_best_other(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The logit of class ``y`` and the largest other logit (class dim 1)."""
    index = y.unsqueeze(1)
    own = logits.gather(1, index).squeeze(1)
    other = logits.scatter(1, index, float("-inf")).amax(dim=1)
    return own, other


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner logit margin ``max_{j≠y} z_j − z_y`` per sample ``[B]``.

    Positive means misclassified. Untargeted attacks raise it for the true label; targeted
    attacks lower it for the target (target logit versus the largest other logit).
    """
    own, other = _own_and_best_other(logits, y)
    return other - own


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020): ``(max_{j≠y} z_j − z_y) / (z_π1 − z_π3)``.

    The margin divided by the spread of the top logits, so rescaling the logits (a saturated
    softmax, defensive distillation) does not shrink it. Needs at least 3 classes.
    """
    own, other = _own_and_best_other(logits, y)
    top = logits.topk(3, dim=1).values
    return (other - own) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020): ``(z_t − z_y) / (z_π1 − (z_π3 + z_π4) / 2)``, to maximize.

    Needs at least 4 classes.
    """
    own = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    aim = logits.gather(1, target.unsqueeze(1)).squeeze(1)
    top = logits.topk(4, dim=1).values
    return (aim - own) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def _valid_mean(values: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """``[B]`` means of per-pixel ``values`` ``[B, H, W]`` over the pixels not ``ignore_index``."""
    if ignore_index is None:
        return values.flatten(1).mean(dim=1)
    valid = (y != ignore_index).to(values.dtype)
    return (values * valid).flatten(1).sum(dim=1) / valid.flatten(1).sum(dim=1).clamp_min(1)


def _safe_labels(y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    return y if ignore_index is None else y.masked_fill(y == ignore_index, 0)


def pixel_cross_entropy_map(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Per-pixel cross-entropy ``[B, H, W]``, zero on ignored pixels."""
    values = F.cross_entropy(logits, _safe_labels(y, ignore_index), reduction="none")
    return values if ignore_index is None else values.masked_fill(y == ignore_index, 0.0)


def pixel_cross_entropy(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Mean per-pixel cross-entropy over each image's valid pixels ``[B]``."""
    return _valid_mean(pixel_cross_entropy_map(logits, y, ignore_index), y, ignore_index)


def pixel_margin(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Mean per-pixel CW margin over each image's valid pixels ``[B]``."""
    return _valid_mean(margin(logits, _safe_labels(y, ignore_index)), y, ignore_index)


def multilabel_bce(logits: torch.Tensor, y: torch.Tensor, logit_thresholds: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy toward the 0/1 vector ``y``, summed over labels ``[B]``.

    The logits are shifted by the decision thresholds, so the loss is 0.5-centred at each
    label's own threshold.
    """
    shifted = logits - logit_thresholds
    return F.binary_cross_entropy_with_logits(shifted, y.to(logits.dtype), reduction="none").sum(dim=1)


def multilabel_margin(logits: torch.Tensor, y: torch.Tensor, logit_thresholds: torch.Tensor) -> torch.Tensor:
    """Minus the smallest signed per-label margin ``[B]``: positive once some decision is wrong.

    The signed margin of label k is ``(2 y_k − 1)(z_k − τ_k)`` (positive = decided as ``y_k``).
    """
    signed = (2 * y.to(logits.dtype) - 1) * (logits - logit_thresholds)
    return -signed.amin(dim=1)


def kl_divergence(logits: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(clean) || softmax(logits))`` over the class dim 1, per sample ``[B]``
    (averaged over pixels for segmentation logits)."""
    log_p = F.log_softmax(clean_logits, dim=1)
    log_q = F.log_softmax(logits, dim=1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return per_position.reshape(per_position.shape[0], -1).mean(dim=1)
