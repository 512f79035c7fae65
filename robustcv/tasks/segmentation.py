"""Segmentation: one class per pixel with an ``ignore_index``; mIoU from one confusion matrix."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robustcv.tasks.base import TaskDefinition, register_task

if TYPE_CHECKING:
    from attacks.objectives import Objective
    from robustcv.metrics import MetricState

# Every attack on every image (an image is rarely fooled whole, so a cascade would skip nothing);
# SegPGD and CosPGD as the papers use them, then APGD with SEA's losses.
DEFAULT_ATTACKS = ("fgsm", "pgd", "segpgd", "cospgd", "apgd(loss=mce)", "apgd(loss=js)")
SAMPLES = 100  # every image is attacked at every eps (none falls early)


class SegmentationTask(TaskDefinition):
    """One class per pixel with an ``ignore_index``; mIoU from one confusion matrix."""

    name = "segmentation"
    summary = "one class per pixel (ignore_index 255); robust mIoU"
    loss_family = "pixel-softmax"
    head = "pixel"
    gallery = "masks"
    headline_metric = "miou"
    robust_metric = "miou"
    robust_label = "robust mIoU"
    default_dataset = "shapes"
    default_model = "unet"
    default_samples = SAMPLES
    objective_class = "Segmentation"

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":  # noqa: D102
        from attacks.objectives import Segmentation

        return Segmentation(self.checked_loss(loss), ignore_index=info.ignore_index, **settings)

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":  # noqa: D102
        from robustcv.metrics import SegmentationState

        return SegmentationState(tuple(info.classes), info.ignore_index)

    def default_attacks(self, num_classes: int, targeted: str = "none") -> list[str]:  # noqa: D102
        return list(DEFAULT_ATTACKS)

    def targeted_problem(self, text: str, num_classes: int) -> str | None:
        """Also SOURCE:TARGET: only one class's pixels are aimed at another."""
        if text in ("none", "random", "least-likely"):
            return None
        classes = text.split(":")
        if len(classes) > 2 or not all(c.isdigit() and int(c) < num_classes for c in classes):
            return (f"{text!r}: use none, random, least-likely, a class index 0..{num_classes - 1}, "
                    "or SOURCE:TARGET (the pixels of one class to another)")
        if len(classes) == 2 and classes[0] == classes[1]:
            return f"{text!r} sends a class to itself"
        return None


register_task(SegmentationTask())
