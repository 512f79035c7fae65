"""The nouns of the data layer: what a dataset is (DataInfo) and what a builder returns (Splits)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch.utils.data import Dataset

from robustcv.tasks.base import DEFAULT_TASK


@dataclass(frozen=True)
class DataSpec:
    """Which dataset to build and how to split it; part of the model's spec hash.

    Attributes:
        name: registry name (``digits``, ``shapes``, ``cifar10``, ``imagefolder:PATH``...).
        root: where on-disk datasets live (ignored by embedded ones).
        val_fraction: fraction of the training pool held out for validation.
        test_fraction: fraction held out for testing when the dataset has no test split.
        seed: seed of the deterministic split.
        task: ``classification``, ``segmentation`` or ``multilabel`` (``shapes`` offers all three).
        image_size: optional resize for datasets whose images vary in size.
    """

    name: str = "digits"
    root: str = "./data"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    task: str = DEFAULT_TASK
    image_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class DataInfo:
    """What the rest of the pipeline needs to know about a dataset.

    Images are float tensors ``[C, H, W]`` in ``[0, 1]``; ``mean``/``std`` are the per-channel
    statistics the model normalizes with internally (pixel-space rule). ``task`` is the task's
    name (``get_task(info.task)`` gives what it means).
    """

    name: str
    task: str
    classes: tuple[str, ...]
    channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip_ok: bool = True
    ignore_index: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", str(getattr(self.task, "value", self.task)))  # a name, never an enum

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataInfo":
        return cls(
            name=data["name"],
            task=str(data["task"]),
            classes=tuple(data["classes"]),
            channels=int(data["channels"]),
            image_size=tuple(data["image_size"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            hflip_ok=bool(data.get("hflip_ok", True)),
            ignore_index=data.get("ignore_index"),
        )


@dataclass
class Splits:
    """Train/validation/test datasets; each item is ``(image [C,H,W] float in [0,1], target)``.

    The target is an ``int`` class for classification, a ``LongTensor [H, W]`` mask for
    segmentation and a 0/1 ``LongTensor [K]`` for multi-label classification.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    info: DataInfo
    extras: dict[str, Any] = field(default_factory=dict)


DatasetBuilder = Callable[[DataSpec], Splits]


def by_task(builders: Mapping[str, DatasetBuilder], name: str) -> DatasetBuilder:
    """One registered builder for a dataset that serves several tasks: ``builders`` maps each task
    name to the builder of its splits, so no builder compares task names. Register the result
    with ``tasks=tuple(builders)``."""

    def build(spec: DataSpec) -> Splits:
        return builders[spec.task](spec)

    build.__name__ = build.__qualname__ = f"build_{name}"
    return build

