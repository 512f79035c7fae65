"""``digits``: scikit-learn's 1,797 real 8x8 handwritten digits, embedded, no network needed."""
from __future__ import annotations

from typing import Callable

import torch

from robustcv.data.base import DataInfo, DataSpec, Splits
from robustcv.data.common import warn_fixed_size
from robustcv.data.registry import register_dataset
from robustcv.data.splitting import train_val_test_indices
from robustcv.data.tensors import ImageTensorDataset, channel_stats


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All digits as ``([1797, 1, 8, 8] float32 in [0, 1], [1797] int64)``."""
    from sklearn.datasets import load_digits  # imported late: sklearn is slow to import

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().div_(16.0).unsqueeze(1)
    return images.contiguous(), torch.from_numpy(bunch.target).long()


def digit_splits(spec: DataSpec, relabel: Callable[[torch.Tensor], torch.Tensor], *, name: str, task: str,
                 classes: tuple[str, ...]) -> Splits:
    """The digits' stratified train/val/test split (stratified by the digit, whatever the labels),
    labelled by ``relabel(digits)``; mean/std measured on the train split. ``hflip_ok`` is False:
    a mirrored digit is a different (or no) digit."""
    warn_fixed_size(spec, (8, 8))
    images, digits = load_digits_tensors()
    full = ImageTensorDataset(images, relabel(digits))
    train, val, test = (full.subset(idx) for idx in train_val_test_indices(digits, spec))
    mean, std = channel_stats(train.images)
    info = DataInfo(name=name, task=task, classes=classes, channels=1, image_size=(8, 8), mean=mean, std=std,
                    hflip_ok=False)
    return Splits(train=train, val=val, test=test, info=info)


@register_dataset("digits", eps_scale=0.1)  # strokes on black: the 0..0.3 eps grid
def build_digits(spec: DataSpec) -> Splits:
    """Stratified train/val/test split of the digits; mean/std measured on the train split."""
    return digit_splits(spec, lambda digits: digits, name="digits", task="classification",
                        classes=tuple(str(d) for d in range(10)))
