"""The training loop, torchvision-references style: ``train_one_epoch`` and ``evaluate``.

Adversarial training is an objective slotted into ``train_one_epoch``, not a second loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from attacks.frozen import eval_frozen
from robustcv.errors import UserError
from robustcv.inference import predict
from robustcv.metrics import MetricState
from robustcv.models.segmenters import AUX_WEIGHT, pop_auxiliary_logits
from robustcv.training.losses import LossFn
from robustcv.training.optim import LRSchedule

StepCallback = Callable[[float, MetricState], None]  # (running mean loss, the metrics so far)


@dataclass
class EpochContext:
    """What one training epoch needs besides the model and the data."""

    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    loss_fn: LossFn
    device: torch.device
    new_metrics: Callable[[], MetricState]  # the task's empty accumulator
    objective: Any = None  # defenses.adversarial objective, or None for standard training
    batch_mix: Callable | None = None  # MixUp/CutMix on (images, labels)
    train_model: nn.Module | None = None  # what the steps call: a DistributedDataParallel wrapper, or None


def train_one_epoch(model: nn.Module, loader: DataLoader, ctx: EpochContext, epoch: int,
                    on_step: StepCallback | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and the task's accuracy on the (augmented) batches."""
    total_loss, metrics = 0.0, ctx.new_metrics()
    if hasattr(loader.sampler, "set_epoch"):  # a DistributedSampler reshuffles per epoch
        loader.sampler.set_epoch(epoch)
    net = ctx.train_model or model
    for step, (x, y) in enumerate(loader):
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        hard = y
        if ctx.batch_mix is not None:
            x, y = ctx.batch_mix(x, y)
            hard = y.argmax(dim=1)
        ctx.schedule.apply(ctx.optimizer, epoch, step)
        loss, logits = _batch_loss(net, x, y, ctx)
        value = float(loss.detach())
        check_finite_loss(value, epoch, step, ctx.optimizer)
        ctx.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ctx.optimizer.step()
        n_batch = x.shape[0]
        total_loss += value * n_batch
        metrics.update(logits.detach(), hard)
        if on_step is not None:
            on_step(total_loss / max(1, _seen(step, loader, n_batch)), metrics)
    samples = len(loader.sampler) if loader.sampler is not None else len(loader.dataset)  # type: ignore[arg-type]
    return {"train_loss": total_loss / max(1, samples), "train_accuracy": metrics.accuracy}


class TrainingDiverged(UserError):
    """The loss turned non-finite: training stops and no checkpoint is written."""


def check_finite_loss(value: float, epoch: int, step: int | None, optimizer: torch.optim.Optimizer) -> None:
    """Raise ``TrainingDiverged`` when ``value`` is nan or infinite (``step`` None: validation)."""
    if math.isfinite(value):
        return
    where = f"epoch {epoch + 1}, step {step + 1}" if step is not None else f"validation after epoch {epoch + 1}"
    lr = optimizer.param_groups[-1]["lr"]
    raise TrainingDiverged(f"training diverged: the loss became {value} at {where} (lr {lr:g}); no checkpoint "
                           "written — lower --lr or check the data")


def _seen(step: int, loader: DataLoader, last_batch: int) -> int:
    return step * (loader.batch_size or last_batch) + last_batch


def _batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: EpochContext):
    if ctx.objective is None:
        logits = model(x)
        return _with_auxiliary(ctx.loss_fn(logits, y), model, y, ctx), logits
    loss = _with_auxiliary(ctx.objective(model, x, y, ctx.loss_fn), model, y, ctx)
    return loss, _clean_logits(model, x)


def _with_auxiliary(loss: torch.Tensor, model: nn.Module, y: torch.Tensor, ctx: EpochContext) -> torch.Tensor:
    """Add the auxiliary head's loss of the last training forward (torchvision's DeepLabV3/FCN)."""
    aux = pop_auxiliary_logits(model)
    return loss if aux is None else loss + AUX_WEIGHT * ctx.loss_fn(aux, y)


def _clean_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Clean-batch logits for the train-accuracy count only, so they must not change the model:
    in eval mode (a train-mode forward would fold the clean batch into BatchNorm's running
    statistics, which adversarial training should estimate on the adversarial batches), with
    every module's train/eval flag restored afterwards (a freeze plan's frozen backbone stays
    in eval mode)."""
    with eval_frozen(model), torch.no_grad():
        return model(x)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
             device: torch.device, metrics: MetricState) -> dict[str, Any]:
    """Loss, the task's accuracy and its full metrics on tensors, in eval mode."""
    logits = predict(model, x, device)
    with torch.inference_mode():
        loss = float(loss_fn(logits, y)) if len(y) else 0.0
    metrics.update(logits, y)
    return {"loss": loss, "accuracy": metrics.accuracy, "metrics": metrics.compute()}


def timed(fn: Callable[[], dict[str, float]]) -> tuple[dict[str, float], float]:
    """Run ``fn`` and return its result with the wall-clock seconds it took."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
