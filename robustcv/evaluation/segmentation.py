"""Segmentation under attack: per-image confusion matrices and the worst case over attacks.

Each attacked image keeps its own ``[K, K]`` pixel confusion matrix (true class i predicted as
j, valid pixels only), so any choice of one adversarial per image sums to the dataset's matrix,
from which mIoU, pixel accuracy and per-class IoU follow (the training metrics' convention).

The worst case over attacks is per image, as for classifiers, but two metrics need two choices
(Croce, Singh & Hein, "Towards Reliable Evaluation and Fast Training of Robust Semantic
Segmentation Models", ECCV 2024): for pixel accuracy the attack with the fewest right pixels,
which is optimal because the aggregate is a sum; for mIoU, which is not a sum of per-image
terms, a greedy search that starts from the attack with the lowest dataset mIoU and switches an
image's attack while that lowers the dataset mIoU.
"""
from __future__ import annotations

import torch

MAX_GREEDY_PASSES = 10


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
