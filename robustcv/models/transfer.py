"""torchvision backbones with a new head (transfer learning): any classifier in torchvision's registry.

A row of ``ARCHS`` (or of ``FAMILY_ROWS``, by name pattern) says how one architecture becomes a
backbone when the generic rule of ``robustcv.models.tv_generic`` is not the best: the attribute
holding torchvision's classifier (replaced whole by our head; its keys are ignored when loading
weights), how to cut the body into ordered blocks for ``last:N``, and how to build it. Every
other torchvision classifier goes through the generic rule. ``ARCHS`` names are registered in
the model registry (the curated, always-tested set); the rest resolve through the torchvision
catalog (``robustcv.models.registry.register_catalog``).

Input rule (``InputAdapter``): grayscale is repeated to 3 channels; with ``input_size`` the image
is resized to that square, otherwise to the model's default (fixed-grid models such as ViT,
MaxViT, Swin; Inception-v3: 299), otherwise images whose shorter side is under the model's
minimum (at least ``MIN_SIZE``, 32) are upscaled to it, bilinearly and inside the net so attacks
differentiate through it.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from robustcv.errors import UserError
from robustcv.models.nets import Backbone, ClassifierNet, Head, InputAdapter
from robustcv.models import tv_generic
from robustcv.models.registry import ModelEntry, register_catalog, register_model
from robustcv.tasks import tasks_with_head
from robustcv.models.tv_generic import MIN_SIZE
from robustcv.models.weights import imagenet_state_dict, load_backbone_state, read_state_dict


def _resnet_blocks(body: nn.Module) -> list[nn.Module]:
    stem = nn.Sequential(body.conv1, body.bn1)  # a view over shared modules, never registered
    return [stem, body.layer1, body.layer2, body.layer3, body.layer4]


def _feature_blocks(body: nn.Module) -> list[nn.Module]:
    return list(body.features)


def _vgg_blocks(body: nn.Module) -> list[nn.Module]:
    """VGG's conv stages: ``features`` cut after each max-pool."""
    stages, current = [], []
    for layer in body.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    return stages + ([nn.Sequential(*current)] if current else [])


@dataclass(frozen=True)
class Arch:
    """How to turn one torchvision classifier into a backbone."""

    head_attr: str
    blocks: Callable[[nn.Module], list[nn.Module]]
    make: Callable[[str], nn.Module] = tv_generic.make


class _VGGBody(nn.Module):
    """VGG's conv ``features`` + global pooling, built without the 120M-parameter classifier
    (constructing it costs seconds). Keys match torchvision's, so its weights load unchanged."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        config = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}[arch.removesuffix("_bn")]
        self.features = make_layers(cfgs[config], batch_norm=arch.endswith("_bn"))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():  # torchvision VGG's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)


_RESNET = Arch("fc", _resnet_blocks)
_FEATURES = Arch("classifier", _feature_blocks)
_VGG = Arch("classifier", _vgg_blocks, make=_VGGBody)

ARCHS: dict[str, Arch] = {
    "resnet18": _RESNET, "resnet34": _RESNET, "resnet50": _RESNET,
    "mobilenet_v2": _FEATURES, "mobilenet_v3_small": _FEATURES, "mobilenet_v3_large": _FEATURES,
    "efficientnet_b0": _FEATURES, "efficientnet_b1": _FEATURES,
    "vgg11_bn": _VGG, "vgg16_bn": _VGG,
}
"""The registered (curated) architectures."""

FAMILY_ROWS: tuple[tuple[str, Arch], ...] = (
    (r"(resnet|resnext|wide_resnet)\d+(_\w+)?", _RESNET),
    (r"vgg(11|13|16|19)(_bn)?", _VGG),
    (r"mobilenet_v[23]\w*|efficientnet_\w+", _FEATURES),
)
"""Rows by name pattern: the same torchvision classes as a registered row (VGG bodies without
the 120M-parameter classifier; mobilenets and efficientnets keep their ``features`` stages)."""


def arch_row(name: str) -> Arch | None:
    """The explicit row for torchvision ``name``, or ``None`` for the generic rule."""
    if name in ARCHS:
        return ARCHS[name]
    return next((row for pattern, row in FAMILY_ROWS if re.fullmatch(pattern, name)), None)


class TorchvisionBackbone(Backbone):
    """``adapt -> body -> flatten`` where ``body`` is the torchvision model without its classifier.

    ``body``'s state dict keys are torchvision's, so torchvision checkpoints load directly.
    """

    def __init__(self, arch: str, *, input_size: int | None) -> None:
        super().__init__()
        self.arch = arch
        rule = tv_generic.input_rule(arch)
        _check_input_size(arch, input_size, rule)
        self.adapt = InputAdapter(size=input_size or rule.default, min_size=rule.minimum, to_rgb=True)
        row = arch_row(arch)
        self.body = row.make(arch) if row else tv_generic.make(arch)
        self.ignored = _remove_head(self.body, row) + tv_generic.AUX_PREFIXES.get(arch, ())
        self.out_features = _probe(arch, self.body, self.adapt.size or rule.minimum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(self.adapt(x)), 1)

    def blocks(self) -> list[nn.Module]:
        row = arch_row(self.arch)
        return row.blocks(self.body) if row else tv_generic.generic_blocks(self.body)

    def load_weights(self, source: str) -> None:
        if source == "imagenet":
            state, origin = imagenet_state_dict(self.arch), f"ImageNet weights of {self.arch}"
        else:
            state, origin = read_state_dict(source), source
        load_backbone_state(self.body, state, source=origin, model=self.arch, ignore=self.ignored)


def _remove_head(body: nn.Module, row: Arch | None) -> tuple[str, ...]:
    if row is None:
        return tv_generic.remove_head(body)
    if hasattr(body, row.head_attr):
        setattr(body, row.head_attr, nn.Identity())  # the pooled features come out
    return (row.head_attr + ".",)


def _check_input_size(arch: str, input_size: int | None, rule: tv_generic.InputRule) -> None:
    if input_size is not None and input_size < rule.minimum:
        raise UserError(f"{arch} takes images of at least {rule.minimum}x{rule.minimum} px; "
                        f"--input-size {input_size} is too small")


def _probe(arch: str, body: nn.Module, size: int) -> int:
    try:
        return tv_generic.probe_width(body, size)
    except (RuntimeError, AssertionError, ValueError) as exc:  # e.g. a ViT's fixed patch grid
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{arch} does not run on {size}x{size} px inputs ({first}); "
                        f"leave --input-size out for its default") from None


def build_transfer(arch: str, *, in_channels: int, num_classes: int, hidden: int = 0, dropout: float = 0.0,
                   batch_norm: bool = True, input_size: int | None = None) -> ClassifierNet:
    """torchvision ``arch`` (random init) + new head; ``batch_norm`` is ignored (the backbone keeps its own)."""
    if in_channels not in (1, 3):
        raise UserError(f"{arch} takes 1- or 3-channel images, the dataset has {in_channels} channels")
    backbone = TorchvisionBackbone(arch, input_size=input_size)
    return ClassifierNet(backbone, Head(backbone.out_features, num_classes, hidden=hidden, dropout=dropout))


def catalog_entry(name: str) -> ModelEntry | None:
    """Any torchvision classifier not registered under its own name (``None``: not one)."""
    if name not in tv_generic.classifier_names():
        return None
    return ModelEntry(name, functools.partial(build_transfer, name), tasks_with_head("image"))


for _arch in ARCHS:
    register_model(_arch)(functools.partial(build_transfer, _arch))
register_catalog("torchvision", tv_generic.classifier_names, catalog_entry)
