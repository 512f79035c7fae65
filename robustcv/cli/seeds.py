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
from typing import Any, Callable

import click

from robustcv.cli.options import data_spec_from, model_spec_from, recipe_from
from robustcv.console import stdout, table
from robustcv.studies import Spread, parse_seeds, run_curve, study_spreads, study_summary

STUDY_FILE = "study.json"


def seeds_option(f: Callable) -> Callable:
    return click.option("--seeds", "seeds_text", default=None,
                        help="A seed study: run the same recipe under each seed (e.g. 0-9 or 0,3,5) and report "
                             "mean ± std with every run listed.")(f)


def study_seeds(params: dict[str, Any]) -> list[int]:
    """The ``--seeds`` list; ``click`` usage errors for a bad list or a clashing ``--seed``/``--checkpoint``."""
    from robustcv.cli.attack import _given

    try:
        seeds = parse_seeds(params["seeds_text"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--seeds") from None
    if _given("seed"):
        raise click.UsageError("--seed and --seeds exclude each other: a seed study sets each run's seed")
    if params.get("checkpoint"):
        raise click.UsageError("--seeds trains a checkpoint per seed; it cannot attack one --checkpoint")
    if params.get("model_file"):
        raise click.UsageError("--seeds trains a checkpoint per seed; it cannot attack one --model-file")
    return seeds


def study_name(params: dict[str, Any], seeds: list[int]) -> str:
    """``<dataset>-<model>-<hash>-<N>seeds``: the hash covers the specs without the seed, and the seeds."""
    from robustcv.training.recipe import spec_hash
    from robustcv.training.trainer import checkpoint_name

    data, model, recipe = data_spec_from(params), model_spec_from(params), recipe_from(params)
    unseeded = [{k: v for k, v in part.items() if k != "seed"} for part in (data.to_dict(), recipe.hashed_dict())]
    digest = spec_hash(unseeded[0], model.to_dict(), unseeded[1], {"seeds": seeds})
    return f"{checkpoint_name(data, model, digest)}-{len(seeds)}seeds"


def with_seed(params: dict[str, Any], seed: int) -> dict[str, Any]:
    return {**params, "seed": seed}


def train_seed_study(params: dict[str, Any], device) -> None:
    """Train (if absent) one checkpoint per seed; print each one's test accuracy and the spread."""
    from robustcv import distributed
    from robustcv.training import ensure_trained

    seeds, rows, values = study_seeds(params), [], []
    for seed in seeds:
        p = with_seed(params, seed)
        result = ensure_trained(data_spec_from(p), model_spec_from(p), recipe_from(p), models_dir=p["models_dir"],
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
    from robustcv.cli.attack import _claim_outputs, _refuse_ignored_flags
    from robustcv.device import resolve_device

    seeds = study_seeds(params)
    _refuse_ignored_flags(params)
    world, device = distributed.setup(resolve_device(params["device"]))
    name = study_name(params, seeds)
    out_dir = Path(params["out"] or Path("runs") / name)
    report_dir = Path(params["report_dir"] or Path("reports") / out_dir.name)
    with contextlib.ExitStack() as claims:
        with distributed.rank0_decides(world):  # rank 0 claims; a refusal stops every rank
            run_out, report_out = _claim_outputs(claims, params, Path(params["models_dir"]) / name, out_dir,
                                                 report_dir, world.main)
        with run_out.staging() as staging:
            runs = [_attack_seed(params, seed, seeds, name, staging, device) for seed in seeds]
            if world.main:
                _write_summary(staging, name, seeds, runs)
        if not world.main:
            return
        stdout.print(f"study: {out_dir / STUDY_FILE}")
        if report_out is not None:
            from robustcv.report import render_report

            with report_out.staging() as staging:
                render_report([out_dir / f"seed-{s}" for s in seeds], staging, formats=("html", "md"))
            stdout.print(f"report: {report_dir / 'report.html'}")


def _attack_seed(params: dict[str, Any], seed: int, seeds: list[int], name: str, staging: Path, device):
    """Seed ``seed``'s run into ``staging/seed-<seed>``, marked as part of the study."""
    from robustcv.cli.attack import _checkpoint, eval_config, invoked_command
    from robustcv.evaluation.orchestrator import run_attack_stage

    p = with_seed(params, seed)
    checkpoint, meta = _checkpoint(p, device)
    config = eval_config(p, meta)
    run_dir = staging / f"seed-{seed}"
    run_dir.mkdir()
    results = run_attack_stage(Path(checkpoint), config, run_dir, device=device, command=invoked_command(),
                               show_progress=not p["quiet"], name=f"seed-{seed}")
    if results is not None:
        results.run["study"] = {"name": name, "seeds": seeds, "seed": seed}
        results.save(run_dir / "results.json")
    return results


def _write_summary(staging: Path, name: str, seeds: list[int], runs: list) -> None:
    from robustcv.cli.groups import print_study
    from robustcv.results import write_json_atomic

    curves = [run_curve(results) for results in runs]
    write_json_atomic(staging / STUDY_FILE, study_summary(name, seeds, [f"seed-{s}" for s in seeds], curves))
    print_study(seeds, curves, *study_spreads(curves))
