"""Training losses per loss family (the task object names its family; nothing here guesses).

- ``softmax``: cross-entropy with label smoothing, focal loss, class weights; targets are hard
  labels ``[B]`` or soft labels ``[B, K]`` (MixUp/CutMix).
- ``pixel-softmax``: the same per pixel, masks ``[B, H, W]`` with ``ignore_index``.
- ``sigmoid``: multi-label binary cross-entropy with ``pos_weight``, or sigmoid focal loss;
  targets are 0/1 vectors ``[B, K]``.
- ``one-logit``: the same binary cross-entropy (or focal loss) on one logit per image, ``[B]`` or
  ``[B, 1]``; targets are 0/1 labels ``[B]`` (or two-class soft labels ``[B, 2]``: their
  positive column).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``n_samples / (n_classes * count_c)``, scikit-learn's 'balanced' formula.

    Classes absent from ``labels`` get weight 1; labels outside ``[0, num_classes)`` (an
    ``ignore_index``) are not counted.
    """
    labels = labels.flatten().long()
    labels = labels[(labels >= 0) & (labels < num_classes)]
    counts = torch.bincount(labels, minlength=num_classes).double()
    present = counts > 0
    weights = torch.ones(num_classes, dtype=torch.float64)
    weights[present] = labels.numel() / (int(present.sum()) * counts[present])
    return weights.float()


def balanced_pos_weight(labels: torch.Tensor) -> torch.Tensor:
    """Per-class ``n_negative / n_positive`` for multi-label BCE (1 where a class has no positive)."""
    labels = labels.float()
    positives = labels.sum(0)
    negatives = labels.shape[0] - positives
    return torch.where(positives > 0, negatives / positives.clamp_min(1), torch.ones_like(positives))


def sigmoid_loss(logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 0.0,
                 pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-label BCE-with-logits (``gamma`` 0) or sigmoid focal loss (Lin et al. 2017), mean
    over samples and labels; ``pos_weight`` weighs each class's positive term."""
    target = target.to(logits.dtype)
    weight = None if pos_weight is None else pos_weight.to(logits.device, logits.dtype)
    per_label = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight, reduction="none")
    if gamma > 0:
        p = torch.sigmoid(logits)
        p_true = p * target + (1 - p) * (1 - target)
        per_label = per_label * (1 - p_true).pow(gamma)
    return per_label.mean()


def positive_share(target: torch.Tensor) -> torch.Tensor:
    """A one-logit target ``[B]``: the 0/1 labels, or the positive column of two-class soft labels."""
    return target[:, 1] if target.dim() == 2 else target


def make_loss(
    kind: str = "ce",
    *,
    family: str = "softmax",
    num_classes: int,
    label_smoothing: float = 0.0,
    focal_gamma: float = 2.0,
    class_weights: torch.Tensor | None = None,
    ignore_index: int | None = None,
) -> LossFn:
    """Build ``loss(logits, target) -> scalar`` for the chosen kind ("ce" or "focal") and family.

    For the ``sigmoid`` family ``class_weights`` is the per-class ``pos_weight`` and label
    smoothing does not apply.
    """
    gamma = focal_gamma if kind == "focal" else 0.0
    if family == "sigmoid":
        return lambda logits, target: sigmoid_loss(logits, target, gamma=gamma, pos_weight=class_weights)
    if family == "one-logit":
        return lambda logits, target: sigmoid_loss(logits.reshape(-1), positive_share(target), gamma=gamma,
                                                   pos_weight=class_weights)
    pixels = family == "pixel-softmax"

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pixels:  # move classes last and flatten pixels
            logits, target = logits.movedim(1, -1).reshape(-1, logits.shape[1]), target.reshape(-1)
        return focal_loss(
            logits, target, gamma=gamma, label_smoothing=label_smoothing,
            weight=class_weights, ignore_index=ignore_index, num_classes=num_classes,
        )

    return loss


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    weight: torch.Tensor | None = None,
    ignore_index: int | None = None,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Focal loss ``-sum_k t_k (1 - p_k)^gamma log p_k`` (Lin et al. 2017), mean over samples.

    At ``gamma = 0`` this is exactly (weighted, label-smoothed) cross-entropy. Logits ``[N, K]``
    with hard ``[N]`` or soft ``[N, K]`` targets; targets equal to ``ignore_index`` are excluded.
    """
    num_classes = num_classes or logits.shape[-1]
    valid = None
    if target.dim() == 1:
        if ignore_index is not None:
            valid = target != ignore_index
            logits, target = logits[valid], target[valid]
        target = F.one_hot(target.long(), num_classes).to(logits.dtype)
    # like F.cross_entropy(weight=...): normalise by the weight of each sample's (unsmoothed) target
    denom = (target * weight.to(logits.device, logits.dtype)).sum() if weight is not None else None
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / num_classes
    log_p = F.log_softmax(logits, dim=-1)
    per_class = -target * log_p
    if gamma > 0:
        per_class = per_class * (1 - log_p.exp()).pow(gamma)
    if weight is not None:
        per_class = per_class * weight.to(logits.device, logits.dtype)
        return per_class.sum() / denom.clamp_min(1e-12)
    if per_class.shape[0] == 0:
        return logits.sum() * 0.0
    return per_class.sum(dim=-1).mean()


def class_weights_for(kind: str, labels: np.ndarray | torch.Tensor, num_classes: int,
                      family: str = "softmax") -> torch.Tensor | None:
    """The class-weight tensor for a recipe's ``class_weights`` choice, or None: balanced class
    weights (from pixel frequencies for segmentation), or ``pos_weight`` for the sigmoid family."""
    if kind == "none":
        return None
    if family == "sigmoid":
        return balanced_pos_weight(torch.as_tensor(labels))
    if family == "one-logit":  # one label column: n_negative / n_positive
        return balanced_pos_weight(torch.as_tensor(labels).reshape(-1, 1)).reshape(())
    return balanced_class_weights(torch.as_tensor(labels), num_classes)
