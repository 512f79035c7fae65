"""Multi-label training: what the sigmoid loss family refuses, and the decision thresholds.

The thresholds are decided once training is done, from the validation split, and stored in
``model.json`` (``ModelMetadata.task_settings["thresholds"]``, one probability per class); the
attack objective and the metrics read them from there.
"""
from __future__ import annotations

from typing import Any

import torch

from robustcv.errors import UserError
from robustcv.inference import predict
from robustcv.tasks import TaskDefinition
from robustcv.training.recipe import DEFAULT_THRESHOLD, TUNED, Recipe

CANDIDATES = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95
SOFTMAX_ONLY = {"trades": "TRADES' KL divergence", "distillation": "defensive distillation's soft labels"}


def check_recipe(recipe: Recipe, task: TaskDefinition) -> None:
    """Refuse, in one line, what a recipe asks that the task's loss family cannot do."""
    if recipe.adv_train == "segpgd-at" and task.loss_family != "pixel-softmax":
        raise UserError("--adv-train segpgd-at attacks per-pixel labels: it needs --task segmentation (use pgd-at)")
    if task.loss_family != "sigmoid":
        if recipe.threshold != DEFAULT_THRESHOLD:
            raise UserError("--threshold applies to --task multilabel only")
        return
    if recipe.mixup > 0 or recipe.cutmix > 0:
        raise UserError("--mixup and --cutmix mix one-hot classes; --task multilabel does not use them")
    if recipe.label_smoothing > 0:
        raise UserError("--label-smoothing applies to softmax classes; --task multilabel does not use it")
    if recipe.adv_train in SOFTMAX_ONLY:
        raise UserError(f"--adv-train {recipe.adv_train} compares softmax distributions "
                        f"({SOFTMAX_ONLY[recipe.adv_train]}); for --task multilabel use fgsm-rs or pgd-at")


def best_f1_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The candidate probability with the best F1 for one class (ties: the one nearest 0.5;
    0.5 when the class has no positive)."""
    truth = labels.bool()
    if not truth.any():
        return 0.5
    candidates = torch.tensor(CANDIDATES, dtype=scores.dtype)
    predicted = scores[None, :] > candidates[:, None]  # [C, N]
    tp = (predicted & truth).sum(1).double()
    f1 = 2 * tp / (predicted.sum(1) + truth.sum()).double()
    best = f1 == f1.max()
    nearest = torch.where(best, (candidates - 0.5).abs(), torch.inf).argmin()
    return float(CANDIDATES[int(nearest)])


def tune_thresholds(scores: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per class, the threshold with the best F1 on ``scores`` ``[N, K]`` (probabilities)."""
    return [best_f1_threshold(scores[:, k], labels[:, k]) for k in range(scores.shape[1])]


def task_settings(model: torch.nn.Module, x_val: torch.Tensor, y_val: torch.Tensor, recipe: Recipe,
                  task: TaskDefinition, device: torch.device) -> dict[str, Any]:
    """What ``model.json`` stores for the task: the multi-label thresholds, else nothing."""
    if task.loss_family != "sigmoid":
        return {}
    classes = y_val.shape[1]
    if recipe.threshold != TUNED:
        return {"thresholds": [float(recipe.threshold)] * classes}
    scores = torch.sigmoid(predict(model, x_val, device))
    return {"thresholds": tune_thresholds(scores, y_val)}
