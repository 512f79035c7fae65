"""How each model was trained, read from its ``model.json``: learning curves, the recipe and the
test-set metrics. A model attacked by several runs is shown once."""
from __future__ import annotations

from typing import Any

from robustcv.plotting import learning_curve_figure, save_figure
from robustcv.report.context import NOT_MEASURED, Context
from robustcv.report.document import Block, Figure, Heading, Image, Table, Text
from robustcv.report.formatting import fmt_text, fmt_value
from robustcv.report.loading import ModelDoc

HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")


def training(ctx: Context) -> list[Block]:
    """One subsection per model: learning curves, recipe, test metrics."""
    blocks: list[Block] = [Heading("Training", anchor="training")]
    models = _unique_models(ctx)
    if not models:
        return blocks + [Text("Training: " + NOT_MEASURED + " (results.json lists no models).", "note")]
    for i, md in enumerate(models):
        blocks.append(Heading(md.name, level=3))
        if md.doc is None:
            blocks.append(Text(f"{md.problem}: training details not available.", "note"))
            continue
        blocks += _learning_curves(ctx, md.doc, i) + _recipe(md.doc) + _test_metrics(md.doc)
    return blocks


def _unique_models(ctx: Context) -> list[ModelDoc]:
    """Every model of every run, once per ``model.json`` (or per run and name when it has none)."""
    seen: set[str] = set()
    models: list[ModelDoc] = []
    for run in ctx.runs:
        for md in run.models:
            key = str(md.path) if md.path else f"{run.name}:{md.name}"
            if key not in seen:
                seen.add(key)
                models.append(md)
    return models


def _learning_curves(ctx: Context, doc: dict[str, Any], index: int) -> list[Block]:
    history = [h for h in doc.get("history") or [] if isinstance(h, dict)]
    if not history or not all(all(k in h for k in HISTORY_KEYS) for h in history):
        return [Text("Learning curves: " + NOT_MEASURED + ".", "note")]
    path = save_figure(learning_curve_figure(history), ctx.figure_path(f"training_{index}.png"))
    robust = any("val_robust_accuracy" in h for h in history)
    figure = Figure(Image(path, "Learning curves"), "Loss and accuracy per epoch"
                    + (" (dashed: robust validation accuracy under PGD)." if robust else "."))
    return [figure, _history_table(history, robust, doc.get("best_epoch", "—"))]


def _history_table(history: list[dict[str, Any]], robust: bool, best_epoch: Any) -> Table:
    columns = [("epoch", "Epoch"), ("train_loss", "Train loss"), ("train_accuracy", "Train acc."),
               ("val_loss", "Val. loss"), ("val_accuracy", "Val. acc.")]
    columns += [("val_robust_accuracy", "Val. robust acc.")] if robust else []
    columns += [("lr", "LR")]
    rows = [[str(h["epoch"])] + [_num(h.get(k)) for k, _ in columns[1:]] for h in history]
    return Table([c for _, c in columns], rows, caption=f"Best epoch: {best_epoch}", numeric=set(range(len(columns))))


def _recipe(doc: dict[str, Any]) -> list[Block]:
    settings = [("recipe." + k, v) for k, v in (doc.get("recipe") or {}).items()]
    settings += [("model." + k, v) for k, v in (doc.get("model") or {}).items()]
    settings += [("data." + k, v) for k, v in (doc.get("data") or {}).items()]
    if not settings:
        return []
    return [Table(["Setting", "Value"], [[k, fmt_text(v)] for k, v in settings], caption="Recipe", css="kv")]


def _test_metrics(doc: dict[str, Any]) -> list[Block]:
    metrics = doc.get("test_metrics") or {}
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not scalars:
        return []
    rows = [[k, str(v) if isinstance(v, int) else fmt_value(v)] for k, v in scalars]
    return [Table(["Test metric", "Value"], rows, caption="Test set", numeric={1}, css="kv")]


def _num(value: Any) -> str:
    return fmt_value(float(value)) if isinstance(value, (int, float)) else "—"
