"""Confidence intervals for the figures the report quotes.

Accuracies are proportions of n samples: a Wilson interval. mIoU and mAP are not (a pixel or a
ranking is not an independent sample): a bootstrap over the evaluated images, 1000 resamples,
percentile interval.

The Wilson score interval (Wilson 1927) stays inside [0, 1] and keeps close to its nominal
coverage for small n and for proportions near 0 or 1, where the normal ("Wald") interval
collapses to a point: 4/4 correct gives Wald [1, 1] but Wilson [0.51, 1].
"""
from __future__ import annotations

import math
from statistics import NormalDist

CONFIDENCE = 0.95


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` at ``confidence``.

    Raises:
        ValueError: ``n < 1``, ``successes`` outside ``0..n`` or ``confidence`` outside (0, 1).

    Example:
        >>> [round(v, 4) for v in wilson_interval(8, 10)]
        [0.4902, 0.9433]
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Clamped so the exact ends stay exact (0 successes: low is 0, not -1e-17).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def proportion_interval(value: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson interval of a recorded proportion ``value`` over ``n`` samples (successes
    ``round(value * n)``); None when ``n < 1`` or ``value`` is not a proportion."""
    if n < 1 or not 0.0 <= value <= 1.0:
        return None
    return wilson_interval(round(value * n), n, confidence)


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals share a point: their difference is within the noise of either."""
    return a[0] <= b[1] and b[0] <= a[1]


BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed: the same results give the same intervals


def bootstrap_counts(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED):
    """``[resamples, n]`` float64 counts: how often each of ``n`` samples is drawn in each
    resample of ``n`` draws with replacement (the nonparametric bootstrap, Efron 1979)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(0, n, (resamples, n), generator=generator)
    return torch.zeros(resamples, n, dtype=torch.float64).scatter_add_(1, drawn, torch.ones_like(drawn, dtype=torch.float64))


def percentile_interval(values, estimate: float, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The bootstrap percentile interval of the resampled statistics ``values`` (non-finite ones,
    resamples where the statistic is undefined, are dropped), widened to hold ``estimate``; None
    when no resample is finite."""
    import torch

    kept = values[torch.isfinite(values)].double()
    if kept.numel() == 0 or not math.isfinite(estimate):
        return None
    tail = (1.0 - confidence) / 2
    low, high = (float(q) for q in torch.quantile(kept, torch.tensor([tail, 1.0 - tail], dtype=torch.float64)))
    return min(low, estimate), max(high, estimate)
