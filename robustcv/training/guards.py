"""Refusals before training starts: splits too small to train on, batches BatchNorm cannot use.

Each is a ``UserError`` (one line, exit 2) raised before the first step, so a setting that cannot
work costs no training time and leaves no checkpoint behind.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from attacks.frozen import eval_frozen
from robustcv.data.base import DataInfo, Splits
from robustcv.errors import UserError
from robustcv.models import FreezePlan


def check_splits(splits: Splits) -> None:
    """Training needs validation samples (to pick the best epoch) and test samples (to score it)."""
    sizes = {name: len(getattr(splits, name)) for name in ("train", "val", "test")}
    for name, flag in (("val", "--val-fraction"), ("test", "--test-fraction")):
        if sizes[name] == 0:
            shown = "validation" if name == "val" else "test"
            raise UserError(f"dataset '{splits.info.name}' leaves an empty {shown} split ({sizes['train']} train, "
                            f"{sizes['val']} val, {sizes['test']} test samples): raise {flag} or add images")


def smallest_batch(n_train: int, batch_size: int, world_size: int = 1) -> int:
    """The smallest batch one rank's training loader yields (see ``fitting._train_loader``: the
    last partial batch is dropped whenever the split holds more than one batch)."""
    per_rank = max(1, batch_size // world_size)
    if n_train > batch_size:
        return per_rank
    return min(per_rank, math.ceil(n_train / world_size))


def check_batch_norm(model: nn.Module, plan: FreezePlan, info: DataInfo, n_train: int, batch_size: int,
                     world_size: int = 1) -> None:
    """Refuse a batch of one when a BatchNorm layer trained at epoch 0 would see a single value
    per channel (torch raises mid-epoch: e.g. ResNet's last stage on small images, a 1-D head)."""
    if smallest_batch(n_train, batch_size, world_size) > 1:
        return
    reason = "--batch-size 1" if batch_size // world_size <= 1 else f"a training split of {n_train} image"
    plan.set_train_mode(model, 0)
    trained = {name: m for name, m in model.named_modules() if isinstance(m, _BatchNorm) and m.training}
    single = _single_value_layers(model, trained, info)
    if single:
        raise UserError(f"{reason} cannot train this model: its BatchNorm layer '{single[0]}' would see one "
                        "value per channel in a batch of one; use --batch-size 2 or more")


def _single_value_layers(model: nn.Module, layers: dict[str, nn.Module], info: DataInfo) -> list[str]:
    """Names of ``layers`` whose input holds one value per channel for a single image."""
    found: list[str] = []
    hooks = [module.register_forward_hook(_recorder(name, found)) for name, module in layers.items()]
    device = next(model.parameters()).device
    try:
        with eval_frozen(model), torch.no_grad():
            model(torch.zeros(1, info.channels, *info.image_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return found


def _recorder(name: str, found: list[str]):
    def hook(module: nn.Module, inputs: tuple, output) -> None:
        if inputs[0].shape[2:].numel() == 1:
            found.append(name)
    return hook
