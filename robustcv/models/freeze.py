"""Freeze plans for transfer learning: which backbone blocks train at which epoch.

Plans (epochs count from 0):

- ``full``: everything trains.
- ``head``: only the head trains; the backbone, BatchNorm statistics included, never changes.
- ``last:N``: the head and the last ``N`` backbone blocks train (per backbone for dual models;
  ``N`` larger than the block count means all blocks).
- ``staged:E``: head only for epochs ``0..E-1``, then everything, the backbone at
  ``lr * backbone_lr_scale`` (discriminative fine-tuning).

The trainer calls ``apply`` when the optimizer is (re)built (epoch 0 and whenever ``changes_at``)
and ``set_train_mode`` at the start of every epoch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torch import nn

from robustcv.errors import UserError
from robustcv.models.wrapper import RobustModel

_PATTERN = re.compile(r"^(full|head)$|^(last|staged):(\d+)$")
PLANS = "full, head, last:N, staged:EPOCH"


def backbone_blocks(net: nn.Module) -> list[nn.Module]:
    """The backbone's ordered blocks (resnet stem + layer1..4, ``features[i]``, VGG stages, or the
    generic cut of any other torchvision classifier, see ``robustcv.models.tv_generic``)."""
    return _net(net).backbone.blocks()


@dataclass(frozen=True)
class FreezePlan:
    """Which parameters train at each epoch; build with ``FreezePlan.parse``."""

    mode: str = "full"
    count: int = 0

    @classmethod
    def parse(cls, text: str) -> "FreezePlan":
        """``full`` | ``head`` | ``last:N`` (N >= 1) | ``staged:E`` (E >= 1); else ``UserError``."""
        match = _PATTERN.match(str(text).strip())
        if not match:
            raise UserError(f"unknown freeze plan '{text}'; use one of: {PLANS}")
        if match.group(1):
            return cls(match.group(1))
        mode, count = match.group(2), int(match.group(3))
        if count < 1:
            raise UserError(f"freeze plan '{text}': the number must be at least 1")
        return cls(mode, count)

    def to_str(self) -> str:
        return self.mode if self.mode in ("full", "head") else f"{self.mode}:{self.count}"

    def changes_at(self, epoch: int) -> bool:
        """True when the trainable set at ``epoch`` differs from ``epoch - 1``."""
        return self.mode == "staged" and epoch == self.count

    def trainable_blocks(self, model: nn.Module, epoch: int) -> list[nn.Module]:
        """Backbone modules that train at ``epoch`` (``[backbone]`` when all of it trains)."""
        backbone = _net(model).backbone
        if self.mode == "full" or (self.mode == "staged" and epoch >= self.count):
            return [backbone]
        if self.mode == "last":
            return [block for group in backbone.block_groups() for block in group[-self.count:]]
        return []

    def apply(self, model: nn.Module, epoch: int, lr: float = 1e-3,
              backbone_lr_scale: float = 0.1) -> list[dict[str, Any]]:
        """Set ``requires_grad`` for ``epoch`` and return optimizer param groups (trainable only).

        Groups: ``{"name": "head", "lr": lr}`` and, when some backbone tensor trains,
        ``{"name": "backbone", "lr": lr * backbone_lr_scale}`` for ``staged`` after the switch,
        ``lr`` otherwise.
        """
        backbone = _net(model).backbone
        backbone.requires_grad_(False)
        for block in self.trainable_blocks(model, epoch):
            block.requires_grad_(True)
        in_backbone = {id(p) for p in backbone.parameters()}
        head = [p for p in model.parameters() if id(p) not in in_backbone]
        for p in head:
            p.requires_grad_(True)
        groups = [{"name": "head", "params": head, "lr": lr}]
        trainable = [p for p in backbone.parameters() if p.requires_grad]
        if trainable:
            scale = backbone_lr_scale if self.mode == "staged" else 1.0
            groups.append({"name": "backbone", "params": trainable, "lr": lr * scale})
        return groups

    def set_train_mode(self, model: nn.Module, epoch: int) -> None:
        """``model.train()``, except frozen backbone modules stay in eval mode.

        So frozen BatchNorm layers neither use batch statistics nor update their running ones,
        and the frozen backbone stays bit-identical.
        """
        model.train()
        blocks = self.trainable_blocks(model, epoch)
        backbone = _net(model).backbone
        if blocks == [backbone]:
            return
        backbone.eval()
        for block in blocks:
            block.train()


def _net(model: nn.Module) -> nn.Module:
    return model.net if isinstance(model, RobustModel) else model
