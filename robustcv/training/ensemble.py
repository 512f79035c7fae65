"""Training an ``ensemble:A+B+...`` model: each member fitted alone, then joined into one checkpoint.

Member ``i`` is trained with the recipe under its own seed, ``member_seed(seed, i)`` (a hash of
both, so the ensembles of seeds 0 and 1 share no member); with ``ensemble_mode="bagging"`` it
also sees a bootstrap resample of the training split (``len(train)`` draws with replacement,
keyed by the same member seed). Validation and test splits are the ensemble's, unchanged.

The checkpoint directory holds the ensemble (``model.safetensors`` + ``model.json``, loadable with
``robustcv.load_model``) and each member as its own sub-checkpoint under ``members/`` (the member
weights are therefore stored twice: the price of members that load and attack alone).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from robustcv.checkpoint import ModelMetadata, write_checkpoint_files
from robustcv.data import DataSpec, Splits, as_tensors
from robustcv.inference import library_versions
from robustcv.models import ModelSpec
from robustcv.models.build import build_model
from robustcv.models.ensemble import member_dir_name, member_dirs, member_specs
from robustcv.tasks import get_task
from robustcv.training.fitting import fit, save_learning_curves, test_metrics
from robustcv.training.multilabel import task_settings
from robustcv.training.recipe import Recipe, spec_hash


@dataclass
class EnsembleFit:
    """The joined ensemble and its metadata, and every member with its own metadata."""

    model: torch.nn.Module
    meta: ModelMetadata
    members: list[tuple[torch.nn.Module, ModelMetadata]]


def member_seed(seed: int, index: int) -> int:
    """Member ``index``'s training (and bootstrap) seed, derived from the ensemble's ``seed``."""
    return int(spec_hash({"seed": seed, "member": index})[:8], 16)


def bootstrap(dataset: Dataset, seed: int) -> Subset:
    """``len(dataset)`` items drawn with replacement under ``seed`` (a ``Subset`` of the base set)."""
    n = len(dataset)
    picks = torch.randint(n, (n,), generator=torch.Generator().manual_seed(seed)).tolist()
    if isinstance(dataset, Subset):  # index the base set directly: as_tensors stays vectorized
        return Subset(dataset.dataset, [dataset.indices[i] for i in picks])
    return Subset(dataset, picks)


def member_splits(splits: Splits, recipe: Recipe, index: int) -> Splits:
    """The splits member ``index`` trains on: a bootstrap of the training split when bagging."""
    if recipe.ensemble_mode != "bagging":
        return splits
    return dataclasses.replace(splits, train=bootstrap(splits.train, member_seed(recipe.seed, index)))


def fit_ensemble(splits: Splits, data: DataSpec, spec: ModelSpec, recipe: Recipe, *,
                 device: torch.device, show_progress: bool = True) -> EnsembleFit:
    """Train every member with ``fit`` (see the module docstring), join them, and score the ensemble."""
    started = time.perf_counter()
    members = []
    for i, member in enumerate(member_specs(spec)):
        member_recipe = dataclasses.replace(recipe, seed=member_seed(recipe.seed, i))
        net, meta = fit(member_splits(splits, recipe, i), data, member, member_recipe, device=device,
                        show_progress=show_progress)
        members.append((net, dataclasses.replace(meta, name=member_dir_name(i, member.name))))
    model = join_members(spec, splits.info, [net for net, _ in members]).to(device)
    task = get_task(splits.info.task)
    settings = task_settings(model, *as_tensors(splits.val), recipe, task, device)
    meta = ModelMetadata(
        name="", data=data, data_info=splits.info, model=spec, recipe=recipe.to_dict(),
        test_metrics=test_metrics(model, splits, task, device, settings), task_settings=settings,
        versions=library_versions(), created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        seconds=round(time.perf_counter() - started, 3), device=str(device),
    )
    return EnsembleFit(model, meta, members)


def join_members(spec: ModelSpec, info, nets: list[torch.nn.Module]) -> torch.nn.Module:
    """A fresh ``RobustModel(EnsembleNet)`` holding copies of the trained members' weights."""
    model = build_model(dataclasses.replace(spec, weights=None), info)  # an ensemble: fresh members
    for slot, net in zip(model.net.members, nets):
        slot.load_state_dict(net.net.state_dict())
    return model.eval()


def write_ensemble(directory: Path, fitted: EnsembleFit, name: str, digest: str) -> None:
    """The ensemble checkpoint into ``directory`` (a staging folder), members under ``members/``."""
    write_checkpoint_files(directory, fitted.model, dataclasses.replace(fitted.meta, name=name, spec_hash=digest))
    for i, ((net, meta), path) in enumerate(zip(fitted.members, member_dirs(directory, fitted.meta.model))):
        path.mkdir(parents=True)
        write_checkpoint_files(path, net, dataclasses.replace(meta, spec_hash=f"{digest}:member-{i}"))
        save_learning_curves(meta.history, path / "learning_curves.png", meta.name)
