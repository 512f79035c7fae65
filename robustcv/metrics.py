"""Metrics as mergeable states: one per task, combined by addition across batches and processes.

Classification and segmentation keep one confusion matrix (counts add up); multi-label keeps
the scores and labels (they concatenate). ``state.update(logits, y)`` folds a batch in,
``a + b`` merges two states, ``state.compute()`` gives the metrics dictionary.
"""
from __future__ import annotations

import abc
from typing import Any, Sequence

import torch


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``cm[i, j]`` = number of samples of true class i predicted as j."""
    index = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_report(y_true: torch.Tensor, y_pred: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class accuracy, precision/recall/F1 (macro, micro, weighted), confusion matrix.

    Classes with no true samples are left out of the macro/weighted means, like scikit-learn's
    ``labels`` present in the data; a zero division counts as 0.
    """
    return report_from_matrix(confusion_matrix(y_true, y_pred, len(classes)), classes)


def report_from_matrix(matrix: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """:func:`classification_report` from an already accumulated confusion matrix."""
    cm = matrix.double()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = tp / predicted.clamp_min(1)
    recall = tp / support.clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    present = (support > 0) | (predicted > 0)
    weights = support / support.sum().clamp_min(1)
    total = cm.sum().clamp_min(1)
    micro = float(tp.sum() / total)
    report: dict[str, Any] = {
        "accuracy": micro,
        "per_class_accuracy": {c: float(recall[i]) for i, c in enumerate(classes) if support[i] > 0},
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "f1_macro": float(f1[present].mean()),
        "precision_micro": micro,
        "recall_micro": micro,
        "f1_micro": micro,
        "precision_weighted": float((precision * weights).sum()),
        "recall_weighted": float((recall * weights).sum()),
        "f1_weighted": float((f1 * weights).sum()),
        "confusion_matrix": cm.long().tolist(),
        "n": int(total),
    }
    return report


class MetricState(abc.ABC):
    """A mergeable metric accumulator: ``update`` per batch, ``+`` to merge, ``compute`` at the end."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)

    @abc.abstractmethod
    def update(self, logits: torch.Tensor, y: torch.Tensor) -> "MetricState":
        """Fold one batch of logits and labels in; returns ``self``."""

    @abc.abstractmethod
    def __add__(self, other: "MetricState") -> "MetricState":
        """The state of both batches' data together."""

    @abc.abstractmethod
    def compute(self) -> dict[str, Any]:
        """The metrics of everything folded in."""

    @property
    @abc.abstractmethod
    def accuracy(self) -> float:
        """The task's accuracy-like figure (pixel accuracy, exact match) for progress bars."""

    def running(self) -> tuple[str, float]:
        """The figure a progress bar shows while batches come in: ``(label, value)``."""
        return "acc", self.accuracy


class ClassificationState(MetricState):
    """A ``[K, K]`` confusion matrix over images (true class i predicted as j)."""

    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__(classes)
        self.matrix = torch.zeros(len(self.classes), len(self.classes), dtype=torch.long)

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> "ClassificationState":  # noqa: D102
        pred = logits.detach().argmax(dim=1).cpu()
        self.matrix += confusion_matrix(y.detach().cpu(), pred, len(self.classes))
        return self

    def __add__(self, other: "ClassificationState") -> "ClassificationState":  # noqa: D105
        merged = type(self)(self.classes)
        merged.matrix = self.matrix + other.matrix
        return merged

    @property
    def accuracy(self) -> float:  # noqa: D102
        return float(self.matrix.diag().sum() / self.matrix.sum().clamp_min(1))

    def compute(self) -> dict[str, Any]:  # noqa: D102
        return report_from_matrix(self.matrix, self.classes)


class SegmentationState(ClassificationState):
    """A ``[K, K]`` confusion matrix over the valid pixels (torchvision references' convention)."""

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


class MultilabelState(MetricState):
    """Scores and 0/1 labels of every image (they concatenate); metrics at ``thresholds``."""

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
        from robustcv.metrics_multilabel import multilabel_metrics

        scores, labels = self._stacked()
        report = multilabel_metrics(scores, labels, self.thresholds, self.classes)
        report["n"] = int(len(scores))
        return report


def segmentation_metrics(matrix: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """mIoU, per-class IoU, pixel accuracy and mean class accuracy from a pixel confusion matrix.

    A class absent from both the target and the prediction has no IoU (``nan`` in
    ``per_class_iou``) and is left out of the mean, as in torchvision's references and mmseg.
    """
    cm = matrix.double()
    tp, support, predicted = cm.diag(), cm.sum(1), cm.sum(0)
    union = support + predicted - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.nan)
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
