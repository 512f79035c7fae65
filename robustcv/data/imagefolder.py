"""``imagefolder:PATH``: a class-per-folder directory (``PATH/<class>/**/<image>``).

Class names are the folder names, verbatim and sorted (as torchvision's ``ImageFolder``); they
may contain anything, so whoever displays them must escape them. Images are decoded once,
converted to 8-bit RGB whatever their mode and bit depth (16-bit and float images scaled, not
clipped), EXIF-rotated, center-cropped to a square and resized to ``spec.image_size`` (default
64), then held in memory as one uint8 tensor. Hidden entries (``.DS_Store``,
``.ipynb_checkpoints``) are ignored silently; any other file that is not a readable image is
skipped with one warning naming it. There is no official test split: train/val/test come from
``spec.test_fraction`` and ``spec.val_fraction``, stratified by class.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from robustcv.data.base import DataInfo, DataSpec, Splits
from robustcv.data.pixels import as_rgb
from robustcv.data.registry import register_dataset
from robustcv.data.splitting import train_val_test_indices
from robustcv.data.tensors import ImageTensorDataset, channel_stats
from robustcv.errors import UserError
from robustcv.tasks import one_label_tasks

DEFAULT_SIZE = 64
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
_MAX_NAMED = 10


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _class_folders(root: Path, shown: str, skipped: list[str]) -> list[str]:
    if not root.is_dir():
        raise UserError(f"image folder '{shown}' does not exist or is not a directory")
    entries = sorted((e for e in os.scandir(root) if _visible(e.name)), key=lambda e: e.name)
    skipped.extend(e.name for e in entries if not e.is_dir())
    classes = [e.name for e in entries if e.is_dir()]
    if not classes:
        raise UserError(f"image folder '{shown}' has no class folders; expected {shown}/<class name>/<image files>")
    if len(classes) == 1:
        raise UserError(f"image folder '{shown}' has a single class folder '{classes[0]}'; a classifier needs at least two")
    return classes


def _files(folder: Path) -> list[Path]:
    """Visible files under ``folder``, recursively, in a stable order."""
    found = []
    for parent, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        found.extend(Path(parent) / n for n in sorted(names) if _visible(n))
    return found


def load_image(path: Path, size: int) -> np.ndarray:
    """One image file as an RGB ``[3, size, size]`` uint8 array (EXIF orientation applied, fit to the square)."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG: let the decoder downscale, much faster
        image = as_rgb(ImageOps.exif_transpose(image))
        image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def load_image_folder(root: Path, shown: str, size: int) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Decode every image under ``root``: ``([N, 3, size, size] uint8, [N] int64, classes)``."""
    skipped: list[str] = []
    classes = _class_folders(root, shown, skipped)
    images, labels = [], []
    for index, name in enumerate(classes):
        count = 0
        for path in _files(root / name):
            try:
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    raise ValueError("not an image")
                images.append(load_image(path, size))
            except (OSError, ValueError, SyntaxError):  # what PIL raises on unreadable files
                skipped.append(str(path.relative_to(root)))
                continue
            labels.append(index)
            count += 1
        if count == 0:
            raise UserError(f"class folder '{name}' in image folder '{shown}' contains no readable images")
    _warn_skipped(shown, skipped)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long), tuple(classes)


def _warn_skipped(shown: str, skipped: list[str]) -> None:
    if skipped:
        named = ", ".join(skipped[:_MAX_NAMED]) + (f" and {len(skipped) - _MAX_NAMED} more" if len(skipped) > _MAX_NAMED else "")
        warnings.warn(f"image folder '{shown}': skipped {len(skipped)} file(s) that are not readable images: {named}", stacklevel=4)


@register_dataset("imagefolder:<path>", tasks=one_label_tasks())
def build_imagefolder(spec: DataSpec) -> Splits:
    """Splits of the image folder named after the colon of ``spec.name`` (one folder per class),
    for the task the spec names; mean/std from train."""
    shown = spec.name.partition(":")[2]
    size = spec.image_size or DEFAULT_SIZE
    images, labels, classes = load_image_folder(Path(shown).expanduser(), shown, size)
    full = ImageTensorDataset(images, labels)
    train, val, test = (full.subset(idx) for idx in train_val_test_indices(labels, spec))
    mean, std = channel_stats(train.images)
    info = DataInfo(
        name=spec.name,
        task=spec.task,
        classes=classes,
        channels=3,
        image_size=(size, size),
        mean=mean,
        std=std,
        hflip_ok=True,
    )
    return Splits(train=train, val=val, test=test, info=info)
