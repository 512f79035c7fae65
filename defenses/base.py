"""The input-defense contract: a transform in [0, 1] pixel space that knows how to be attacked.

Every defense says whether its forward pass is honestly differentiable and whether it is
randomized, and offers ``bpda(x)``: the exact transform on the forward pass with a surrogate's
gradient on the backward pass (Athalye et al. 2018, "Obfuscated Gradients Give a False Sense of
Security"). Attackers choose between ``defense(x)`` (naive) and ``defense.bpda(x)`` (adaptive).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class _ForwardAs(torch.autograd.Function):
    """Return ``exact`` on the forward pass and route the gradient to ``surrogate``.

    Unlike ``s + (exact - s).detach()`` this is bit-exact: the forward value *is* ``exact``.
    """

    @staticmethod
    def forward(ctx, surrogate: Tensor, exact: Tensor) -> Tensor:  # noqa: D102
        return exact.detach().clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return grad, None


def forward_as(surrogate: Tensor, exact: Tensor) -> Tensor:
    """Values of ``exact``, gradients of ``surrogate`` (shapes must match)."""
    if surrogate.shape != exact.shape:
        raise ValueError(f"surrogate shape {tuple(surrogate.shape)} != exact shape {tuple(exact.shape)}")
    return _ForwardAs.apply(surrogate, exact)


def zero_grad_like(x: Tensor, out: Tensor) -> Tensor:
    """``out``'s values, attached to ``x``'s graph with an all-zero gradient.

    A non-differentiable transform then gives a naive attacker a zero gradient (it gets stuck,
    which is what "naive" evaluation must show) instead of an autograd error.
    """
    if not x.requires_grad:
        return out.detach()
    return forward_as(x * 0.0, out)


class InputDefense(nn.Module):
    """Base class for input transforms placed in front of a model, images in [0, 1].

    Subclasses implement ``transform(x)`` on a batch ``[B, C, H, W]``; inputs are never
    modified in place and outputs stay in [0, 1] with the input's shape, dtype and device.

    Class attributes:
        name: registry name (``parse_defense`` spelling).
        differentiable: True when autograd through ``transform`` yields useful gradients.
            False transforms run under ``no_grad`` and give a naive attacker a zero gradient.
        randomized: True when two calls on the same input may differ (attack with EOT).
        learned: True for trained networks (a denoiser), whose own gradients may be masked:
            the evaluation adds BPDA with the identity surrogate to the white-box attack.
    """

    name: str = "identity"
    differentiable: bool = True
    randomized: bool = False
    learned: bool = False

    def transform(self, x: Tensor) -> Tensor:
        """The real transform (override)."""
        return x

    def surrogate(self, x: Tensor) -> Tensor:
        """Differentiable stand-in used on BPDA's backward pass (identity by default)."""
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Apply the real transform; non-differentiable ones give a zero gradient."""
        _check_images(x)
        if x.shape[0] == 0:
            return x.clone()
        if self.differentiable:
            return self.transform(x)
        with torch.no_grad():
            out = self.transform(x)
        return zero_grad_like(x, out)

    def bpda(self, x: Tensor) -> Tensor:
        """Exact transform forward, ``surrogate``'s gradient backward (BPDA)."""
        _check_images(x)
        if x.shape[0] == 0:
            return x.clone()
        with torch.no_grad():
            exact = self.transform(x)
        return forward_as(self.surrogate(x), exact)

    def extra_repr(self) -> str:  # noqa: D102
        return self.spec()

    def spec(self) -> str:
        """The ``parse_defense`` string that rebuilds this defense."""
        return self.name


class Identity(InputDefense):
    """No defense (``"none"``)."""

    name = "none"


def _check_images(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected images [B, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected floating-point images in [0, 1], got dtype {x.dtype}")
