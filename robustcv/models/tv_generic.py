"""Any torchvision classifier as a backbone, found generically (no per-architecture row needed).

- **Catalog**: ``torchvision.models.list_models(module=torchvision.models)``: the ImageNet
  classifiers only (detection, segmentation, video and quantized models live in submodules).
- **Build**: ``get_model(name, weights=None)``; Inception-v3 and GoogLeNet without their
  auxiliary classifiers (see ``AUX_FREE``); ViTs with their weights' grid (``make``).
- **Head**: the last ``nn.Linear`` inside the first of ``fc``, ``classifier``, ``heads``, ``head``
  becomes ``nn.Identity``, so what came before it (VGG's/AlexNet's hidden layers, ConvNeXt's
  LayerNorm, MaxViT's pre-logits) stays in the backbone, as in torchvision's fine-tuning recipe.
  A classifier without a ``Linear`` (SqueezeNet's 1x1 conv) is replaced by global pooling.
- **Blocks** (``last:N``): the parameter-holding children in registration order (which is the
  forward order in torchvision), parameters held directly by a module (ViT's class token and
  position embedding) as a block of their own in front; a block holding more than
  ``WRAPPER_SHARE`` of all parameters is a wrapper (``features``, ``trunk_output``,
  ``encoder.layers``) and is cut into its own children, repeatedly.
- **Input size** from the weights' metadata (``meta["min_size"]``): models whose minimum is at
  least 224 (ViT, MaxViT, Swin) have a fixed grid and get that size by default; Inception-v3
  defaults to its native 299 (``NATIVE_SIZE``); others upscale small images to their minimum.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

MIN_SIZE = 32  # five stride-2 stages take 32 px to 1 px: the smallest input every family accepts
HEAD_ATTRS = ("fc", "classifier", "heads", "head")
WRAPPER_SHARE = 0.8
NATIVE_SIZE = {"inception_v3": 299}
FIXED_FROM = 224  # a metadata minimum this large is the patch/window grid's one size

AUX_FREE = {"inception_v3": dict(aux_logits=False, init_weights=True),
            "googlenet": dict(aux_logits=False, init_weights=True)}
"""Why no aux head: our head replaces the ImageNet classifier and the trainer's losses take one
logit tensor; torchvision's reference adds the aux loss (weight 0.4) only when training these
nets from scratch on ImageNet, and eval mode never uses it. Their weights' ``AuxLogits.*`` /
``aux1.*``/``aux2.*`` tensors are ignored when loading (``AUX_PREFIXES``)."""
AUX_PREFIXES = {"inception_v3": ("AuxLogits.",), "googlenet": ("aux1.", "aux2.")}


@functools.cache
def classifier_names() -> tuple[str, ...]:
    """Every classification model in torchvision's registry, sorted."""
    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def make(name: str) -> nn.Module:
    """torchvision ``name`` with random weights (no download), aux classifiers left out; a ViT's
    position embedding sized for its weights' grid (as torchvision does when given weights:
    518 px for ``vit_h_14``, 224 for the others)."""
    kwargs = dict(AUX_FREE.get(name, {}))
    if name.startswith("vit_"):
        kwargs["image_size"] = _meta_min_size(name)
    return torchvision.models.get_model(name, weights=None, **kwargs)


def remove_head(model: nn.Module) -> tuple[str, ...]:
    """Replace the ImageNet classifier's last ``Linear`` by ``Identity``; returns the state-dict
    prefixes of what was removed (to ignore in pretrained weights)."""
    attr = next((a for a in HEAD_ATTRS if isinstance(getattr(model, a, None), nn.Module)), None)
    if attr is None:
        raise ValueError(f"{type(model).__name__} has none of {', '.join(HEAD_ATTRS)}")
    classifier = getattr(model, attr)
    linears = [path for path, m in classifier.named_modules() if isinstance(m, nn.Linear)]
    if not linears:  # SqueezeNet: dropout, 1x1 conv to 1000 classes, ReLU, pooling
        setattr(model, attr, nn.AdaptiveAvgPool2d(1))
        return (attr + ".",)
    path = linears[-1]
    if not path:
        setattr(model, attr, nn.Identity())
        return (attr + ".",)
    parent_path, _, leaf = path.rpartition(".")
    setattr(classifier.get_submodule(parent_path) if parent_path else classifier, leaf, nn.Identity())
    return (f"{attr}.{path}.",)


class _Params(nn.Module):
    """A block made of parameters another module holds directly (shared, not copied)."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__()
        self.held = nn.ParameterList(params)


def generic_blocks(body: nn.Module) -> list[nn.Module]:
    """Ordered blocks covering every parameter of ``body`` (rule in the module docstring)."""
    total = _count(body)
    blocks = _parts(body)
    while True:
        big = max(blocks, key=_count)
        parts = _parts(big)
        if _count(big) <= WRAPPER_SHARE * total or len(parts) < 2:
            return blocks
        at = next(i for i, b in enumerate(blocks) if b is big)
        blocks[at:at + 1] = parts


def _parts(module: nn.Module) -> list[nn.Module]:
    own = list(module.parameters(recurse=False))
    children = [c for c in module.children() if _count(c)]
    return ([_Params(own)] if own else []) + children


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class InputRule:
    """``default``: the square side a model resizes to when the user gives none (``None``:
    keep the image, upscaled to ``minimum`` when smaller); ``minimum``: the smallest side it takes."""

    default: int | None
    minimum: int


def input_rule(name: str) -> InputRule:
    """Input size of torchvision ``name`` from its DEFAULT weights' metadata."""
    meta_min = _meta_min_size(name)
    default = NATIVE_SIZE.get(name) or (meta_min if meta_min >= FIXED_FROM else None)
    return InputRule(default, max(MIN_SIZE, meta_min))


def _meta_min_size(name: str) -> int:
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError, KeyError):
        return 1
    return int(max(weights.meta.get("min_size", (1, 1))))


def compact(names: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """``(family, variants)`` rows for listing; a name is family + variant as written:
    ``resnet -> 18, 34``, ``convnext -> _tiny, _base``."""
    families: dict[str, list[str]] = {}
    for name in names:
        family = re.match(r"[a-z]+", name).group(0)
        families.setdefault(family, []).append(name[len(family):] or "(plain)")
    return [(family, ", ".join(sorted(rest, key=_natural))) for family, rest in sorted(families.items())]


def _natural(text: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t]


def probe_width(body: nn.Module, size: int) -> int:
    """Feature width from one forward pass of a ``size``-pixel image (eval mode, no grad)."""
    was_training = body.training
    body.eval()
    with torch.no_grad():
        width = torch.flatten(body(torch.zeros(1, 3, size, size)), 1).shape[1]
    body.train(was_training)
    return int(width)
