"""Small helpers shared by the dataset builders."""
from __future__ import annotations

import warnings

from robustcv.data.base import DataSpec


def warn_fixed_size(spec: DataSpec, size: tuple[int, int]) -> None:
    """Warn that ``spec.image_size`` is ignored by a dataset whose images have a fixed size.

    Resizing whole torchvision sets up front would multiply their memory; a model that needs
    larger inputs resizes inside itself.
    """
    if spec.image_size is not None and (spec.image_size, spec.image_size) != tuple(size):
        warnings.warn(
            f"dataset '{spec.name}' has fixed {size[0]}x{size[1]} images; image_size={spec.image_size} is ignored",
            stacklevel=3,
        )
