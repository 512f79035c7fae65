"""Multi-label metrics: mAP and per-class AP from the scores, F1, hamming loss and exact match at
the decision thresholds.

Average precision is scikit-learn's ``average_precision_score`` per class (step-wise precision
over recall, no interpolation). A class with no positive among the evaluated images has no AP
(``None``) and is left out of the mean, as torchmetrics and the VOC tools do. F1 counts a label
as predicted present when its probability exceeds the class's threshold; the macro mean runs
over the classes present in the truth or the predictions (the classification report's rule).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from robustcv.metrics.base import BOOTSTRAP, NO_INTERVAL, MetricInfo, MetricState

Thresholds = float | Sequence[float] | torch.Tensor


def decisions(scores: torch.Tensor, thresholds: Thresholds = 0.5) -> torch.Tensor:
    """Bool ``[N, K]``: which labels are predicted present (probability above its threshold)."""
    return scores > torch.as_tensor(thresholds, dtype=scores.dtype)


def per_class_ap(scores: torch.Tensor, labels: torch.Tensor) -> list[float | None]:
    """Average precision of each class ``[K]`` (``None`` where the class has no positive)."""
    from sklearn.metrics import average_precision_score

    y, s = labels.bool().numpy(), scores.double().numpy()
    return [float(average_precision_score(y[:, k], s[:, k])) if y[:, k].any() else None
            for k in range(y.shape[1])]


def weighted_average_precision(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """AP of one class ``[B]`` under each row of sample weights ``[B, N]`` (e.g. bootstrap counts):
    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct scores, descending, as scikit-learn's
    ``average_precision_score(..., sample_weight=w)``; ``nan`` where no positive has weight."""
    order = torch.argsort(scores, descending=True, stable=True)
    ranked, truth, w = scores[order], labels[order].double(), weights[:, order].double()
    hits, seen = torch.cumsum(w * truth, 1), torch.cumsum(w, 1)
    group_end = torch.ones_like(ranked, dtype=torch.bool)
    group_end[:-1] = ranked[1:] != ranked[:-1]  # ties share one threshold
    hits, seen = hits[:, group_end], seen[:, group_end]
    gained = torch.diff(hits, dim=1, prepend=torch.zeros_like(hits[:, :1]))
    positives = hits[:, -1]
    ap = (gained * hits / seen.clamp_min(1e-12)).sum(1) / positives.clamp_min(1e-12)
    return torch.where(positives > 0, ap, torch.nan)


def map_interval(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float] | None:
    """The 95 % bootstrap interval of mAP over images ``[N, K]`` (a resample's mAP averages the
    classes with a positive in it, as :func:`mean_ap` does)."""
    from robustcv.stats import bootstrap_counts, percentile_interval

    present = [k for k in range(scores.shape[1]) if labels[:, k].any()]
    if scores.shape[0] == 0 or not present:
        return None
    weights = torch.cat([torch.ones(1, scores.shape[0], dtype=torch.float64), bootstrap_counts(scores.shape[0])])
    per_class = torch.stack([weighted_average_precision(scores[:, k], labels[:, k].bool(), weights)
                             for k in present], 1)
    maps = torch.nanmean(per_class, 1)  # row 0: every image once, the recorded mAP
    return percentile_interval(maps[1:], float(maps[0]))


def mean_ap(aps: Sequence[float | None]) -> float:
    """The mean of the defined APs (``nan`` when none is)."""
    kept = [a for a in aps if a is not None]
    return float(np.mean(kept)) if kept else math.nan


def f1_scores(predicted: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """``(micro, macro)`` F1 of bool decisions ``[N, K]`` against 0/1 labels; a zero division is 0."""
    truth = labels.bool()
    tp = (predicted & truth).sum(0).double()
    fp = (predicted & ~truth).sum(0).double()
    fn = (~predicted & truth).sum(0).double()
    micro = float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()).clamp_min(1))
    present = (tp + fp + fn) > 0
    per_class = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    macro = float(per_class[present].mean()) if present.any() else math.nan
    return micro, macro


def hamming_loss(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of wrong label decisions over all images and classes."""
    return float((predicted != labels.bool()).double().mean()) if predicted.numel() else math.nan


