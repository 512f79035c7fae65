"""eps_sweep: monotone by construction, survivors only, consistent with independent runs."""
from __future__ import annotations

import math

import pytest
import torch

from attack_helpers import accuracy, trained_digits
from attacks import FGSM, PGD, CountingModel, eps_sweep, get_attack

GRID = [0, 0.05, 0.1, 0.15, 0.2, 0.3]


@pytest.fixture(scope="module")
def digits():
    d = trained_digits()
    return d.model, d.x[:300], d.y[:300]


@pytest.fixture(scope="module")
def sweep(digits):
    model, x, y = digits
    return eps_sweep(PGD(steps=10, seed=0), model, x, y, GRID)


def test_monotone_and_nested(sweep):
    acc = sweep.robust_accuracy
    assert all(b <= a for a, b in zip(acc, acc[1:]))
    for small, large in zip(sweep.fooled, sweep.fooled[1:]):
        assert not (small & ~large).any()  # fooled once, fooled forever
    assert acc[-1] < 0.05 < acc[0] - 0.5


def test_eps_zero_is_clean_prediction(sweep, digits):
    model, x, y = digits
    assert torch.equal(sweep.x_adv[0], x)
    with torch.no_grad():
        assert torch.equal(sweep.fooled[0], model(x).argmax(1) != y)


def test_adversarials_consistent_with_masks_and_bounds(sweep, digits):
    model, x, y = digits
    for eps, x_adv, fooled in zip(sweep.eps, sweep.x_adv, sweep.fooled):
        assert x_adv.shape == x.shape
        assert (x_adv - x).abs().amax() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        with torch.no_grad():
            assert torch.equal(model(x_adv).argmax(1) != y, fooled)


def test_min_eps_consistent(sweep):
    fooled = torch.stack(sweep.fooled)  # [E, B]
    never = ~fooled.any(0)
    assert torch.equal(torch.isnan(sweep.min_eps), never)
    first = fooled.float().argmax(0)  # first eps index where fooled
    expected = torch.tensor(sweep.eps)[first]
    assert torch.equal(sweep.min_eps[~never], expected[~never])


def test_matches_independent_runs(sweep, digits):
    """Same robust accuracy as one PGD per eps, up to random-start noise (sweep may be stronger)."""
    model, x, y = digits
    for eps, acc in zip(sweep.eps[1:], sweep.robust_accuracy[1:]):
        independent = accuracy(model, PGD(steps=10, seed=0)(model, x, y, eps), y)
        assert acc <= independent + 0.02, (eps, acc, independent)
        assert acc >= independent - 0.05, (eps, acc, independent)


def test_survivors_only_costs_less_than_naive(sweep, digits):
    model, x, y = digits
    counted = CountingModel(model)
    for eps in GRID[1:]:
        PGD(steps=10, seed=0)(counted, x, y, eps)
    assert 0 < sweep.grad_calls < 0.8 * counted.grad_calls  # measured ~0.73
    counted_no_stop = CountingModel(model)
    no_stop = eps_sweep(PGD(steps=10, seed=0, early_stop=False), counted_no_stop, x, y, GRID)
    # Without early stop each eps still attacks only its survivors: fewer than 10 * B * (E - 1).
    assert no_stop.grad_calls < 10 * len(x) * (len(GRID) - 1)
    assert no_stop.grad_calls == counted_no_stop.grad_calls


def test_grid_sorted_and_validated(digits):
    model, x, y = digits
    res = eps_sweep(FGSM(), model, x[:20], y[:20], [0.2, 0, 0.1])
    assert res.eps == [0, 0.1, 0.2] and len(res.x_adv) == len(res.seconds) == 3
    with pytest.raises(ValueError):
        eps_sweep(FGSM(), model, x, y, [0.1, -0.1])
    with pytest.raises(ValueError):
        eps_sweep(FGSM(), model, x, y, [])


def test_targeted_sweep(digits):
    model, x, y = digits
    target = (y + 1) % 10
    res = eps_sweep(get_attack("pgd", steps=10, targeted=True, seed=0), model, x, y, [0, 0.2, 0.4], target=target)
    with torch.no_grad():
        hit = model(res.x_adv[-1]).argmax(1) == target
    assert torch.equal(hit, res.fooled[-1]) and hit.float().mean() > 0.9
    assert not math.isnan(float(res.min_eps[hit].max()))
