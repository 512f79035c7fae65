"""Train-if-absent: build data and model from specs, fit with a recipe, save a checkpoint.

``ensure_trained`` is the one entry point the CLI and the attack stage call: it returns the
existing checkpoint when one with the same spec hash exists, and trains otherwise.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from robustcv import distributed
from robustcv.checkpoint import META_FILE, ModelMetadata, read_metadata, write_checkpoint_files
from robustcv.console import console
from robustcv.data import DataSpec, Splits, get_dataset
from robustcv.models import ModelSpec
from robustcv.models.ensemble import is_ensemble
from robustcv.outputs import OutputKind, claim_output
from robustcv.tasks import get_task
from robustcv.training.ensemble import fit_ensemble, write_ensemble
from robustcv.training.fitting import fit, save_learning_curves, save_mask_examples, seed_everything, test_metrics
from robustcv.training.multilabel import check_recipe
from robustcv.training.recipe import Recipe, spec_hash

PREDICTIONS_FILE = "predictions.png"


@dataclass
class TrainResult:
    """Where the checkpoint is, its metadata, and whether this call trained it."""

    checkpoint: Path
    metadata: ModelMetadata
    trained: bool


def checkpoint_name(data: DataSpec, model: ModelSpec, digest: str) -> str:
    """A readable, filesystem-safe directory name: ``<dataset>-<model>-<hash[:10]>``."""
    raw = f"{data.name.split(':')[0]}-{model.name}"
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", raw) + f"-{digest[:10]}"


def model_spec_hash(data: DataSpec, model: ModelSpec, recipe: Recipe) -> str:
    """The stable hash that keys train-if-absent."""
    return spec_hash(data.to_dict(), model.to_dict(), recipe.hashed_dict())


def ensure_trained(data: DataSpec, model: ModelSpec, recipe: Recipe, *, models_dir: str | Path = "./models",
                   device: torch.device | str = "cpu", force: bool = False, show_progress: bool = True) -> TrainResult:
    """Return the checkpoint for these specs, training it first when absent (or with ``force``)."""
    digest = model_spec_hash(data, model, recipe)
    directory = Path(models_dir) / checkpoint_name(data, model, digest)
    world = distributed.current()
    # Rank 0 decides, so every rank trains (DDP) or none does.
    if distributed.broadcast(not force and _has_checkpoint(directory, digest), world):
        return TrainResult(directory, read_metadata(directory), trained=False)
    # Claimed (locked, found writable) before training: a models folder that cannot take it fails now.
    with contextlib.ExitStack() as claimed:
        with distributed.rank0_decides(world):  # a models folder rank 0 cannot use stops every rank
            out = claimed.enter_context(claim_output(directory, OutputKind.CHECKPOINT, force=True,
                                                     option="--models-dir", enabled=world.main))
        splits = get_dataset(data)
        check_recipe(recipe, get_task(splits.info.task))  # a data or recipe mistake is the only line
        if show_progress and world.main:
            why = "--force: retraining" if force and directory.exists() else "no checkpoint for this spec yet: training"
            console.print(f"{why} {model.name} on {data.name} into {directory}", soft_wrap=True, markup=False)
        if is_ensemble(model.name):
            _fit_ensemble_into(out, splits, data, model, recipe, directory.name, digest, device,
                               show_progress and world.main)
            distributed.barrier(world)
            return TrainResult(directory, read_metadata(directory), trained=True)
        net, meta = fit(splits, data, model, recipe, device=torch.device(device),
                        show_progress=show_progress and world.main)
        if world.main:
            meta = dataclasses.replace(meta, name=directory.name, spec_hash=digest)
            with out.staging() as staging:
                write_checkpoint_files(staging, net, meta)
                save_learning_curves(meta.history, staging / "learning_curves.png", meta.name)
                if get_task(splits.info.task).gallery == "masks":
                    save_mask_examples(net, splits, staging / PREDICTIONS_FILE, meta.name, torch.device(device))
    distributed.barrier(world)  # the checkpoint exists for every rank from here on
    return TrainResult(directory, read_metadata(directory), trained=True)


def _fit_ensemble_into(out, splits: Splits, data: DataSpec, model: ModelSpec, recipe: Recipe, name: str,
                       digest: str, device: torch.device | str, show_progress: bool) -> None:
    """Train an ``ensemble:`` model's members and write the ensemble checkpoint (rank 0)."""
    fitted = fit_ensemble(splits, data, model, recipe, device=torch.device(device), show_progress=show_progress)
    if distributed.current().main:
        with out.staging() as staging:
            write_ensemble(staging, fitted, name, digest)


def _has_checkpoint(directory: Path, digest: str) -> bool:
    return (directory / META_FILE).is_file() and read_metadata(directory).spec_hash == digest


__all__ = ["TrainResult", "checkpoint_name", "ensure_trained", "fit", "model_spec_hash", "seed_everything",
           "test_metrics"]
