"""Joint image/mask transforms that bring segmentation photographs of any size to one square size.

Both take ``(tv_tensors.Image, tv_tensors.Mask)`` and draw their random parameters once per
call from torch's global RNG, so the mask follows the image exactly. Masks are resized by exact
nearest neighbour, whose pixel centres line up with the image's bilinear resize (torchvision's
default nearest mode for masks shifts them by up to half an output pixel when downscaling), and
padded with the ignore index 255.
"""
from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from robustcv.data.palette import IGNORE_INDEX

MIN_SCALE, MAX_SCALE = 0.5, 2.0
"""The training scales, relative to the evaluation scale (shorter side = size)."""


class ResizeShorterSide(v2.Transform):
    """Resize so the shorter side is ``low`` (or a size drawn uniformly from ``low..high``).

    Images are resized bilinearly with antialiasing; masks by exact nearest neighbour, the
    variant whose pixel centres line up with the bilinear image.

    Args:
        low: the shorter side, or the smallest one drawn.
        high: the largest shorter side drawn (inclusive); ``None`` for a fixed size.
    """

    def __init__(self, low: int, high: int | None = None) -> None:
        super().__init__()
        self.low, self.high = low, low if high is None else high

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:  # noqa: D102
        if self.high == self.low:
            return {"size": self.low}
        return {"size": int(torch.randint(self.low, self.high + 1, ()))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:  # noqa: D102
        mode = InterpolationMode.NEAREST_EXACT if isinstance(inpt, tv_tensors.Mask) else InterpolationMode.BILINEAR
        return F.resize(inpt, [params["size"]], interpolation=mode, antialias=True)


def eval_transform(size: int) -> v2.Transform:
    """Shorter side to ``size``, then the central ``size`` x ``size`` square."""
    return v2.Compose([ResizeShorterSide(size), v2.CenterCrop(size)])


def train_transform(size: int) -> v2.Transform:
    """Random scale of the evaluation size, then a random ``size`` crop padded with 0 / 255."""
    low, high = max(1, round(MIN_SCALE * size)), round(MAX_SCALE * size)
    fill = {tv_tensors.Mask: IGNORE_INDEX, "others": 0}
    return v2.Compose([ResizeShorterSide(low, high), v2.RandomCrop(size, pad_if_needed=True, fill=fill)])
