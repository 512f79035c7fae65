"""Target labels for targeted attacks: given, random (never the true class) or least likely; for
segmentation also target masks (every pixel to one class, one class to another) and the share of
target pixels an adversarial reaches."""
from __future__ import annotations

import torch
from torch import nn

from attacks.frozen import eval_frozen

MODES = ("given", "random", "least-likely")


def make_targets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str, num_classes: int,
                 target_class: int | torch.Tensor | None = None,
                 generator: torch.Generator | None = None, ignore_index: int | None = None) -> torch.Tensor:
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
        ignore_index: for segmentation masks, the void value: those pixels keep it in the targets.

    Returns:
        long tensor like ``y``.

    Raises:
        ValueError: unknown mode, a missing or out-of-range ``target_class``, or ``num_classes`` < 2.
    """
    if num_classes < 2:
        raise ValueError(f"targeted attacks need at least 2 classes, got {num_classes}")
    return _keep_void(_targets(model, x, y, mode, num_classes, target_class, generator), y, ignore_index)


def _targets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str, num_classes: int,
             target_class, generator: torch.Generator | None) -> torch.Tensor:
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


def _keep_void(targets: torch.Tensor, y: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    return targets if ignore_index is None else targets.masked_fill(y == ignore_index, ignore_index)


def all_to_class(y: torch.Tensor, target_class: int, ignore_index: int | None = 255) -> torch.Tensor:
    """Target mask sending every valid pixel of ``y`` ``[B, H, W]`` to ``target_class`` (e.g. the
    background: "make every object vanish"); void pixels keep ``ignore_index``."""
    _check_classes(ignore_index, target_class)
    return _keep_void(torch.full_like(y, int(target_class)), y, ignore_index)


def class_to_class(y: torch.Tensor, source: int, target_class: int, ignore_index: int | None = 255) -> torch.Tensor:
    """Target mask relabelling the pixels of class ``source`` as ``target_class``; every other
    pixel keeps its true label (so the attack must also leave it alone), void ones ``ignore_index``."""
    _check_classes(ignore_index, source, target_class)
    return y.masked_fill(y == int(source), int(target_class))


def _check_classes(ignore_index: int | None, *classes: int) -> None:
    for c in classes:
        if int(c) < 0 or int(c) == ignore_index:
            raise ValueError(f"class {c} is not a class (negative, or the ignore_index {ignore_index})")


def target_share(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = 255,
                 y: torch.Tensor | None = None) -> torch.Tensor:
    """Per image ``[B]``, the share of target pixels the prediction reaches.

    Counts the valid pixels of ``target`` (not ``ignore_index``); with the true masks ``y``, only
    those whose target differs from ``y`` (the ones the attack has to change). An image with no
    pixel to count scores 1. A targeted segmentation attack succeeds where the share over all
    valid pixels reaches the objective's threshold (:meth:`Segmentation.success`).
    """
    counted = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    if y is not None:
        counted &= target != y
    hits = ((logits.argmax(dim=1) == target) & counted).flatten(1).sum(1)
    total = counted.flatten(1).sum(1)
    return torch.where(total > 0, hits / total.clamp_min(1), torch.ones_like(hits, dtype=torch.float))


def _given(y: torch.Tensor, num_classes: int, target_class) -> torch.Tensor:
    if target_class is None:
        raise ValueError("target mode 'given' needs target_class")
    t = torch.as_tensor(target_class, device=y.device).long().expand_as(y).clone()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target class outside 0..{num_classes - 1}")
    return t
