"""Where ``robustcv attack`` gets its model (``--checkpoint``, ``--model-file``, or the model the
data, model and training flags name, trained if absent) and where its outputs go."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from robustcv.cli.options import data_spec_from, given, model_spec_from, recipe_from
from robustcv.cli.requests import split_list
from robustcv.cli.tables import print_training_summary
from robustcv.service import OutputPlan, planned_checkpoint, train_if_absent


def planned_model(params: dict[str, Any]) -> Path:
    """Where the checkpoint to attack is (or will be, once trained), without training it; for
    ``--model-file`` the file without its suffix (the run's default name)."""
    if params["model_file"]:
        return Path(params["model_file"]).with_suffix("")
    if params["checkpoint"]:
        return Path(params["checkpoint"])
    return planned_checkpoint(data_spec_from(params), model_spec_from(params), recipe_from(params),
                              params["models_dir"])


def output_plan(params: dict[str, Any], name: str, checkpoint: Path) -> OutputPlan:
    """``--out`` (default ``runs/<name>``) and ``--report-dir`` (default ``reports/<run>``; none
    with ``--no-report``), guarding the models folder and the checkpoint's."""
    out_dir = Path(params["out"] or Path("runs") / name)
    report_dir = Path(params["report_dir"] or Path("reports") / out_dir.name) if params["report"] else None
    protect = {"the models folder": Path(params["models_dir"]), "the folder of the checkpoint": checkpoint.parent}
    return OutputPlan(out_dir, report_dir, force=params["force"], protect=protect)


def checkpoint_from(params: dict[str, Any], device) -> tuple[str, Any]:
    """The model to attack and its metadata: ``--model-file`` (opened), ``--checkpoint``, or the
    model the flags name (trained if absent, its summary printed when it was)."""
    from robustcv import distributed
    from robustcv.checkpoint import read_metadata

    if params["model_file"]:
        return params["model_file"], _open_model_file(params, device)
    if params["checkpoint"]:
        meta = read_metadata(params["checkpoint"])
        if given("task") and params["task"] != meta.data_info.task:
            raise click.UsageError(f"--task {params['task']} contradicts --checkpoint {params['checkpoint']}, a "
                                   f"{meta.data_info.task} model; drop --task")
        return params["checkpoint"], meta
    result = train_if_absent(data_spec_from(params), model_spec_from(params), recipe_from(params),
                             models_dir=params["models_dir"], device=device, show_progress=not params["quiet"])
    if result.trained and distributed.current().main:
        print_training_summary(result)
    return str(result.checkpoint), result.metadata


def _open_model_file(params: dict[str, Any], device):
    """The exported model, its dataset and class names (``--classes`` or ``PATH.json``)."""
    from robustcv.evaluation.model_file import open_model_file

    classes = split_list(params["classes_text"]) if params["classes_text"] is not None else None
    if classes is not None and not classes:
        raise click.BadParameter("no class name given; e.g. --classes cat,dog", param_hint="--classes")
    return open_model_file(params["model_file"], data_spec_from(params), classes, device)
