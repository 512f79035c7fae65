"""``shapes``: a deterministic synthetic RGB set of geometric shapes, with per-pixel masks.

Each image holds one shape (circle, square, triangle, cross or star) of random size, position,
rotation and solid colour on a textured background (a random grating mixed with smooth blobs)
plus pixel noise. Foreground and background are drawn from opposite halves of the brightness
range so every shape is visible, but colour alone never gives the class away.

Shapes are rendered with 2x2 supersampling. For segmentation the mask is ``k`` (1-based shape
class) where a pixel is fully covered, ``0`` where it is not covered at all, and
``IGNORE_INDEX`` (255) on the one-pixel boundary band of partially covered pixels, whose true
label is ambiguous. Images are stored as uint8, like real photographs.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from robustcv.data.base import DataInfo, DataSpec, Splits, by_task
from robustcv.data.registry import register_dataset
from robustcv.data.shapes_drawing import (DEFAULT_SIZE, IGNORE_INDEX, N_IMAGES, SHAPE_CLASSES, shape_coverage,
                                          textured_backgrounds)
from robustcv.data.shapes_multilabel import build_shapes_multilabel
from robustcv.data.splitting import train_val_test_indices
from robustcv.data.tensors import ImageTensorDataset, channel_stats

__all__ = ["DEFAULT_SIZE", "IGNORE_INDEX", "N_IMAGES", "SHAPE_CLASSES", "ShapesData", "generate_shapes",
           "build_shapes_classification", "build_shapes_segmentation"]


class ShapesData(NamedTuple):
    """A generated set: ``images`` [N,3,S,S] uint8, ``masks`` [N,S,S] int64, ``labels`` [N] int64."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor


def generate_shapes(n: int = N_IMAGES, size: int = DEFAULT_SIZE, seed: int = 0) -> ShapesData:
    """Generate ``n`` images of ``size``x``size`` deterministically from ``seed``.

    Classes are exactly balanced (``n`` divisible by the number of classes) or off by one.
    """
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(SHAPE_CLASSES))[torch.randperm(n, generator=g)]
    radius = size * (0.18 + 0.18 * torch.rand(n, generator=g))
    margin = 1.15 * radius  # the farthest a corner of any shape reaches
    cx, cy = (margin + (size - 2 * margin) * torch.rand(n, generator=g) for _ in range(2))
    angle = 2 * math.pi * torch.rand(n, generator=g)
    geometry = torch.stack([cx, cy, radius, angle], dim=1)
    dark = torch.rand(n, generator=g) < 0.5
    foreground = 0.5 * torch.rand(n, 3, 1, 1, generator=g) + torch.where(dark, 0.5, 0.0).view(n, 1, 1, 1)
    background = textured_backgrounds(n, size, dark, g)
    noise = 0.04 * torch.randn(n, 3, size, size, generator=g)

    coverage = torch.zeros(n, size, size)
    for kind in range(len(SHAPE_CLASSES)):
        rows = (labels == kind).nonzero().squeeze(1)
        coverage[rows] = shape_coverage(kind, geometry[rows], size)
    alpha = coverage.unsqueeze(1)
    # In place on the big [n, 3, S, S] tensors: bg + alpha * (fg - bg) + noise, then to uint8.
    images = background.add_(alpha * (foreground - background)).add_(noise).clamp_(0, 1)
    images = images.mul_(255).add_(0.5).to(torch.uint8)  # +0.5 then truncate: round, values >= 0
    masks = torch.where(coverage >= 1.0, labels.view(n, 1, 1) + 1, 0)
    masks = torch.where((coverage > 0) & (coverage < 1), IGNORE_INDEX, masks)
    return ShapesData(images, masks.long(), labels)


def build_shapes_classification(spec: DataSpec) -> Splits:
    """``shapes`` for classification: one shape class per image."""
    return _single_shape_splits(spec, segmentation=False)


def build_shapes_segmentation(spec: DataSpec) -> Splits:
    """``shapes`` for segmentation: the shape's mask (0 background, 255 on the boundary band)."""
    return _single_shape_splits(spec, segmentation=True)


def _single_shape_splits(spec: DataSpec, segmentation: bool) -> Splits:
    """Stratified train/val/test split of ``generate_shapes(seed=spec.seed)``.

    ``spec.image_size`` (default 32) sets the rendered size. The split is the same for both
    tasks, so a classifier and a segmenter with the same seed see the same images.
    """
    size = spec.image_size or DEFAULT_SIZE
    data = generate_shapes(N_IMAGES, size, spec.seed)
    full = ImageTensorDataset(data.images, data.masks if segmentation else data.labels)
    train, val, test = (full.subset(idx) for idx in train_val_test_indices(data.labels, spec))
    mean, std = channel_stats(train.images)
    info = DataInfo(
        name="shapes",
        task=spec.task,
        classes=(("background",) + SHAPE_CLASSES) if segmentation else SHAPE_CLASSES,
        channels=3,
        image_size=(size, size),
        mean=mean,
        std=std,
        hflip_ok=True,
        ignore_index=IGNORE_INDEX if segmentation else None,
    )
    return Splits(train=train, val=val, test=test, info=info)


# For ``--task multilabel`` the images hold one to three shapes (``robustcv.data.shapes_multilabel``).
BUILDERS = {"classification": build_shapes_classification, "segmentation": build_shapes_segmentation,
            "multilabel": build_shapes_multilabel}
register_dataset("shapes", tasks=tuple(BUILDERS))(by_task(BUILDERS, "shapes"))
