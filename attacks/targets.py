"""Target labels for targeted attacks: given, random (never the true class) or least likely."""
from __future__ import annotations

import torch
from torch import nn

from attacks.frozen import eval_frozen

MODES = ("given", "random", "least-likely")


def make_targets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str, num_classes: int,
                 target_class: int | torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Targets shaped like ``y`` (works per pixel for segmentation labels too).

    Args:
        model: images in [0, 1] -> logits; used only for ``least-likely``.
        x: [B, C, H, W] images in [0, 1].
        y: true labels [B] (or [B, H, W]).
        mode: ``"given"`` (``target_class`` everywhere, or a tensor like ``y``), ``"random"``
            (uniform over the classes other than ``y``) or ``"least-likely"`` (the clean argmin).
        num_classes: number of classes K.
        target_class: the class (or tensor of classes) for ``"given"``.
        generator: random source for ``"random"``; must live on ``y``'s device.

    Returns:
        long tensor like ``y``.

    Raises:
        ValueError: unknown mode, a missing or out-of-range ``target_class``, or ``num_classes`` < 2.
    """
    if num_classes < 2:
        raise ValueError(f"targeted attacks need at least 2 classes, got {num_classes}")
    if mode == "given":
        return _given(y, num_classes, target_class)
    if mode == "random":
        # Uniform over K-1 classes, then skip over the true class.
        r = torch.randint(0, num_classes - 1, y.shape, generator=generator, device=y.device)
        return r + (r >= y).long()
    if mode == "least-likely":
        with eval_frozen(model), torch.no_grad():
            return model(x).argmin(dim=1).to(torch.long)
    raise ValueError(f"unknown target mode {mode!r}; choose from {', '.join(MODES)}")


def _given(y: torch.Tensor, num_classes: int, target_class) -> torch.Tensor:
    if target_class is None:
        raise ValueError("target mode 'given' needs target_class")
    t = torch.as_tensor(target_class, device=y.device).long().expand_as(y).clone()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target class outside 0..{num_classes - 1}")
    return t
