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
import torch.nn.functional as F

from robustcv.data.base import DataInfo, DataSpec, Splits
from robustcv.data.registry import register_dataset
from robustcv.data.splitting import train_val_test_indices
from robustcv.data.tensors import ImageTensorDataset, channel_stats
from robustcv.tasks import Task

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star")
N_IMAGES = 3000
DEFAULT_SIZE = 32
IGNORE_INDEX = 255
_SUBSAMPLES = (0.25, 0.75)


class ShapesData(NamedTuple):
    """A generated set: ``images`` [N,3,S,S] uint8, ``masks`` [N,S,S] int64, ``labels`` [N] int64."""

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor


def _inside(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether points ``(u, v)`` in the shape's own frame (radius ~1) are inside shape ``kind``."""
    name = SHAPE_CLASSES[kind]
    if name == "circle":
        return u.square() + v.square() <= 0.85**2
    if name == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.75
    if name == "triangle":  # equilateral, circumradius 1.1: three half-planes at distance 0.55
        normals = [math.radians(a) for a in (90.0, 210.0, 330.0)]
        return torch.stack([u * math.cos(a) + v * math.sin(a) <= 0.55 for a in normals]).all(0)
    if name == "cross":
        return ((u.abs() <= 0.3) & (v.abs() <= 0.95)) | ((v.abs() <= 0.3) & (u.abs() <= 0.95))
    return _inside_star(u, v)


def _inside_star(u: torch.Tensor, v: torch.Tensor, points: int = 5, outer: float = 1.0, inner: float = 0.45):
    # Fold the angle into [0, pi/points]: outer tip at 0, inner corner at pi/points; then one edge.
    sector = 2 * math.pi / points
    rho, phi = torch.hypot(u, v), torch.atan2(v, u).remainder(sector)
    phi = torch.minimum(phi, sector - phi)
    c, s = math.cos(sector / 2), math.sin(sector / 2)
    nx, ny = inner * s, outer - inner * c  # normal of the edge from (outer, 0) to inner corner
    return rho * (torch.cos(phi) * nx + torch.sin(phi) * ny) <= outer * nx


def _coverage(kind: int, geometry: torch.Tensor, size: int) -> torch.Tensor:
    """Fraction of each pixel covered by the shape, from 2x2 subsamples: ``[n, S, S]``."""
    cx, cy, radius, angle = (geometry[:, i, None, None] for i in range(4))
    cos, sin = torch.cos(angle), torch.sin(angle)
    grid = torch.arange(size, dtype=torch.float32)
    covered = torch.zeros(len(geometry), size, size)
    for oy in _SUBSAMPLES:
        for ox in _SUBSAMPLES:
            dx = (grid + ox)[None, None, :] - cx
            dy = (grid + oy)[None, :, None] - cy
            u, v = (cos * dx + sin * dy) / radius, (cos * dy - sin * dx) / radius
            covered += _inside(kind, u, v).float()
    return covered / len(_SUBSAMPLES) ** 2


def _backgrounds(n: int, size: int, dark: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Textured backgrounds ``[n, 3, S, S]``: two colours mixed by a grating and smooth blobs."""
    base = 0.55 * torch.rand(n, 2, 3, 1, 1, generator=g) + torch.where(dark, 0.0, 0.45).view(n, 1, 1, 1, 1)
    coords = torch.arange(size, dtype=torch.float32) / size
    direction = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    freq = 1.0 + 3.0 * torch.rand(n, 1, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    ramp = coords[None, None, :] * torch.cos(direction) + coords[None, :, None] * torch.sin(direction)
    grating = 0.5 + 0.5 * torch.sin(2 * math.pi * freq * ramp + phase)
    blobs = F.interpolate(torch.rand(n, 1, 4, 4, generator=g), size=(size, size), mode="bicubic", align_corners=False)
    mix = (0.6 * grating.unsqueeze(1) + 0.4 * blobs).clamp(0, 1)
    return base[:, 0] + (base[:, 1] - base[:, 0]) * mix


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
    background = _backgrounds(n, size, dark, g)
    noise = 0.04 * torch.randn(n, 3, size, size, generator=g)

    coverage = torch.zeros(n, size, size)
    for kind in range(len(SHAPE_CLASSES)):
        rows = (labels == kind).nonzero().squeeze(1)
        coverage[rows] = _coverage(kind, geometry[rows], size)
    alpha = coverage.unsqueeze(1)
    # In place on the big [n, 3, S, S] tensors: bg + alpha * (fg - bg) + noise, then to uint8.
    images = background.add_(alpha * (foreground - background)).add_(noise).clamp_(0, 1)
    images = images.mul_(255).add_(0.5).to(torch.uint8)  # +0.5 then truncate: round, values >= 0
    masks = torch.where(coverage >= 1.0, labels.view(n, 1, 1) + 1, 0)
    masks = torch.where((coverage > 0) & (coverage < 1), IGNORE_INDEX, masks)
    return ShapesData(images, masks.long(), labels)


@register_dataset("shapes", tasks=(Task.CLASSIFICATION, Task.SEGMENTATION, Task.MULTILABEL))
def build_shapes(spec: DataSpec) -> Splits:
    """Stratified train/val/test split of ``generate_shapes(seed=spec.seed)``.

    ``spec.image_size`` (default 32) sets the rendered size. The split is the same for both
    tasks, so a classifier and a segmenter with the same seed see the same images. For
    ``--task multilabel`` the images hold one to three shapes (``robustcv.data.shapes_multilabel``).
    """
    if Task(spec.task) == Task.MULTILABEL:
        from robustcv.data.shapes_multilabel import build_shapes_multilabel  # its own module, built apart

        return build_shapes_multilabel(spec)
    size = spec.image_size or DEFAULT_SIZE
    data = generate_shapes(N_IMAGES, size, spec.seed)
    segmentation = Task(spec.task) == Task.SEGMENTATION
    full = ImageTensorDataset(data.images, data.masks if segmentation else data.labels)
    train, val, test = (full.subset(idx) for idx in train_val_test_indices(data.labels, spec))
    mean, std = channel_stats(train.images)
    info = DataInfo(
        name="shapes",
        task=Task.SEGMENTATION if segmentation else Task.CLASSIFICATION,
        classes=(("background",) + SHAPE_CLASSES) if segmentation else SHAPE_CLASSES,
        channels=3,
        image_size=(size, size),
        mean=mean,
        std=std,
        hflip_ok=True,
        ignore_index=IGNORE_INDEX if segmentation else None,
    )
    return Splits(train=train, val=val, test=test, info=info)
