"""The evaluated samples: a fixed, seeded draw of the test split, with targets when targeted."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustcv.checkpoint import ModelMetadata
from robustcv.data import as_tensors, get_dataset
from robustcv.data.base import DataInfo
from robustcv.data.drift import check_same_classes
from robustcv.errors import UserError
from robustcv.evaluation.config import EvalConfig


@dataclass
class Samples:
    """The evaluated images, labels, (for targeted attacks) targets, and each sample's key: its
    index in the whole evaluated set, which keys its random draws (design rule 8); ``index``: its
    index in the test split."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    index: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.keys is None:
            self.keys = torch.arange(len(self.y))
        if self.index is None:
            self.index = self.keys.clone()

    def part(self, rows: slice) -> "Samples":
        """The samples ``rows`` (keys kept: a sample's draws do not depend on its shard)."""
        return Samples(self.x[rows], self.y[rows], None if self.target is None else self.target[rows],
                       self.keys[rows], self.index[rows])

    def head(self, n: int) -> "Samples":
        """The first ``n`` samples."""
        return self.part(slice(0, n))


def select_samples(meta: ModelMetadata, n: int, seed: int) -> tuple[Samples, DataInfo]:
    """The first ``n`` test samples after a seeded shuffle (the same ones for every run)."""
    splits = get_dataset(meta.data)
    check_same_classes(meta.data.name, meta.name, meta.data_info.classes, meta.class_fingerprint,
                       splits.info.classes)
    return draw_samples(*as_tensors(splits.test), n, seed), meta.data_info


def draw_samples(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> Samples:
    """The first ``n`` of ``(x, y)`` after a shuffle seeded by ``seed``."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: min(n, len(x))]
    return Samples(x[order].float(), y[order], index=order)


def run_targets(model: nn.Module, samples: Samples, config: EvalConfig, num_classes: int,
                device: torch.device, ignore_index: int | None = None) -> torch.Tensor | None:
    """The targets of a targeted run (``--targeted``), or None; a segmenter's ignored pixels
    keep ``ignore_index``."""
    if config.targeted == "none":
        return None
    from attacks.targets import make_targets

    if ":" in config.targeted:  # segmentation: the pixels of class A to class B, the others left alone
        from attacks.targets import class_to_class

        source, target = (int(c) for c in config.targeted.split(":"))
        return class_to_class(samples.y, source, target, ignore_index)
    mode, given = ("given", int(config.targeted)) if config.targeted.isdigit() else (config.targeted, None)
    if given is not None and not 0 <= given < num_classes:
        raise UserError(f"--targeted class {given} is outside 0..{num_classes - 1}")
    generator = torch.Generator().manual_seed(config.seed)
    return make_targets(model, samples.x.to(device), samples.y.to(device), mode, num_classes,
                        target_class=given, generator=generator, ignore_index=ignore_index).cpu()
