"""What the summary's numbers can and cannot tell apart: 95 % intervals next to the figures, the
sample counts behind them, and one warning line per comparison that lies within the noise."""
from __future__ import annotations

from itertools import combinations
from typing import Sequence

from robustcv.report.formatting import fmt_eps, fmt_value
from robustcv.report.queries import Headline
from robustcv.metrics import BOOTSTRAP
from robustcv.stats import intervals_overlap
from robustcv.tasks import metric_interval

MAX_WARNINGS = 8  # beyond this the summary would be all warnings; the rest are counted


def fmt_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    """``0.827 [0.785, 0.862]`` where an interval is recorded, else the plain value."""
    if value is None or interval is None:
        return fmt_value(value)
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def interval_note(headlines: Sequence[Headline]) -> str:
    """The note under the summary: what the brackets are and how many samples stand behind them."""
    counts = sorted({h.n for h in headlines if h.n is not None and h.robust_ci is not None})
    if not counts:
        return ""
    shown = ", ".join(str(n) for n in counts)
    kinds = {"bootstrap (1000 resamples of the images)" if metric_interval(h.metric) == BOOTSTRAP else "Wilson"
             for h in headlines if h.robust_ci is not None}
    return (f"Brackets: 95 % {' and '.join(sorted(kinds))} confidence intervals over the evaluated test samples "
            f"(n = {shown}).")


def overlap_warnings(headlines: Sequence[Headline], label: str) -> list[str]:
    """One line per compared pair whose 95 % intervals overlap: the loss under attack within a
    row, and the robust figures of two rows at the same eps."""
    several = len({h.run for h in headlines}) > 1
    lines = [f"{_name(h, several)}: clean and robust {label} at eps {fmt_eps(h.eps)} overlap within their 95 % "
             "intervals; the loss under attack is within the sampling noise"
             for h in headlines if h.clean_ci and h.robust_ci and intervals_overlap(h.clean_ci, h.robust_ci)]
    for a, b in combinations(headlines, 2):
        if a.robust_ci and b.robust_ci and a.eps == b.eps and intervals_overlap(a.robust_ci, b.robust_ci):
            lines.append(f"{_name(a, several)} vs {_name(b, several)}: robust {label} at eps {fmt_eps(a.eps)} "
                         f"({fmt_interval(a.robust, a.robust_ci)} vs {fmt_interval(b.robust, b.robust_ci)}) "
                         "differ by less than their 95 % intervals")
    if len(lines) > MAX_WARNINGS:
        lines = lines[:MAX_WARNINGS] + [f"and {len(lines) - MAX_WARNINGS} more comparisons within the noise"]
    return lines


def _name(h: Headline, with_run: bool) -> str:
    """``[run / ]model[ / defense D]``: the run is named only when several are compared."""
    parts = ([h.run] if with_run and h.run != h.model else []) + [h.model]
    return " / ".join(parts + ([f"defense {h.defense}"] if h.defense != "none" else []))
