"""The L1 pieces of APGD (Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on
image classifiers", ICML 2021), as AutoAttack's code runs them: sparse steps, the sparsity rule at
the checkpoints and the large-eps schedule."""
from __future__ import annotations

import math

import torch

INITIAL_TOPK = 0.2  # share of the coordinates the first sparse step moves (from a cold start)
CHECKPOINT_SHARE = 0.04  # a checkpoint every 4% of the iterations
STEP_SHRINK = 1.5  # the step divides by this at a checkpoint where the sparsity did not drop
MIN_STEP_SHARE = 0.1  # the step stays in [eps / 10, eps]
SPARSITY_DROP = 0.95  # a sparsity below 95% of the last checkpoint's resets the step to eps
TOPK_DIVISOR = 1.5  # the next steps move (sparsity of the best point) / 1.5 coordinates
# AutoAttack's use_largereps: eps multiples and their shares of the iterations, warm-started in turn.
LARGE_REPS = ((3.0, 0.3), (2.0, 0.3), (1.0, 0.4))


def checkpoint_period(steps: int) -> int:
    """Iterations between two checkpoints of APGD-L1: ``max(floor(0.04 * steps), 1)``."""
    return max(int(CHECKPOINT_SHARE * steps), 1)


def large_reps_schedule(eps: float, steps: int) -> list[tuple[float, int]]:
    """(eps, iterations) per stage of the large-eps schedule: 3ε, 2ε then ε over 30%, 30% and the
    remaining 40% of ``steps`` (the earlier shares rounded up, as AutoAttack does)."""
    counts = [math.ceil(share * steps) for _, share in LARGE_REPS[:-1]]
    counts.append(steps - sum(counts))
    return [(factor * eps, count) for (factor, _), count in zip(LARGE_REPS, counts)]


def sparsity(delta: torch.Tensor) -> torch.Tensor:
    """Per-sample count of the nonzero coordinates of ``delta`` [B] (as floats)."""
    return (delta.flatten(1) != 0).sum(dim=1).to(delta.dtype)


def sparse_direction(grad: torch.Tensor, topk: torch.Tensor) -> torch.Tensor:
    """The sparse step of unit L1 size: equal moves, along the gradient's sign, on the ``topk``
    share (per sample) of the coordinates with the largest ``|grad|`` (ties included)."""
    flat = grad.flatten(1)
    width = flat.shape[1]
    ranked = flat.abs().sort(dim=1).values
    index = ((1 - topk) * width).clamp(0, width - 1).long()
    threshold = ranked.gather(1, index[:, None])
    signs = (flat * (flat.abs() >= threshold)).sign()
    return (signs / (signs.abs().sum(dim=1, keepdim=True) + 1e-10)).view_as(grad)
