"""PASCAL VOC for ``--task multilabel``: which of the 20 classes each photo holds.

Reads, under ``spec.root``::

    VOCdevkit/VOC<year>/ImageSets/Main/{train,val}.txt   (image names, one per line)
    VOCdevkit/VOC<year>/Annotations/<name>.xml           (<object><name>dog</name><difficult>0</difficult>...)
    VOCdevkit/VOC<year>/JPEGImages/<name>.jpg

A photo's label is the set of its objects' class names; objects marked ``difficult`` are left
out (as the VOC classification benchmark does), so a photo may have no label. ``train.txt`` is the
training pool (``spec.val_fraction`` of it, seeded and stratified by label set, is validation);
``val.txt`` is the test set. Images are resized to ``spec.image_size`` (default 64). An unknown
class name or a malformed annotation is one ``UserError`` naming the file.
"""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import torch

from robustcv.data.base import DataSpec, Splits
from robustcv.data.multilabel_files import DEFAULT_SIZE, label_strata, multilabel_splits, read_images
from robustcv.data.splitting import train_val_indices
from robustcv.data.voc_files import ARCHIVES, VOC_CLASSES, voc_folder
from robustcv.errors import UserError


def main_split_names(root: str | Path, year: str, split: str) -> list[str]:
    """The image names of ``ImageSets/Main/<split>.txt``; absent or empty is one ``UserError``."""
    path = voc_folder(root, year) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise UserError(f"PASCAL VOC {year} not found: expected {path}; extract {ARCHIVES[year]} into "
                        f"{Path(root).expanduser()} (it creates VOCdevkit/VOC{year}), or pass --data-root where it is")
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise UserError(f"PASCAL VOC {year}: {path} lists no images")
    return names


def annotation_label(path: Path, classes: tuple[str, ...] = VOC_CLASSES) -> torch.Tensor:
    """The 0/1 vector ``[K]`` of the non-difficult objects' classes in one annotation file."""
    if not path.is_file():
        raise UserError(f"annotation file '{path}' is missing")
    try:
        objects = ElementTree.parse(path).getroot().findall("object")
    except ElementTree.ParseError as err:
        raise UserError(f"annotation file '{path}' is not valid XML: {err}") from None
    label = torch.zeros(len(classes), dtype=torch.long)
    for obj in objects:
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise UserError(f"annotation file '{path}' has an <object> without a <name>")
        if name not in classes:
            raise UserError(f"annotation file '{path}' names unknown class '{name}'; VOC classes: {', '.join(classes)}")
        if (obj.findtext("difficult") or "0").strip() != "1":
            label[classes.index(name)] = 1
    return label


def split_items(root: str | Path, year: str, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, 3, size, size]`` uint8 and labels ``[N, 20]`` of one ``ImageSets/Main`` split."""
    folder = voc_folder(root, year)
    names = main_split_names(root, year, split)
    labels = torch.stack([annotation_label(folder / "Annotations" / f"{n}.xml") for n in names])
    images = read_images([folder / "JPEGImages" / f"{n}.jpg" for n in names], size)
    return images, labels


def build_voc_multilabel(spec: DataSpec, year: str) -> Splits:
    """VOC label sets: seeded train/val from ``train.txt``, test from ``val.txt``."""
    size = spec.image_size or DEFAULT_SIZE
    pool_x, pool_y = split_items(spec.root, year, "train", size)
    test_x, test_y = split_items(spec.root, year, "val", size)
    train_idx, val_idx = train_val_indices(label_strata(pool_y), spec)
    images, labels = torch.cat([pool_x, test_x]), torch.cat([pool_y, test_y])
    test_idx = torch.arange(len(pool_x), len(images))
    return multilabel_splits(spec.name, images, labels, VOC_CLASSES, (train_idx, val_idx, test_idx))
