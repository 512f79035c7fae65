"""Decoded images to 8-bit RGB, whatever their mode and bit depth (shared by the folder datasets)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


def as_rgb(image: "PILImage") -> "PILImage":
    """Any PIL image as 8-bit RGB. High-bit-depth grey (16-bit ``I;16*``, 32-bit ``I``, float
    ``F``) is scaled to 0..255 first: PIL's own ``convert`` clips it, so a 16-bit PNG came out
    almost white. Palette, 1-bit, grey, CMYK and alpha modes go through ``convert`` (alpha dropped)."""
    from PIL import Image

    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        scaled = np.clip(values / _full_scale(image.mode, values) * 255.0, 0.0, 255.0)
        image = Image.fromarray(np.rint(scaled).astype(np.uint8))  # 2-D uint8: mode L
    return image.convert("RGB")


def _full_scale(mode: str, values: np.ndarray) -> float:
    """The value that means white: 65535 for 16-bit data, 1.0 for floats in [0, 1], else the
    image's own maximum (32-bit integers and floats beyond 1 have no fixed scale)."""
    top = float(values.max()) if values.size else 0.0
    if mode.startswith("I;16") or (mode == "I" and top <= 65535):
        return 65535.0
    if mode == "F" and top <= 1.0:
        return 1.0
    return max(top, 1e-12)
