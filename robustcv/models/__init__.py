"""The model registry: from-scratch CNNs, torchvision backbones with a new head, dual backbones.

Example:
    >>> from robustcv.models import ModelSpec, build_model, FreezePlan
    >>> model = build_model(ModelSpec("resnet18", weights="imagenet"), info)  # RobustModel
    >>> plan = FreezePlan.parse("staged:3")
    >>> groups = plan.apply(model, epoch=0, lr=1e-3)  # head only until epoch 3
"""
from __future__ import annotations

from robustcv.models import scratch, segmenters, transfer, unet  # noqa: F401  (registers the builders)
from robustcv.models.build import build_model
from robustcv.models.freeze import FreezePlan, backbone_blocks
from robustcv.models.nets import Backbone, ClassifierNet, Head, InputAdapter
from robustcv.models.registry import get_entry, list_models, register_model
from robustcv.models.spec import ModelSpec
from robustcv.models.wrapper import Normalize, RobustModel

__all__ = [
    "Backbone", "ClassifierNet", "FreezePlan", "Head", "InputAdapter", "ModelSpec", "Normalize",
    "RobustModel", "backbone_blocks", "build_model", "get_entry", "list_models", "register_model",
]
