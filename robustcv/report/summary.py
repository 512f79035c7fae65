"""The verdict and the evidence for it: the summary table (clean and worst-case robust accuracy at
the headline eps, failed sanity checks up front), robust accuracy against eps for every attack and
defense, and the clean-vs-robust trade-off."""
from __future__ import annotations

from robustcv.report import plots
from robustcv.report.context import NOT_MEASURED, Context
from robustcv.report.document import Alert, Block, Figure, Heading, Image, Table, Text
from robustcv.report.formatting import fmt_eps, fmt_value
from robustcv.report.queries import (Headline, Series, cascade_steps, concerns, curve_series, failed_checks, groups,
                                     headline, metric_label, protocol, verdict, weaker_than_pgd)
from robustcv.report.significance import fmt_interval, interval_note, overlap_warnings

WORST_CASE_NOTE = ("Robust accuracy counts every evaluated sample (a sample misclassified on clean input is not "
                   "robust); the worst case is taken per sample over all attacks and, for defenses, over naive "
                   "and adaptive attacks — that is the figure that counts.")
SEGMENTATION_NOTE = ("mIoU and pixel accuracy come from one confusion matrix over the valid pixels of all evaluated "
                     "images; the worst case is taken per image over all attacks (for mIoU by a greedy choice that "
                     "lowers the dataset's mIoU, as in SEA; for pixel accuracy the attack with the fewest right "
                     "pixels) — that is the figure that counts.")

MULTILABEL_NOTE = ("Robust exact match counts an image only while its whole label set is right; an image is "
                   "fooled when any label's decision flips. The worst case is taken per image over all attacks "
                   "— that is the figure that counts.")


def headlines(ctx: Context) -> list[Headline]:
    """One Headline per (run, model, defense) that has records."""
    return [headline(run, model, defense) for run in ctx.runs for model, defense in groups(run)]


def summary(ctx: Context) -> list[Block]:
    """Failed sanity checks first, then one verdict per (run, model, defense)."""
    failed = failed_checks(ctx.runs)
    blocks: list[Block] = [Heading("Summary", anchor="summary"), _checks_alert(ctx, failed)]
    found = headlines(ctx)
    rows = [_summary_row(h, failed) for h in found]
    if not rows:
        return blocks + [Text("No attack results: " + NOT_MEASURED + ".", "note")]
    label = metric_label(ctx.runs)
    note = {"mIoU": SEGMENTATION_NOTE, "exact match": MULTILABEL_NOTE}.get(label, WORST_CASE_NOTE)
    blocks += [Table(["Run", "Model", "Defense", f"Clean {label}", "Headline eps",
                      f"Robust {label} (worst case)", "Verdict"], rows, numeric={3, 4, 5}),
               *_protocol_notes(ctx, found),
               Text(" ".join(filter(None, (interval_note(found), note))), "note")]
    return blocks + [Text(f"Warning: {line}.") for line in overlap_warnings(found, label)]


def _protocol_notes(ctx: Context, found: list[Headline]) -> list[Block]:
    """Which protocol produced each run's headline, for the runs that ran one."""
    notes = []
    for run in ctx.runs:
        name = protocol(run)
        attacks = sorted({h.attack for h in found if h.run == run.name and h.attack})
        if name:
            notes.append(Text(f"Protocol: the headline of {run.name} was produced by {name}"
                              + (f", run as the attack {', '.join(attacks)}." if attacks else "."), "note"))
    return notes


def _checks_alert(ctx: Context, failed: list) -> Block:
    total = sum(len(run.results.sanity_checks) for run in ctx.runs)
    if failed:
        lines = [f"{run.name} · {c.model or 'all models'} · defense {c.defense or 'all'}: {c.name} failed — "
                 f"{c.detail}" for run, c in failed]
        return Alert(f"{len(failed)} of {total} sanity checks FAILED: these numbers may be wrong", lines)
    if total:
        return Alert(f"All {total} sanity checks passed", ok=True)
    return Text("No sanity checks were recorded for these runs.", "note")


def _summary_row(h: Headline, failed: list) -> list[str]:
    mine = [c for run, c in failed if run.name == h.run and concerns(c, h)]
    blocking = [c.name for c in mine if c.blocking]
    indicators = [c.indicator for c in mine if c.indicator]
    return [h.run, h.model, h.defense, fmt_interval(h.clean, h.clean_ci), fmt_eps(h.eps),
            fmt_interval(h.robust, h.robust_ci), verdict(h, len(mine), blocking, indicators)]


def robust_vs_eps(ctx: Context) -> list[Block]:
    """Every attack curve of every run on one plot, and the same numbers as a table."""
    label = metric_label(ctx.runs)
    blocks: list[Block] = [Heading(f"Robust {label} vs eps", anchor="robust-vs-eps")]
    series = curve_series(ctx.runs)
    if not series:
        return blocks + [Text("Attacks: " + NOT_MEASURED + ".", "note")]
    path = plots.robust_curves(series, ctx.figure_path("robust_vs_eps.png"), ylabel=f"robust {label}")
    steps = sorted({a for run in ctx.runs for a in cascade_steps(run)})
    cumulative = (f" Cascade steps ({', '.join(steps)}) attack only what earlier attacks left robust: their "
                  "curves are cumulative worst cases.") if steps else ""
    blocks.append(Figure(Image(path, f"Robust {label} against eps, one curve per attack"),
                         "One curve per attack; thick = per-sample worst case; dashed = naive attack on a "
                         "defense (does not count), solid = adaptive or undefended." + cumulative))
    blocks.append(_curve_table(series))
    weaker = weaker_than_pgd(series)
    if weaker:
        blocks.append(Text("SegPGD did not beat PGD everywhere (the worst case covers it): " + "; ".join(weaker)
                           + ".", "note"))
    return blocks


def _curve_table(series: list[Series]) -> Table:
    grid = sorted({x for s in series for x in s.x})
    rows = []
    for s in series:
        values = dict(zip(s.x, s.y))
        rows.append([s.run, s.model, s.defense, s.attack, s.mode] + [fmt_value(values.get(e)) for e in grid])
    headers = ["Run", "Model", "Defense", "Attack", "Mode"] + [f"eps {fmt_eps(e)}" for e in grid]
    return Table(headers, rows, numeric=set(range(5, len(headers))))


def tradeoff(ctx: Context) -> list[Block]:
    """Clean against robust accuracy at the headline eps, one point per model and defense."""
    blocks: list[Block] = [Heading("Clean vs robust trade-off", anchor="tradeoff")]
    points = [(h, ctx.label(h.run, h.model, h.defense)) for h in headlines(ctx)
              if h.clean is not None and h.robust is not None]
    if not points:
        return blocks + [Text("Trade-off: " + NOT_MEASURED + ".", "note")]
    metric = metric_label(ctx.runs)
    path = plots.tradeoff([(label, h.clean, h.robust) for h, label in points], ctx.figure_path("tradeoff.png"),
                          metric)
    eps_note = ", ".join(sorted({fmt_eps(h.eps) for h, _ in points}))
    blocks.append(Figure(Image(path, f"Clean {metric} against robust {metric}"),
                         f"One point per model and defense; robust {metric} at the headline eps ({eps_note}). "
                         "Up and right is better; the dotted diagonal is no loss under attack."))
    return blocks
