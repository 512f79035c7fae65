"""Threat models as per-norm hooks, so L∞, L2 and L1 attacks share one algorithm (foolbox style).

Each norm supplies three operations on a batch of perturbations ``delta`` [B, ...]:

* ``random_start(x, eps, generator)``: a uniform sample from the eps ball.
* ``normalize(grad)``: the steepest-ascent direction of unit norm (sign for L∞, grad/‖grad‖₂ for L2,
  grad/‖grad‖₁ for L1: L1 attacks such as APGD-L1 take sparse steps of their own).
* ``project(delta, eps)``: the closest point of the eps ball.
"""
from __future__ import annotations

import enum

import torch

from attacks import keyed


class Norm(str, enum.Enum):
    """The distance that bounds a perturbation, in [0, 1] pixel space."""

    LINF = "linf"
    L2 = "l2"
    L1 = "l1"

    @classmethod
    def parse(cls, value: "Norm | str") -> "Norm":
        """``Norm`` from a string (``linf``/``l2``, case-insensitive); a clear ``ValueError`` otherwise."""
        try:
            return cls(str(getattr(value, "value", value)).lower())
        except ValueError:
            raise ValueError(f"unknown norm {value!r}; choose from 'linf', 'l2', 'l1'") from None


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, shaped [B, 1, 1, ...] to broadcast against ``t``."""
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))


def random_start(norm: Norm, x: torch.Tensor, eps: float, generator) -> torch.Tensor:
    """A perturbation drawn uniformly from the eps ball of ``norm`` (same shape/dtype/device as ``x``).

    ``generator``: a ``torch.Generator``, a :class:`attacks.keyed.KeyedGenerator` (per-sample
    draws) or None (torch's global RNG).
    """
    if norm is Norm.LINF:
        u = keyed.rand(x.shape, generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * eps
    if norm is Norm.L1:
        return _l1_ball_sample(x, eps, generator)
    # Uniform in the L2 ball: a uniform direction times a radius eps * U^(1/d).
    direction = keyed.randn(x.shape, generator, device=x.device, dtype=x.dtype)
    direction = direction / _flat_norm(direction).clamp_min(1e-12)
    d = x[0].numel()
    r = keyed.rand((x.shape[0],), generator, device=x.device, dtype=x.dtype) ** (1.0 / d)
    return direction * (eps * r).view(-1, *([1] * (x.dim() - 1)))


def normalize(norm: Norm, grad: torch.Tensor) -> torch.Tensor:
    """The unit-norm steepest-ascent direction for ``grad`` under ``norm``."""
    if norm is Norm.LINF:
        return grad.sign()
    if norm is Norm.L1:
        return grad / grad.flatten(1).norm(p=1, dim=1).clamp_min(1e-12).view(-1, *([1] * (grad.dim() - 1)))
    return grad / _flat_norm(grad).clamp_min(1e-12)


def project(norm: Norm, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """The closest point to ``delta`` inside the eps ball of ``norm``."""
    if norm is Norm.LINF:
        return delta.clamp(-eps, eps)
    if norm is Norm.L1:
        return project_l1_ball(delta, eps)
    factor = (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return delta * factor


def distance(norm: Norm, delta: torch.Tensor) -> torch.Tensor:
    """Per-sample size of ``delta`` [B] under ``norm``."""
    flat = delta.flatten(1)
    if norm is Norm.L1:
        return flat.abs().sum(dim=1)
    return flat.abs().amax(dim=1) if norm is Norm.LINF else flat.norm(p=2, dim=1)


def project_l1_ball(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection of each sample onto the L1 ball of radius ``eps`` (soft threshold at
    the level found by sorting, Duchi et al. 2008); samples already inside are unchanged."""
    flat = delta.flatten(1)
    size = flat.abs()
    inside = size.sum(dim=1) <= eps
    ranked, _ = size.sort(dim=1, descending=True)
    cumulative = ranked.cumsum(dim=1) - eps
    index = torch.arange(1, flat.shape[1] + 1, device=delta.device, dtype=delta.dtype)
    count = (ranked * index > cumulative).sum(dim=1, keepdim=True).clamp_min(1)
    level = (cumulative.gather(1, count - 1) / count.to(delta.dtype)).clamp_min(0)
    shrunk = flat.sign() * (size - level).clamp_min(0)
    return torch.where(inside[:, None], flat, shrunk).view_as(delta)


def _l1_ball_sample(x: torch.Tensor, eps: float, generator) -> torch.Tensor:
    """Uniform in the L1 ball: Laplace-distributed coordinates scaled to a radius eps * U^(1/d)."""
    u = keyed.rand(x.shape, generator, device=x.device, dtype=x.dtype).clamp(1e-12, 1 - 1e-7)
    sign = torch.where(keyed.rand(x.shape, generator, device=x.device, dtype=x.dtype) < 0.5, -1.0, 1.0)
    direction = sign * -torch.log1p(-u)
    direction = direction / direction.flatten(1).norm(p=1, dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    d = x[0].numel()
    r = keyed.rand((x.shape[0],), generator, device=x.device, dtype=x.dtype) ** (1.0 / d)
    return direction * (eps * r).view(-1, *([1] * (x.dim() - 1)))


def project_l1_box(x0: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection of each ``delta`` onto ``{d : ‖d‖₁ ≤ eps, 0 ≤ x0 + d ≤ 1}`` (the set
    APGD-L1 searches; Croce & Hein, "Mind the box", ICML 2021).

    Per coordinate the answer is ``sign(δ)·clip(|δ| − λ, 0, room)``, ``room`` the distance to the box
    edge ``δ`` points to; λ ≥ 0 is exact: the L1 size, piecewise linear in λ, is walked down its
    breakpoints (where a coordinate starts moving, ``|δ|``, or hits the box, ``|δ| − room``).
    """
    flat, base = delta.flatten(1), x0.flatten(1)
    size = flat.abs()
    room = torch.where(flat > 0, 1 - base, base).clamp_min(0)
    level = _l1_box_level(size, room, eps)
    moved = (size - level[:, None]).clamp_min(0).minimum(room)
    return (flat.sign() * moved).view_as(delta)


def _l1_box_level(size: torch.Tensor, room: torch.Tensor, eps: float) -> torch.Tensor:
    """The threshold λ ≥ 0 with ``Σ clip(size − λ, 0, room) = eps`` (0 where the box alone keeps
    the L1 size within eps)."""
    width = size.shape[1]
    points = torch.cat([size, size - room], dim=1)  # coordinate starts moving / reaches the box
    slope = torch.cat([torch.ones_like(size), -torch.ones_like(size)], dim=1)
    points, order = points.sort(dim=1, descending=True)
    active = slope.gather(1, order).cumsum(dim=1)  # coordinates moving just below each breakpoint
    gaps = torch.cat([points[:, :-1] - points[:, 1:], torch.zeros_like(points[:, :1])], dim=1)
    reached = torch.cat([torch.zeros_like(points[:, :1]), (active * gaps).cumsum(dim=1)[:, :-1]], dim=1)
    # reached[j]: the L1 size at λ = points[j]; find the last breakpoint still under eps.
    under = (reached < eps) & (points > 0)
    j = (under.cumsum(dim=1).argmax(dim=1, keepdim=True)).clamp(max=2 * width - 1)
    level = points.gather(1, j) - (eps - reached.gather(1, j)) / active.gather(1, j).clamp_min(1)
    fits = room.minimum(size).sum(dim=1) <= eps
    return torch.where(fits, torch.zeros_like(level[:, 0]), level[:, 0].clamp_min(0))
