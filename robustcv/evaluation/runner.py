"""The evaluation stage: attack one model (and its defenses) over an eps grid.

Reads a checkpoint, writes ``results.json`` (and the gallery) into a run directory; the report
reads only those files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.data.base import DataInfo
from robustcv.errors import UserError
from robustcv.evaluation.attacking import build_attack, parse_attack_spec, run_outcome
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.outcome import Outcome, min_eps, worst_case
from robustcv.evaluation.records import class_records, outcome_records
from robustcv.evaluation.threat import judged_elsewhere, threat_models
from robustcv.results import MinEps, Record, RunResults
from robustcv.training.loop import predict


@dataclass
class Samples:
    """The evaluated images, labels and (for targeted attacks) targets."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None = None


@dataclass
class DefenseRun:
    """Everything measured for one defense: clean correctness and one outcome per attack/mode."""

    spec: str
    clean_correct: torch.Tensor
    outcomes: list[Outcome] = field(default_factory=list)
    worst: Outcome | None = None
    judge: nn.Module | None = None


def select_samples(meta: dict[str, Any], n: int, seed: int) -> tuple[Samples, DataInfo]:
    """The first ``n`` test samples after a seeded shuffle (the same ones for every run)."""
    splits = get_dataset(DataSpec.from_dict(meta["data"]))
    x, y = as_tensors(splits.test)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: min(n, len(x))]
    return Samples(x[order].float(), y[order].long()), DataInfo.from_dict(meta["data_info"])


def evaluate_defense(spec: str, model: nn.Module, samples: Samples, config: EvalConfig, device: torch.device,
                     progress=None) -> DefenseRun:
    """Clean accuracy and every attack in every threat model for one defense."""
    from defenses import parse_defense

    defense = parse_defense(spec).to(device)
    threats = threat_models(spec, defense, model, config.eot_samples, seed=config.seed)
    judge = threats[0].judge
    # Judged in the attack loop's batches, so a randomized judge gives each sample the same draw.
    clean_pred = torch.cat([predict(judge, samples.x[i:i + config.batch_size], device)
                            for i in range(0, len(samples.x), config.batch_size)]).argmax(1)
    run = DefenseRun(spec, clean_pred == samples.y, judge=judge)
    for attack_name in config.attacks:
        for threat in threats:
            # Keep pushing after the attack model is fooled when it is not the judge (see
            # ``threat.judged_elsewhere``): a barely-fooled point rarely fools the judge.
            overrides = {"early_stop": False} if judged_elsewhere(threat) and parse_attack_spec(attack_name)[0] == "pgd" else {}
            attack = build_attack(attack_name, config, **overrides)
            label = f"{spec} · {attack_name} · {threat.mode}"
            name = attack_name + threat.suffix
            run.outcomes.append(run_outcome(attack, name, threat, samples, config, device, progress, label))
    run.worst = worst_case(run.outcomes)
    return run


def defense_records(run: DefenseRun, model_name: str, samples: Samples, info: DataInfo,
                    targeted: bool) -> tuple[list[Record], list[MinEps]]:
    """Tidy records and per-sample minimal eps for one defense."""
    n = len(samples.y)
    records = [Record(model=model_name, defense=run.spec, attack="none", adaptive=False, eps=0.0,
                      metric="clean_accuracy", value=round(float(run.clean_correct.float().mean()), 6), n=n)]
    min_eps_rows = []
    # A targeted success needs a target other than the true class (a given class equals some labels).
    eligible = run.clean_correct & (samples.target != samples.y) if targeted else run.clean_correct
    for outcome in run.outcomes + [run.worst]:
        is_worst = outcome is run.worst
        records += outcome_records(outcome, model_name, run.spec, eligible, targeted,
                                   per_sample_metrics=not is_worst)
        min_eps_rows.append(MinEps(model=model_name, defense=run.spec, attack=outcome.attack,
                                   adaptive=outcome.adaptive, labels=samples.y.tolist(), values=min_eps(outcome)))
    records += class_records(run.worst, model_name, run.spec, samples.y, info.classes)
    return records, min_eps_rows


def run_metadata(config: EvalConfig, meta: dict[str, Any], info: DataInfo, command: str, device: torch.device,
                 name: str, n: int) -> dict[str, Any]:
    """The ``run`` block of ``results.json``."""
    from robustcv.training.trainer import library_versions

    versions = library_versions()
    versions.update(_peer_versions())
    return {
        "name": name, "command": command, "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": config.seed, "device": str(device), "versions": versions, "task": info.task.value,
        "norm": config.norm, "eps_grid": config.eps, "headline_eps": config.headline_eps, "n": n,
        "dataset": meta["data"], "data_info": info.to_dict(), "config": config.to_dict(),
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


def check_config(config: EvalConfig) -> None:
    """Refuse configurations that cannot give meaningful numbers, with one line."""
    if not config.eps or any(e < 0 for e in config.eps):
        raise UserError("--eps needs non-negative values, e.g. 0,1/255,2/255,4/255,8/255")
    if config.eps != sorted(config.eps) or len(set(config.eps)) != len(config.eps):
        raise UserError("--eps values must be distinct and ascending")
    if config.norm == "linf" and config.eps[-1] > 1:
        raise UserError(f"--eps {config.eps[-1]} is larger than the whole [0, 1] pixel range")
    if not config.attacks:
        raise UserError("--attack needs at least one attack, e.g. fgsm,pgd")
    if config.n < 1 or config.batch_size < 1 or config.steps < 1:
        raise UserError("--n, --batch-size and --steps must be at least 1")


def seconds_since(start: float) -> float:
    return round(time.perf_counter() - start, 3)
