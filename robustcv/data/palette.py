"""The PASCAL VOC colour map: one distinct RGB colour per class index, for every segmentation set.

Class ``i`` gets the colour whose red, green and blue bits are read off ``i``'s bits in turn,
most significant first (the formula of the VOC development kit's ``labelcolormap``). Index 0 is
black, 1 dark red, 2 dark green, ...; the ignore index 255 is cream ``(224, 224, 192)``, the
colour of VOC's object borders.
"""
from __future__ import annotations

IGNORE_INDEX = 255


def _color(index: int) -> tuple[int, int, int]:
    red = green = blue = 0
    for bit in range(7, -1, -1):  # each group of three index bits sets the next lower colour bit
        red |= (index & 1) << bit
        green |= ((index >> 1) & 1) << bit
        blue |= ((index >> 2) & 1) << bit
        index >>= 3
    return red, green, blue


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """The VOC colour of each class index ``0..num_classes-1``.

    Args:
        num_classes: how many colours; 256 gives the full map, including the ignore colour.

    Returns:
        ``num_classes`` distinct RGB triples in ``0..255``.

    Example:
        >>> class_colors(3)
        [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    """
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    return [_color(i) for i in range(num_classes)]


def ignore_color() -> tuple[int, int, int]:
    """The colour of the ignore index 255 in the VOC map: ``(224, 224, 192)``."""
    return _color(IGNORE_INDEX)


def pil_palette() -> list[int]:
    """The full 256-entry map as a flat ``[r0, g0, b0, r1, ...]`` list for ``Image.putpalette``."""
    return [channel for color in class_colors(256) for channel in color]


def colorize(mask) -> "numpy.ndarray":
    """An index mask ``[H, W]`` (tensor or array) as a ``uint8 [H, W, 3]`` image in the VOC colours."""
    import numpy

    lookup = numpy.asarray(class_colors(256), dtype=numpy.uint8)
    return lookup[numpy.asarray(mask, dtype=numpy.int64).clip(0, 255)]
