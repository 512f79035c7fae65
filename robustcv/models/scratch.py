"""From-scratch CNNs: ``small_cnn`` (fast, for 8x8 digits and 32x32 images) and ``deep_cnn``."""
from __future__ import annotations

from torch import nn

from robustcv.errors import UserError
from robustcv.models.nets import Backbone, ClassifierNet, Head, InputAdapter
from robustcv.models.registry import register_model
from robustcv.models.weights import load_backbone_state, read_state_dict


class ConvBackbone(Backbone):
    """``adapt -> stages -> global average pool -> flatten``; the stages are the freeze blocks."""

    def __init__(self, name: str, stages: list[nn.Module], out_features: int, *, input_size: int | None) -> None:
        super().__init__()
        self.name = name
        self.adapt = InputAdapter(size=input_size)
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = out_features

    def forward(self, x):
        return self.pool(self.stages(self.adapt(x)))

    def blocks(self) -> list[nn.Module]:
        return list(self.stages)

    def load_weights(self, source: str) -> None:
        if source == "imagenet":
            raise UserError(f"{self.name} is trained from scratch and has no ImageNet weights; "
                            "use a torchvision backbone (e.g. resnet18) or a local weights file")
        load_backbone_state(self, read_state_dict(source), source=source, model=self.name)


def _conv(cin: int, cout: int, *, batch_norm: bool, act: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
    layers += [nn.BatchNorm2d(cout)] if batch_norm else []
    return layers + [act()]


@register_model("small_cnn")
def small_cnn(*, in_channels: int, num_classes: int, hidden: int = 0, dropout: float = 0.0,
              batch_norm: bool = True, input_size: int | None = None) -> ClassifierNet:
    """Three 3x3 conv layers (32-64-64, one 2x2 max-pool), global average pooling, linear head.

    ~60k parameters: reaches >0.95 test accuracy on 8x8 digits in a few CPU seconds.
    """
    stages = [
        nn.Sequential(*_conv(in_channels, 32, batch_norm=batch_norm, act=nn.ReLU)),
        nn.Sequential(*_conv(32, 64, batch_norm=batch_norm, act=nn.ReLU), nn.MaxPool2d(2, ceil_mode=True)),
        nn.Sequential(*_conv(64, 64, batch_norm=batch_norm, act=nn.ReLU)),
    ]
    backbone = ConvBackbone("small_cnn", stages, 64, input_size=input_size)
    return ClassifierNet(backbone, Head(64, num_classes, hidden=hidden, dropout=dropout))


@register_model("deep_cnn")
def deep_cnn(*, in_channels: int, num_classes: int, hidden: int = 0, dropout: float = 0.0,
             batch_norm: bool = True, input_size: int | None = None) -> ClassifierNet:
    """Three stages of two 3x3 conv + BatchNorm + SiLU (32-64-128), max-pool between stages, GAP."""
    widths = (32, 64, 128)
    stages, cin = [], in_channels
    for i, width in enumerate(widths):
        layers = _conv(cin, width, batch_norm=batch_norm, act=nn.SiLU) + _conv(width, width, batch_norm=batch_norm, act=nn.SiLU)
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        stages.append(nn.Sequential(*layers))
        cin = width
    backbone = ConvBackbone("deep_cnn", stages, cin, input_size=input_size)
    return ClassifierNet(backbone, Head(cin, num_classes, hidden=hidden, dropout=dropout))
