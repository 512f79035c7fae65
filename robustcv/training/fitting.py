"""Fitting one network with a recipe: the epochs, validation, test metrics and learning curves.

Both the single-model trainer (:mod:`robustcv.training.trainer`) and the ensemble trainer
(:mod:`robustcv.training.ensemble`) call :func:`fit`; neither is imported here.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from robustcv import distributed
from robustcv.checkpoint import ModelMetadata
from robustcv.console import progress_bar
from robustcv.data import DataSpec, Splits, as_tensors
from robustcv.errors import UserError
from robustcv.models import FreezePlan, ModelSpec, build_model
from robustcv.inference import library_versions, predict
from robustcv.metrics import MetricState
from robustcv.tasks import TaskDefinition, get_task
from robustcv.training.augment import AugmentedDataset, build_augmentation, build_batch_mix
from robustcv.training.losses import class_weights_for, make_loss
from robustcv.training.loop import EpochContext, check_finite_loss, evaluate, train_one_epoch
from robustcv.training.guards import check_batch_norm, check_splits
from robustcv.training.multilabel import check_recipe, task_settings
from robustcv.training.optim import LRSchedule, build_optimizer
from robustcv.training.recipe import Recipe

def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (init, augmentation) and return a generator for shuffling."""
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def fit(splits: Splits, data: DataSpec, model_spec: ModelSpec, recipe: Recipe, *,
        device: torch.device, show_progress: bool = True) -> tuple[torch.nn.Module, ModelMetadata]:
    """Train a model and return it (best epoch restored) with its metadata for ``model.json``."""
    started = time.perf_counter()
    task = get_task(splits.info.task)
    check_recipe(recipe, task)
    if recipe.adv_train == "distillation":
        model, history, best_epoch = _distill(splits, model_spec, recipe, task, device, show_progress)
    else:
        model, history, best_epoch = _train(splits, model_spec, recipe, task, _objective_for(recipe, splits.info), device,
                                            show_progress)
    info = splits.info
    settings = task_settings(model, *as_tensors(splits.val), recipe, task, device)
    meta = ModelMetadata(
        name="", data=data, data_info=info, model=model_spec, recipe=recipe.to_dict(), history=history,
        best_epoch=best_epoch, test_metrics=test_metrics(model, splits, task, device, settings),
        task_settings=settings, versions=library_versions(),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        seconds=round(time.perf_counter() - started, 3), device=str(device),
    )
    return model, meta


def _train(splits: Splits, model_spec: ModelSpec, recipe: Recipe, task: TaskDefinition, objective: Any,
           device: torch.device, show_progress: bool) -> tuple[torch.nn.Module, list[dict[str, Any]], int]:
    """Build and train one network; returns it (best epoch restored, eval mode), its history and best epoch."""
    check_splits(splits)
    generator = seed_everything(recipe.seed)
    info, world = splits.info, distributed.current()
    model = build_model(model_spec, info).to(device)
    x_val, y_val = as_tensors(splits.val)
    loader = _train_loader(splits, recipe, generator, world)
    plan = FreezePlan.parse(recipe.freeze)
    check_batch_norm(model, plan, info, len(splits.train), recipe.batch_size, world.size)
    ctx = EpochContext(
        optimizer=build_optimizer(plan.apply(model, 0, lr=recipe.lr, backbone_lr_scale=recipe.backbone_lr_scale), recipe),
        schedule=LRSchedule(recipe, len(loader), mode="min" if recipe.monitor == "val_loss" else "max"),
        loss_fn=_loss_for(recipe, splits, info, task), device=device, new_metrics=lambda: task.accumulator(info),
        objective=objective, batch_mix=build_batch_mix(recipe.mixup, recipe.cutmix, info.num_classes),
        train_model=_data_parallel(model, plan, device) if world.distributed else None,
    )
    val = Validation(x_val, y_val, task, info)
    history, best_state, best_epoch = _run_epochs(model, loader, ctx, plan, recipe, val, show_progress)
    model.load_state_dict(best_state)
    return model.eval(), history, best_epoch


