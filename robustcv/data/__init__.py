"""Dataset registry: a name → a builder returning train/val/test splits and a ``DataInfo``.

Example::

    from robustcv.data import DataSpec, get_dataset, as_tensors
    splits = get_dataset(DataSpec(name="digits", seed=0))
    x, y = as_tensors(splits.test)
"""
from __future__ import annotations

from robustcv.data.base import DatasetBuilder, DataInfo, DataSpec, Splits
from robustcv.data.registry import get_dataset, list_datasets, register_dataset
from robustcv.data.tensors import ImageTensorDataset, as_tensors

# Importing the builder modules registers them.
from robustcv.data import csv_multilabel as _csv_multilabel  # noqa: E402,F401  isort: skip
from robustcv.data import digits as _digits  # noqa: E402,F401  isort: skip
from robustcv.data import digits_binary as _digits_binary  # noqa: E402,F401  isort: skip
from robustcv.data import imagefolder as _imagefolder  # noqa: E402,F401  isort: skip
from robustcv.data import segfolder as _segfolder  # noqa: E402,F401  isort: skip
from robustcv.data import shapes as _shapes  # noqa: E402,F401  isort: skip
from robustcv.data import torchvision_sets as _torchvision_sets  # noqa: E402,F401  isort: skip
from robustcv.data import voc as _voc  # noqa: E402,F401  isort: skip

__all__ = [
    "DataInfo",
    "DataSpec",
    "DatasetBuilder",
    "ImageTensorDataset",
    "Splits",
    "as_tensors",
    "get_dataset",
    "list_datasets",
    "register_dataset",
]
