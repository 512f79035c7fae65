"""Metrics as mergeable states: one per metric family, combined by addition across batches and
processes (classification counts, a segmentation confusion matrix, multi-label scores).

``state.update(logits, y)`` folds a batch in, ``a + b`` merges two states, ``state.compute()``
gives the metrics dictionary. Each state declares the record metrics its family reports
(:class:`MetricInfo`: name, label, interval kind), which the tasks and the report ask.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Sequence

import torch

WILSON = "wilson"  # a proportion of samples: Wilson score interval
BOOTSTRAP = "bootstrap"  # a set-level figure (mIoU, mAP): images resampled with replacement
NO_INTERVAL = "none"


@dataclass(frozen=True)
class MetricInfo:
    """A record metric: its name in ``results.json``, its label for people and the kind of its
    95 % interval (:data:`WILSON`, :data:`BOOTSTRAP` or :data:`NO_INTERVAL`)."""

    name: str
    label: str
    interval: str = WILSON


class MetricState(abc.ABC):
    """A mergeable metric accumulator: ``update`` per batch, ``+`` to merge, ``compute`` at the end.

    Attributes:
        METRICS: the record metrics this family reports under attack.
    """

    METRICS: tuple[MetricInfo, ...] = ()

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
