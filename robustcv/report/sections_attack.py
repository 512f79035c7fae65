"""Sections 1-4 of the report: summary, robust accuracy vs eps, trade-off, per-class robustness."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustcv.report import plots
from robustcv.report.document import Alert, Block, Figure, Heading, Image, Table, Text
from robustcv.report.loading import RunData
from robustcv.report.queries import (
    WORST, Headline, class_values, curve_series, failed_checks, fmt_eps, fmt_value, groups, headline, headline_eps,
    is_natural, verdict,
)

NOT_MEASURED = "not measured"


@dataclass
class Context:
    """What every section builder needs: the runs and where figures go."""

    runs: list[RunData]
    out_dir: Path

    def figure_path(self, name: str) -> Path:
        return self.out_dir / name


def headlines(ctx: Context) -> list[Headline]:
    """One Headline per (run, model, defense) that has records."""
    return [headline(run, model, defense) for run in ctx.runs for model, defense in groups(run)]


def summary(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Summary", anchor="summary")]
    failed = failed_checks(ctx.runs)
    total = sum(len(run.results.sanity_checks) for run in ctx.runs)
    if failed:
        lines = [f"{run.name} · {c.model or 'all models'} · defense {c.defense}: {c.name} failed — {c.detail}"
                 for run, c in failed]
        blocks.append(Alert(f"{len(failed)} of {total} sanity checks FAILED: these numbers may be wrong", lines))
    elif total:
        blocks.append(Alert(f"All {total} sanity checks passed", ok=True))
    else:
        blocks.append(Text("No sanity checks were recorded for these runs.", "note"))
    rows = []
    for h in headlines(ctx):
        fails = sum(1 for run, c in failed if run.name == h.run and c.model in ("", h.model)
                    and c.defense in (h.defense, ""))
        rows.append([h.run, h.model, h.defense, fmt_value(h.clean), fmt_eps(h.eps), fmt_value(h.robust),
                     verdict(h, fails)])
    if rows:
        blocks.append(Table(["Run", "Model", "Defense", "Clean accuracy", "Headline eps",
                             "Robust accuracy (worst case)", "Verdict"], rows, numeric={3, 4, 5}))
        blocks.append(Text("Robust accuracy counts every evaluated sample (a sample misclassified on clean "
                           "input is not robust); the worst case is taken per sample over all attacks and, "
                           "for defenses, over naive and adaptive attacks — that is the figure that counts.",
                           "note"))
    else:
        blocks.append(Text("No attack results: " + NOT_MEASURED + ".", "note"))
    return blocks


def robust_vs_eps(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Robust accuracy vs eps", anchor="robust-vs-eps")]
    series = curve_series(ctx.runs)
    if not series:
        return blocks + [Text("Attacks: " + NOT_MEASURED + ".", "note")]
    path = plots.robust_curves(series, ctx.figure_path("robust_vs_eps.png"))
    blocks.append(Figure(Image(path, "Robust accuracy against eps, one curve per attack"),
                         "One curve per attack; thick = per-sample worst case; dashed = naive attack on a "
                         "defense (does not count), solid = adaptive or undefended."))
    grid = sorted({x for s in series for x in s.x})
    rows = []
    for s in series:
        values = dict(zip(s.x, s.y))
        rows.append([s.run, s.model, s.defense, s.attack, s.mode]
                    + [fmt_value(values.get(e)) for e in grid])
    headers = ["Run", "Model", "Defense", "Attack", "Mode"] + [f"eps {fmt_eps(e)}" for e in grid]
    blocks.append(Table(headers, rows, numeric=set(range(5, len(headers)))))
    return blocks


def tradeoff(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Clean vs robust trade-off", anchor="tradeoff")]
    points = [(h, " / ".join(_label_parts(ctx, h))) for h in headlines(ctx)
              if h.clean is not None and h.robust is not None]
    if not points:
        return blocks + [Text("Trade-off: " + NOT_MEASURED + ".", "note")]
    path = plots.tradeoff([(label, h.clean, h.robust) for h, label in points], ctx.figure_path("tradeoff.png"))
    eps_note = ", ".join(sorted({fmt_eps(h.eps) for h, _ in points}))
    blocks.append(Figure(Image(path, "Clean accuracy against robust accuracy"),
                         f"One point per model and defense; robust accuracy at the headline eps ({eps_note}). "
                         "Up and right is better; the dotted diagonal is no loss under attack."))
    return blocks


def _label_parts(ctx: Context, h: Headline) -> list[str]:
    parts = [h.run] if len(ctx.runs) > 1 else []
    return parts + [h.model, h.defense]


def per_class(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Per-class robustness", anchor="per-class")]
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
            label = " / ".join(([run.name] if len(ctx.runs) > 1 else []) + [model, defense])
            columns.append((label, values))
            headers.append(f"{label} ({attack}, eps {fmt_eps(eps)})")
            order = run.classes + sorted(set(values) - set(run.classes))
            classes += [c for c in order if c in values and c not in classes]
    if not columns:
        return blocks + [Text("Per-class robustness: " + NOT_MEASURED + ".", "note")]
    path = plots.class_bars(classes, columns, ctx.figure_path("per_class.png"))
    blocks.append(Figure(Image(path, "Robust accuracy per class at the headline eps"),
                         "Robust accuracy per true class at each run's headline eps (worst case when recorded)."))
    rows = [[cls] + [fmt_value(values.get(cls)) for _, values in columns] for cls in classes]
    blocks.append(Table(headers, rows, numeric=set(range(1, len(headers)))))
    return blocks


def min_eps(ctx: Context) -> list[Block]:
    blocks: list[Block] = [Heading("Minimal eps per sample", anchor="min-eps")]
    columns, rows, grid = [], [], set()
    for run in ctx.runs:
        entries = [m for m in run.results.min_eps if not is_natural(m.attack)]
        chosen = [m for m in entries if m.attack == WORST] or entries
        grid |= {float(e) for e in run.results.run.get("eps_grid") or [] if e}
        for m in chosen:
            values = list(m.values)
            found = [v for v in values if v is not None]
            grid |= set(found)
            label = " / ".join(([run.name] if len(ctx.runs) > 1 else []) + [m.model, m.defense, m.attack])
            columns.append((label, values))
            never = (len(values) - len(found)) / len(values) if values else None
            median = sorted(found)[len(found) // 2] if found else None
            rows.append([run.name, m.model, m.defense, m.attack, str(len(values)), fmt_value(never),
                         fmt_eps(median) if median is not None else "—"])
    if not columns:
        return blocks + [Text("Per-sample minimal eps: " + NOT_MEASURED + ".", "note")]
    path = plots.min_eps_histogram(sorted(grid), columns, ctx.figure_path("min_eps.png"))
    blocks.append(Figure(Image(path, "Histogram of per-sample minimal eps"),
                         "For each sample, the smallest eps on the grid at which it is misclassified "
                         "(0 = wrong already on clean input); \"never\" = robust at every eps tried."))
    blocks.append(Table(["Run", "Model", "Defense", "Attack", "Samples", "Never fooled",
                         "Median minimal eps (fooled samples)"], rows, numeric={4, 5, 6}))
    return blocks
