"""ModelSpec: which network to build, as a frozen, JSON-serializable dataclass."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from robustcv.errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    """What to build; part of the checkpoint's spec hash.

    Attributes:
        name: a registered model (see ``list_models()``), any torchvision classifier
            (``torchvision.models.list_models(module=torchvision.models)``) or ``dual:A+B``.
        weights: ``None`` (random init), ``"imagenet"`` (the torchvision weight enum's DEFAULT,
            read from the torch hub cache) or a path to a local ``.safetensors``/``.pt``/``.pth``
            file of backbone weights. ``dual:A+B`` also takes ``A=SRC,B=SRC`` or a directory.
        hidden: width of an optional hidden dense layer in the head (0: none).
        dropout: dropout probability in the head.
        batch_norm: BatchNorm in the from-scratch CNNs (torchvision backbones keep their own).
        input_size: square side the network resizes its input to (``None``: the model's default,
            224 for ViT/Swin/MaxViT and 299 for Inception-v3, else upscaling to the family's
            minimum, see ``robustcv.models.nets.InputAdapter``).
    """

    name: str = "small_cnn"
    weights: str | None = None
    hidden: int = 0
    dropout: float = 0.0
    batch_norm: bool = True
    input_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise UserError("model name must be a non-empty string")
        if self.hidden < 0:
            raise UserError(f"hidden must be >= 0, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.input_size is not None and self.input_size < 1:
            raise UserError(f"input_size must be a positive integer, got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
