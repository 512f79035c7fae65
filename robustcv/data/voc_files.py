"""PASCAL VOC's names and layout, shared by the segmentation set (``robustcv.data.voc``) and the
multi-label set (``robustcv.data.voc_multilabel``): the 20 classes, the archive of each year
and where a year's files live under the data root."""
from __future__ import annotations

from pathlib import Path

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
"""The 20 VOC object classes in id order (segmentation id ``i + 1``; 0 is background)."""
SEGMENTATION_CLASSES = ("background",) + VOC_CLASSES
ARCHIVES = {
    "2007": "VOCtrainval_06-Nov-2007.tar",
    "2008": "VOCtrainval_14-Jul-2008.tar",
    "2009": "VOCtrainval_11-May-2009.tar",
    "2010": "VOCtrainval_03-May-2010.tar",
    "2011": "VOCtrainval_25-May-2011.tar",
    "2012": "VOCtrainval_11-May-2012.tar",
}
"""The official trainval archive of each year; extracted in the root it creates ``VOCdevkit/``."""


def voc_folder(root: str | Path, year: str) -> Path:
    """``<root>/VOCdevkit/VOC<year>``, where a year's files live."""
    return Path(root).expanduser() / "VOCdevkit" / f"VOC{year}"
