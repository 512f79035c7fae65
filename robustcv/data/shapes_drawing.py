"""How ``shapes`` draws: the five shape classes, their supersampled pixel coverage and the
textured backgrounds, shared by the single-shape set (``robustcv.data.shapes``) and the
multi-shape set (``robustcv.data.shapes_multilabel``)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "star")
N_IMAGES = 3000
DEFAULT_SIZE = 32
IGNORE_INDEX = 255
_SUBSAMPLES = (0.25, 0.75)


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


def shape_coverage(kind: int, geometry: torch.Tensor, size: int) -> torch.Tensor:
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


def textured_backgrounds(n: int, size: int, dark: torch.Tensor, g: torch.Generator) -> torch.Tensor:
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
