"""Natural-transformation sweeps (rotation, noise, ...): accuracy against each transformation's
parameter, no adversary involved."""
from __future__ import annotations

from robustcv.report import plots
from robustcv.report.context import NOT_MEASURED, Context
from robustcv.report.document import Block, Figure, Heading, Image, Table, Text
from robustcv.report.formatting import fmt_value
from robustcv.report.queries import NATURAL_PREFIX, Series, curve_series, lookup


def natural(ctx: Context) -> list[Block]:
    """One plot panel and one table per kind of transformation."""
    blocks: list[Block] = [Heading("Natural transformations", anchor="natural")]
    by_kind: dict[str, list[Series]] = {}
    for s in curve_series(ctx.runs, natural=True):
        by_kind.setdefault(s.attack[len(NATURAL_PREFIX):], []).append(s)
    if not by_kind:
        return blocks + [Text("Natural-transformation sweeps: " + NOT_MEASURED + ".", "note")]
    path = plots.natural_sweeps(by_kind, ctx.figure_path("natural.png"))
    blocks.append(Figure(Image(path, "Accuracy against each transformation's parameter"),
                         "Accuracy under natural transformations (no adversary), one panel per kind."))
    return blocks + [_kind_table(ctx, kind, series) for kind, series in by_kind.items()]


def _kind_table(ctx: Context, kind: str, series: list[Series]) -> Table:
    grid = sorted({x for s in series for x in s.x})
    rows = [[s.run, s.model, s.defense] + [fmt_value(dict(zip(s.x, s.y)).get(x)) for x in grid]
            + [fmt_value(_natural_worst(ctx, s))] for s in series]
    headers = ["Run", "Model", "Defense"] + [f"{x:g}" for x in grid] + ["Worst over the grid"]
    return Table(headers, rows, caption=f"{kind}: accuracy by parameter", numeric=set(range(3, len(headers))))


def _natural_worst(ctx: Context, s: Series) -> float | None:
    """Samples correct at every parameter value (metric ``worst_case_accuracy``), when recorded."""
    for run in ctx.runs:
        if run.name == s.run:
            found = lookup(run, s.model, s.defense, "worst_case_accuracy", attack=s.attack)
            return found[0].value if found else None
    return None