def _distill(splits: Splits, model_spec: ModelSpec, recipe: Recipe, task: TaskDefinition, device: torch.device,
             show_progress: bool) -> tuple[torch.nn.Module, list[dict[str, Any]], int]:
    """Defensive distillation: a teacher at temperature T, then a student on its soft labels.

    Both stages train at the recipe's learning rate times √T (:func:`distillation_lr`). The history
    is the student's, each epoch marked ``stage: student`` after the teacher's.
    """
    from defenses.distillation import DistilledStudent, TemperedTeacher

    temperature = recipe.distill_temperature
    recipe = dataclasses.replace(recipe, lr=distillation_lr(recipe))
    teacher, teacher_history, _ = _train(splits, model_spec, recipe, task, TemperedTeacher(temperature), device,
                                         show_progress)
    student, history, best = _train(splits, model_spec, recipe, task, DistilledStudent(teacher, temperature),
                                    device, show_progress)
    stages = [dict(h, stage="teacher") for h in teacher_history] + [dict(h, stage="student") for h in history]
    return student, stages, best


def distillation_lr(recipe: Recipe) -> float:
    """The learning rate of both distillation stages: the recipe's times √T.

    At temperature T the logits must grow T-fold before ``softmax(logits / T)`` is as confident as
    an ordinary model's softmax, and AdamW moves each weight by about the learning rate per step.
    At the recipe's own rate the teacher's soft labels stay near uniform and the student learns
    little: on digits at T=100 the student reached 0.48 clean accuracy (0.58 after 40 epochs); at
    √T = 10 times the rate it reaches 0.989, as the standard recipe does (0.99), which is what
    Papernot et al. report (distillation costs no clean accuracy).
    """
    return recipe.lr * math.sqrt(recipe.distill_temperature)


@dataclass
class Validation:
    """The validation split as tensors, with the task that scores it."""

    x: torch.Tensor
    y: torch.Tensor
    task: TaskDefinition
    info: Any


def _loss_for(recipe: Recipe, splits: Splits, info, task: TaskDefinition) -> Any:
    weights = None
    if recipe.class_weights != "none":
        _, y_train = as_tensors(splits.train)
        weights = class_weights_for(recipe.class_weights, y_train, info.num_classes, task.loss_family)
    return make_loss(recipe.loss, family=task.loss_family, num_classes=info.num_classes,
                     label_smoothing=recipe.label_smoothing, focal_gamma=recipe.focal_gamma,
                     class_weights=weights, ignore_index=info.ignore_index)


