"""Segmentation's confusion matrix: ``[K, K]`` pixel counts (true class i predicted as j, valid
pixels only), for the whole set or per image, from which mIoU, per-class IoU and pixel
accuracy follow. Classes absent from both target and prediction are skipped, as in
torchvision's references and mmseg."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from robustcv.metrics.base import BOOTSTRAP, NO_INTERVAL, MetricInfo
from robustcv.metrics.classification import ClassificationState, confusion_matrix


def image_confusions(logits: torch.Tensor, y: torch.Tensor, num_classes: int,
                     ignore_index: int | None) -> torch.Tensor:
    """Per-image pixel confusion matrices ``[B, K, K]`` (int64) of logits ``[B, K, H, W]``."""
    k = num_classes
    pred = logits.detach().argmax(dim=1).flatten(1).cpu()
    y = y.detach().flatten(1).cpu().long()
    valid = (y >= 0) & (y < k)
    if ignore_index is not None:
        valid &= y != ignore_index
    cell = torch.where(valid, y.clamp(0, k - 1) * k + pred, torch.full_like(y, k * k))  # k*k: a bin for the rest
    counts = torch.zeros(y.shape[0], k * k + 1, dtype=torch.long).scatter_add_(1, cell, torch.ones_like(cell))
    return counts[:, : k * k].view(-1, k, k)


def miou(matrices: torch.Tensor) -> torch.Tensor:
    """mIoU of each ``[..., K, K]`` matrix; classes absent from target and prediction are skipped
    (``nan`` when no class is present)."""
    cm = matrices.double()
    tp = cm.diagonal(dim1=-2, dim2=-1)
    union = cm.sum(-1) + cm.sum(-2) - tp
    iou = tp / union.clamp_min(1)
    present = union > 0
    return (iou * present).sum(-1) / present.sum(-1)


def class_iou(matrix: torch.Tensor) -> torch.Tensor:
    """IoU of each class ``[K]`` of one ``[K, K]`` matrix (float64; ``nan`` for a class absent from
    both target and prediction)."""
    cm = matrix.double()
    tp = cm.diag()
    union = cm.sum(1) + cm.sum(0) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.nan)


def miou_interval(confusions: torch.Tensor) -> tuple[float, float] | None:
    """The 95 % bootstrap interval of the dataset mIoU of per-image matrices ``[N, K, K]``:
    images resampled with replacement, each resample's matrices summed (``None`` without images)."""
    from robustcv.stats import bootstrap_counts, percentile_interval

    if confusions.shape[0] == 0:
        return None
    resampled = torch.einsum("bn,nkl->bkl", bootstrap_counts(confusions.shape[0]), confusions.double())
    return percentile_interval(miou(resampled), float(miou(confusions.sum(0))))


def pixel_accuracy(matrices: torch.Tensor) -> torch.Tensor:
    """Share of right pixels of each ``[..., K, K]`` matrix (1 where there is no valid pixel)."""
    cm = matrices.double()
    total = cm.sum((-2, -1))
    right = cm.diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.where(total > 0, right / total.clamp_min(1), torch.ones_like(total))


class SegmentationState(ClassificationState):
    """A ``[K, K]`` confusion matrix over the valid pixels (torchvision references' convention)."""

    METRICS = (MetricInfo("miou", "mIoU", BOOTSTRAP), MetricInfo("pixel_accuracy", "pixel accuracy", NO_INTERVAL),
               MetricInfo("class_iou", "per-class IoU", NO_INTERVAL),
               MetricInfo("attack_success_rate", "images fooled", NO_INTERVAL),
               MetricInfo("target_pixel_share", "target-class pixel share", NO_INTERVAL))

    def __init__(self, classes: Sequence[str], ignore_index: int | None = 255) -> None:
        super().__init__(classes)
        self.ignore_index = ignore_index

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> "SegmentationState":  # noqa: D102
        pred, y = logits.detach().argmax(dim=1).cpu().flatten(), y.detach().cpu().flatten()
        valid = (y >= 0) & (y < len(self.classes))
        if self.ignore_index is not None:
            valid &= y != self.ignore_index
        self.matrix += confusion_matrix(y[valid], pred[valid], len(self.classes))
        return self

    def __add__(self, other: "SegmentationState") -> "SegmentationState":  # noqa: D105
        merged = type(self)(self.classes, self.ignore_index)
        merged.matrix = self.matrix + other.matrix
        return merged

    def compute(self) -> dict[str, Any]:  # noqa: D102
        return segmentation_metrics(self.matrix, self.classes)

    def running(self) -> tuple[str, float]:  # noqa: D102
        return "miou", segmentation_metrics(self.matrix, self.classes)["miou"]


