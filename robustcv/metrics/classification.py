"""Classification counts: one ``[K, K]`` confusion matrix over images, from which accuracy,
per-class accuracy and precision/recall/F1 follow."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from robustcv.metrics.base import NO_INTERVAL, MetricInfo, MetricState


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


class ClassificationState(MetricState):
    """A ``[K, K]`` confusion matrix over images (true class i predicted as j)."""

    METRICS = (MetricInfo("clean_accuracy", "clean accuracy"), MetricInfo("robust_accuracy", "robust accuracy"),
               MetricInfo("class_robust_accuracy", "per-class robust accuracy"),
               MetricInfo("worst_case_accuracy", "worst-case accuracy over a natural sweep"),
               MetricInfo("attack_success_rate", "attack success rate", NO_INTERVAL))

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
