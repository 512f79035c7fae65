"""Task-aware per-sample losses and success tests (classification and segmentation).

The task is read from the logits: [B, K] is classification, [B, K, H, W] segmentation. Every
loss returns one value per sample [B]; for segmentation it is the mean over non-ignored pixels.
Untargeted attacks maximize the loss toward the true label, targeted ones minimize it toward
the target, so one function serves both.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SuccessFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _valid_and_labels(y: torch.Tensor, ignore_index: int | None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Mask of counted pixels (``None`` = all) and labels safe to index with."""
    if ignore_index is None:
        return None, y
    valid = y != ignore_index
    return valid, y.masked_fill(~valid, 0)


def _per_sample_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """[B] from [B] or [B, H, W] per-pixel values, averaging only over ``valid`` pixels."""
    if values.dim() == 1:
        return values if valid is None else values * valid
    if valid is None:
        return values.flatten(1).mean(dim=1)
    valid = valid.to(values.dtype)
    return (values * valid).flatten(1).sum(dim=1) / valid.flatten(1).sum(dim=1).clamp_min(1)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Per-sample cross-entropy [B] (per-pixel mean over non-ignored pixels for segmentation)."""
    valid, labels = _valid_and_labels(y, ignore_index)
    return _per_sample_mean(F.cross_entropy(logits, labels, reduction="none"), valid)


def margin(logits: torch.Tensor, y: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Carlini-Wagner logit margin ``max_{j≠y} z_j − z_y`` per sample [B].

    Positive means misclassified. Untargeted attacks raise it for the true label; targeted
    attacks lower it for the target (target logit versus the largest other logit).
    """
    valid, labels = _valid_and_labels(y, ignore_index)
    index = labels.unsqueeze(1)
    own = logits.gather(1, index).squeeze(1)
    other = logits.scatter(1, index, float("-inf")).amax(dim=1)
    return _per_sample_mean(other - own, valid)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {"ce": cross_entropy, "margin": margin}


def resolve_loss(loss: str | LossFn, ignore_index: int | None) -> LossFn:
    """A per-sample loss callable from a name (``ce``, ``margin``) or a user callable."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)} or pass a callable")
    fn = LOSSES[loss]
    return lambda logits, y: fn(logits, y, ignore_index)


def default_success(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per-sample success [B]: classification compares the argmax; segmentation never succeeds.

    A segmentation sample has no single "fooled" moment, so attacks never stop early on it
    unless the caller passes its own success function.
    """
    if logits.dim() != 2:
        return torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
    pred = logits.argmax(dim=1)
    return pred == labels if targeted else pred != labels
