"""Binary metrics: accuracy, AUROC, precision and recall of one-logit classifiers.

A :class:`BinaryState` keeps every image's logit and 0/1 label (they concatenate, so states
merge across batches and processes with ``+``, like the states in :mod:`robustcv.metrics`).
Decisions are ``logit > threshold`` (logit space, 0 = probability 0.5). AUROC is the
Mann–Whitney statistic on the logits, ties counted half, as scikit-learn's ``roc_auc_score``;
it ranks the logits rather than their sigmoids, so saturated probabilities add no ties. A
zero division (no image predicted positive, no positive image) counts as 0, as scikit-learn's
``zero_division=0``; AUROC is ``nan`` when only one class is present.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from robustcv.metrics.base import NO_INTERVAL, MetricInfo, MetricState

DEFAULT_CLASSES = ("negative", "positive")


def one_logit(logits: torch.Tensor) -> torch.Tensor:
    """``[B]`` from logits ``[B]`` or ``[B, 1]``.

    Raises:
        ValueError: any other shape (a K-class head).
    """
    if logits.dim() == 2 and logits.shape[1] == 1:
        return logits[:, 0]
    if logits.dim() != 1:
        raise ValueError(f"binary metrics need one logit per image, [B] or [B, 1]; got {tuple(logits.shape)}")
    return logits


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` ``[N]`` for the 0/1 ``labels`` ``[N]``.

    The probability that a random positive outscores a random negative (ties count half), from
    the positives' average ranks; ``nan`` unless both classes are present.
    """
    positive = labels.bool()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    values, inverse, counts = torch.unique(scores.double(), return_inverse=True, return_counts=True)
    upper = torch.cumsum(counts, 0).double()  # 1-based rank of each distinct value's last copy
    average_rank = upper - (counts.double() - 1) / 2
    rank_sum = float(average_rank[inverse][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def counts(decided: torch.Tensor, labels: torch.Tensor) -> dict[str, int]:
    """True/false positives and negatives of the bool decisions ``[N]`` against 0/1 ``labels``."""
    truth = labels.bool()
    return {"tp": int((decided & truth).sum()), "fp": int((decided & ~truth).sum()),
            "tn": int((~decided & ~truth).sum()), "fn": int((~decided & truth).sum())}


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def binary_metrics(logits: torch.Tensor, labels: torch.Tensor, threshold: float = 0.0) -> dict[str, Any]:
    """Accuracy, AUROC, precision, recall and F1 at ``threshold`` and the counts, of logits ``[N]``.

    Args:
        logits: one logit per image ``[N]``.
        labels: 0/1 ``[N]``.
        threshold: decision threshold on the logit.
    """
    tally = counts(logits > threshold, labels)
    precision = _ratio(tally["tp"], tally["tp"] + tally["fp"])
    recall = _ratio(tally["tp"], tally["tp"] + tally["fn"])
    n = len(labels)
    return {
        "accuracy": _ratio(tally["tp"] + tally["tn"], n),
        "auroc": auroc(logits, labels),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * tally["tp"], 2 * tally["tp"] + tally["fp"] + tally["fn"]),
        **tally,
        "threshold": float(threshold),
        "n": n,
    }


class BinaryState(MetricState):
    """Logits and 0/1 labels of every image (they concatenate); metrics at ``threshold``.

    Args:
        classes: the names of label 0 and label 1.
        threshold: decision threshold on the logit (0: probability 0.5).

    Example:
        >>> state = BinaryState(("even", "odd"))
        >>> for logits, y in batches:
        ...     state.update(logits, y)
        >>> (state + other_rank_state).compute()["auroc"]
    """

    METRICS = (MetricInfo("clean_accuracy", "clean accuracy"), MetricInfo("robust_accuracy", "robust accuracy"),
               MetricInfo("auroc", "AUROC", NO_INTERVAL),
               MetricInfo("precision", "precision at the threshold", NO_INTERVAL),
               MetricInfo("recall", "recall at the threshold", NO_INTERVAL),
               MetricInfo("class_robust_accuracy", "per-class robust accuracy"),
               MetricInfo("worst_case_accuracy", "worst-case accuracy over a natural sweep"),
               MetricInfo("attack_success_rate", "attack success rate", NO_INTERVAL))

    def __init__(self, classes: Sequence[str] = DEFAULT_CLASSES, threshold: float = 0.0) -> None:
        if len(classes) != 2:
            raise ValueError(f"a binary task has 2 classes, got {len(classes)}: {tuple(classes)}")
        super().__init__(classes)
        self.threshold = float(threshold)
        self.logits: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> "BinaryState":
        """Fold in one batch: logits ``[B]`` or ``[B, 1]``, labels ``[B]`` in {0, 1}.

        Raises:
            ValueError: a label other than 0 or 1, or batch sizes that differ.
        """
        z, y = one_logit(logits.detach()).float().cpu(), y.detach().reshape(-1).cpu()
        if len(z) != len(y):
            raise ValueError(f"{len(z)} logits but {len(y)} labels")
        if not bool(((y == 0) | (y == 1)).all()):
            raise ValueError("binary labels must be 0 or 1")
        self.logits.append(z)
        self.labels.append(y.long())
        return self

    def __add__(self, other: "BinaryState") -> "BinaryState":  # noqa: D105
        merged = type(self)(self.classes, self.threshold)
        merged.logits, merged.labels = self.logits + other.logits, self.labels + other.labels
        return merged

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All logits ``[N]`` and labels ``[N]`` folded in so far."""
        if not self.logits:
            return torch.zeros(0), torch.zeros(0, dtype=torch.long)
        return torch.cat(self.logits), torch.cat(self.labels)

    @property
    def accuracy(self) -> float:  # noqa: D102
        logits, labels = self.stacked()
        return float(((logits > self.threshold) == labels.bool()).float().mean()) if len(labels) else 0.0

    def compute(self) -> dict[str, Any]:  # noqa: D102
        return binary_metrics(*self.stacked(), threshold=self.threshold)
