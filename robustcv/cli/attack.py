"""``robustcv attack``: attack a model over an eps grid (training it first when absent).

The flags become a :class:`~robustcv.request.Request` (:mod:`robustcv.cli.requests`), resolved
into the run's configuration by :mod:`robustcv.plan` and run by :mod:`robustcv.service`, as the
Python API runs its own; this module parses and prints.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from robustcv.cli.options import (FRACTION, ConfigCommand, config_option, data_options, model_options,
                                  recipe_options, run_options, seeds_option)
from robustcv.cli.requests import DEFAULT_ATTACKS, check_task_flags, plan_from, refuse_ignored_flags
from robustcv.cli.sources import checkpoint_from, output_plan, planned_model
from robustcv.cli.tables import print_results
from robustcv.console import console, stdout
from robustcv.device import resolve_device
from robustcv.evaluation.config import NATURAL_KINDS, NORMS, EvalConfig
from robustcv.report.formatting import fmt_norm
from robustcv.service import (StageRun, claim_outputs, invoked_command, render_report_into, run_checkpoint_stage,
                              run_model_file_stage)


def describe_plan(checkpoint: str, config: EvalConfig) -> str:
    """One line saying what the attack stage is about to do."""
    eps = ", ".join(f"{e:.4g}" for e in config.eps)
    defenses = ", ".join(config.defenses)
    return (f"attacking {checkpoint} on up to {config.n} test samples with {', '.join(config.attacks)} "
            f"({fmt_norm(config.norm)}, eps {eps}; defenses: {defenses})")


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
@click.option("--protocol", default=None,
              help="Run a published protocol instead of --attack: autoattack (standard), autoattack:plus, "
                   "autoattack:rand (classifiers, 4+ classes; rand: 3+), sea (segmenters). It fixes its attacks' "
                   "settings: --steps, --restarts, --apgd-steps and --attack-loss do not apply.")
@click.option("--eps", "eps_text", default=None, help="Ascending budgets, fractions allowed (default per dataset).")
@click.option("--headline-eps", type=FRACTION, default=None, help="The eps the summary quotes.")
@click.option("--norm", type=click.Choice(list(NORMS)), default="linf", show_default=True,
              help="Threat model; l1 runs APGD-L1 (apgd-ce, apgd-t) by default: FGSM and PGD have no L1 step.")
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
    from robustcv import distributed

    refuse_ignored_flags(params)
    check_task_flags(params)  # before any training
    world, device = distributed.setup(resolve_device(params["device"]))
    planned = planned_model(params)
    outputs = output_plan(params, planned.name, planned)
    with contextlib.ExitStack() as claims:  # outputs checked and locked before any training or attacking
        with distributed.rank0_decides(world):  # rank 0 claims; a refusal stops every rank
            run_out, report_out = claim_outputs(claims, outputs, world.main)
        checkpoint, meta = checkpoint_from(params, device)
        config = plan_from(params, meta)
        if world.main and not params["quiet"]:
            console.print(describe_plan(checkpoint, config), soft_wrap=True, markup=False)
        with run_out.staging() as staging:
            stage = _run_stage(params, checkpoint, meta, config, staging, device, outputs.run_dir.name)
        if stage.results is None:  # another rank: rank 0 reports
            return
        _print_run(stage, outputs.run_dir)
        if report_out is not None:
            members = [outputs.run_dir / folder for folder, _ in stage.members]
            render_report_into(report_out, [outputs.run_dir] + members)
            stdout.print(f"report: {outputs.report_dir / 'report.html'}")


def _run_stage(params: dict[str, Any], checkpoint: str, meta: Any, config: EvalConfig, staging: Path, device: Any,
               name: str) -> StageRun:
    """The attack stage on the model file or the checkpoint (with an ensemble's members)."""
    settings = dict(device=device, command=invoked_command(), show_progress=not params["quiet"], name=name)
    if params["model_file"]:
        return run_model_file_stage(meta, config, staging, **settings)  # meta: the opened model file
    return run_checkpoint_stage(Path(checkpoint), meta, config, staging, **settings)


def _print_run(stage: StageRun, run_dir: Path) -> None:
    from robustcv.cli.groups import print_members

    print_results(stage.results)
    print_members(stage.results, [member for _, member in stage.members])
    stdout.print(f"results: {run_dir / 'results.json'}")
