"""Segmentation: one class per pixel with an ``ignore_index``; mIoU from one confusion matrix."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robustcv.metrics.segmentation import SegmentationState, image_confusions
from robustcv.tasks.base import TaskDefinition, register_task

if TYPE_CHECKING:
    import torch

    from attacks.objectives import Objective
    from robustcv.metrics.base import MetricState

# Every attack on every image (an image is rarely fooled whole, so a cascade would skip nothing):
# FGSM, PGD, SegPGD and CosPGD as the papers use them, then SEA's strongest member (APGD with the
# class-balanced masked CE over 2/1.5/1 eps) shortened to 100 steps, from two random starts: with
# the greedy mIoU fold it lands within 0.3 mIoU points of SEA at 0.3x its passes (benchmarks/README.md).
DEFAULT_ATTACKS = ("fgsm", "pgd", "segpgd", "cospgd", "sea(losses=mce-bal,steps=100)",
                   "sea(losses=mce-bal,steps=100,start=1)")
# Where SEA cannot run (targeted runs, L1): APGD with SEA's masked-CE and JS losses instead.
APGD_ATTACKS = ("fgsm", "pgd", "segpgd", "cospgd", "apgd(loss=mce)", "apgd(loss=js)")
# SEA as published (Croce, Singh & Hein, ECCV 2024): its single-loss runs, 300 APGD steps each
# over 2/1.5/1 eps, whose per-image worst case ``worst_case_state`` folds with SEA's greedy mIoU
# rule. ``sea`` alone runs them all and keeps, per image, the one with the fewest right pixels.
SEA_ATTACKS = ("sea(losses=mce-bal)", "sea(losses=mce)", "sea(losses=js)")
SAMPLES = 100  # every image is attacked at every eps (none falls early)
# What an unbounded PGD must leave at most: half the clean pixel accuracy. Every pixel wrong at
# once is beyond PGD (SegPGD at eps 1.0 left 14-25 % of the default U-Net's pixels right after
# 20-60 steps, 35 % of a PGD-trained one's), while a broken evaluation (or a model blind to its
# input) leaves nearly all of them. SegPGD is the strongest per-pixel loss measured there.
LARGE_EPS_SHARE_OF_CLEAN = 0.5
LARGE_EPS_LOSS = "segpgd"


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
    figure_label = "mIoU"
    class_metric = "class_iou"
    class_label = "IoU under attack"
    default_dataset = "shapes"
    default_model = "unet"
    default_samples = SAMPLES
    objective_class = "Segmentation"
    default_ignore_index = 255
    label_moves_with_image = True
    large_eps_share = LARGE_EPS_SHARE_OF_CLEAN
    large_eps_loss = LARGE_EPS_LOSS
    class_checks = False
    metrics = SegmentationState.METRICS

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":  # noqa: D102
        from attacks.objectives import Segmentation

        return Segmentation(self.checked_loss(loss), ignore_index=info.ignore_index, **settings)

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":  # noqa: D102
        return SegmentationState(tuple(info.classes), info.ignore_index)

    def sample_state(self, objective: "Objective", logits: "torch.Tensor",
                     y: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """``confusion``: each image's pixel confusion matrix ``[B, K, K]``."""
        return {"confusion": image_confusions(logits, y, logits.shape[1], objective.ignore_index)}

    def worst_case_state(self, outcomes: list[Any], worst: Any) -> None:
        """SEA's rule, per image and eps: for mIoU the greedy choice that lowers the dataset's mIoU
        most, for pixel accuracy the attack with the fewest right pixels."""
        import torch

        from robustcv.metrics.segmentation import worst_by_miou, worst_by_pixel_accuracy

        stacked = torch.stack([o.confusion for o in outcomes])  # [A, E, N, K, K]
        worst.confusion = torch.stack([worst_by_miou(stacked[:, j]) for j in range(stacked.shape[1])])
        worst.accuracy_confusion = torch.stack([worst_by_pixel_accuracy(stacked[:, j])
                                                for j in range(stacked.shape[1])])

    def label_form(self, num_classes: int) -> tuple[int, str]:  # noqa: D102
        return 3, "[N, H, W] masks"

    def default_attacks(self, num_classes: int, targeted: str = "none", norm: str = "linf") -> list[str]:
        """SEA's members where they run (untargeted, L∞ or L2), else APGD with its losses."""
        return list(DEFAULT_ATTACKS if targeted == "none" and norm in ("linf", "l2") else APGD_ATTACKS)

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
