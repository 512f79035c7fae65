"""Natural-transformation sweeps: shift, rotation, noise, blur, brightness.

Each transform is a small object with ``name``, ``default_grid`` and
``apply(x, value, generator) -> x'`` (batched, result in [0, 1]; value 0 returns ``x``). A
transform may try several *variants* of one value (the 4 shift directions, ± an angle) and
:func:`natural_sweep` keeps the worst: a sample is correct at a value only if it is correct
under every variant.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attacks.frozen import eval_frozen
from attacks.objectives import Classification
from attacks.registries import add, lookup


class NaturalTransform:
    """Base: ``variants`` expands a grid value into the concrete values ``apply`` takes."""

    name: str = ""
    default_grid: tuple[float, ...] = ()

    def variants(self, value: float) -> list:
        """Concrete values to try for grid ``value``; the sweep keeps the worst."""
        return [value]

    def apply(self, x: torch.Tensor, value, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def apply_mask(self, mask: torch.Tensor, value, fill: int) -> torch.Tensor:
        """The label masks ``[B, H, W]`` under the same map as ``apply`` (nearest; uncovered
        pixels get ``fill``). Photometric transforms leave them alone."""
        return mask


class Translate(NaturalTransform):
    """Shift by whole pixels, zero fill. A scalar k shifts right; ``(dx, dy)`` any direction."""

    name, default_grid = "translate", (0, 1, 2, 3)

    def variants(self, value: float) -> list:
        k = int(value)
        return [(k, 0), (-k, 0), (0, k), (0, -k)] if k else [(0, 0)]

    def apply(self, x, value, generator=None):
        dx, dy = (int(value), 0) if not isinstance(value, tuple) else value
        out = torch.zeros_like(x)
        h, w = x.shape[-2:]
        if abs(dx) >= w or abs(dy) >= h:
            return out
        out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        return out

    def apply_mask(self, mask, value, fill):
        # Shifting mask + 1 with zero fill marks the uncovered pixels as 0.
        return (self.apply(mask + 1, value) - 1).masked_fill_(self.apply(torch.ones_like(mask), value) == 0, fill)


class Rotate(NaturalTransform):
    """Rotate by ± degrees about the center (bilinear, zero fill)."""

    name, default_grid = "rotate", (0, 5, 10, 15, 20, 30)

    def variants(self, value: float) -> list:
        return [value, -value] if value else [0.0]

    def apply(self, x, value, generator=None):
        if value == 0:
            return x.clone()
        grid = _rotation_grid(value, x.shape, x.dtype, x.device)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)

    def apply_mask(self, mask, value, fill):
        if value == 0:
            return mask.clone()
        shifted = (mask + 1).float()[:, None]  # 0 after sampling = outside the image
        grid = _rotation_grid(value, shifted.shape, shifted.dtype, mask.device)
        moved = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
        return torch.where(moved == 0, torch.full_like(mask, fill), moved.long() - 1)


def _rotation_grid(degrees: float, shape, dtype, device) -> torch.Tensor:
    """The sampling grid of a rotation by ``degrees`` about the center, for a batch of ``shape``."""
    a = math.radians(float(degrees))
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]],
                         dtype=dtype, device=device).expand(shape[0], 2, 3)
    return F.affine_grid(theta, list(shape), align_corners=False)


class GaussianNoise(NaturalTransform):
    """Add N(0, sigma²) noise (drawn from ``generator``), clipped to [0, 1]."""

    name, default_grid = "noise", (0, 0.05, 0.1, 0.2, 0.3)

    def apply(self, x, value, generator=None):
        if value == 0:
            return x.clone()
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + float(value) * noise).clamp(0, 1)


class Blur(NaturalTransform):
    """Gaussian blur with standard deviation sigma pixels (kernel 2·ceil(3σ)+1, edge replicate)."""

    name, default_grid = "blur", (0, 0.5, 1.0, 1.5, 2.0)

    def apply(self, x, value, generator=None):
        sigma = float(value)
        if sigma == 0:
            return x.clone()
        radius = max(1, math.ceil(3 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-t ** 2 / (2 * sigma ** 2))
        k = k / k.sum()
        c = x.shape[1]
        out = F.pad(x, (radius, radius, radius, radius), mode="replicate")
        out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        out = F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return out.clamp(0, 1)


class Brightness(NaturalTransform):
    """Add ± delta to every pixel, clipped to [0, 1]."""

    name, default_grid = "brightness", (0, 0.1, 0.2, 0.3, 0.5)

    def variants(self, value: float) -> list:
        return [value, -value] if value else [0.0]

    def apply(self, x, value, generator=None):
        return x.clone() if value == 0 else (x + float(value)).clamp(0, 1)


NATURAL: dict[str, NaturalTransform] = {}
"""Name → natural transform (robustcv registers each as a typed entry of its own registry)."""
for _transform in (Translate(), Rotate(), GaussianNoise(), Blur(), Brightness()):
    add(NATURAL, _transform.name, _transform)


def list_natural() -> list[str]:
    """Names of the natural transforms."""
    return sorted(NATURAL)


def get_natural(name: str) -> NaturalTransform:
    """The transform called ``name``; a one-line ``ValueError`` for unknown names."""
    return lookup(NATURAL, name, "natural transform")[1]


@dataclass
class NaturalResult:
    """Outcome of :func:`natural_sweep`.

    Attributes:
        values: the grid values, in the given order.
        accuracy: per value, the fraction correct under the worst variant.
        correct: bool [len(values), B], per-sample correctness under the worst variant.
        worst_case_accuracy: fraction of samples correct at every value of the grid.
    """

    values: list[float]
    accuracy: list[float]
    correct: torch.Tensor
    worst_case_accuracy: float


def natural_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, transform: NaturalTransform | str,
                  grid=None, generator: torch.Generator | None = None, seed: int = 0,
                  correct: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> NaturalResult:
    """Accuracy of ``model`` under ``transform`` at every value of ``grid``.

    Args:
        model: images in [0, 1] -> logits [B, K].
        x: [B, C, H, W] in [0, 1]; y: labels [B].
        transform: a :class:`NaturalTransform` or its name.
        grid: values to try; defaults to ``transform.default_grid``.
        generator: random source for noisy transforms; defaults to one seeded with ``seed``.
        seed: used only when ``generator`` is None.
        correct: per-sample correctness ``(logits, y) -> bool [B]``, a task objective's
            ``correct``; default: classification (argmax equals ``y``).

    Returns:
        NaturalResult; value 0 gives the clean accuracy exactly.
    """
    transform = get_natural(transform) if isinstance(transform, str) else transform
    values = [float(v) for v in (transform.default_grid if grid is None else grid)]
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(seed)
    correct = correct or Classification().correct
    rows = []
    with eval_frozen(model), torch.inference_mode():
        for value in values:
            ok = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            for variant in transform.variants(value):
                ok &= correct(model(transform.apply(x, variant, generator)), y)
            rows.append(ok)
    table = torch.stack(rows) if rows else torch.zeros(0, x.shape[0], dtype=torch.bool)
    accuracy = [float(r.float().mean()) for r in table]
    worst = float(table.all(dim=0).float().mean()) if rows else float("nan")
    return NaturalResult(values, accuracy, table, worst)
