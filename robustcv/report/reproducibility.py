"""How to make each run again: its command, seed, device, eps grid and versions, and for every model
the spec hash, checkpoint and ``model.json`` it came from."""
from __future__ import annotations

from robustcv.report.context import Context
from robustcv.report.document import Block, Cell, Heading, Table, Text
from robustcv.report.formatting import fmt_eps, fmt_norm, fmt_text
from robustcv.report.loading import ModelDoc, RunData

RUN_FIELDS = (("created", "Created"), ("seed", "Seed"), ("device", "Device"), ("task", "Task"),
              ("norm", "Norm"), ("n", "Samples"))


def reproducibility(ctx: Context) -> list[Block]:
    """One subsection per run: the command line, the run's settings, its models."""
    blocks: list[Block] = [Heading("Reproducibility", anchor="reproducibility")]
    for run in ctx.runs:
        blocks.append(Heading(run.name, level=3))
        blocks.append(Text(str(run.results.run.get("command") or "(command not recorded)"), "code"))
        blocks.append(_run_table(run))
        if run.models:
            blocks.append(Table(["Model", "Spec hash", "Checkpoint", "model.json", "Trained"],
                                [_model_row(md) for md in run.models]))
    return blocks


def _run_table(run: RunData) -> Table:
    info = run.results.run
    rows = [[label, fmt_norm(info[key]) if key == "norm" else fmt_text(info.get(key))]
            for key, label in RUN_FIELDS if key in info]
    grid = [e for e in info.get("eps_grid") or [] if isinstance(e, (int, float))]
    rows.append(["Eps grid", ", ".join(fmt_eps(float(e)) for e in grid) or "—"])
    rows.append(["Headline eps", fmt_eps(run.headline_eps)])
    if info.get("dataset"):
        rows.append(["Dataset", fmt_text(info["dataset"])])
    rows += [[f"version: {k}", fmt_text(v)] for k, v in (info.get("versions") or {}).items()]
    rows.append(["Run folder", str(run.directory)])
    return Table(["Field", "Value"], rows, css="kv")


def _model_row(md: ModelDoc) -> list[Cell]:
    doc = md.doc or {}
    spec_hash = md.entry.get("spec_hash") or doc.get("spec_hash") or "—"
    trained = doc.get("created", "—") if md.doc is not None else "model.json missing"
    checkpoint = md.entry.get("checkpoint") or md.entry.get("model_file") or "—"  # model_file: --model-file
    return [md.name, str(spec_hash), str(checkpoint), str(md.path or "—"), fmt_text(trained)]
