"""The service layer under the CLI and the Python API: output claims, train-if-absent, running
the attack stage (with an ensemble's members), seed studies.

Nothing here parses flags or prints tables: the CLI turns flags into a
:class:`~robustcv.request.Request` and prints, the API builds one and returns results; both run
it through these functions, so the same request writes the same records.
"""
from __future__ import annotations

import contextlib
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from robustcv.errors import UserError
from robustcv.outputs import Output, OutputKind, claim_output

if TYPE_CHECKING:  # torch stays unimported until a function runs
    import torch

    from robustcv.data.base import DataSpec
    from robustcv.evaluation.config import EvalConfig
    from robustcv.models.spec import ModelSpec
    from robustcv.results import RunResults
    from robustcv.training.recipe import Recipe

STUDY_FILE = "study.json"


def invoked_command() -> str:
    """The command line as typed, for the run's reproducibility record."""
    return "robustcv " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def planned_checkpoint(data: "DataSpec", model: "ModelSpec", recipe: "Recipe", models_dir: str | Path) -> Path:
    """Where train-if-absent keeps (or will keep) the checkpoint of these specs, without training."""
    from robustcv.training.trainer import checkpoint_name, model_spec_hash

    return Path(models_dir) / checkpoint_name(data, model, model_spec_hash(data, model, recipe))


def study_name(data: "DataSpec", model: "ModelSpec", recipe: "Recipe", seeds: Sequence[int]) -> str:
    """``<dataset>-<model>-<hash>-<N>seeds``: the hash covers the specs without the seed, and the seeds."""
    from robustcv.training.recipe import spec_hash
    from robustcv.training.trainer import checkpoint_name

    unseeded = [{k: v for k, v in part.items() if k != "seed"} for part in (data.to_dict(), recipe.hashed_dict())]
    digest = spec_hash(unseeded[0], model.to_dict(), unseeded[1], {"seeds": list(seeds)})
    return f"{checkpoint_name(data, model, digest)}-{len(seeds)}seeds"


@dataclass(frozen=True)
class OutputPlan:
    """Where a run (and its report) go, and the folders they must never replace.

    Attributes:
        run_dir: the run directory. report_dir: the report directory (None: no report).
        force: replace existing outputs. protect: folders named in refusals, by what they are.
    """

    run_dir: Path
    report_dir: Path | None
    force: bool = False
    protect: dict[str, Path] | None = None


def claim_outputs(claims: contextlib.ExitStack, plan: OutputPlan, main: bool = True
                  ) -> tuple[Output, Output | None]:
    """Lock the run (and report) directory: refused now if unsafe, unwritable or in use."""
    if plan.report_dir is not None:
        run, report = plan.run_dir.resolve(), plan.report_dir.resolve()
        if run == report or run in report.parents or report in run.parents:
            raise UserError(f"--out {plan.run_dir} and --report-dir {plan.report_dir} must be separate folders")
    protect = plan.protect or {}
    run_out = claims.enter_context(claim_output(plan.run_dir, OutputKind.RUN, force=plan.force, protect=protect,
                                                enabled=main))
    if plan.report_dir is None:
        return run_out, None
    report_out = claims.enter_context(claim_output(plan.report_dir, OutputKind.REPORT, force=plan.force,
                                                   option="--report-dir", protect=protect, enabled=main))
    return run_out, report_out


def train_if_absent(data: "DataSpec", model: "ModelSpec", recipe: "Recipe", *, models_dir: str | Path,
                    device: "torch.device | str", force: bool = False, show_progress: bool = True):
    """The checkpoint of these specs, trained first when absent (``TrainResult``)."""
    from robustcv.training import ensure_trained

    return ensure_trained(data, model, recipe, models_dir=models_dir, device=device, force=force,
                          show_progress=show_progress)


@dataclass
class StageRun:
    """What the attack stage gave: the run's results (None on ranks other than 0) and each
    ensemble member's ``(folder relative to the run, results)``."""

    results: "RunResults | None"
    members: list[tuple[Path, "RunResults | None"]]


