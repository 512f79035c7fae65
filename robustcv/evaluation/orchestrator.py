"""The attack stage end to end: a model (a checkpoint, or one in memory) in, run directory
(results.json, gallery) out.

Reads a checkpoint (or takes a model, its :class:`ModelCard` and its samples), writes
``results.json`` (and the gallery) into a run directory; the report reads only those files. The
steps: pick the samples, evaluate every defense (:mod:`~robustcv.evaluation.defense_run`), the
natural sweeps, the sanity checks, the gallery.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustcv.checkpoint import load_model
from robustcv.console import progress_bar
from robustcv.data.base import DataInfo
from robustcv.evaluation.adversarials import save_adversarials
from robustcv.evaluation.config import EvalConfig, check_config
from robustcv import distributed
from robustcv.evaluation.defense_run import DefenseRun, defense_records, evaluate_defense, merge_runs, shard_state
from robustcv.evaluation.gallery import gallery_for
from robustcv.evaluation.minimal import minimal_norm_rows
from robustcv.evaluation.natural import natural_records
from robustcv.evaluation.records import attach_intervals
from robustcv.evaluation.model_card import ModelCard
from robustcv.evaluation.samples import Samples, run_targets, select_samples
from robustcv.evaluation.sanity import sanity_checks
from robustcv.inference import library_versions
from robustcv.results import RunResults, write_json_atomic
from robustcv.tasks import get_task


def run_attack_stage(checkpoint: Path, config: EvalConfig, out_dir: Path, *, device: torch.device,
                     command: str = "", show_progress: bool = True, name: str | None = None) -> RunResults | None:
    """Attack the checkpoint's model under every defense; write and return the results.

    Loads the checkpoint, draws its test samples and hands both to :func:`attack_model`.
    """
    check_config(config)
    model, meta = load_model(checkpoint, device=device)
    samples, _ = select_samples(meta, config.n, config.seed)
    return attack_model(model, ModelCard.from_metadata(meta, checkpoint), samples, config, out_dir, device=device,
                        command=command, show_progress=show_progress, name=name)


def attack_model(model: nn.Module, card: ModelCard, samples: Samples, config: EvalConfig, out_dir: Path, *,
                 device: torch.device, command: str = "", show_progress: bool = True,
                 name: str | None = None) -> RunResults | None:
    """Attack an in-memory model (``[0, 1]`` images in, logits out) on ``samples`` under every
    defense; write ``results.json`` (and the gallery) into ``out_dir`` and return the results.

    ``out_dir`` may be a staging folder: ``name`` (default: its name) is the run's name.

    Under torchrun every rank attacks its shard of the samples and rank 0 gathers the outcomes,
    checks, writes and returns the results; the other ranks return None.
    """
    check_config(config)
    world = distributed.current()
    torch.manual_seed(config.seed)
    model = model.to(device).eval()
    model.requires_grad_(False)
    info = card.info
    objective = get_task(info.task).objective(info, loss=config.loss, **card.task_settings)
    samples.target = run_targets(model, samples, config, info.num_classes, device, info.ignore_index)
    config = dataclasses.replace(config, progress_scale=world.size)
    with progress_bar(show_progress and world.main) as progress:
        runs = _attack_every_defense(model, samples, objective, config, device, world, progress)
        if not world.main:
            return None
        header = run_metadata(config, card.data, info, command, device, name or out_dir.name, len(samples.y))
        results = RunResults(run=header)
        results.models.append(card.entry(out_dir))
        for run in runs:
            records, min_eps_rows = defense_records(run, card.name, samples, info, config.targeted != "none")
            results.records += records
            results.min_eps += min_eps_rows
        results.records += natural_records(card.name, model, samples, objective, config, device)
        minimal_rows, minimal_records = minimal_norm_rows(card.name, runs, samples, objective, config, device)
        results.min_eps += minimal_rows
        results.records += minimal_records
        attach_intervals(results.records)
    results.sanity_checks = sanity_checks(card.name, model, runs, samples, objective, config, device)
    results.gallery = gallery_for(out_dir, card.name, runs[0], samples, info.classes, config, device,
                                  get_task(info.task))
    save_adversarials(out_dir, runs, samples, config, card.name)
    write_json_atomic(out_dir / "config.json", {**card.source, **config.to_dict()})
    results.save(out_dir / "results.json")
    return results


def _attack_every_defense(model, samples, objective, config: EvalConfig, device: torch.device,
                          world: distributed.World, progress) -> list[DefenseRun]:
    """Every defense on this rank's shard; the whole set's runs after gathering the shards."""
    from defenses import parse_defense

    local = samples.part(distributed.shard(len(samples.y), world))
    runs = []
    for spec in config.defenses:
        run = evaluate_defense(spec, parse_defense(spec), model, local, objective, config, device, progress)
        if world.distributed:
            run = merge_runs(run, distributed.gather(shard_state(run), world))
        runs.append(run)
    return runs


def run_metadata(config: EvalConfig, data: dict[str, Any] | None, info: DataInfo, command: str,
                 device: torch.device, name: str, n: int) -> dict[str, Any]:
    """The ``run`` block of ``results.json``."""
    versions = library_versions()
    versions.update(_peer_versions())
    return {
        "name": name, "command": command, "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": config.seed, "device": str(device), "versions": versions, "task": info.task,
        "norm": config.norm, "eps_grid": config.eps, "headline_eps": config.headline_eps, "n": n,
        "dataset": data, "data_info": info.to_dict(), "config": config.to_dict(),
    }


def _peer_versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for package in ("foolbox", "adversarial-robustness-toolbox", "torchattacks"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found
