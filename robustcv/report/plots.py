"""The report's figures, drawn from the series ``queries`` returns (deterministic PNGs).

Styling rule: a naive attack on a defense is dashed, everything else solid; the per-sample worst
case is drawn thicker. One colour per (run, model, defense) group when several are compared,
otherwise one colour per attack.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from robustcv.plotting import save_figure  # noqa: E402
from robustcv.report.formatting import fmt_eps  # noqa: E402
from robustcv.report.queries import WORST, Series  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
COLORS = plt.get_cmap("tab10").colors


def _styles(series: Sequence[Series]) -> list[dict]:
    group_keys = list(dict.fromkeys((s.run, s.model, s.defense) for s in series))
    attack_keys = list(dict.fromkeys(s.attack for s in series))
    styles = []
    for s in series:
        g, a = group_keys.index((s.run, s.model, s.defense)), attack_keys.index(s.attack)
        color = COLORS[(g if len(group_keys) > 1 else a) % len(COLORS)]
        styles.append(dict(color=color, marker=MARKERS[a % len(MARKERS)], markersize=4,
                           linestyle="--" if s.naive else "-",
                           linewidth=2.6 if s.attack == WORST else 1.4))
    return styles


LABEL_CHAR = 0.013  # share of the eps axis one tick-label character takes (8 pt on the default figure)
LABEL_MARGIN = 0.01


def _eps_ticks(ax, xs: Sequence[float]) -> None:
    grid = sorted(set(xs))
    if 1 < len(grid) <= 10:
        ax.set_xticks(grid)
        ax.set_xticklabels(_spaced_labels(grid), rotation=30 if len(grid) > 6 else 0, fontsize=8)


def _spaced_labels(grid: Sequence[float]) -> list[str]:
    """``fmt_eps`` labels, blank where one would overprint the last label shown (small eps on a
    linear axis: 1/255 and 2/255 when the grid reaches 16/255); every tick stays."""
    span, labels, last = grid[-1] - grid[0], [], None
    for x in grid:
        text = fmt_eps(x)
        room = None if last is None else (len(fmt_eps(last)) + len(text)) / 2 * LABEL_CHAR + LABEL_MARGIN
        crowded = room is not None and (x - last) < room * span and x != grid[-1]
        labels.append("" if crowded else text)
        last = last if crowded else x
    return labels


def _legend(ax, count: int) -> None:
    if count > 3:  # beside the axes: inside, several entries would hide the curves
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    elif count:
        ax.legend(fontsize=8)


def robust_curves(series: Sequence[Series], path: Path, ylabel: str = "robust accuracy") -> Path:
    """Robust accuracy against eps, every curve on one shared pair of axes."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for s, style in zip(series, _styles(series)):
        ax.plot(s.x, s.y, label=_mpl(s.label), **style)
    _eps_ticks(ax, [x for s in series for x in s.x])
    ax.set(xlabel="eps (pixel units, [0, 1] images)", ylabel=ylabel, ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    _legend(ax, len(series))
    return save_figure(fig, path)


def tradeoff(points: Sequence[tuple[str, float, float]], path: Path, metric: str = "accuracy") -> Path:
    """Clean (x) against robust ``metric`` at the headline eps (y), one labelled point each."""
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    ax.plot([0, 1], [0, 1], color="0.8", linewidth=1, linestyle=":", label="robust = clean")
    for i, (label, clean, robust) in enumerate(points):
        ax.scatter([clean], [robust], color=COLORS[i % len(COLORS)], marker=MARKERS[i % len(MARKERS)],
                   s=50, label=_mpl(label), zorder=3)
    ax.set(xlabel=f"clean {metric}", ylabel=f"robust {metric} at headline eps (worst case)",
           xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    _legend(ax, len(points) + 1)
    return save_figure(fig, path)


def class_bars(classes: Sequence[str], columns: Sequence[tuple[str, dict[str, float]]], path: Path,
               ylabel: str = "robust accuracy") -> Path:
    """Grouped bars: per class, robust accuracy (or IoU) of each (run, model, defense)."""
    width = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(classes) * max(1, len(columns) ** 0.5)), 3.6))
    for j, (label, values) in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i in range(len(classes))]
        ax.bar(xs, [values.get(c, math.nan) for c in classes], width=width, label=_mpl(label),
               color=COLORS[j % len(COLORS)])
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels([_short(c) for c in classes], rotation=45 if len(classes) > 12 else 0,
                       fontsize=8, ha="right" if len(classes) > 12 else "center")
    ax.set(xlabel="true class", ylabel=ylabel, ylim=(0, 1.02))
    ax.grid(alpha=0.3, axis="y")
    _legend(ax, len(columns))
    return save_figure(fig, path)


def min_eps_histogram(grid: Sequence[float], columns: Sequence[tuple[str, list[float | None]]],
                      path: Path) -> Path:
    """Fraction of samples first fooled at each grid eps, plus those never fooled."""
    labels = [fmt_eps(e) for e in grid] + ["never"]
    width = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(labels) * max(1, len(columns) ** 0.5)), 3.6))
    for j, (label, values) in enumerate(columns):
        total = max(len(values), 1)
        counts = [sum(1 for v in values if v is not None and abs(v - e) < 1e-9) / total for e in grid]
        counts.append(sum(1 for v in values if v is None) / total)
        xs = [i + (j - (len(columns) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, counts, width=width, label=_mpl(label), color=COLORS[j % len(COLORS)])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set(xlabel="minimal eps that fools the sample", ylabel="fraction of samples", ylim=(0, 1.02))
    ax.grid(alpha=0.3, axis="y")
    _legend(ax, len(columns))
    return save_figure(fig, path)


# What each natural sweep's parameter measures (attacks/natural.py).
NATURAL_UNITS = {"translate": "shift (pixels)", "rotate": "rotation (± degrees)", "noise": "Gaussian noise σ",
                 "blur": "blur σ (pixels)", "brightness": "brightness ± delta"}


def natural_sweeps(by_kind: dict[str, list[Series]], path: Path, ylabel: str = "accuracy") -> Path:
    """One small panel per transformation kind, accuracy against the transform's parameter.

    The curves are the same (run, model, defense) groups in every panel, so one legend below
    the panels names them.
    """
    kinds = list(by_kind)
    ncols = min(3, len(kinds))
    nrows = math.ceil(len(kinds) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.7 * nrows), squeeze=False)
    legend: dict[str, object] = {}
    for ax, kind in zip(axes.flat, kinds):
        series = by_kind[kind]
        for s, style in zip(series, _styles(series)):
            (line,) = ax.plot(s.x, s.y, **style)
            if " / " in s.label:  # one curve per group: a legend only when there are groups
                legend.setdefault(s.label.rsplit(" / ", 1)[0], line)
        ax.set(title=_mpl(kind), xlabel=NATURAL_UNITS.get(kind, "parameter"), ylabel=ylabel, ylim=(-0.02, 1.02))
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(kinds):]:
        ax.set_visible(False)
    fig.tight_layout()
    if len(legend) > 1:
        fig.legend(list(legend.values()), [_mpl(n) for n in legend], loc="upper center",
                   bbox_to_anchor=(0.5, 0.0), ncol=min(2, len(legend)), fontsize=8, frameon=False)
    return save_figure(fig, path)


def _short(text: str, limit: int = 14) -> str:
    return _mpl(text if len(text) <= limit else text[: limit - 1] + "…")


def _mpl(text: str) -> str:
    """Data as literal text: ``$`` would start mathtext (and can crash the draw), a leading ``_``
    hides a legend entry."""
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text
