"""Train-if-absent: build data and model from specs, fit with a recipe, save a checkpoint.

``ensure_trained`` is the one entry point the CLI and the attack stage call: it returns the
existing checkpoint when one with the same spec hash exists, and trains otherwise.
"""
from __future__ import annotations

import copy
import platform
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import robustcv
from robustcv.checkpoint import META_FILE, read_metadata, save_checkpoint
from robustcv.console import progress_bar
from robustcv.data import DataSpec, Splits, as_tensors, get_dataset
from robustcv.models import FreezePlan, ModelSpec, build_model
from robustcv.tasks import Task
from robustcv.training.augment import AugmentedDataset, build_augmentation, build_batch_mix
from robustcv.training.losses import class_weights_for, make_loss
from robustcv.training.loop import EpochContext, evaluate, predict, train_one_epoch
from robustcv.training.metrics import classification_report
from robustcv.training.optim import LRSchedule, build_optimizer
from robustcv.training.recipe import Recipe, spec_hash


@dataclass
class TrainResult:
    """Where the checkpoint is, its metadata, and whether this call trained it."""

    checkpoint: Path
    metadata: dict[str, Any]
    trained: bool


def checkpoint_name(data: DataSpec, model: ModelSpec, digest: str) -> str:
    """A readable, filesystem-safe directory name: ``<dataset>-<model>-<hash[:10]>``."""
    raw = f"{data.name.split(':')[0]}-{model.name}"
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", raw) + f"-{digest[:10]}"


def model_spec_hash(data: DataSpec, model: ModelSpec, recipe: Recipe) -> str:
    """The stable hash that keys train-if-absent."""
    return spec_hash(data.to_dict(), model.to_dict(), recipe.to_dict())


def ensure_trained(data: DataSpec, model: ModelSpec, recipe: Recipe, *, models_dir: str | Path = "./models",
                   device: torch.device | str = "cpu", force: bool = False, show_progress: bool = True) -> TrainResult:
    """Return the checkpoint for these specs, training it first when absent (or with ``force``)."""
    digest = model_spec_hash(data, model, recipe)
    directory = Path(models_dir) / checkpoint_name(data, model, digest)
    if (directory / META_FILE).is_file() and not force:
        meta = read_metadata(directory)
        if meta.get("spec_hash") == digest:
            return TrainResult(directory, meta, trained=False)
    splits = get_dataset(data)
    net, meta = fit(splits, data, model, recipe, device=torch.device(device), show_progress=show_progress)
    meta.update(name=directory.name, spec_hash=digest)
    save_checkpoint(directory, net, meta, force=True)
    save_learning_curves(meta["history"], directory / "learning_curves.png", meta["name"])
    return TrainResult(directory, read_metadata(directory), trained=True)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (init, augmentation) and return a generator for shuffling."""
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def fit(splits: Splits, data: DataSpec, model_spec: ModelSpec, recipe: Recipe, *,
        device: torch.device, show_progress: bool = True) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train a model and return it (best epoch restored) with its metadata for ``model.json``."""
    started = time.perf_counter()
    generator = seed_everything(recipe.seed)
    info = splits.info
    model = build_model(model_spec, info).to(device)
    x_val, y_val = as_tensors(splits.val)
    loss_fn = _loss_for(recipe, splits, info)
    loader = _train_loader(splits, recipe, generator)
    plan = FreezePlan.parse(recipe.freeze)
    ctx = EpochContext(
        optimizer=build_optimizer(plan.apply(model, 0, lr=recipe.lr, backbone_lr_scale=recipe.backbone_lr_scale), recipe),
        schedule=LRSchedule(recipe, len(loader), mode="min" if recipe.monitor == "val_loss" else "max"),
        loss_fn=loss_fn, device=device, task=info.task, objective=_objective_for(recipe),
        batch_mix=build_batch_mix(recipe.mixup, recipe.cutmix, info.num_classes), ignore_index=info.ignore_index,
    )
    history, best_state, best_epoch = _run_epochs(model, loader, ctx, plan, recipe, (x_val, y_val), show_progress)
    model.load_state_dict(best_state)
    model.eval()
    meta = {
        "data": data.to_dict(), "data_info": info.to_dict(), "model": model_spec.to_dict(),
        "recipe": recipe.to_dict(), "history": history, "best_epoch": best_epoch,
        "test_metrics": test_metrics(model, splits, device), "versions": library_versions(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(time.perf_counter() - started, 3), "device": str(device),
    }
    return model, meta


def _loss_for(recipe: Recipe, splits: Splits, info) -> Any:
    weights = None
    if recipe.class_weights != "none":
        _, y_train = as_tensors(splits.train)
        weights = class_weights_for(recipe.class_weights, y_train, info.num_classes)
    return make_loss(recipe.loss, num_classes=info.num_classes, label_smoothing=recipe.label_smoothing,
                     focal_gamma=recipe.focal_gamma, class_weights=weights, ignore_index=info.ignore_index)


def _train_loader(splits: Splits, recipe: Recipe, generator: torch.Generator) -> DataLoader:
    info = splits.info
    dataset = AugmentedDataset(splits.train, build_augmentation(recipe.augment, info), info.task)
    drop_last = len(dataset) > recipe.batch_size  # a batch of one breaks BatchNorm
    return DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, generator=generator,
                      drop_last=drop_last, num_workers=0)


