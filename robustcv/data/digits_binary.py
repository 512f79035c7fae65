"""``digits_binary``: scikit-learn's 8x8 digits as a two-class task, even (0) versus odd (1).

Parity splits the ten digits five and five (891 even, 906 odd images), so the classes are
balanced and each holds digits that look alike and digits that do not: a model has to learn every
digit, not one stroke. The split is stratified by the digit, as ``digits`` does, so the two
datasets share their train, validation and test images; only the labels differ.
"""
from __future__ import annotations

import torch

from robustcv.data.base import DataSpec, Splits
from robustcv.data.digits import digit_splits
from robustcv.data.registry import register_dataset

NAME = "digits_binary"
TASK = "binary"  # the binary task's name (robustcv/tasks/binary.py)
EPS_SCALE = 0.1  # the digits' headline L-inf eps: the eps grid is the digits' 0..0.3
CLASSES = ("even", "odd")  # label 0, label 1 (the positive class)
POSITIVE_DIGITS = (1, 3, 5, 7, 9)


def binary_labels(digits: torch.Tensor) -> torch.Tensor:
    """0/1 labels ``[N]`` int64 of digit labels ``[N]``: 1 for the digits in ``POSITIVE_DIGITS``."""
    return torch.isin(digits, torch.tensor(POSITIVE_DIGITS)).long()


@register_dataset(NAME, tasks=(TASK,), eps_scale=EPS_SCALE)
def build_digits_binary(spec: DataSpec) -> Splits:
    """Even-versus-odd digits: the ``digits`` images and splits with 0/1 labels; mean/std
    measured on the train split; ``hflip_ok`` False (a mirrored digit is another digit or none).
    """
    return digit_splits(spec, binary_labels, name=NAME, task=TASK, classes=CLASSES)
