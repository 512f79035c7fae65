"""``robustcv attack``: attack a model over an eps grid (training it first when absent)."""
from __future__ import annotations

import contextlib
import shlex
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from robustcv.cli.options import _RECIPE_KEYS as RECIPE_KEYS
from robustcv.cli.options import (FRACTION, ConfigCommand, config_option, data_options, data_spec_from,
                                  model_options, model_spec_from, parse_fraction, recipe_from, recipe_options,
                                  run_options)
from robustcv.cli.seeds import seeds_option
from robustcv.console import console, print_table, stdout
from robustcv.device import resolve_device
from robustcv.outputs import Output, OutputKind, claim_output
from attacks.specs import split_attack_list
from robustcv.evaluation.config import NATURAL_KINDS, EvalConfig, resolve_eps_grid
from robustcv.tasks import get_task

DEFAULT_ATTACKS = ",".join(get_task("classification").default_attacks(10))  # --help shows them


def invoked_command() -> str:
    """The command line as typed, for the run's reproducibility record."""
    return "robustcv " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def describe_plan(checkpoint: str, config: EvalConfig) -> str:
    """One line saying what the attack stage is about to do."""
    eps = ", ".join(f"{e:.4g}" for e in config.eps)
    defenses = ", ".join(config.defenses)
    return (f"attacking {checkpoint} on up to {config.n} test samples with {', '.join(config.attacks)} "
            f"({config.norm}, eps {eps}; defenses: {defenses})")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_eps_list(text: str) -> list[float]:
    """``"0,1/255,2/255"`` → floats; ``click.BadParameter`` on a bad or empty entry (``","``, ``"0,,1"``)."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts) or not all(parts):
        raise click.BadParameter(f"{text!r} has an empty entry; give comma-separated budgets like 0,1/255,8/255",
                                 param_hint="--eps")
    try:
        return [parse_fraction(part) for part in parts]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--eps") from None


@click.command("attack", cls=ConfigCommand)
@config_option
@click.option("--checkpoint", type=click.Path(file_okay=False), default=None,
              help="Attack this checkpoint instead of the one the model flags name.")
@click.option("--model-file", type=click.Path(dir_okay=False), default=None,
              help="Attack an exported model: a TorchScript archive (torch.jit.save) or a torch.export program "
                   "(.pt2); the data flags name its dataset. Taking [0, 1] images, returning logits.")
@click.option("--classes", "classes_text", default=None,
              help="With --model-file: comma-separated class names (default: PATH.json's, else the dataset's).")
@data_options
@model_options
@recipe_options
@run_options
@click.option("--attack", "attack_names", default=DEFAULT_ATTACKS, show_default=True,
              help="Comma-separated: fgsm, pgd, apgd-ce, apgd-dlr, apgd-t, square, foolbox:<Name>, art:<Name>, "
                   "torchattacks:<Name>; arguments as NAME(key=value, ...), e.g. 'apgd-ce(steps=50)'.")
@click.option("--eps", "eps_text", default=None, help="Ascending budgets, fractions allowed (default per dataset).")
@click.option("--headline-eps", type=FRACTION, default=None, help="The eps the summary quotes.")
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--step-size", type=FRACTION, default=None, help="PGD step size (default: --rel-step-size x eps).")
@click.option("--rel-step-size", type=click.FloatRange(min=0, min_open=True), default=0.25, show_default=True,
              help="PGD step as a fraction of each eps, used when --step-size is not given.")
@click.option("--restarts", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--apgd-steps", type=click.IntRange(min=1), default=50, show_default=True,
              help="APGD-CE iterations (APGD-T: half, per target class).")
@click.option("--attack-loss", "attack_loss", type=click.Choice(["ce", "margin", "dlr", "bce"]), default=None,
              help="Loss of FGSM/PGD (default: the task's, ce; bce for multilabel).")
@click.option("--targeted", default="none", show_default=True,
              help="none | random | least-likely | CLASS_INDEX | SOURCE:TARGET (segmenters: one class's pixels to another).")
@click.option("--defense", "defense_text", default="none", show_default=True,
              help="Input-transform defenses, e.g. none,jpeg:75,median:3,bitdepth:4 (see `robustcv list`).")
@click.option("--eot-samples", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--natural", "natural_text", default=",".join(NATURAL_KINDS), show_default=True,
              help="Natural-transformation sweeps to run, or 'none'.")
@click.option("--n", "--samples", "n", type=click.IntRange(min=1), default=500, show_default=True,
              help="Test samples to attack (--samples under torchrun, whose own --n… flags clash); "
                   "segmenters: 100 unless given.")
@click.option("--save-adversarials", "save_adversarials", is_flag=False, flag_value="headline", default=None,
              metavar="[EPS]", help="Save each sample's worst-case adversarial at this grid eps (alone: the "
                                    "headline eps) to <run>/adversarials/<defense>.safetensors.")
@click.option("--eval-batch-size", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory (default ./runs/<model>).")
@click.option("--report-dir", type=click.Path(file_okay=False), default=None, help="Default ./reports/<run>.")
@click.option("--report/--no-report", default=True, show_default=True)
@seeds_option
def attack_command(**params: Any) -> None:
    """Attack a model with FGSM/PGD (and more) across eps; defaults run offline on digits."""
    if params["seeds_text"] is not None:
        from robustcv.cli.seeds import attack_seed_study

        attack_seed_study(params)
        return
    from robustcv.cli.groups import print_members
    from robustcv.evaluation.members import attack_members
    from robustcv.evaluation.model_file import run_model_file_stage
    from robustcv.evaluation.orchestrator import run_attack_stage

    from robustcv import distributed

    _refuse_ignored_flags(params)
    if not (params["checkpoint"] or params["model_file"]):  # else the model's own task decides, below
        _check_targeted_task(params["task"], params["targeted"])  # before any training
    world, device = distributed.setup(resolve_device(params["device"]))
    planned = _planned_checkpoint(params)
    out_dir = Path(params["out"] or Path("runs") / planned.name)
    report_dir = Path(params["report_dir"] or Path("reports") / out_dir.name)
    with contextlib.ExitStack() as claims:  # outputs checked and locked before any training or attacking
        with distributed.rank0_decides(world):  # rank 0 claims; a refusal stops every rank
            run_out, report_out = _claim_outputs(claims, params, planned, out_dir, report_dir, world.main)
        checkpoint, meta = _checkpoint(params, device)
        config = eval_config(params, meta)
        if world.main and not params["quiet"]:
            console.print(describe_plan(checkpoint, config), soft_wrap=True, markup=False)
        command = invoked_command()
        with run_out.staging() as staging:
            stage = (partial(run_model_file_stage, meta) if params["model_file"]  # meta: the opened model file
                     else partial(run_attack_stage, Path(checkpoint)))
            results = stage(config, staging, device=device, command=command, show_progress=not params["quiet"],
                            name=out_dir.name)
            members = [] if params["model_file"] else attack_members(
                Path(checkpoint), meta, config, staging, device=device, command=command,
                show_progress=not params["quiet"])
        if results is None:  # another rank: rank 0 reports
            return
        print_results(results)
        print_members(results, [member for _, member in members])
        stdout.print(f"results: {out_dir / 'results.json'}")
        if report_out is not None:
            from robustcv.report import render_report

            with report_out.staging() as staging:
                render_report([out_dir] + [out_dir / folder for folder, _ in members], staging, formats=("html", "md"))
            stdout.print(f"report: {report_dir / 'report.html'}")


# With --checkpoint the checkpoint's model.json fixes these; given on the command line, they
# would be ignored without a word. (--seed stays: it seeds the attacks too; --task is checked
# against the checkpoint's task once its model.json is read.)
CHECKPOINT_FIXES = ("dataset", "data_root", "val_fraction", "test_fraction", "image_size", "model_name",
                    "weights", "hidden", "dropout", "input_size") + tuple(k for k in RECIPE_KEYS if k != "seed")


def _given(name: str) -> bool:
    """Whether the option ``name`` was given on the command line (or in the environment)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                                  ParameterSource.ENVIRONMENT)