def _train_loader(splits: Splits, recipe: Recipe, generator: torch.Generator,
                  world: distributed.World) -> DataLoader:
    """Shuffled training batches; under torchrun each rank reads its shard, and the recipe's
    batch size is the global one (split across ranks)."""
    info = splits.info
    dataset = AugmentedDataset(splits.train, build_augmentation(recipe.augment, info), info.task)
    drop_last = len(dataset) > recipe.batch_size  # a batch of one breaks BatchNorm
    if not world.distributed:
        return DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, generator=generator,
                          drop_last=drop_last, num_workers=0)
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True,
                                 seed=recipe.seed, drop_last=drop_last)
    return DataLoader(dataset, batch_size=max(1, recipe.batch_size // world.size), sampler=sampler,
                      drop_last=drop_last, num_workers=0)


def _data_parallel(model: torch.nn.Module, plan: FreezePlan, device: torch.device) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel (gradients averaged across ranks)."""
    from torch.nn.parallel import DistributedDataParallel

    if plan.mode == "staged":
        raise UserError("--freeze staged:N is not supported under torchrun yet (DDP fixes the trained "
                        "parameters when it wraps the model); use full, head or last:N")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _objective_for(recipe: Recipe, info) -> Any:
    if not recipe.adversarial:
        return None
    from defenses.adversarial import build_objective

    return build_objective(recipe.adv_train, eps=recipe.train_eps, steps=recipe.train_steps, beta=recipe.trades_beta,
                           ignore_index=info.ignore_index)


def _monitor(recipe: Recipe, task: TaskDefinition) -> str:
    """Adversarial training keeps the epoch with the best robust validation accuracy; other tasks
    than classification monitor their headline metric (mIoU, mAP) in place of accuracy."""
    if recipe.monitor != "val_accuracy":
        return recipe.monitor
    if recipe.adversarial:
        return "val_robust_accuracy"
    return f"val_{task.headline_metric}"


def _run_epochs(model, loader, ctx: EpochContext, plan, recipe: Recipe, val, show_progress: bool):
    monitor = _monitor(recipe, val.task)
    sign = -1.0 if monitor == "val_loss" else 1.0
    history: list[dict[str, Any]] = []
    best_score, best_state, best_epoch, stale = float("-inf"), None, 0, 0
    with progress_bar(show_progress) as bar:
        for epoch in range(recipe.epochs):
            if epoch > 0 and plan.changes_at(epoch):
                groups = plan.apply(model, epoch, lr=recipe.lr, backbone_lr_scale=recipe.backbone_lr_scale)
                ctx.optimizer = build_optimizer(groups, recipe)
            record = _one_epoch(model, loader, ctx, plan, recipe, val, epoch, bar)
            history.append(record)
            ctx.schedule.observe(record[monitor])
            score = sign * record[monitor]
            if score > best_score:
                best_score, best_state, best_epoch, stale = score, copy.deepcopy(model.state_dict()), epoch + 1, 0
            else:
                stale += 1
            if recipe.early_stopping and stale >= recipe.early_stopping:
                break
    return history, best_state, best_epoch


def _one_epoch(model, loader, ctx: EpochContext, plan, recipe: Recipe, val, epoch: int, bar) -> dict[str, Any]:
    start = time.perf_counter()
    task = bar.add_task(f"epoch {epoch + 1}/{recipe.epochs}", total=len(loader), status="")

    def on_step(loss: float, metrics: MetricState) -> None:
        label, value = metrics.running()
        bar.update(task, advance=1, status=f"loss {loss:.3f} {label} {value:.3f}")

    plan.set_train_mode(model, epoch)
    record: dict[str, Any] = {"epoch": epoch + 1}
    record.update(train_one_epoch(model, loader, ctx, epoch, on_step))
    scores = evaluate(model, val.x, val.y, ctx.loss_fn, ctx.device, val.task.accumulator(val.info))
    check_finite_loss(scores["loss"], epoch, None, ctx.optimizer)
    record.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
    headline = val.task.headline_metric
    if headline != "accuracy":
        record[f"val_{headline}"] = scores["metrics"][headline]
    if recipe.adversarial:
        record["val_robust_accuracy"] = robust_val_accuracy(model, val, ctx.objective.norm, recipe, ctx.device)
    record["lr"] = ctx.optimizer.param_groups[-1]["lr"]
    record["seconds"] = round(time.perf_counter() - start, 3)
    status = (f"loss {record['train_loss']:.3f} acc {record['train_accuracy']:.3f} · "
              f"val acc {record['val_accuracy']:.3f}")
    if headline != "accuracy":
        status += f" val {headline} {record[f'val_{headline}']:.3f}"
    if "val_robust_accuracy" in record:
        status += f" robust {record['val_robust_accuracy']:.3f}"
    bar.update(task, status=status)
    return record


def robust_val_accuracy(model, val: Validation, norm: str, recipe: Recipe, device: torch.device,
                        n: int = 256) -> float:
    """PGD-10 robust accuracy (in the adversarial training's norm) on a fixed validation batch:
    catches catastrophic overfitting. For segmentation, the mean per-image pixel accuracy."""
    from attacks import PGD

    objective = val.task.objective(val.info)
    x, y = val.x[:n].to(device), val.y[:n].to(device)
    attack = PGD(norm=norm, steps=10, random_start=True, seed=recipe.seed, objective=objective)
    x_adv = attack(model, x, y, recipe.train_eps)
    return float(objective.quality(predict(model, x_adv, device), y.cpu()).mean())


def test_metrics(model: torch.nn.Module, splits: Splits, task: TaskDefinition, device: torch.device,
                 settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task's metrics on the test split (classification report, mIoU, mAP...) under the
    checkpoint's ``task_settings`` (multi-label thresholds)."""
    x, y = as_tensors(splits.test)
    return task.accumulator(splits.info, **(settings or {})).update(predict(model, x, device), y).compute()


def save_mask_examples(model: torch.nn.Module, splits: Splits, path: Path, title: str, device: torch.device,
                       count: int = 4) -> None:
    """A few test images, their ground truth and the predicted masks in the dataset's colours."""
    from robustcv.plotting import save_figure, segmentation_examples_figure

    x, y = as_tensors(splits.test)
    x, y = x[:count], y[:count]
    predicted = predict(model, x, device).argmax(dim=1)
    save_figure(segmentation_examples_figure(x, y, predicted, splits.info.classes, title), path)


def save_learning_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch (and robust validation accuracy when present) as a PNG."""
    from robustcv.plotting import learning_curve_figure, save_figure

    save_figure(learning_curve_figure(history, title), path)
