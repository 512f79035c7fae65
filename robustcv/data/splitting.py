"""Deterministic, stratified splits of a labelled pool into parts of given fractions."""
from __future__ import annotations

import torch

from robustcv.data.base import DataSpec
from robustcv.errors import UserError


def stratified_split(labels: torch.Tensor, fractions: list[float], seed: int) -> list[torch.Tensor]:
    """Split indices ``0..N-1`` into ``len(fractions) + 1`` sorted index tensors.

    Part ``i`` holds ``round(N * fractions[i])`` indices; the last part holds the rest. Each
    class contributes to each part in proportion to its size (largest-remainder rounding, so the
    totals are exact). The same ``labels`` and ``seed`` always give the same parts.

    Args:
        labels: ``[N]`` class index of each sample (the strata).
        fractions: fraction of ``N`` for each held-out part, in order.
        seed: seed of the shuffle inside each class.
    """
    labels = labels.long()
    generator = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    # Shuffle within each class: order samples by (class, random key).
    keys = torch.rand(len(labels), generator=generator, dtype=torch.float64)
    order = torch.argsort(labels.double() * 2.0 + keys, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    remaining = counts.clone()
    parts, taken = [], torch.zeros_like(counts)
    for fraction in fractions:
        quota = _apportion(counts, round(len(labels) * fraction), remaining)
        parts.append(_take(order, starts + taken, quota))
        taken += quota
        remaining -= quota
    parts.append(_take(order, starts + taken, remaining))
    return [part.sort().values for part in parts]


def _apportion(counts: torch.Tensor, total: int, remaining: torch.Tensor) -> torch.Tensor:
    """Per-class quotas summing to ``total``, proportional to ``counts``, capped by ``remaining``."""
    ideal = counts.double() * total / max(int(counts.sum()), 1)
    quota = torch.minimum(ideal.floor().long(), remaining)
    shortfall = total - int(quota.sum())
    if shortfall > 0:
        # Largest remainder first; ties go to the lower class index (argsort is stable).
        remainder = torch.where(quota < remaining, ideal - quota.double(), torch.full_like(ideal, -1.0))
        for k in torch.argsort(-remainder, stable=True)[:shortfall].tolist():
            if quota[k] < remaining[k]:
                quota[k] += 1
    return quota


def _take(order: torch.Tensor, starts: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    pieces = [order[s : s + n] for s, n in zip(starts.tolist(), sizes.tolist())]
    return torch.cat(pieces) if pieces else order[:0]


def train_val_test_indices(labels: torch.Tensor, spec: DataSpec) -> tuple[torch.Tensor, ...]:
    """Indices of train, val and test for a dataset without an official test split.

    ``test_fraction`` of all samples is the test set; ``val_fraction`` of what remains (the
    training pool) is the validation set.
    """
    if spec.test_fraction <= 0:
        raise UserError(f"dataset '{spec.name}' has no official test split; test_fraction must be > 0")
    test, pool = stratified_split(labels, [spec.test_fraction], spec.seed)
    val, train = stratified_split(labels[pool], [spec.val_fraction], spec.seed + 1)
    _check_nonempty(spec, len(train))
    return pool[train], pool[val], test


def train_val_indices(labels: torch.Tensor, spec: DataSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of train and val carved from an official training split by ``val_fraction``."""
    val, train = stratified_split(labels, [spec.val_fraction], spec.seed)
    _check_nonempty(spec, len(train))
    return train, val


def _check_nonempty(spec: DataSpec, n_train: int) -> None:
    if n_train == 0:
        raise UserError(
            f"dataset '{spec.name}' leaves no training samples with val_fraction={spec.val_fraction} "
            f"and test_fraction={spec.test_fraction}"
        )
