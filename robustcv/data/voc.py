"""PASCAL VOC (``voc`` = 2012, ``voc2007`` .. ``voc2012``) in the VOCdevkit layout under ``spec.root``.

Segmentation reads::

    <root>/VOCdevkit/VOC<year>/ImageSets/Segmentation/{train,val}.txt
    <root>/VOCdevkit/VOC<year>/JPEGImages/<name>.jpg
    <root>/VOCdevkit/VOC<year>/SegmentationClass/<name>.png   (palette PNG: index = class id)

``train.txt`` is the training pool (``spec.val_fraction`` of it, seeded, becomes validation) and
``val.txt`` is the test set. The masks hold 21 classes (background and ``VOC_CLASSES``) and 255
on object borders and difficult regions, the ignore index. Nothing is downloaded: absent files
end in one ``UserError`` naming the expected path and the archive to extract there.

The same names serve ``--task multilabel``, built by ``robustcv.data.voc_multilabel``.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from robustcv.data.base import DatasetBuilder, DataSpec, Splits, by_task
from robustcv.data.registry import register_dataset
from robustcv.data.segfiles import Pair, check_pair, fixed_size, segmentation_splits
from robustcv.data.splitting import train_val_indices
from robustcv.data.voc_files import ARCHIVES, SEGMENTATION_CLASSES, VOC_CLASSES, voc_folder
from robustcv.data import voc_multilabel
from robustcv.errors import UserError

__all__ = ["ARCHIVES", "SEGMENTATION_CLASSES", "VOC_CLASSES", "voc_folder", "split_names", "segmentation_pairs",
           "build_voc_segmentation"]

def split_names(root: str | Path, year: str, split: str) -> list[str]:
    """The image names listed in ``ImageSets/Segmentation/<split>.txt`` of ``year``.

    Raises:
        UserError: the list is absent (one line: the expected path and what to extract where)
            or empty.
    """
    path = voc_folder(root, year) / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        raise UserError(
            f"PASCAL VOC {year} not found: expected {path}; extract {ARCHIVES[year]} into {Path(root).expanduser()} "
            f"(it creates VOCdevkit/VOC{year}), or pass --data-root where it is"
        )
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise UserError(f"PASCAL VOC {year}: {path} lists no images")
    return names


def segmentation_pairs(root: str | Path, year: str, split: str) -> list[Pair]:
    """``(JPEG, mask PNG)`` of every image of a split, checked to exist with matching sizes."""
    folder = voc_folder(root, year)
    pairs = [(folder / "JPEGImages" / f"{n}.jpg", folder / "SegmentationClass" / f"{n}.png")
             for n in split_names(root, year, split)]
    for pair in pairs:
        check_pair(pair)
    return pairs


def build_voc_segmentation(spec: DataSpec, year: str) -> Splits:
    """VOC segmentation splits: seeded train/val from ``train.txt``, test from ``val.txt``."""
    pool = segmentation_pairs(spec.root, year, "train")
    test = segmentation_pairs(spec.root, year, "val")
    train_idx, val_idx = train_val_indices(torch.zeros(len(pool), dtype=torch.long), spec)
    parts = ([pool[i] for i in train_idx.tolist()], [pool[i] for i in val_idx.tolist()], test)
    return segmentation_splits(spec.name, parts, SEGMENTATION_CLASSES, fixed_size(spec))


def _builder(year: str) -> DatasetBuilder:
    """The registered builder of one year: segmentation masks or, for ``--task multilabel``, label sets."""
    builders = {"segmentation": functools.partial(build_voc_segmentation, year=year),
                "multilabel": lambda spec: voc_multilabel.build_voc_multilabel(spec, year)}
    build = by_task(builders, f"voc{year}")
    build.__doc__ = f"PASCAL VOC {year}: segmentation masks or, for ``--task multilabel``, label sets."
    return build


_TASKS = ("segmentation", "multilabel")
register_dataset("voc", tasks=_TASKS)(_builder("2012"))
for _year in ARCHIVES:
    register_dataset(f"voc{_year}", tasks=_TASKS)(_builder(_year))
