"""Segmentation under attack: per-image confusion matrices and the worst case over attacks.

Each attacked image keeps its own ``[K, K]`` pixel confusion matrix (true class i predicted as
j, valid pixels only), so any choice of one adversarial per image sums to the dataset's matrix,
from which mIoU, pixel accuracy and per-class IoU follow (:mod:`robustcv.metrics.segmentation`,
the training metrics' own implementation).

The worst case over attacks is per image, as for classifiers, but two metrics need two choices
(Croce, Singh & Hein, "Towards Reliable Evaluation and Fast Training of Robust Semantic
Segmentation Models", ECCV 2024): for pixel accuracy the attack with the fewest right pixels,
which is optimal because the aggregate is a sum; for mIoU, which is not a sum of per-image
terms, a greedy search that starts from the attack with the lowest dataset mIoU and switches an
image's attack while that lowers the dataset mIoU.
"""
from __future__ import annotations

import torch

from robustcv.metrics.segmentation import miou

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
