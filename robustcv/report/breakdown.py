"""Where robustness breaks down: robust accuracy per true class at the headline eps, and the
smallest eps that fools each sample."""
from __future__ import annotations

from robustcv.report import plots
from robustcv.report.context import NOT_MEASURED, Context
from robustcv.report.document import Block, Figure, Heading, Image, Table, Text
from robustcv.report.formatting import fmt_eps, fmt_value
from robustcv.report.loading import RunData
from robustcv.report.queries import WORST, class_values, common, groups, headline_eps, is_natural
from robustcv.results import MinEps




def per_class(ctx: Context) -> list[Block]:
    """Robust accuracy per true class, one column per (run, model, defense)."""
    blocks: list[Block] = [Heading("Per-class robustness", anchor="per-class")]
    headers, columns, classes = _class_columns(ctx)
    if not columns:
        return blocks + [Text("Per-class robustness: " + NOT_MEASURED + ".", "note")]
    shown = common(ctx.runs, "class_label", "robust accuracy")
    title = shown[0].upper() + shown[1:]
    path = plots.class_bars(classes, columns, ctx.figure_path("per_class.png"), ylabel=shown)
    blocks.append(Figure(Image(path, f"{title} per class at the headline eps"),
                         f"{title} per true class at each run's headline eps (worst case when recorded)."
                         + common(ctx.runs, "class_note", "")))
    rows = [[cls] + [fmt_value(values.get(cls)) for _, values in columns] for cls in classes]
    blocks.append(Table(headers, rows, numeric=set(range(1, len(headers)))))
    return blocks


def _class_columns(ctx: Context) -> tuple[list[str], list[tuple[str, dict[str, float]]], list[str]]:
    """Table headers, (label, value per class) columns, and every class in the data's order."""
    columns: list[tuple[str, dict[str, float]]] = []
    headers, classes = ["Class"], []
    for run in ctx.runs:
        eps = headline_eps(run)
        if eps is None:
            continue
        for model, defense in groups(run):
            attack, values = class_values(run, model, defense, eps)
            if not values:
                continue
            label = ctx.label(run.name, model, defense)
            columns.append((label, values))
            headers.append(f"{label} ({attack}, eps {fmt_eps(eps)})")
            order = run.classes + sorted(set(values) - set(run.classes))
            classes += [c for c in order if c in values and c not in classes]
    return headers, columns, classes


def min_eps(ctx: Context) -> list[Block]:
    """A histogram of each sample's minimal eps, and how many samples no eps on the grid fooled."""
    blocks: list[Block] = [Heading("Minimal eps per sample", anchor="min-eps")]
    columns, rows, grid = [], [], set()
    for run in ctx.runs:
        grid |= {float(e) for e in run.results.run.get("eps_grid") or [] if e}
        for m in _attack_min_eps(run):
            values = list(m.values)
            grid |= {v for v in values if v is not None}
            columns.append((ctx.label(run.name, m.model, m.defense, m.attack), values))
            rows.append(_min_eps_row(run, m, values))
    exact = _minimal_norms(ctx)
    if not columns:
        return blocks + [Text("Per-sample minimal eps: " + NOT_MEASURED + ".", "note")] + exact
    path = plots.min_eps_histogram(sorted(grid), columns, ctx.figure_path("min_eps.png"))
    blocks.append(Figure(Image(path, "Histogram of per-sample minimal eps"),
                         "For each sample, the smallest eps on the grid at which it is misclassified "
                         "(0 = wrong already on clean input); \"never\" = robust at every eps tried."))
    blocks.append(Table(["Run", "Model", "Defense", "Attack", "Samples", "Never fooled",
                         "Median minimal eps (fooled samples)"], rows, numeric={4, 5, 6}))
    return blocks + exact


def _attack_min_eps(run: RunData) -> list[MinEps]:
    """The worst case's minimal eps when recorded, else every attack's (natural sweeps and
    minimization attacks' exact norms left out)."""
    entries = [m for m in run.results.min_eps if not is_natural(m.attack) and not m.exact]
    return [m for m in entries if m.attack == WORST] or entries


QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _minimal_norms(ctx: Context) -> list[Block]:
    """Minimization attacks: quantiles of each sample's minimal perturbation norm (off the grid)."""
    rows = []
    for run in ctx.runs:
        norm = run.results.run.get("norm", "")
        for m in (m for m in run.results.min_eps if m.exact):
            rows.append([run.name, m.model, m.defense, f"{m.attack} ({norm})", str(len(m.values)),
                         *["never" if q is None else fmt_eps(q) for q in norm_quantiles(m.values)]])
    if not rows:
        return []
    headers = ["Run", "Model", "Defense", "Attack", "Samples", *[f"{round(q * 100)} %" for q in QUANTILES]]
    note = ("Each sample's smallest perturbation the minimization attack found that fools the model (0: wrong "
            "already on clean input), as quantiles over all samples; \"never\": the attack fooled fewer.")
    return [Text(note, "note"), Table(headers, rows, numeric=set(range(4, len(headers))))]


def norm_quantiles(values: list[float | None]) -> list[float | None]:
    """Lower quantiles (``QUANTILES``) over all samples, never-fooled ones counting as infinite (None)."""
    ordered = sorted(values, key=lambda v: float("inf") if v is None else v)
    return [ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None for q in QUANTILES]


def _min_eps_row(run: RunData, m: MinEps, values: list) -> list[str]:
    found = [v for v in values if v is not None]
    never = (len(values) - len(found)) / len(values) if values else None
    median = sorted(found)[len(found) // 2] if found else None
    return [run.name, m.model, m.defense, m.attack, str(len(values)), fmt_value(never), fmt_eps(median)]
