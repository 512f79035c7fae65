"""Multi-label runs: mAP against eps beside the robust exact match, and the label metrics (F1,
hamming loss) of the worst case at the headline eps. Runs of other tasks add nothing here."""
from __future__ import annotations

from robustcv.report.context import Context
from robustcv.report.document import Block, Table, Text
from robustcv.report.formatting import fmt_eps, fmt_value
from robustcv.report.loading import RunData
from robustcv.report.queries import WORST, Series, groups, headline_eps, lookup
from robustcv.report.task_curves import metric_curves

SECTION = "label-metrics"  # the tasks whose runs list it in ``report_sections`` contribute here

LABEL_METRICS = (("map", "mAP"), ("f1_macro", "F1 macro"), ("f1_micro", "F1 micro"), ("hamming_loss", "Hamming loss"))
MAP_NOTE = ("One curve per attack; thick = per-image worst case. The attacks stop on an image at its first flipped "
            "label (that is what breaks the exact match), so mAP is measured on those adversarials: it shows how far "
            "the label ranking has moved when the label set first breaks, and an attack aimed at mAP would lower it "
            "further.")


def map_vs_eps(ctx: Context) -> list[Block]:
    """mAP against eps for every attack of the multi-label runs, with the label metrics' table."""
    runs, series, blocks = metric_curves(ctx, SECTION, "map", "mAP", MAP_NOTE)
    return blocks + [_map_table(series), _headline_table(ctx, runs)] if blocks else []


def _map_table(series: list[Series]) -> Table:
    grid = sorted({x for s in series for x in s.x})
    rows = [[s.run, s.model, s.defense, s.attack, s.mode] + [fmt_value(dict(zip(s.x, s.y)).get(e)) for e in grid]
            for s in series]
    headers = ["Run", "Model", "Defense", "Attack", "Mode"] + [f"eps {fmt_eps(e)}" for e in grid]
    return Table(headers, rows, numeric=set(range(5, len(headers))))


def _headline_table(ctx: Context, runs: list[RunData]) -> Block:
    """Clean and worst-case label metrics at each run's headline eps."""
    rows = []
    for run in runs:
        eps = headline_eps(run)
        for model, defense in groups(run):
            row = [ctx.label(run.name, model, defense), fmt_eps(eps)]
            for metric, _ in LABEL_METRICS:
                row += [_value(run, model, defense, f"clean_{metric}"),
                        _value(run, model, defense, metric, eps=eps, attack=WORST)]
            rows.append(row)
    if not rows:
        return Text("Label metrics: not measured.", "note")
    headers = ["Model / defense", "Headline eps"] + [f"{name} {when}" for _, name in LABEL_METRICS
                                                     for when in ("clean", "worst case")]
    return Table(headers, rows, numeric=set(range(1, len(headers))))


def _value(run: RunData, model: str, defense: str, metric: str, **where) -> str:
    found = lookup(run, model, defense, metric, **where)
    return fmt_value(found[0].value if found else None)
