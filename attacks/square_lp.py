"""Square's L2 and L1 searches: pairs of square windows, mass moved from one to the other.

Paper: Andriushchenko et al., "Square Attack", ECCV 2020, Sec. 3.2 (L2); the L1 variant is the
one AutoAttack runs for ``norm='L1'`` (Croce & Hein, "Mind the box", 2021). Each proposal draws
two windows per sample: the perturbation's mass in both is gathered into the first one, on top
of a fresh centred profile (concentric rings, ``+`` in one half and ``−`` in the other), and
the second one is emptied; the whole perturbation is then put back on the eps sphere (L2) or
projected on the L1 ball within the image box (L1). Every random draw is per sample (keyed).
"""
from __future__ import annotations

import torch

from attacks import keyed, norms
from attacks.norms import Norm

L1_SLACK = 1e-6
"""The L1 radius is shrunk by this relative amount, as AutoAttack does, to stay strictly inside."""


def window_side(fraction: float, h: int, w: int) -> int:
    """The window's side for a fraction ``p`` of the pixels: odd, at least 3, within the image."""
    side = max(round((fraction * h * w) ** 0.5), 3)
    side += 1 - side % 2
    return min(side, h, w)


def rings(rows: int, cols: int, power: int, device: torch.device) -> torch.Tensor:
    """``Σ_{k ≥ d} (k + 1)^−power`` at Chebyshev distance ``d`` from the centre, ``[rows, cols]``."""
    reach = max(rows // 2 + 1, cols // 2 + 1)
    i = (torch.arange(rows, device=device) - rows // 2).abs().view(-1, 1)
    j = (torch.arange(cols, device=device) - cols // 2).abs().view(1, -1)
    weights = (torch.arange(reach, device=device, dtype=torch.float64) + 1) ** -power
    tail = weights.flip(0).cumsum(0).flip(0)  # tail[d] = Σ_{k ≥ d} weights[k]
    return tail[torch.maximum(i, j).clamp(max=reach - 1)]


def profile(norm: Norm, side: int, device: torch.device) -> torch.Tensor:
    """The unit-norm window pattern ``[side, side]``: rings, positive on top, negative below."""
    power = 2 if norm is Norm.L2 else 4
    top = rings(side // 2, side, power, device)
    bottom = rings(side - side // 2, side, power, device)
    pattern = torch.cat([_unit(norm, top), -_unit(norm, bottom)]) if top.numel() else -_unit(norm, bottom)
    return _unit(norm, pattern)


def _unit(norm: Norm, t: torch.Tensor) -> torch.Tensor:
    size = t.norm(p=2) if norm is Norm.L2 else t.abs().sum()
    return t / size


def place(patterns: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Each sample's ``[s, s]`` pattern at its ``(top, left)`` in an ``[B, 1, h, w]`` zero image
    (parts outside the image are dropped)."""
    b, s = patterns.shape[0], patterns.shape[-1]
    r = torch.arange(h, device=patterns.device).view(1, h, 1) - top.view(b, 1, 1)
    c = torch.arange(w, device=patterns.device).view(1, 1, w) - left.view(b, 1, 1)
    inside = (r >= 0) & (r < s) & (c >= 0) & (c < s)
    index = (r.clamp(0, s - 1) * s + c.clamp(0, s - 1)).view(b, -1)
    values = patterns.flatten(1).gather(1, index).view(b, h, w)
    return torch.where(inside, values, torch.zeros_like(values)).unsqueeze(1)


def _oriented(norm: Norm, side: int, count: int, generator, device: torch.device) -> torch.Tensor:
    """``count`` copies of the profile ``[count, s, s]``, each transposed with probability 1/2."""
    pattern = profile(norm, side, device)
    flip = keyed.rand((count, 1, 1), generator, device, torch.float32) > 0.5
    return torch.where(flip, pattern.t(), pattern)


def _signs(shape: tuple[int, ...], generator, device: torch.device) -> torch.Tensor:
    return torch.where(keyed.rand(shape, generator, device, torch.float32) < 0.5, -1.0, 1.0).double()


def start(norm: Norm, x: torch.Tensor, eps: float, generator) -> torch.Tensor:
    """The first iterate: a grid of profiles (side h//5) with random signs per sample and channel."""
    b, c, h, w = x.shape
    side = max(h // 5, 1)
    offset = (h - 5 * side) // 2
    delta = torch.zeros(x.shape, device=x.device, dtype=torch.float64)
    for k in range(h // side):
        for m in range(w // side):
            patterns = _oriented(norm, side, b, generator, x.device)
            top = torch.full((b,), offset + k * side, device=x.device)
            left = torch.full((b,), offset + m * side, device=x.device)
            delta += place(patterns, top, left, h, w) * _signs((b, c, 1, 1), generator, x.device)
    return _finish(norm, x, delta, eps)


def propose(norm: Norm, x: torch.Tensor, current: torch.Tensor, eps: float, fraction: float,
            generator) -> torch.Tensor:
    """``current`` with the mass of two random windows moved into the first, on a fresh profile."""
    b, c, h, w = x.shape
    side = window_side(fraction, h, w)
    first, second = (keyed.rand((b, 2), generator, x.device, torch.float32) for _ in range(2))
    corners = [((u[:, 0] * (h - side + 1)).long(), (u[:, 1] * (w - side + 1)).long()) for u in (first, second)]
    ones = torch.ones((b, side, side), device=x.device, dtype=torch.float64)
    mask1, mask2 = (place(ones, top, left, h, w) > 0 for top, left in corners)
    fresh = place(_oriented(norm, side, b, generator, x.device), *corners[0], h, w)
    fresh = fresh * _signs((b, c, 1, 1), generator, x.device)
    delta = (current - x).double()
    old = delta * mask1
    moved = fresh + old / (1e-12 + _size(norm, old, (2, 3)))
    moved = moved / (1e-12 + _size(norm, moved, (2, 3))) * _window_budget(norm, delta, mask1 | mask2, eps)
    delta = torch.where(mask1, moved, torch.where(mask2, torch.zeros_like(delta), delta))
    return _finish(norm, x, delta, eps)


def _size(norm: Norm, t: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """The L2 or L1 norm of ``t`` over ``dims`` (kept as size-1 dims)."""
    return t.square().sum(dims, keepdim=True).sqrt() if norm is Norm.L2 else t.abs().sum(dims, keepdim=True)


def _window_budget(norm: Norm, delta: torch.Tensor, windows: torch.Tensor, eps: float) -> torch.Tensor:
    """The size per sample and channel ``[B, C, 1, 1]`` of the moved mass: the two windows' mass
    plus the budget the perturbation leaves unused, shared among the channels (AutoAttack's rule)."""
    c = delta.shape[1]
    inside, used = _size(norm, delta * windows, (2, 3)), _size(norm, delta, (1, 2, 3))
    if norm is Norm.L2:
        return ((eps ** 2 - used.square()).clamp_min(0) / c + inside.square()).sqrt()
    return ((eps - used).clamp_min(0) / c + inside) * c


def _finish(norm: Norm, x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """``x + δ`` back in the threat model: on the eps sphere then in [0, 1] (L2), or projected
    on the L1 ball within the image box (L1)."""
    if norm is Norm.L2:
        flat = delta.flatten(1).norm(p=2, dim=1).view(-1, 1, 1, 1)
        return (x + (eps * delta / (flat + 1e-12)).to(x.dtype)).clamp(0, 1)
    return x + norms.project_l1_box(x, delta.to(x.dtype), eps * (1 - L1_SLACK))
