"""Reports of run groups: an ensemble beside its members, a seed study's runs with mean ± std.

A seed study's runs carry ``run.study`` in their ``results.json`` (written by ``robustcv attack
--seeds``); an ensemble is recognised by its model's spec name (``ensemble:...``) in
``model.json``. Other reports get nothing from this section.
"""
from __future__ import annotations

from robustcv.report.context import Context
from robustcv.report.document import Block, Heading, Table, Text
from robustcv.report.formatting import fmt_eps
from robustcv.report.loading import RunData
from robustcv.studies import Curve, run_curve, study_spreads


def run_groups(ctx: Context) -> list[Block]:
    """The seed study's table, or the ensemble-and-members table, when the runs form one."""
    if len(ctx.runs) < 2:
        return []
    if study_name(ctx.runs):
        return seed_study(ctx.runs)
    if any(_is_ensemble(run) for run in ctx.runs):
        return ensemble_members(ctx.runs)
    return []


def study_name(runs: list[RunData]) -> str | None:
    """The study every run belongs to, or None when they are not all one study's."""
    names = {str((run.results.run.get("study") or {}).get("name")) for run in runs}
    return names.pop() if len(names) == 1 and "None" not in names else None


def _is_ensemble(run: RunData) -> bool:
    return any(str(((md.doc or {}).get("model") or {}).get("name", "")).startswith("ensemble:") for md in run.models)


def _columns(curves: list[Curve]) -> list[str]:
    return ["clean"] + [f"eps {fmt_eps(e)}" for e in curves[0].robust]


def _row(curve: Curve) -> list[str]:
    values = [curve.clean] + list(curve.robust.values())
    return ["—" if v is None else f"{v:.3f}" for v in values]


def ensemble_members(runs: list[RunData]) -> list[Block]:
    """One row per run: the ensemble (attacked white-box through every member) and each member."""
    curves = [run_curve(run.results) for run in runs]
    rows = [["ensemble" if _is_ensemble(run) else "member", run.name] + _row(c) for run, c in zip(runs, curves)]
    return [Heading("Ensemble and its members", anchor="ensemble"),
            Text("Clean and worst-case robust accuracy (no defense) of the ensemble, whose forward averages "
                 "its members' logits and is attacked white-box through all of them, and of each member "
                 "attacked alone on the same samples."),
            Table(["", "run"] + _columns(curves), rows, numeric=set(range(2, 3 + len(curves[0].robust))))]


def seed_study(runs: list[RunData]) -> list[Block]:
    """Every seed's clean and worst-case robust accuracy per eps, and their mean ± sample std."""
    curves = [run_curve(run.results) for run in runs]
    clean, robust = study_spreads(curves)
    seeds = [(run.results.run.get("study") or {}).get("seed", "?") for run in runs]
    rows = [[f"seed {s}", run.name] + _row(c) for s, run, c in zip(seeds, runs, curves)]
    rows.append(["mean ± std", f"{len(runs)} runs"] + [clean.text() if clean else "—"]
                + [robust[e].text() for e in robust])
    return [Heading(f"Seed study: {len(runs)} seeds", anchor="seed-study"),
            Text("Clean and worst-case robust accuracy (no defense) per eps of the same recipe trained and "
                 "attacked under each seed; mean ± sample standard deviation (ddof=1) over the seeds."),
            Table(["seed", "run"] + ["clean"] + [f"eps {fmt_eps(e)}" for e in robust], rows,
                  numeric=set(range(2, 3 + len(robust))))]
