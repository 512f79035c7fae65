"""The vocabulary of tasks every loss, prediction and metric is keyed on."""
from __future__ import annotations

from enum import Enum


class Task(str, Enum):
    """What a model predicts: one label per image, one 0/1 vector per image, or one label per pixel."""

    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    MULTILABEL = "multilabel"
