"""Segmenters beyond the default U-Net: torchvision's DeepLabV3 / LR-ASPP / FCN, and DeepLabV3+
and U-Net with any encoder from segmentation-models-pytorch (``deeplabv3plus:<encoder>``,
``unet:<encoder>``; that package is imported only when such a model is built).

Every segmenter takes the normalized image ``[B, C, H, W]`` and returns logits ``[B, K, H, W]``
at input resolution. ``backbone`` is the encoder (freeze plans count its blocks; ``--weights``
load into it), ``head`` is everything after it. A torchvision model with an auxiliary classifier
keeps it: in training mode its upsampled logits wait in ``aux_logits`` for the trainer, which adds
``AUX_WEIGHT`` times their loss (torchvision's reference recipe); in eval mode it is skipped.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from robustcv.errors import UserError
from robustcv.models.registry import register_model
from robustcv.models.weights import StateDict, imagenet_state_dict, load_backbone_state, read_state_dict

AUX_WEIGHT = 0.5
# torchvision segmentation builder -> (its ImageNet backbone, whether it has an auxiliary classifier)
TORCHVISION_SEGMENTERS = {
    "deeplabv3_mobilenet_v3_large": ("mobilenet_v3_large", True),
    "deeplabv3_resnet50": ("resnet50", True),
    "lraspp_mobilenet_v3_large": ("mobilenet_v3_large", False),
    "fcn_resnet50": ("resnet50", True),
}
SMP_ARCHS = {"deeplabv3plus": "DeepLabV3Plus", "unet": "Unet"}
_CLASSIFIER_KEYS = ("fc.", "classifier.", "aux_classifier.")


def _blocks(module: nn.Module) -> list[nn.Module]:
    """The ordered children that hold parameters, descending through a lone wrapper
    (smp's MobileNet encoder keeps all its stages in one ``features``)."""
    children = [m for m in module.children() if any(True for _ in m.parameters())]
    return _blocks(children[0]) if len(children) == 1 else children


class SegmentationEncoder(nn.Module):
    """An encoder whose blocks freeze plans count and whose weights ``--weights`` loads.

    Args:
        body: the encoder module (its forward is used unchanged).
        imagenet_arch: the torchvision classifier whose ImageNet weights fit ``body``, or None.
        strip: a key prefix of those weights that ``body`` lacks (MobileNet's ``features.``).
    """

    def __init__(self, body: nn.Module, imagenet_arch: str | None, strip: str = "") -> None:
        super().__init__()
        self.body = body
        self.imagenet_arch = imagenet_arch
        self.strip = strip

    def forward(self, x: torch.Tensor):
        return self.body(x)

    def blocks(self) -> list[nn.Module]:
        return _blocks(self.body)

    def block_groups(self) -> list[list[nn.Module]]:
        return [self.blocks()]

    def load_weights(self, source: str) -> None:
        if source == "imagenet":
            if self.imagenet_arch is None:
                raise UserError("this encoder has no torchvision ImageNet weights; give a local weights file")
            state, origin = imagenet_state_dict(self.imagenet_arch), f"ImageNet weights of {self.imagenet_arch}"
        else:
            state, origin = read_state_dict(source), source
        load_backbone_state(self.body, self._remap(state), source=origin, model=self.imagenet_arch or "encoder",
                            ignore=_CLASSIFIER_KEYS)

    def _remap(self, state: StateDict) -> StateDict:
        return {k.removeprefix(self.strip): v for k, v in state.items()} if self.strip else state


def _upsample(logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _rgb(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model cut into ``backbone`` and ``head`` (dict output unwrapped)."""

    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        from torchvision.models import get_model

        imagenet_arch, has_aux = TORCHVISION_SEGMENTERS[arch]
        extra = {"aux_loss": True} if has_aux else {}
        model = get_model(arch, weights=None, weights_backbone=None, num_classes=num_classes, **extra)
        strip = "features." if imagenet_arch.startswith("mobilenet") else ""
        self.backbone = SegmentationEncoder(model.backbone, imagenet_arch, strip)
        self.head = nn.ModuleDict({"classifier": model.classifier})
        if has_aux:
            self.head["aux"] = model.aux_classifier
        self.whole_features = arch.startswith("lraspp")  # LR-ASPP reads the low and high features
        self.aux_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.backbone(_rgb(x))
        logits = self.head["classifier"](features if self.whole_features else features["out"])
        if self.training and "aux" in self.head:
            self.aux_logits = _upsample(self.head["aux"](features["aux"]), size)
        return _upsample(logits, size)


class SMPSegmenter(nn.Module):
    """A segmentation-models-pytorch model; inputs are padded to its output stride and cropped back."""

    def __init__(self, arch: str, encoder: str, in_channels: int, num_classes: int) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        if encoder not in smp.encoders.get_encoder_names():
            raise UserError(f"segmentation-models-pytorch has no encoder '{encoder}'; e.g. mobilenet_v2, "
                            "resnet18, resnet34, efficientnet-b0 (see its encoder table)")
        model = smp.create_model(SMP_ARCHS[arch], encoder_name=encoder, encoder_weights=None,
                                 in_channels=in_channels, classes=num_classes)
        self.backbone = SegmentationEncoder(model.encoder, _torchvision_name(encoder))
        self.head = nn.ModuleDict({"decoder": model.decoder, "segmentation_head": model.segmentation_head})
        self.stride = int(getattr(model.encoder, "output_stride", 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, -w % self.stride, 0, -h % self.stride))
        logits = self.head["segmentation_head"](self.head["decoder"](self.backbone(padded)))
        return logits[..., :h, :w]


def _torchvision_name(encoder: str) -> str | None:
    """smp's ResNet and MobileNetV2 encoders are torchvision's classes, so their ImageNet weights fit."""
    from torchvision.models import list_models

    return encoder if encoder in list_models() else None


def pop_auxiliary_logits(model: nn.Module) -> torch.Tensor | None:
    """The auxiliary logits of the last training-mode forward, once (None without an aux head)."""
    for module in model.modules():
        if isinstance(module, TorchvisionSegmenter) and module.aux_logits is not None:
            aux, module.aux_logits = module.aux_logits, None
            return aux
    return None


def _build_torchvision(arch: str, *, in_channels: int, num_classes: int, **_: object) -> TorchvisionSegmenter:
    _check_channels(arch, in_channels)
    return TorchvisionSegmenter(arch, num_classes)


def _build_smp(arch: str, encoder: str, *, in_channels: int, num_classes: int, **_: object) -> SMPSegmenter:
    return SMPSegmenter(arch, encoder, in_channels, num_classes)


def _check_channels(arch: str, in_channels: int) -> None:
    if in_channels not in (1, 3):
        raise UserError(f"{arch} takes 1- or 3-channel images, the dataset has {in_channels} channels")


for _arch in TORCHVISION_SEGMENTERS:
    register_model(_arch, head="pixel")(functools.partial(_build_torchvision, _arch))
for _arch in SMP_ARCHS:
    register_model(f"{_arch}:<encoder>", head="pixel")(functools.partial(_build_smp, _arch))
