"""A task's own metric against eps (mAP for multi-label runs, AUROC for binary ones): the runs
whose task lists the section, their curves of that metric, and the figure."""
from __future__ import annotations

from robustcv.report import plots
from robustcv.report.context import Context
from robustcv.report.document import Block, Figure, Heading, Image
from robustcv.report.loading import RunData
from robustcv.report.queries import Series, contributes, curve_series


def metric_curves(ctx: Context, section: str, metric: str, label: str,
                  note: str) -> tuple[list[RunData], list[Series], list[Block]]:
    """``(runs, series, [heading, figure])`` of ``metric`` for the runs contributing ``section``;
    no blocks when no run has that metric."""
    runs = [run for run in ctx.runs if contributes(run, section)]
    series = curve_series(runs, metric=metric) if runs else []
    if not series:
        return runs, series, []
    path = plots.robust_curves(series, ctx.figure_path(f"{metric}_vs_eps.png"), ylabel=label)
    anchor = f"{metric.replace('_', '-')}-vs-eps"
    return runs, series, [Heading(f"{label} vs eps", anchor=anchor),
                          Figure(Image(path, f"{label} against eps, one curve per attack"), note)]