def run_checkpoint_stage(checkpoint: Path, meta: Any, config: "EvalConfig", out_dir: Path, *,
                         device: "torch.device", command: str = "", show_progress: bool = True,
                         name: str | None = None) -> StageRun:
    """Attack a checkpoint into ``out_dir`` (and, for an ensemble, each member alone beside it)."""
    from robustcv.evaluation import orchestrator
    from robustcv.evaluation.members import attack_members

    results = orchestrator.run_attack_stage(checkpoint, config, out_dir, device=device, command=command,
                                            show_progress=show_progress, name=name)
    members = attack_members(checkpoint, meta, config, out_dir, device=device, command=command,
                             show_progress=show_progress)
    return StageRun(results, members)


def run_model_file_stage(opened: Any, config: "EvalConfig", out_dir: Path, *, device: "torch.device",
                         command: str = "", show_progress: bool = True, name: str | None = None) -> StageRun:
    """Attack an opened exported model (TorchScript, ``torch.export``) into ``out_dir``."""
    from robustcv.evaluation.model_file import run_model_file_stage as run_stage

    return StageRun(run_stage(opened, config, out_dir, device=device, command=command, show_progress=show_progress,
                              name=name), [])


def run_in_memory(model: Any, card: Any, samples: Any, config: "EvalConfig", *, device: "torch.device",
                  out: str | Path | None, force: bool = False, show_progress: bool = False,
                  command: str = "") -> tuple["RunResults", Path, Any]:
    """Attack an in-memory model into ``out`` (claimed as the CLI claims a run) or a temporary folder.

    Returns:
        ``(results, run directory, keeper)``: keep ``keeper`` alive as long as a temporary run
        directory is needed (None when ``out`` is given).
    """
    from robustcv.evaluation.orchestrator import attack_model

    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="robustcv-run-")
        run_dir = Path(tmp.name) / card.name
        run_dir.mkdir()
        results = attack_model(model, card, samples, config, run_dir, device=device, command=command,
                               show_progress=show_progress, name=card.name)
        return results, run_dir, tmp
    run_dir = Path(out)
    with contextlib.ExitStack() as stack:
        claimed = stack.enter_context(claim_output(run_dir, OutputKind.RUN, force=force, option="out"))
        with claimed.staging() as staging:
            results = attack_model(model, card, samples, config, staging, device=device, command=command,
                                   show_progress=show_progress, name=run_dir.name)
    return results, run_dir, None


def run_study_seed(checkpoint: Path, config: "EvalConfig", staging: Path, seed: int, seeds: Sequence[int],
                   name: str, *, device: "torch.device", command: str = "",
                   show_progress: bool = True) -> "RunResults | None":
    """Seed ``seed``'s run of a study into ``staging/seed-<seed>``, marked as part of the study."""
    from robustcv.evaluation import orchestrator

    run_dir = staging / f"seed-{seed}"
    run_dir.mkdir()
    results = orchestrator.run_attack_stage(checkpoint, config, run_dir, device=device, command=command,
                                            show_progress=show_progress, name=f"seed-{seed}")
    if results is not None:
        results.run["study"] = {"name": name, "seeds": list(seeds), "seed": seed}
        results.save(run_dir / "results.json")
    return results


def write_study(staging: Path, name: str, seeds: Sequence[int], runs: Sequence["RunResults"]) -> list:
    """``study.json`` of a seed study's runs; returns each run's curve (clean and robust per eps)."""
    from robustcv.results import write_json_atomic
    from robustcv.studies import run_curve, study_summary

    curves = [run_curve(results) for results in runs]
    write_json_atomic(staging / STUDY_FILE, study_summary(name, list(seeds), [f"seed-{s}" for s in seeds], curves))
    return curves


def render_report_into(output: Output, runs: Sequence[Path]) -> None:
    """The report of ``runs`` (html and md) into a claimed report folder."""
    from robustcv.report import write_report

    with output.staging() as staging:
        write_report(list(runs), staging, formats=("html", "md"))
