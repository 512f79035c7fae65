"""Segmentation datasets over ``(image file, mask file)`` pairs, delivered at one fixed size.

Images are read with PIL and converted to RGB; masks are palette (``P``) or grayscale (``L``)
PNGs whose pixel *indices* are the class ids (a VOC palette PNG's colours are ignored). No EXIF
rotation is applied: a mask is aligned with its image's stored pixels.

Photographs vary in size, so every item leaves the dataset as ``size`` x ``size``:

* evaluation splits resize the shorter side to ``size`` and center-crop the longer one;
* the training split resizes the shorter side to a random ``0.5 .. 2.0`` times ``size``, then
  crops a random ``size`` x ``size`` window, padding what the window leaves uncovered (images
  with 0, masks with the ignore index 255).

Image and mask go through one torchvision v2 transform (``robustcv.data.segtransforms``) as
``tv_tensors.Image`` and ``tv_tensors.Mask``, so one set of random parameters moves both; masks
are never interpolated. Random draws come from torch's global RNG, which the trainer seeds.
Evaluation items are computed once and kept in memory as ``uint8``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from robustcv.data.base import DataInfo, DataSpec, Splits
from robustcv.data.palette import IGNORE_INDEX
from robustcv.data.pixels import as_rgb
from robustcv.errors import UserError

DEFAULT_SIZE = 64
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MASK_MODES = ("P", "L")

Pair = tuple[Path, Path]
"""``(image path, mask path)``."""


def fixed_size(spec: DataSpec) -> int:
    """The side of the square items a file dataset delivers: ``spec.image_size`` or 64."""
    return spec.image_size or DEFAULT_SIZE


def _open(path: Path, what: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UserError(f"{what} file '{path}' is missing")
    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"cannot read {what} file '{path}': {err}") from None


def _check_mask(mask: Any, path: Path, image_size: tuple[int, int]) -> None:
    if mask.mode not in MASK_MODES:
        raise UserError(f"mask '{path}' has mode {mask.mode}; expected a palette (P) or grayscale (L) PNG of class ids")
    if mask.size != image_size:
        (mw, mh), (iw, ih) = mask.size, image_size
        raise UserError(f"mask '{path}' is {mw}x{mh} pixels but its image is {iw}x{ih}; they must match")


def check_pair(pair: Pair) -> None:
    """Check from the file headers alone that both files exist and have the same size.

    Raises:
        UserError: a file is missing or unreadable, the mask is not ``P``/``L``, or the sizes
            differ; the message names the file.
    """
    image_path, mask_path = pair
    with _open(image_path, "image") as image, _open(mask_path, "mask") as mask:
        _check_mask(mask, mask_path, image.size)


def read_mask(path: Path) -> np.ndarray:
    """The class ids of a ``P``/``L`` PNG as a ``uint8`` array ``[H, W]`` (palette index, not colour)."""
    with _open(path, "mask") as mask:
        _check_mask(mask, path, mask.size)
        return _decode(mask, path, "mask")


def _decode(image: Any, path: Path, what: str) -> np.ndarray:
    try:
        return np.array(image)
    except (OSError, ValueError) as err:  # truncated or corrupt data shows up only when decoding
        raise UserError(f"cannot read {what} file '{path}': {err}") from None


def read_pair(pair: Pair) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a pair: image ``uint8 [3, H, W]`` and mask ``uint8 [H, W]`` of the same size."""
    image_path, mask_path = pair
    with _open(image_path, "image") as image:
        rgb = _decode(as_rgb(image) if image.mode != "RGB" else image, image_path, "image")
    with _open(mask_path, "mask") as mask:
        _check_mask(mask, mask_path, (rgb.shape[1], rgb.shape[0]))
        ids = _decode(mask, mask_path, "mask")
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), torch.from_numpy(ids)


class SegmentationFiles(Dataset):
    """Items ``(image float [3, S, S] in [0, 1], mask int64 [S, S])`` read from file pairs.

    Args:
        pairs: ``(image path, mask path)`` of each item.
        size: the side ``S`` of every item.
        train: random scale and crop (training) instead of the deterministic evaluation view.
    """

    def __init__(self, pairs: Sequence[Pair], size: int, *, train: bool) -> None:
        from robustcv.data.segtransforms import eval_transform, train_transform  # torchvision: slow import

        self.pairs = list(pairs)
        self.size = size
        self.train = train
        self.transform = train_transform(size) if train else eval_transform(size)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = range(len(self.pairs))[index]  # IndexError past the end, as iteration expects
        if self.train:
            image, mask = self._transformed(index)
        else:
            if index not in self._cache:
                self._cache[index] = self._transformed(index)
            image, mask = self._cache[index]
        return image.float().div_(255.0), mask.long()

    def _transformed(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors

        image, mask = read_pair(self.pairs[index])
        image, mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def segmentation_splits(name: str, parts: Sequence[Sequence[Pair]], classes: Sequence[str], size: int) -> Splits:
    """Train/val/test ``SegmentationFiles`` (only train is random) and their ``DataInfo``.

    Args:
        name: the dataset's registry name, as the user wrote it.
        parts: the pairs of train, val and test, in that order.
        classes: class names, index ``i`` naming mask id ``i``.
        size: the side of every item.
    """
    train, val, test = parts
    info = DataInfo(
        name=name,
        task="segmentation",
        classes=tuple(classes),
        channels=3,
        image_size=(size, size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        hflip_ok=True,
        ignore_index=IGNORE_INDEX,
    )
    return Splits(
        train=SegmentationFiles(train, size, train=True),
        val=SegmentationFiles(val, size, train=False),
        test=SegmentationFiles(test, size, train=False),
        info=info,
    )
