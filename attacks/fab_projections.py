"""FAB's inner step: the smallest move onto a hyperplane inside the [0, 1] box, per norm.

For points ``t`` [B, D], normals ``w`` [B, D] and offsets ``b`` [B], :func:`project_hyperplane_box`
returns the ``d`` of smallest norm with ``<w, t + d> = b`` and ``0 <= t + d <= 1``. Orient ``w``
so that ``<w, d>`` must rise by ``r >= 0``; coordinate ``i`` can then move by at most its
``room_i`` (to 1 where ``w_i > 0``, to 0 where ``w_i < 0``), raising ``<w, d>`` by
``|w_i| room_i`` at most. The optimum moves every coordinate toward that bound:

* L∞: ``|d_i| = min(λ, room_i)`` (a common level, capped by the box);
* L2: ``|d_i| = min(λ |w_i|, room_i)`` (the gradient direction, capped by the box);
* L1: the coordinates with the largest ``|w_i|`` first, each to its bound, the last one partly.

λ is found exactly by sorting the breakpoints (O(D log D), no iteration). Where no point of the
box reaches the hyperplane the result is the box corner closest to it (every coordinate to its
bound), as the authors' code does.
"""
from __future__ import annotations

import torch

from attacks.norms import Norm


def project_hyperplane_box(norm: Norm, t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest-``norm`` ``d`` [B, D] with ``<w, t + d> = b`` and ``t + d`` in [0, 1]^D.

    Args:
        norm: the distance minimized.
        t: points [B, D] in [0, 1].
        w: hyperplane normals [B, D].
        b: hyperplane offsets [B].
    """
    need = b - (w * t).sum(dim=1)
    w = torch.where(need[:, None] < 0, -w, w)
    need = need.abs()
    room = torch.where(w > 0, 1.0 - t, t).clamp_min(0.0) * (w != 0)
    if norm is Norm.L1:
        size = _greedy_l1(w.abs(), room, need)
    else:
        size = _levelled(w.abs(), room, need, by_weight=norm is Norm.L2)
    return w.sign() * size


def _levelled(weight: torch.Tensor, room: torch.Tensor, need: torch.Tensor, by_weight: bool) -> torch.Tensor:
    """``|d_i| = min(λ s_i, room_i)`` with ``s = weight`` (L2) or 1 (L∞), λ solving
    ``sum weight_i |d_i| = need``; the full ``room`` where even that falls short."""
    slope = weight if by_weight else (weight > 0).to(weight.dtype)
    breaks = torch.where(slope > 0, room / slope.clamp_min(1e-30), torch.zeros_like(room))
    breaks, order = breaks.sort(dim=1)
    full = (weight * room).gather(1, order).cumsum(dim=1)  # sum over the saturated coordinates
    rate = (weight * slope).sum(dim=1, keepdim=True) - (weight * slope).gather(1, order).cumsum(dim=1)
    reached = full + breaks * rate  # sum weight_i |d_i| at λ = each breakpoint, nondecreasing
    below = (reached < need[:, None]).sum(dim=1, keepdim=True)  # breakpoints λ lies above
    base = torch.where(below > 0, full.gather(1, (below - 1).clamp_min(0)), torch.zeros_like(need[:, None]))
    slope_left = torch.where(below > 0, rate.gather(1, (below - 1).clamp_min(0)),
                             (weight * slope).sum(dim=1, keepdim=True))
    level = (need[:, None] - base) / slope_left.clamp_min(1e-30)
    size = torch.minimum(level * slope, room)
    return torch.where(below < weight.shape[1], size, room)


def _greedy_l1(weight: torch.Tensor, room: torch.Tensor, need: torch.Tensor) -> torch.Tensor:
    """The cheapest coordinates per unit of ``<w, d>`` (largest ``weight``) filled first."""
    order = weight.argsort(dim=1, descending=True)
    gain = (weight * room).gather(1, order).cumsum(dim=1)
    filled = (gain < need[:, None]).sum(dim=1, keepdim=True)  # coordinates moved to their bound
    feasible = filled < weight.shape[1]
    pivot = filled.clamp_max(weight.shape[1] - 1)
    before = torch.where(filled > 0, gain.gather(1, (filled - 1).clamp_min(0)), torch.zeros_like(need[:, None]))
    partial = (need[:, None] - before) / weight.gather(1, order).gather(1, pivot).clamp_min(1e-30)
    rank = torch.arange(weight.shape[1], device=weight.device).expand_as(order)
    sorted_size = torch.where(rank < filled, room.gather(1, order), torch.zeros_like(room))
    sorted_size = sorted_size.scatter(1, pivot, torch.minimum(partial, room.gather(1, order).gather(1, pivot)))
    size = torch.zeros_like(room).scatter(1, order, sorted_size)
    return torch.where(feasible, size, room)
