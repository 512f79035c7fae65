"""Several runs summarized: each run's clean and worst-case robust accuracy per eps, and a seed
study's mean ± sample standard deviation over its runs.

Pure functions of ``RunResults``: the console, ``study.json`` and the report all read their
numbers from here, so the three agree.

The spread is the **sample** standard deviation (``ddof=1``, ``statistics.stdev``): the runs
are a sample of the seeds one could have drawn. It needs at least two runs.
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from robustcv.arguments import SEED_MAX
from robustcv.results import RunResults

STUDY_SCHEMA = "robustcv.study/1"
WORST = "worst-case"
MAX_STUDY_SEEDS = 1000  # a study of more runs is a mistake, not a plan
_SEED = re.compile(r"[0-9]+")
_RANGE = re.compile(r"([0-9]+)\s*-\s*([0-9]+)")


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0,3,5"`` and mixes (``"0-2,7"``) too.

    Linear in the text: a range's length is counted before it is expanded, so ``0-100000000``
    is refused at once.

    Raises:
        ValueError: an entry that is not a non-negative integer or an ascending range, a seed
            outside ``[0, 2**32 - 1]``, a repeated seed, fewer than two seeds (a standard
            deviation needs two) or more than ``MAX_STUDY_SEEDS``.
    """
    bounds = [_seed_bounds(part.strip()) for part in str(text).split(",")]
    if sum(high - low + 1 for low, high in bounds) > MAX_STUDY_SEEDS:
        raise ValueError(f"{text!r} names more than {MAX_STUDY_SEEDS} seeds; a study takes at most {MAX_STUDY_SEEDS}")
    seeds = [seed for low, high in bounds for seed in range(low, high + 1)]
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ValueError(f"seed {seed} is given twice")
        seen.add(seed)
    if len(seeds) < 2:
        raise ValueError("a seed study needs at least two seeds (for one run, use --seed)")
    return seeds


def _seed_bounds(part: str) -> tuple[int, int]:
    """One entry of a seed list as ``(low, high)``: ``"7"`` -> ``(7, 7)``, ``"0-4"`` -> ``(0, 4)``."""
    match = _RANGE.fullmatch(part)
    if match:
        low, high = _seed(match[1]), _seed(match[2])
        if high < low:
            raise ValueError(f"{part!r} is a descending range; write it low-high, e.g. {high}-{low}")
        return low, high
    if _SEED.fullmatch(part):
        return _seed(part), _seed(part)
    raise ValueError(f"{part!r} is not a seed; give integers from 0 and ranges, e.g. 0-9 or 0,3,5")


def _seed(digits: str) -> int:
    """A seed numpy and torch accept; the digits are bounded before int() reads them."""
    if len(digits) > len(str(SEED_MAX)) or int(digits) > SEED_MAX:
        raise ValueError(f"seed {digits} is beyond {SEED_MAX} (seeds run from 0 to 2**32 - 1)")
    return int(digits)


@dataclass(frozen=True)
class Curve:
    """One run's headline numbers: clean and worst-case robust value per eps > 0 (defense ``none``).

    ``metric`` is ``robust_accuracy`` (exact match for multi-label) or ``miou`` for segmenters.
    """

    run: str
    model: str
    metric: str
    clean: float | None
    robust: dict[float, float]


def run_curve(results: RunResults, defense: str = "none") -> Curve:
    """The curve of a run's first model: the ``worst-case`` record per eps, or with a single
    attack (no worst case recorded) that attack's own records."""
    model = str(results.models[0]["name"]) if results.models else results.records[0].model
    records = [r for r in results.records if r.model == model and r.defense == defense and r.cls is None]
    metric = "miou" if any(r.metric == "miou" for r in records) else "robust_accuracy"
    attacks = [r for r in records if r.metric == metric and not r.attack.startswith("natural:")]
    chosen = [r for r in attacks if r.attack == WORST] or attacks
    robust: dict[float, float] = {}
    for r in chosen:  # several single attacks without a worst case: the smallest per eps
        robust[r.eps] = min(r.value, robust.get(r.eps, math.inf))
    clean = next((r.value for r in records if r.metric in ("clean_accuracy", "clean_miou")), robust.get(0.0))
    robust = {eps: value for eps, value in sorted(robust.items()) if eps > 0}  # eps 0 is the clean column
    return Curve(str(results.run.get("name", "")), model, metric, clean, robust)


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (``ddof=1``) of one number over the runs, and the values."""

    mean: float
    std: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        values = tuple(float(v) for v in values)
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        return cls(statistics.fmean(values), std, values)

    def text(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def study_spreads(curves: Sequence[Curve]) -> tuple[Spread | None, dict[float, Spread]]:
    """Clean and per-eps robust spreads over the curves (eps every curve has, in order)."""
    cleans = [c.clean for c in curves if c.clean is not None]
    clean = Spread.of(cleans) if len(cleans) == len(curves) and cleans else None
    shared = set.intersection(*(set(c.robust) for c in curves)) if curves else set()
    return clean, {eps: Spread.of([c.robust[eps] for c in curves]) for eps in sorted(shared)}


def study_summary(name: str, seeds: Sequence[int], runs: Sequence[str], curves: Sequence[Curve]) -> dict[str, Any]:
    """The ``study.json`` document: every run's numbers and the mean ± std per eps."""
    clean, robust = study_spreads(curves)
    return {
        "schema": STUDY_SCHEMA, "name": name, "std": "sample standard deviation (ddof=1)",
        "metric": curves[0].metric if curves else "robust_accuracy",
        "runs": [{"seed": seed, "run": run, "model": c.model, "clean": c.clean,
                  "robust": [{"eps": e, "value": v} for e, v in c.robust.items()]}
                 for seed, run, c in zip(seeds, runs, curves)],
        "clean": None if clean is None else {"mean": clean.mean, "std": clean.std},
        "robust": [{"eps": e, "mean": s.mean, "std": s.std} for e, s in robust.items()],
    }
