"""What the multi-label datasets share: label sets as strata, image files read once, the splits.

Images are decoded once, converted to RGB, EXIF-rotated, center-cropped to a square and resized
to ``size`` (``imagefolder``'s reader), then held in memory as one uint8 tensor; labels are
``[N, K]`` int64 0/1 vectors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from robustcv.data.base import DataInfo, Splits
from robustcv.data.imagefolder import load_image
from robustcv.data.tensors import ImageTensorDataset, channel_stats
from robustcv.errors import UserError

DEFAULT_SIZE = 64
RARE = 10  # label sets seen fewer times share one stratum, so a split still shuffles them


def label_strata(labels: torch.Tensor, min_count: int = RARE) -> torch.Tensor:
    """One stratum per label set (``[N]`` int64), label sets rarer than ``min_count`` pooled into one.

    Stratifying by every distinct set of a 20-class dataset would leave most strata with one
    image, and the split would follow the order of the sets instead of a shuffle.
    """
    _, inverse, counts = torch.unique(labels.long(), dim=0, return_inverse=True, return_counts=True)
    return torch.where(counts[inverse] >= min_count, inverse, -1)


def read_images(paths: Sequence[Path], size: int) -> torch.Tensor:
    """Decode every file to ``[N, 3, size, size]`` uint8; an unreadable file is a ``UserError`` naming it."""
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"image file '{path}' is missing")
        try:
            images.append(load_image(Path(path), size))
        except (OSError, ValueError, SyntaxError) as err:  # what PIL raises on unreadable files
            raise UserError(f"cannot read image file '{path}': {err}") from None
    if not images:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    return torch.from_numpy(np.stack(images))


def multilabel_splits(name: str, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                      parts: Sequence[torch.Tensor]) -> Splits:
    """Train/val/test datasets of the rows ``parts`` (indices, in that order) and their ``DataInfo``;
    the normalization statistics come from the training images."""
    full = ImageTensorDataset(images, labels.long())
    train, val, test = (full.subset(idx) for idx in parts)
    mean, std = channel_stats(train.images)
    info = DataInfo(name=name, task="multilabel", classes=tuple(classes), channels=3,
                    image_size=tuple(images.shape[-2:]), mean=mean, std=std, hflip_ok=True)
    return Splits(train=train, val=val, test=test, info=info)
