"""``--seeds 0-9`` on ``train`` and ``attack``: the same recipe under several seeds, summarized.

Seed ``K``'s run is exactly the single run ``--seed K`` (which seeds the data split, the
initialization, the batch order and augmentation, the evaluated samples and the attacks' random
starts), so the spread is the whole pipeline's, and any one run can be made again alone. Each
seed trains its own checkpoint (train-if-absent, keyed by its spec hash).

``attack --seeds`` writes one output folder, claimed and built like any run::

    runs/<study>/seed-K/results.json   the run of seed K (with run.study = {name, seeds, seed})
    runs/<study>/study.json            every run's clean and robust accuracy per eps, mean ± std
    reports/<study>/report.html|md     the seed runs compared, led by the study's table

``<study>`` is ``<dataset>-<model>-<hash>-<N>seeds``, the hash over the specs without the seed
and the seed list. The spread is the sample standard deviation (ddof=1).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from robustcv.cli.options import data_spec_from, given, model_spec_from, recipe_from
from robustcv.cli.requests import plan_from, refuse_ignored_flags
from robustcv.cli.sources import checkpoint_from, output_plan
from robustcv.console import stdout, table
from robustcv.service import (STUDY_FILE, claim_outputs, invoked_command, render_report_into, run_study_seed,
                              study_name, train_if_absent, write_study)
from robustcv.studies import Spread, parse_seeds, study_spreads


def study_seeds(params: dict[str, Any]) -> list[int]:
    """The ``--seeds`` list; ``click`` usage errors for a bad list or a clashing ``--seed``/``--checkpoint``."""
    try:
        seeds = parse_seeds(params["seeds_text"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seeds") from None
    if given("seed"):
        raise click.UsageError("--seed and --seeds exclude each other: a seed study sets each run's seed")
    if params.get("checkpoint"):
        raise click.UsageError("--seeds trains a checkpoint per seed; it cannot attack one --checkpoint")
    if params.get("model_file"):
        raise click.UsageError("--seeds trains a checkpoint per seed; it cannot attack one --model-file")
    return seeds


def with_seed(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The flags of seed ``seed``'s run."""
    return {**params, "seed": seed}


def train_seed_study(params: dict[str, Any], device) -> None:
    """Train (if absent) one checkpoint per seed; print each one's test accuracy and the spread."""
    from robustcv import distributed

    seeds, rows, values = study_seeds(params), [], []
    for seed in seeds:
        p = with_seed(params, seed)
        result = train_if_absent(data_spec_from(p), model_spec_from(p), recipe_from(p), models_dir=p["models_dir"],
                                 device=device, force=p["force"], show_progress=not p["quiet"])
        accuracy = result.metadata.test_metrics.get("accuracy")
        values.append(accuracy)
        rows.append([f"seed {seed}", accuracy if accuracy is not None else "—", str(result.checkpoint)])
    if not distributed.current().main:
        return
    if all(v is not None for v in values):
        rows.append(["mean ± std", Spread.of(values).text(4), f"{len(seeds)} checkpoints"])
    stdout.print(table("test accuracy per seed; std = sample std (ddof=1)", ["run", "accuracy", "checkpoint"], rows))


def attack_seed_study(params: dict[str, Any]) -> None:
    """Train-if-absent and attack every seed, then write the study summary and one report."""
    from robustcv import distributed
    from robustcv.device import resolve_device

    seeds = study_seeds(params)
    refuse_ignored_flags(params)
    world, device = distributed.setup(resolve_device(params["device"]))
    name = study_name(data_spec_from(params), model_spec_from(params), recipe_from(params), seeds)
    outputs = output_plan(params, name, Path(params["models_dir"]) / name)
    with contextlib.ExitStack() as claims:
        with distributed.rank0_decides(world):  # rank 0 claims; a refusal stops every rank
            run_out, report_out = claim_outputs(claims, outputs, world.main)
        with run_out.staging() as staging:
            runs = [_attack_seed(params, seed, seeds, name, staging, device) for seed in seeds]
            if world.main:
                _summarize(staging, name, seeds, runs)
        if not world.main:
            return
        stdout.print(f"study: {outputs.run_dir / STUDY_FILE}")
        if report_out is not None:
            render_report_into(report_out, [outputs.run_dir / f"seed-{s}" for s in seeds])
            stdout.print(f"report: {outputs.report_dir / 'report.html'}")


def _attack_seed(params: dict[str, Any], seed: int, seeds: list[int], name: str, staging: Path, device):
    """Seed ``seed``'s run (its checkpoint trained if absent) into ``staging/seed-<seed>``."""
    p = with_seed(params, seed)
    checkpoint, meta = checkpoint_from(p, device)
    return run_study_seed(Path(checkpoint), plan_from(p, meta), staging, seed, seeds, name, device=device,
                          command=invoked_command(), show_progress=not p["quiet"])


def _summarize(staging: Path, name: str, seeds: list[int], runs: list) -> None:
    from robustcv.cli.groups import print_study

    curves = write_study(staging, name, seeds, runs)
    print_study(seeds, curves, *study_spreads(curves))