# With --model-file the file is the model: model and training flags would be ignored.
MODEL_FILE_FIXES = ("checkpoint", "model_name", "weights", "hidden", "dropout", "input_size") + tuple(
    k for k in RECIPE_KEYS if k != "seed")


def _refuse_ignored_flags(params: dict[str, Any]) -> None:
    """``click.UsageError`` for model, data or training flags given beside ``--checkpoint``
    (model and training flags beside ``--model-file``)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return
    if params["classes_text"] is not None and not params["model_file"]:
        raise click.UsageError("--classes applies to --model-file only (a checkpoint's model.json names its classes)")
    if params["model_file"]:
        given = [p.opts[0] for p in ctx.command.params if p.name in MODEL_FILE_FIXES and _given(p.name)]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot go with --model-file (the file is the model, "
                                   "already trained); drop the flag or the --model-file")
        return
    if not params["checkpoint"]:
        return
    given = [p.opts[0] for p in ctx.command.params if p.name in CHECKPOINT_FIXES and _given(p.name)]
    if given:
        raise click.UsageError(f"{', '.join(given)} would be ignored with --checkpoint (its model.json fixes the "
                               "model, the data and the training); drop the flag or the --checkpoint")


def _checkpoint(params: dict[str, Any], device) -> tuple[str, dict]:
    """The checkpoint to attack: ``--checkpoint``, or the model the flags name (trained if absent)."""
    from robustcv import distributed
    from robustcv.checkpoint import read_metadata
    from robustcv.cli.train import print_training_summary
    from robustcv.training import ensure_trained

    if params["model_file"]:
        return params["model_file"], _open_model_file(params, device)
    if params["checkpoint"]:
        meta = read_metadata(params["checkpoint"])
        if _given("task") and params["task"] != meta.data_info.task:
            raise click.UsageError(f"--task {params['task']} contradicts --checkpoint {params['checkpoint']}, a "
                                   f"{meta.data_info.task} model; drop --task")
        return params["checkpoint"], meta
    result = ensure_trained(data_spec_from(params), model_spec_from(params), recipe_from(params),
                            models_dir=params["models_dir"], device=device, force=False,
                            show_progress=not params["quiet"])
    if result.trained and distributed.current().main:
        print_training_summary(result)
    return str(result.checkpoint), result.metadata


def _open_model_file(params: dict[str, Any], device):
    """The exported model, its dataset and class names (``--classes`` or ``PATH.json``)."""
    from robustcv.evaluation.model_file import open_model_file

    classes = _split(params["classes_text"]) if params["classes_text"] is not None else None
    if classes is not None and not classes:
        raise click.BadParameter("no class name given; e.g. --classes cat,dog", param_hint="--classes")
    return open_model_file(params["model_file"], data_spec_from(params), classes, device)


def _planned_checkpoint(params: dict[str, Any]) -> Path:
    """Where the checkpoint to attack is (or will be, once trained), without training it; for
    ``--model-file`` the file without its suffix (the run's default name)."""
    if params["model_file"]:
        return Path(params["model_file"]).with_suffix("")
    if params["checkpoint"]:
        return Path(params["checkpoint"])
    from robustcv.training.trainer import checkpoint_name, model_spec_hash

    data, model = data_spec_from(params), model_spec_from(params)
    return Path(params["models_dir"]) / checkpoint_name(data, model, model_spec_hash(data, model, recipe_from(params)))


def _claim_outputs(claims: contextlib.ExitStack, params: dict[str, Any], checkpoint: Path, out_dir: Path,
                   report_dir: Path, main: bool) -> tuple[Output, Output | None]:
    """Lock the run (and report) directory: refused now if unsafe, unwritable or in use."""
    run, report = out_dir.resolve(), report_dir.resolve()
    if params["report"] and (run == report or run in report.parents or report in run.parents):
        raise click.UsageError(f"--out {out_dir} and --report-dir {report_dir} must be separate folders")
    protect = {"the models folder": Path(params["models_dir"]), "the folder of the checkpoint": checkpoint.parent}
    run_out = claims.enter_context(claim_output(out_dir, OutputKind.RUN, force=params["force"], protect=protect,
                                                enabled=main))
    if not params["report"]:
        return run_out, None
    report_out = claims.enter_context(claim_output(report_dir, OutputKind.REPORT, force=params["force"],
                                                   option="--report-dir", protect=protect, enabled=main))
    return run_out, report_out


def eval_config(params: dict[str, Any], meta) -> EvalConfig:
    """Resolve the evaluation settings, defaulting the eps grid to the dataset's."""
    eps, headline = resolve_eps_grid(meta.data_info, params["norm"],
                                     parse_eps_list(params["eps_text"]) if params["eps_text"] else None,
                                     params["headline_eps"])
    if headline not in eps:
        raise click.BadParameter(f"{headline:.4g} is not on the eps grid {eps}", param_hint="--headline-eps")
    natural = [] if params["natural_text"].strip() == "none" else _split(params["natural_text"])
    unknown = set(natural) - set(NATURAL_KINDS)
    if unknown:
        raise click.BadParameter(f"unknown natural sweep {sorted(unknown)}; choose from {', '.join(NATURAL_KINDS)}",
                                 param_hint="--natural")
    defenses = list(dict.fromkeys(_split(params["defense_text"]) or ["none"]))  # in order, once each
    if "none" not in defenses:
        defenses.insert(0, "none")
    _check_targeted_task(meta.data_info.task, params["targeted"])  # --checkpoint: the model's own task
    _check_targeted(params["targeted"], meta.data_info.num_classes, meta.data_info.task)
    _check_defenses(defenses)
    attacks = _attack_list(params, meta.data_info.task, meta.data_info.num_classes)
    config = EvalConfig(attacks=attacks, eps=eps, headline_eps=headline, norm=params["norm"],
                        steps=params["steps"], step_size=params["step_size"],
                        rel_step_size=params["rel_step_size"], restarts=params["restarts"], apgd_steps=params["apgd_steps"],
                        loss=params["attack_loss"], targeted=params["targeted"], defenses=defenses,
                        eot_samples=params["eot_samples"], natural=natural, n=_sample_count(params, meta),
                        batch_size=params["eval_batch_size"], seed=params["seed"],
                        save_adversarials=_save_eps(params["save_adversarials"], headline))
    _check_before_writing(config, meta)
    return config


def _save_eps(text: str | None, headline: float) -> float | None:
    """``--save-adversarials``: None (off), the headline eps (flag alone) or a fraction."""
    if text is None:
        return None
    if text == "headline":
        return headline
    try:
        return parse_fraction(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--save-adversarials") from None


def _sample_count(params: dict[str, Any], meta) -> int:
    """``--n``; unless it is given, at most the task's default sample count."""
    ctx = click.get_current_context(silent=True)
    given = ctx is None or ctx.get_parameter_source("n") is not click.core.ParameterSource.DEFAULT
    if not given:
        return min(params["n"], get_task(meta.data_info.task).default_samples)
    return params["n"]


def _attack_list(params: dict[str, Any], task: str, num_classes: int) -> list[str]:
    """The ``--attack`` list; its default is the task's (APGD-T only for untargeted classification
    of at least 4 classes: its targeted DLR loss needs them)."""
    if params["attack_names"] != DEFAULT_ATTACKS:
        attacks = split_attack_list(params["attack_names"])
        if not attacks:
            raise click.BadParameter(f"{params['attack_names']!r} names no attack; e.g. fgsm,pgd",
                                     param_hint="--attack")
        return attacks
    return get_task(task).default_attacks(num_classes, params["targeted"])


def _check_targeted_task(task: str, targeted: str) -> None:
    """A targeting the task never runs (whatever its classes) is one line, before any training."""
    problem = get_task(task).targeted_problem(targeted, num_classes=1 << 30)
    if problem:
        raise click.BadParameter(f"--task {task}: {problem}", param_hint="--targeted")


def _check_targeted(text: str, num_classes: int, task: str) -> None:
    problem = get_task(task).targeted_problem(text, num_classes)
    if problem:
        raise click.BadParameter(problem, param_hint="--targeted")


def _check_before_writing(config: EvalConfig, meta) -> None:
    """Refuse a bad grid or attack name now, before the stage spends its time."""
    from robustcv.evaluation.attacking import build_attack
    from robustcv.evaluation.config import check_config
    from robustcv.tasks import get_task

    check_config(config)
    objective = get_task(meta.data_info.task).objective(meta.data_info, **meta.task_settings)
    for name in config.attacks:
        build_attack(name, config, objective)


def _check_defenses(specs: list[str]) -> None:
    from defenses import parse_defense

    for spec in specs:
        try:
            parse_defense(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--defense") from None


def print_results(results) -> None:
    """Robust accuracy per eps: one table per defense, a row per (attack, mode), a column per eps."""
    grid = results.run["eps_grid"]
    task = get_task(results.run.get("task", "classification"))
    metric = task.robust_metric
    by_defense: dict[str, dict[tuple, dict[float, float]]] = {}
    for r in results.records:
        if r.metric == metric and not r.attack.startswith("natural:"):
            rows = by_defense.setdefault(r.defense, {})
            mode = "all" if r.attack == "worst-case" else ("adaptive" if r.adaptive else "naive")
            rows.setdefault((r.attack, mode), {})[r.eps] = r.value
    columns = ["attack", "mode"] + [f"{e:.4g}" for e in grid]
    stdout.print(f"{task.robust_label} ({results.run['norm']}) of {results.run['name']}")
    for defense, rows in by_defense.items():
        body = [list(key) + [values.get(e, float("nan")) for e in grid] for key, values in rows.items()]
        print_table(stdout, f"defense: {defense}", columns, body, digits=3, keys=2)
    failed = [c for c in results.sanity_checks if not c.passed]
    for check in failed:
        console.print(f"[bold red]SANITY CHECK FAILED[/] {check.defense or 'all'}: {check.name} — {check.detail}")
