"""Augmentation policies on torchvision.transforms.v2, and batch-level MixUp/CutMix.

Per-sample transforms sample their parameters once per call and apply them to the image and,
for segmentation, to its mask (``tv_tensors.Mask``), so the two stay aligned.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from robustcv.data.base import DataInfo
from robustcv.tasks import get_task

# CutOut erases image patches only; the mask keeps the true labels under them, as intended.
warnings.filterwarnings("ignore", message=r"RandomErasing\(\) is currently passing through inputs of type tv_tensors.Mask")

POLICY_HELP = {
    "none": "no augmentation",
    "basic": "flips (where labels allow) + random translation",
    "standard": "basic + rotation/scale (affine) + colour jitter",
    "strong": "standard + stronger affine + RandomErasing (CutOut)",
}


def build_augmentation(policy: str, info: DataInfo) -> v2.Transform | None:
    """The per-sample transform for a policy, or None for ``none``."""
    if policy == "none":
        return None
    steps: list[v2.Transform] = []
    if info.hflip_ok:
        steps.append(v2.RandomHorizontalFlip())
    # Pixels an affine map uncovers are unlabelled: masks fill them with the ignore index.
    fill = {tv_tensors.Mask: info.ignore_index, "others": 0} if info.ignore_index is not None else 0
    shift = 0.125 if policy != "strong" else 0.15
    if policy == "basic":
        steps.append(v2.RandomAffine(degrees=0, translate=(shift, shift), fill=fill))
    else:
        degrees, scale = (10, (0.9, 1.1)) if policy == "standard" else (20, (0.8, 1.2))
        steps.append(v2.RandomAffine(degrees=degrees, translate=(shift, shift), scale=scale, fill=fill))
        if info.channels == 3:
            strength = 0.2 if policy == "standard" else 0.4
            steps.append(v2.ColorJitter(strength, strength, strength, strength / 4))
        else:
            steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2))
    if policy == "strong":
        steps.append(v2.RandomErasing(p=0.5, scale=(0.02, 0.15), value=0.0))
    steps.append(v2.ToDtype(torch.float32, scale=False))
    return v2.Compose(steps)


class AugmentedDataset(Dataset):
    """Applies a per-sample transform to ``(image, target)``; masks move with the image."""

    def __init__(self, base: Dataset, transform: Callable | None, task: str) -> None:
        self.base = base
        self.transform = transform
        self.per_pixel = get_task(task).label_moves_with_image

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        image, target = self.base[index]
        if self.transform is None:
            return image, target
        if self.per_pixel:  # the mask must follow the image's geometry
            image, mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(target))
            return image.as_subclass(torch.Tensor).clamp(0, 1), mask.as_subclass(torch.Tensor)
        # A plain tensor is the image to v2 transforms, and skips the tv_tensors dispatch
        # (~45 us per image, measured in benchmarks/train_speed.py).
        return self.transform(image).clamp(0, 1), target


def build_batch_mix(mixup: float, cutmix: float, num_classes: int) -> v2.Transform | None:
    """MixUp and/or CutMix on a batch; returns soft targets ``[B, K]``. None when both are off."""
    choices: list[v2.Transform] = []
    if mixup > 0:
        choices.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        choices.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else v2.RandomChoice(choices)
