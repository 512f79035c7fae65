"""The training loop, torchvision-references style: ``train_one_epoch`` and ``evaluate``.

Adversarial training is an objective slotted into ``train_one_epoch``, not a second loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from attacks.frozen import eval_frozen
from robustcv.tasks import Task
from robustcv.training.losses import LossFn
from robustcv.training.optim import LRSchedule

StepCallback = Callable[[float, float], None]


@dataclass
class EpochContext:
    """What one training epoch needs besides the model and the data."""

    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    loss_fn: LossFn
    device: torch.device
    task: Task
    objective: Any = None  # defenses.adversarial objective, or None for standard training
    batch_mix: Callable | None = None  # MixUp/CutMix on (images, labels)
    ignore_index: int | None = None


def train_one_epoch(model: nn.Module, loader: DataLoader, ctx: EpochContext, epoch: int,
                    on_step: StepCallback | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and accuracy on the (augmented) batches."""
    total_loss, correct, counted = 0.0, 0.0, 0
    for step, (x, y) in enumerate(loader):
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        hard = y
        if ctx.batch_mix is not None:
            x, y = ctx.batch_mix(x, y)
            hard = y.argmax(dim=1)
        ctx.schedule.apply(ctx.optimizer, epoch, step)
        loss, logits = _batch_loss(model, x, y, ctx)
        ctx.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ctx.optimizer.step()
        n_batch = x.shape[0]
        total_loss += float(loss.detach()) * n_batch
        hits, count = _hits(logits.detach(), hard, ctx.ignore_index)
        correct += hits
        counted += count
        if on_step is not None:
            on_step(total_loss / max(1, _seen(step, loader, n_batch)), correct / max(1, counted))
    samples = len(loader.dataset)  # type: ignore[arg-type]
    return {"train_loss": total_loss / max(1, samples), "train_accuracy": correct / max(1, counted)}


def _seen(step: int, loader: DataLoader, last_batch: int) -> int:
    return step * (loader.batch_size or last_batch) + last_batch


def _batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: EpochContext):
    if ctx.objective is None:
        logits = model(x)
        return ctx.loss_fn(logits, y), logits
    loss = ctx.objective(model, x, y, ctx.loss_fn)
    return loss, _clean_logits(model, x)


def _clean_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Clean-batch logits for the train-accuracy count only, so they must not change the model:
    in eval mode (a train-mode forward would fold the clean batch into BatchNorm's running
    statistics, which adversarial training should estimate on the adversarial batches), with
    every module's train/eval flag restored afterwards (a freeze plan's frozen backbone stays
    in eval mode)."""
    with eval_frozen(model), torch.no_grad():
        return model(x)


def _hits(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None) -> tuple[float, int]:
    """Correct predictions and how many were counted (pixels for segmentation)."""
    pred = logits.argmax(dim=1)
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    return float(((pred == target) & valid).sum()), int(valid.sum())


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Logits for a tensor of images, batched, in eval mode (caller restores the mode)."""
    model.eval()
    outs = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
             device: torch.device, ignore_index: int | None = None) -> dict[str, float]:
    """Loss and accuracy (pixel accuracy for segmentation) on tensors, in eval mode."""
    logits = predict(model, x, device)
    with torch.inference_mode():
        loss = float(loss_fn(logits, y)) if len(y) else 0.0
    hits, count = _hits(logits, y, ignore_index)
    return {"loss": loss, "accuracy": hits / max(1, count)}


def timed(fn: Callable[[], dict[str, float]]) -> tuple[dict[str, float], float]:
    """Run ``fn`` and return its result with the wall-clock seconds it took."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
