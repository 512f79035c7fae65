"""``dual:A+B``: two backbones whose pooled features are concatenated into one head.

Weights: ``"imagenet"`` loads both; otherwise either ``A=SRC,B=SRC`` (each ``SRC`` is
``imagenet`` or a file path; a name left out stays randomly initialized) or a directory holding
``A.safetensors`` / ``A.pth`` / ``A.pt`` (and the same for ``B``). With ``dual:X+X`` both halves
get the same weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from robustcv.errors import UserError
from robustcv.models.nets import Backbone, ClassifierNet, Head
from robustcv.models.registry import DUAL_PATTERN, DUAL_PREFIX, get_entry
from robustcv.models.weights import WEIGHT_SUFFIXES


class DualBackbone(Backbone):
    """``cat(first(x), second(x))``; freeze plans see both as backbone."""

    def __init__(self, names: tuple[str, str], first: Backbone, second: Backbone) -> None:
        super().__init__()
        self.names = names
        self.first = first
        self.second = second
        self.out_features = first.out_features + second.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.first(x), self.second(x)], dim=1)

    def blocks(self) -> list[nn.Module]:
        return self.first.blocks() + self.second.blocks()

    def block_groups(self) -> list[list[nn.Module]]:
        return [self.first.blocks(), self.second.blocks()]

    def load_weights(self, source: str) -> None:
        sources = dual_sources(source, self.names)
        for name, part in zip(self.names, (self.first, self.second)):
            if sources.get(name):
                part.load_weights(sources[name])


def parse_dual(name: str) -> tuple[str, str]:
    """``dual:A+B`` -> ``(A, B)``; both must be registered single models."""
    parts = name.removeprefix(DUAL_PREFIX).split("+")
    if len(parts) != 2 or not all(parts):
        raise UserError(f"'{name}': a dual model is written {DUAL_PATTERN}, e.g. dual:mobilenet_v3_large+efficientnet_b0")
    for part in parts:
        get_entry(part)
    return parts[0], parts[1]


def dual_sources(source: str, names: tuple[str, str]) -> dict[str, str]:
    """Per-backbone weight sources from the forms described in the module docstring."""
    if source == "imagenet":
        return dict.fromkeys(names, "imagenet")
    if "=" in source:
        pairs = [item.split("=", 1) for item in source.split(",") if item.strip()]
        sources = {key.strip(): value.strip() for key, value in pairs}
        unknown = set(sources) - set(names)
        if unknown:
            raise UserError(f"weights for {', '.join(sorted(unknown))}, but this dual model has {' and '.join(names)}")
        return sources
    directory = Path(source).expanduser()
    if not directory.is_dir():
        raise UserError(f"weights for a dual model: 'imagenet', 'A=SRC,B=SRC' or a directory with "
                        f"A.safetensors/A.pth and B.safetensors/B.pth; got '{source}'")
    return {name: _file_in(directory, name) for name in names}


def _file_in(directory: Path, name: str) -> str:
    for suffix in WEIGHT_SUFFIXES:
        if (directory / f"{name}{suffix}").is_file():
            return str(directory / f"{name}{suffix}")
    raise UserError(f"no weights for {name} in {directory} (expected {name}.safetensors, {name}.pt or {name}.pth)")


def build_dual(name: str, *, in_channels: int, num_classes: int, hidden: int = 0, dropout: float = 0.0,
               batch_norm: bool = True, input_size: int | None = None) -> ClassifierNet:
    """Build both halves with their own builders, keep their backbones, add one head."""
    names = parse_dual(name)
    parts = [get_entry(n).builder(in_channels=in_channels, num_classes=num_classes, hidden=0, dropout=0.0,
                                  batch_norm=batch_norm, input_size=input_size).backbone for n in names]
    backbone = DualBackbone(names, parts[0], parts[1])
    return ClassifierNet(backbone, Head(backbone.out_features, num_classes, hidden=hidden, dropout=dropout))
