"""Sections 5-9 of the report: gallery, natural sweeps, training, sanity checks, reproducibility."""
from __future__ import annotations

import json
from typing import Any

from robustcv.plotting import learning_curve_figure, save_figure
from robustcv.report import plots
from robustcv.report.document import Badge, Block, Cell, Figure, Heading, Image, Table, Text
from robustcv.report.loading import ModelDoc, RunData, read_png
from robustcv.report.queries import NATURAL_PREFIX, Series, curve_series, fmt_eps, fmt_value, lookup
from robustcv.report.sections_attack import NOT_MEASURED, Context
from robustcv.results import write_bytes_atomic

GALLERY_KINDS = ("clean", "perturbation", "adversarial")


def gallery(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Example gallery", anchor="gallery")]
    rows: list[list[Cell]] = []
    for r, run in enumerate(ctx.runs):
        for g, item in enumerate(run.results.gallery):
            images = [_gallery_image(ctx, run, f"run{r}_{g}_{kind}.png", path, f"{kind} image")
                      for kind, path in zip(GALLERY_KINDS, (item.clean_path, item.perturbation_path,
                                                            item.adversarial_path))]
            rows.append([run.name, f"{item.model} / {item.defense}", f"{item.attack} @ eps {fmt_eps(item.eps)}",
                         item.label, images[0], _prediction(item.clean_pred, item.clean_conf),
                         images[1], images[2], _prediction(item.adv_pred, item.adv_conf)])
    if not rows:
        return blocks + [Text("Examples: " + NOT_MEASURED + ".", "note")]
    blocks.append(Text("Clean image, the perturbation amplified to be visible, and the adversarial image, "
                       "with the predicted label and its confidence."))
    blocks.append(Table(["Run", "Model / defense", "Attack", "True label", "Clean", "Clean prediction",
                         "Perturbation (amplified)", "Adversarial", "Adversarial prediction"], rows,
                        css="gallery"))
    return blocks


def _prediction(label: str, confidence: float | None) -> str:
    if isinstance(confidence, (int, float)):
        return f"{label} ({confidence:.0%})"
    return str(label)


def _gallery_image(ctx: Context, run: RunData, name: str, relative: str, alt: str) -> Cell:
    payload = read_png(run, relative)
    if payload is None:
        return "image missing"
    path = ctx.out_dir / "gallery" / name
    write_bytes_atomic(path, payload)
    return Image(path, alt, width=84, pixelated=True)


def natural(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Natural transformations", anchor="natural")]
    by_kind: dict[str, list] = {}
    for s in curve_series(ctx.runs, natural=True):
        by_kind.setdefault(s.attack[len(NATURAL_PREFIX):], []).append(s)
    if not by_kind:
        return blocks + [Text("Natural-transformation sweeps: " + NOT_MEASURED + ".", "note")]
    path = plots.natural_sweeps(by_kind, ctx.figure_path("natural.png"))
    blocks.append(Figure(Image(path, "Accuracy against each transformation's parameter"),
                         "Accuracy under natural transformations (no adversary), one panel per kind."))
    for kind, series in by_kind.items():
        grid = sorted({x for s in series for x in s.x})
        rows = [[s.run, s.model, s.defense] + [fmt_value(dict(zip(s.x, s.y)).get(x)) for x in grid]
                + [fmt_value(_natural_worst(ctx, s))] for s in series]
        headers = ["Run", "Model", "Defense"] + [f"{x:g}" for x in grid] + ["Worst over the grid"]
        blocks.append(Table(headers, rows, caption=f"{kind}: accuracy by parameter",
                            numeric=set(range(3, len(headers)))))
    return blocks


def _natural_worst(ctx: Context, s: Series) -> float | None:
    """Samples correct at every parameter value (metric ``worst_case_accuracy``), when recorded."""
    for run in ctx.runs:
        if run.name == s.run:
            found = lookup(run, s.model, s.defense, "worst_case_accuracy", attack=s.attack)
            return found[0].value if found else None
    return None


def training(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Training", anchor="training")]
    seen: dict[str, list[str]] = {}
    docs: list[tuple[ModelDoc, RunData]] = []
    for run in ctx.runs:
        for md in run.models:
            key = str(md.path) if md.path else f"{run.name}:{md.name}"
            if key not in seen:
                seen[key] = []
                docs.append((md, run))
            seen[key].append(run.name)
    if not docs:
        return blocks + [Text("Training: " + NOT_MEASURED + " (results.json lists no models).", "note")]
    for i, (md, run) in enumerate(docs):
        blocks.append(Heading(md.name, level=3))
        if md.doc is None:
            blocks.append(Text(f"{md.problem}: training details not available.", "note"))
            continue
        blocks += _model_blocks(ctx, md.doc, i)
    return blocks


def _model_blocks(ctx: Context, doc: dict[str, Any], index: int) -> list[Block]:
    blocks: list[Block] = []
    history = [h for h in doc.get("history") or [] if isinstance(h, dict)]
    needed = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
    if history and all(all(k in h for k in needed) for h in history):
        path = save_figure(learning_curve_figure(history), ctx.figure_path(f"training_{index}.png"))
        robust = any("val_robust_accuracy" in h for h in history)
        blocks.append(Figure(Image(path, "Learning curves"), "Loss and accuracy per epoch"
                             + (" (dashed: robust validation accuracy under PGD)." if robust else ".")))
        columns = [("epoch", "Epoch"), ("train_loss", "Train loss"), ("train_accuracy", "Train acc."),
                   ("val_loss", "Val. loss"), ("val_accuracy", "Val. acc.")]
        columns += [("val_robust_accuracy", "Val. robust acc.")] if robust else []
        columns += [("lr", "LR")]
        rows = [[str(h["epoch"])] + [_num(h.get(k)) for k, _ in columns[1:]] for h in history]
        blocks.append(Table([c for _, c in columns], rows, caption=f"Best epoch: {doc.get('best_epoch', '—')}",
                            numeric=set(range(len(columns)))))
    else:
        blocks.append(Text("Learning curves: " + NOT_MEASURED + ".", "note"))
    settings = [("recipe." + k, v) for k, v in (doc.get("recipe") or {}).items()]
    settings += [("model." + k, v) for k, v in (doc.get("model") or {}).items()]
    settings += [("data." + k, v) for k, v in (doc.get("data") or {}).items()]
    if settings:
        blocks.append(Table(["Setting", "Value"], [[k, _text(v)] for k, v in settings], caption="Recipe", css="kv"))
    metrics = doc.get("test_metrics") or {}
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if scalars:
        blocks.append(Table(["Test metric", "Value"], [[k, str(v) if isinstance(v, int) else fmt_value(v)]
                                                       for k, v in scalars],
                            caption="Test set", numeric={1}, css="kv"))
    return blocks


def sanity(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Sanity checks", anchor="sanity")]
    rows: list[list[Cell]] = []
    for run in ctx.runs:
        for c in run.results.sanity_checks:
            values = "; ".join(f"{k} = {_text(_rounded(v))}" for k, v in (c.values or {}).items())
            rows.append([run.name, c.model or "all", c.defense, c.name,
                         Badge("PASS" if c.passed else "FAIL", c.passed), c.detail, values])
    if not rows:
        return blocks + [Text("Sanity checks: " + NOT_MEASURED + ".", "note")]
    blocks.append(Table(["Run", "Model", "Defense", "Check", "Result", "Detail", "Numbers"], rows))
    return blocks


def reproducibility(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Reproducibility", anchor="reproducibility")]
    for run in ctx.runs:
        info = run.results.run
        blocks.append(Heading(run.name, level=3))
        blocks.append(Text(str(info.get("command") or "(command not recorded)"), "code"))
        keys = [("created", "Created"), ("seed", "Seed"), ("device", "Device"), ("task", "Task"),
                ("norm", "Norm"), ("n", "Samples")]
        rows = [[label, _text(info.get(key))] for key, label in keys if key in info]
        grid = [e for e in info.get("eps_grid") or [] if isinstance(e, (int, float))]
        rows.append(["Eps grid", ", ".join(fmt_eps(float(e)) for e in grid) or "—"])
        rows.append(["Headline eps", fmt_eps(run.headline_eps)])
        if info.get("dataset"):
            rows.append(["Dataset", _text(info["dataset"])])
        rows += [[f"version: {k}", _text(v)] for k, v in (info.get("versions") or {}).items()]
        rows.append(["Run folder", str(run.directory)])
        blocks.append(Table(["Field", "Value"], rows, css="kv"))
        if run.models:
            blocks.append(Table(["Model", "Spec hash", "Checkpoint", "model.json", "Trained"],
                                [_model_row(md) for md in run.models]))
    return blocks


def _model_row(md: ModelDoc) -> list[Cell]:
    doc = md.doc or {}
    spec_hash = md.entry.get("spec_hash") or doc.get("spec_hash") or "—"
    trained = doc.get("created", "—") if md.doc is not None else "model.json missing"
    return [md.name, str(spec_hash), str(md.entry.get("checkpoint") or "—"), str(md.path or "—"), _text(trained)]


def _num(value: Any) -> str:
    return fmt_value(float(value)) if isinstance(value, (int, float)) else "—"


def _rounded(value: Any) -> Any:
    """Floats to 4 significant digits, inside lists and dicts too (check values can be long)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=False, ensure_ascii=False)
    return "—" if value is None else str(value)