def exact_match(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of images whose whole label set is right."""
    return float((predicted == labels.bool()).all(dim=1).double().mean()) if len(predicted) else math.nan


def multilabel_metrics(scores: torch.Tensor, labels: torch.Tensor, thresholds: Thresholds = 0.5,
                       classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Every multi-label metric of probabilities ``scores`` ``[N, K]`` against 0/1 ``labels``.

    Returns:
        ``map``, ``per_class_ap`` (class name -> AP or None), ``f1_micro``, ``f1_macro``,
        ``hamming_loss``, ``exact_match`` and ``accuracy`` (the exact match again: the figure
        progress bars and ``val_accuracy`` show).
    """
    classes = classes or [f"class_{k}" for k in range(scores.shape[1])]
    predicted = decisions(scores, thresholds)
    aps = per_class_ap(scores, labels)
    micro, macro = f1_scores(predicted, labels)
    match = exact_match(predicted, labels)
    return {"map": mean_ap(aps), "per_class_ap": dict(zip(classes, aps)), "f1_micro": micro, "f1_macro": macro,
            "hamming_loss": hamming_loss(predicted, labels), "exact_match": match, "accuracy": match}


class MultilabelState(MetricState):
    """Scores and 0/1 labels of every image (they concatenate); metrics at ``thresholds``."""

    METRICS = (MetricInfo("clean_accuracy", "clean exact match"), MetricInfo("robust_accuracy", "robust exact match"),
               MetricInfo("map", "mAP", BOOTSTRAP), MetricInfo("f1_macro", "F1 macro", NO_INTERVAL),
               MetricInfo("f1_micro", "F1 micro", NO_INTERVAL), MetricInfo("hamming_loss", "Hamming loss", NO_INTERVAL),
               MetricInfo("class_flip_rate", "per-class flip rate", NO_INTERVAL))

    def __init__(self, classes: Sequence[str], thresholds: float | torch.Tensor = 0.5) -> None:
        super().__init__(classes)
        self.thresholds = thresholds
        self.scores: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> "MultilabelState":  # noqa: D102
        self.scores.append(torch.sigmoid(logits.detach().float()).cpu())
        self.labels.append(y.detach().cpu().float())
        return self

    def __add__(self, other: "MultilabelState") -> "MultilabelState":  # noqa: D105
        merged = type(self)(self.classes, self.thresholds)
        merged.scores, merged.labels = self.scores + other.scores, self.labels + other.labels
        return merged

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        k = len(self.classes)
        if not self.scores:
            return torch.zeros(0, k), torch.zeros(0, k)
        return torch.cat(self.scores), torch.cat(self.labels)

    @property
    def accuracy(self) -> float:  # noqa: D102
        scores, labels = self._stacked()
        if not len(scores):
            return 0.0
        decided = scores > torch.as_tensor(self.thresholds, dtype=scores.dtype)
        return float((decided == labels.bool()).all(dim=1).float().mean())

    def running(self) -> tuple[str, float]:  # noqa: D102
        return "exact", self.accuracy

    def compute(self) -> dict[str, Any]:  # noqa: D102
        scores, labels = self._stacked()
        report = multilabel_metrics(scores, labels, self.thresholds, self.classes)
        report["n"] = int(len(scores))
        return report


def worst_margins(correct: torch.Tensor, confidence: torch.Tensor, margins: torch.Tensor) -> torch.Tensor:
    """Per image (and eps), the margins of the attack along dim 0 that fooled it, and among those
    (or all, if none did) the one that left the least confidence in the true labels; ties go to
    the earlier attack. ``correct``, ``confidence``: ``[A, ...]``; ``margins``: ``[A, ..., K]``."""
    badness = (~correct).double() * 2.0 - torch.nan_to_num(confidence.double(), nan=1.0)
    choice = badness.argmax(dim=0, keepdim=True).unsqueeze(-1).expand(1, *margins.shape[1:])
    return margins.gather(0, choice).squeeze(0)