def segmentation_metrics(matrix: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """mIoU, per-class IoU, pixel accuracy and mean class accuracy from a pixel confusion matrix.

    A class absent from both the target and the prediction has no IoU (``nan`` in
    ``per_class_iou``) and is left out of the mean, as in torchvision's references and mmseg.
    """
    cm = matrix.double()
    tp, support = cm.diag(), cm.sum(1)
    iou = class_iou(cm)
    class_acc = torch.where(support > 0, tp / support.clamp_min(1), torch.nan)
    return {
        "miou": _nanmean(iou), "pixel_accuracy": float(tp.sum() / cm.sum().clamp_min(1)),
        "mean_class_accuracy": _nanmean(class_acc),
        "per_class_iou": {c: (None if torch.isnan(iou[i]) else float(iou[i])) for i, c in enumerate(classes)},
        "accuracy": float(tp.sum() / cm.sum().clamp_min(1)), "confusion_matrix": cm.long().tolist(),
        "n": int(cm.sum()),
    }


def _nanmean(values: torch.Tensor) -> float:
    kept = values[~torch.isnan(values)]
    return float(kept.mean()) if len(kept) else float("nan")


# ---------------------------------------------------------------- worst case over attacks
# Each attacked image keeps its own [K, K] pixel confusion matrix, so any choice of one adversarial
# per image sums to the dataset's matrix. Two metrics need two choices (Croce, Singh & Hein,
# "Towards Reliable Evaluation and Fast Training of Robust Semantic Segmentation Models", ECCV
# 2024): for pixel accuracy the attack with the fewest right pixels, optimal because the aggregate
# is a sum; for mIoU, which is not a sum of per-image terms, a greedy search that starts from the
# attack with the lowest dataset mIoU and switches an image's attack while that lowers it.
MAX_GREEDY_PASSES = 10


def worst_by_pixel_accuracy(confusions: torch.Tensor) -> torch.Tensor:
    """``[N, K, K]``: per image, the matrix of the attack (dim 0 of ``[A, N, K, K]``) with the
    fewest right pixels; ties go to the earlier attack."""
    right = confusions.diagonal(dim1=-2, dim2=-1).sum(-1)  # [A, N]
    choice = right.argmin(dim=0)
    return confusions[choice, torch.arange(confusions.shape[1])]


def worst_by_miou(confusions: torch.Tensor) -> torch.Tensor:
    """``[N, K, K]``: per image, an attack's matrix chosen greedily to lower the dataset mIoU.

    Starts from the attack with the lowest dataset mIoU; then, image by image, takes the attack
    that lowers the dataset mIoU most, if any; repeats the pass until nothing changes. The
    result is never above the best single attack's mIoU.
    """
    attacks, n = confusions.shape[:2]
    totals = confusions.sum(dim=1)  # [A, K, K]
    choice = torch.full((n,), int(miou(totals).argmin()), dtype=torch.long)
    total = totals[choice[0]].clone()
    for _ in range(MAX_GREEDY_PASSES):
        changed = False
        for i in range(n):
            candidates = total - confusions[choice[i], i] + confusions[:, i]  # [A, K, K]
            scores = miou(candidates)
            best = int(scores.argmin())
            if scores[best] < miou(total) - 1e-12:
                total, choice[i], changed = candidates[best], best, True
        if not changed:
            break
    return confusions[choice, torch.arange(n)]