def _objective_for(recipe: Recipe) -> Any:
    if not recipe.adversarial:
        return None
    from defenses.adversarial import build_objective

    return build_objective(recipe.adv_train, eps=recipe.train_eps, steps=recipe.train_steps, beta=recipe.trades_beta)


def _monitor(recipe: Recipe) -> str:
    """Adversarial training keeps the epoch with the best robust validation accuracy."""
    return "val_robust_accuracy" if recipe.adversarial and recipe.monitor == "val_accuracy" else recipe.monitor


def _run_epochs(model, loader, ctx: EpochContext, plan, recipe: Recipe, val, show_progress: bool):
    monitor = _monitor(recipe)
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

    def on_step(loss: float, acc: float) -> None:
        bar.update(task, advance=1, status=f"loss {loss:.3f} acc {acc:.3f}")

    plan.set_train_mode(model, epoch)
    record: dict[str, Any] = {"epoch": epoch + 1}
    record.update(train_one_epoch(model, loader, ctx, epoch, on_step))
    scores = evaluate(model, val[0], val[1], ctx.loss_fn, ctx.device, ctx.ignore_index)
    record.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
    if recipe.adversarial:
        record["val_robust_accuracy"] = robust_val_accuracy(model, val, recipe, ctx.device)
    record["lr"] = ctx.optimizer.param_groups[-1]["lr"]
    record["seconds"] = round(time.perf_counter() - start, 3)
    status = (f"loss {record['train_loss']:.3f} acc {record['train_accuracy']:.3f} · "
              f"val acc {record['val_accuracy']:.3f}")
    if "val_robust_accuracy" in record:
        status += f" robust {record['val_robust_accuracy']:.3f}"
    bar.update(task, status=status)
    return record


def robust_val_accuracy(model, val, recipe: Recipe, device: torch.device, n: int = 256) -> float:
    """PGD-10 robust accuracy on a fixed validation batch: catches catastrophic overfitting."""
    from attacks import PGD

    x, y = val[0][:n].to(device), val[1][:n].to(device)
    attack = PGD(norm="linf", steps=10, random_start=True, seed=recipe.seed)
    x_adv = attack(model, x, y, recipe.train_eps)
    pred = predict(model, x_adv, device).argmax(dim=1)
    return float((pred == y.cpu()).float().mean())


def test_metrics(model: torch.nn.Module, splits: Splits, device: torch.device) -> dict[str, Any]:
    """Test-split metrics: the classification report, or pixel accuracy for segmentation."""
    x, y = as_tensors(splits.test)
    logits = predict(model, x, device)
    info = splits.info
    if info.task == Task.SEGMENTATION:
        keep = y != info.ignore_index if info.ignore_index is not None else torch.ones_like(y, dtype=torch.bool)
        return classification_report(y[keep], logits.argmax(1)[keep], info.classes)
    return classification_report(y, logits.argmax(dim=1), info.classes)


def library_versions() -> dict[str, str]:
    """Versions that matter for reproducing a number."""
    import numpy
    import torchvision

    return {"robustcv": robustcv.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def save_learning_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch (and robust validation accuracy when present) as a PNG."""
    from robustcv.plotting import learning_curve_figure, save_figure

    save_figure(learning_curve_figure(history, title), path)
