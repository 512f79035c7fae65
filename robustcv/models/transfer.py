"""torchvision backbones with a new head (transfer learning).

Each architecture is one row of ``ARCHS``: the attribute holding torchvision's classifier (our
head replaces it, and its keys are ignored when loading weights) and how to cut the backbone
into ordered blocks for ``last:N`` freeze plans. Adding a torchvision model is adding a row.

Input rule (``InputAdapter``): grayscale is repeated to 3 channels; with ``input_size`` the image
is resized to that square, otherwise images whose shorter side is under ``MIN_SIZE`` (32) are
upscaled to it, bilinearly and inside the net so attacks differentiate through it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torchvision
from torch import nn

from robustcv.errors import UserError
from robustcv.models.nets import Backbone, ClassifierNet, Head, InputAdapter
from robustcv.models.registry import IMAGE_LABEL_TASKS, register_model
from robustcv.models.weights import imagenet_state_dict, load_backbone_state, read_state_dict

MIN_SIZE = 32  # five stride-2 stages take 32 px to 1 px: the smallest input every family accepts


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
    make: Callable[[str], nn.Module] = functools.partial(torchvision.models.get_model, weights=None)


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


class TorchvisionBackbone(Backbone):
    """``adapt -> body`` where ``body`` is the torchvision model with its classifier removed.

    ``body``'s state dict keys are torchvision's, so torchvision checkpoints load directly.
    """

    def __init__(self, arch: str, *, input_size: int | None) -> None:
        super().__init__()
        self.arch = arch
        self.adapt = InputAdapter(size=input_size, min_size=MIN_SIZE, to_rgb=True)
        body = ARCHS[arch].make(arch)
        if hasattr(body, ARCHS[arch].head_attr):
            setattr(body, ARCHS[arch].head_attr, nn.Identity())  # the pooled features come out
        self.body = body
        self.out_features = _probe_width(body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.adapt(x))

    def blocks(self) -> list[nn.Module]:
        return ARCHS[self.arch].blocks(self.body)

    def load_weights(self, source: str) -> None:
        if source == "imagenet":
            state, origin = imagenet_state_dict(self.arch), f"ImageNet weights of {self.arch}"
        else:
            state, origin = read_state_dict(source), source
        load_backbone_state(self.body, state, source=origin, model=self.arch,
                            ignore=(ARCHS[self.arch].head_attr + ".",))


def _probe_width(body: nn.Module) -> int:
    """Feature width from one tiny forward pass (works for any row of the table)."""
    was_training = body.training
    body.eval()
    with torch.no_grad():
        width = body(torch.zeros(1, 3, MIN_SIZE, MIN_SIZE)).shape[1]
    body.train(was_training)
    return int(width)


def build_transfer(arch: str, *, in_channels: int, num_classes: int, hidden: int = 0, dropout: float = 0.0,
                   batch_norm: bool = True, input_size: int | None = None) -> ClassifierNet:
    """torchvision ``arch`` (random init) + new head; ``batch_norm`` is ignored (the backbone keeps its own)."""
    if in_channels not in (1, 3):
        raise UserError(f"{arch} takes 1- or 3-channel images, the dataset has {in_channels} channels")
    backbone = TorchvisionBackbone(arch, input_size=input_size)
    return ClassifierNet(backbone, Head(backbone.out_features, num_classes, hidden=hidden, dropout=dropout))


for _arch in ARCHS:
    register_model(_arch, tasks=IMAGE_LABEL_TASKS)(functools.partial(build_transfer, _arch))
