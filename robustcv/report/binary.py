"""Binary runs: AUROC against eps beside the robust accuracy, and the clean and attacked AUROC,
precision and recall at the threshold at the headline eps. Runs of other tasks add nothing here."""
from __future__ import annotations

from robustcv.report.context import Context
from robustcv.report.document import Block, Table, Text
from robustcv.report.formatting import fmt_eps, fmt_value
from robustcv.report.loading import RunData
from robustcv.report.queries import groups, headline_eps, lookup
from robustcv.report.task_curves import metric_curves

SECTION = "binary-scores"  # the tasks whose runs list it in ``report_sections`` contribute here

SCORE_METRICS = (("auroc", "AUROC"), ("precision", "precision"), ("recall", "recall"))
AUROC_NOTE = ("One curve per attack, on each attack's kept adversarials (the per-sample worst case picks one "
              "adversarial per image across attacks, so it has no AUROC of its own). The attacks push every "
              "image across the threshold, so AUROC falls with the accuracy; precision and recall are at the "
              "model's threshold.")


def auroc_vs_eps(ctx: Context) -> list[Block]:
    """AUROC against eps for every attack of the binary runs, with the scores' table."""
    runs, _, blocks = metric_curves(ctx, SECTION, "auroc", "AUROC", AUROC_NOTE)
    return blocks + [_headline_table(ctx, runs)] if blocks else []


def _headline_table(ctx: Context, runs: list[RunData]) -> Block:
    """Clean scores and each attack's scores at each run's headline eps."""
    rows = []
    for run in runs:
        eps = headline_eps(run)
        for model, defense in groups(run):
            attacks = sorted({r.attack for r in lookup(run, model, defense, "auroc", eps=eps)})
            rows.append([ctx.label(run.name, model, defense), "clean", "0"]
                        + [_value(run, model, defense, f"clean_{metric}") for metric, _ in SCORE_METRICS])
            rows += [[ctx.label(run.name, model, defense), attack, fmt_eps(eps)]
                     + [_value(run, model, defense, metric, eps=eps, attack=attack) for metric, _ in SCORE_METRICS]
                     for attack in attacks]
    if not rows:
        return Text("AUROC, precision and recall: not measured.", "note")
    headers = ["Model / defense", "Attack", "Eps"] + [name for _, name in SCORE_METRICS]
    return Table(headers, rows, numeric=set(range(2, len(headers))))


def _value(run: RunData, model: str, defense: str, metric: str, **where) -> str:
    found = lookup(run, model, defense, metric, **where)
    return fmt_value(found[0].value if found else None)
