"""``shapes`` for ``--task multilabel``: images holding one to three different shapes.

Each image is cut into a 2x2 grid of cells; one to three of the cells (the count drawn uniformly)
each hold a shape of a different class, drawn like ``shapes``' single shape (random size,
position inside its cell, rotation, solid colour on the opposite brightness half of the
textured background, 2x2 supersampled edges, pixel noise). The label is the 0/1 vector of the
shape classes present. Splits are stratified by the label set.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from robustcv.data.base import DataSpec, Splits
from robustcv.data.multilabel_files import label_strata, multilabel_splits
from robustcv.data.shapes_drawing import DEFAULT_SIZE, N_IMAGES, SHAPE_CLASSES, shape_coverage, textured_backgrounds
from robustcv.data.splitting import train_val_test_indices

MAX_SHAPES = 3
GRID = 2  # cells per side
_RADIUS = (0.30, 0.42)  # of a cell's side


class MultiShapesData(NamedTuple):
    """A generated set: ``images`` [N, 3, S, S] uint8 and ``labels`` [N, K] int64 in {0, 1}."""

    images: torch.Tensor
    labels: torch.Tensor


def _label_sets(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the classes of its slots ``[N, MAX_SHAPES]`` (distinct; ``-1`` past its count)."""
    counts = torch.randint(1, MAX_SHAPES + 1, (n,), generator=g)
    classes = torch.rand(n, len(SHAPE_CLASSES), generator=g).argsort(dim=1)[:, :MAX_SHAPES]
    used = torch.arange(MAX_SHAPES)[None, :] < counts[:, None]
    return torch.where(used, classes, -1), used


def _geometry(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """``[N, MAX_SHAPES, 4]`` (cx, cy, radius, angle): each slot in its own cell of the grid."""
    cell = size / GRID
    cells = torch.rand(n, GRID * GRID, generator=g).argsort(dim=1)[:, :MAX_SHAPES]
    radius = cell * (_RADIUS[0] + (_RADIUS[1] - _RADIUS[0]) * torch.rand(n, MAX_SHAPES, generator=g))
    room = (cell - 2 * 1.15 * radius).clamp_min(0)  # keep every corner inside the cell
    cx = (cells % GRID) * cell + 1.15 * radius + room * torch.rand(n, MAX_SHAPES, generator=g)
    cy = (cells // GRID) * cell + 1.15 * radius + room * torch.rand(n, MAX_SHAPES, generator=g)
    angle = 2 * math.pi * torch.rand(n, MAX_SHAPES, generator=g)
    return torch.stack([cx, cy, radius, angle], dim=2)


def _slot_coverage(kinds: torch.Tensor, geometry: torch.Tensor, size: int) -> torch.Tensor:
    """Coverage ``[N, S, S]`` of one slot's shapes (zero where the slot is unused)."""
    coverage = torch.zeros(len(kinds), size, size)
    for kind in range(len(SHAPE_CLASSES)):
        rows = (kinds == kind).nonzero().squeeze(1)
        if len(rows):
            coverage[rows] = shape_coverage(kind, geometry[rows], size)
    return coverage


def generate_multishapes(n: int = N_IMAGES, size: int = DEFAULT_SIZE, seed: int = 0) -> MultiShapesData:
    """Generate ``n`` images of ``size`` x ``size`` with 1-3 shapes each, deterministically from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    kinds, used = _label_sets(n, g)
    geometry = _geometry(n, size, g)
    dark = torch.rand(n, generator=g) < 0.5
    images = textured_backgrounds(n, size, dark, g)
    offset = torch.where(dark, 0.5, 0.0).view(n, 1, 1, 1)
    for slot in range(MAX_SHAPES):
        foreground = 0.5 * torch.rand(n, 3, 1, 1, generator=g) + offset
        alpha = _slot_coverage(kinds[:, slot], geometry[:, slot], size).unsqueeze(1)
        images += alpha * (foreground - images)
    images = (images + 0.04 * torch.randn(n, 3, size, size, generator=g)).clamp_(0, 1)
    images = images.mul_(255).add_(0.5).to(torch.uint8)
    one_hot = torch.nn.functional.one_hot(kinds.clamp_min(0), len(SHAPE_CLASSES)) * used.unsqueeze(2)
    return MultiShapesData(images, one_hot.sum(dim=1).long())


def build_shapes_multilabel(spec: DataSpec) -> Splits:
    """Train/val/test splits of ``generate_multishapes(seed=spec.seed)``, stratified by label set."""
    data = generate_multishapes(N_IMAGES, spec.image_size or DEFAULT_SIZE, spec.seed)
    parts = train_val_test_indices(label_strata(data.labels), spec)
    return multilabel_splits("shapes", data.images, data.labels, SHAPE_CLASSES, parts)
