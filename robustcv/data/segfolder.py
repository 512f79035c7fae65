"""``segfolder:PATH``: images and masks in two folders, paired by file stem.

Layout::

    PATH/images/<stem>.{png,jpg,jpeg}
    PATH/masks/<stem>.png        (grayscale or palette PNG; pixel value = class id, 255 = ignore)
    PATH/classes.txt             (optional: one class name per line, line i names id i)

Without ``classes.txt`` the classes are ``class_0 .. class_{K-1}``, ``K`` the largest id seen
plus one. Every pair is checked when the dataset is built (sizes match, ids are known classes);
a problem ends in one ``UserError`` naming the file. There is no official test split:
train/val/test come from ``spec.test_fraction`` and ``spec.val_fraction`` by a seeded shuffle.
Hidden entries are ignored; other files of unexpected type are skipped with one warning.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from robustcv.data.base import DataSpec, Splits
from robustcv.data.palette import IGNORE_INDEX
from robustcv.data.registry import register_dataset
from robustcv.data.segfiles import Pair, check_pair, fixed_size, read_mask, segmentation_splits
from robustcv.data.splitting import train_val_test_indices
from robustcv.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_SUFFIXES = (".png",)


def _listing(folder: Path, suffixes: tuple[str, ...], skipped: list[str]) -> dict[str, Path]:
    """``stem -> path`` of the visible files of ``folder`` with one of ``suffixes``."""
    if not folder.is_dir():
        raise UserError(f"segmentation folder needs '{folder}'; expected images/ and masks/ side by side")
    found: dict[str, Path] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue
        if not entry.is_file() or path.suffix.lower() not in suffixes:
            skipped.append(str(path))
        elif path.stem in found:
            raise UserError(f"'{found[path.stem]}' and '{path}' share the stem '{path.stem}'; keep one")
        else:
            found[path.stem] = path
    return found


def _more(stems: list[str]) -> str:
    return f" (nor do {len(stems) - 1} more)" if len(stems) > 1 else ""


def find_pairs(root: Path) -> list[Pair]:
    """The ``(image, mask)`` pairs of a segmentation folder, sorted by stem.

    Raises:
        UserError: the folder or its ``images``/``masks`` is absent, holds no images, or an
            image has no mask or a mask no image (the file is named).
    """
    if not root.is_dir():
        raise UserError(f"segmentation folder '{root}' does not exist or is not a directory")
    skipped: list[str] = []
    images = _listing(root / "images", IMAGE_SUFFIXES, skipped)
    masks = _listing(root / "masks", MASK_SUFFIXES, skipped)
    if skipped:
        warnings.warn(f"segmentation folder '{root}': skipped {len(skipped)} file(s) that are not "
                      f"png/jpg images or png masks: {', '.join(skipped[:10])}", stacklevel=3)
    if not images:
        raise UserError(f"segmentation folder '{root}' has no images; expected {root / 'images'}/<name>.png|jpg")
    unmasked, orphans = sorted(images.keys() - masks.keys()), sorted(masks.keys() - images.keys())
    if unmasked:
        raise UserError(f"image '{images[unmasked[0]]}' has no mask{_more(unmasked)}; "
                        f"expected {root / 'masks' / unmasked[0]}.png")
    if orphans:
        raise UserError(f"mask '{masks[orphans[0]]}' has no image{_more(orphans)}; "
                        f"expected {root / 'images' / orphans[0]}.png or .jpg")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def read_classes(path: Path) -> tuple[str, ...] | None:
    """Class names from ``classes.txt`` (blank lines dropped), or None when it is absent."""
    if not path.is_file():
        return None
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) < 2:
        raise UserError(f"'{path}' names {len(names)} class(es); a segmenter needs at least two")
    return names


def largest_ids(pairs: list[Pair]) -> list[int]:
    """The largest class id (255 excluded) of each pair's mask, -1 if it holds only 255."""
    largest = []
    for pair in pairs:
        check_pair(pair)
        ids = torch.from_numpy(read_mask(pair[1])).long()
        labelled = ids[ids != IGNORE_INDEX]
        largest.append(int(labelled.max()) if labelled.numel() else -1)
    return largest


def folder_classes(root: Path, pairs: list[Pair]) -> tuple[str, ...]:
    """The class names: ``classes.txt`` checked against every mask, else ``class_0..``."""
    largest = largest_ids(pairs)
    names = read_classes(root / "classes.txt")
    if names is not None:
        for pair, top in zip(pairs, largest):
            if top >= len(names):
                raise UserError(f"mask '{pair[1]}' holds class id {top} but {root / 'classes.txt'} names "
                                f"{len(names)} classes (ids 0..{len(names) - 1}, 255 = ignore)")
        return names
    count = max(largest) + 1
    if count < 2:
        raise UserError(f"the masks of '{root}' hold {max(count, 0)} class(es); a segmenter needs at least two")
    return tuple(f"class_{i}" for i in range(count))


@register_dataset("segfolder:<path>", tasks=("segmentation",))
def build_segfolder(spec: DataSpec) -> Splits:
    """Seeded train/val/test splits of the segmentation folder named after the colon."""
    shown = spec.name.strip().partition(":")[2]
    root = Path(shown).expanduser()
    pairs = find_pairs(root)
    classes = folder_classes(root, pairs)
    parts = train_val_test_indices(torch.zeros(len(pairs), dtype=torch.long), spec)
    return segmentation_splits(spec.name, [[pairs[i] for i in idx.tolist()] for idx in parts], classes, fixed_size(spec))
