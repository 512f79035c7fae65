"""Real-effect tests: the attacks hurt a trained digits CNN the way the literature says they should."""
from __future__ import annotations

import pytest
import torch

from attack_helpers import accuracy, trained_digits
from attacks import FGSM, PGD, CountingModel
from attacks.losses import margin
from attacks.targets import make_targets

EPS = [0.05, 0.1, 0.2]


@pytest.fixture(scope="module")
def digits():
    d = trained_digits()
    assert d.clean_accuracy > 0.93, "fixture model too weak for meaningful attack tests"
    return d.model, d.x[:300], d.y[:300]


def test_robust_accuracy_drops_with_eps(digits):
    model, x, y = digits
    clean = accuracy(model, x, y)
    accs = [accuracy(model, PGD(steps=10, seed=0)(model, x, y, eps), y) for eps in EPS + [0.3]]
    assert accs[0] < clean - 0.05
    assert accs[-1] <= 0.02  # an undefended model is broken at a large eps
    assert all(b <= a + 0.01 for a, b in zip(accs, accs[1:]))


@pytest.mark.parametrize("norm,eps_grid", [("linf", EPS), ("l2", [0.5, 1.0, 2.0])])
def test_pgd_at_least_as_strong_as_fgsm(norm, eps_grid, digits):
    model, x, y = digits
    for eps in eps_grid:
        fgsm = accuracy(model, FGSM(norm=norm)(model, x, y, eps), y)
        pgd = accuracy(model, PGD(norm=norm, steps=10, seed=0)(model, x, y, eps), y)
        assert pgd <= fgsm + 1e-9, (eps, pgd, fgsm)
    assert pgd < accuracy(model, x, y) - 0.3


def test_more_steps_do_not_help_the_model(digits):
    model, x, y = digits
    accs = [accuracy(model, PGD(steps=s, seed=0)(model, x, y, 0.1), y) for s in (5, 20, 50)]
    assert accs[1] <= accs[0] + 0.01 and accs[2] <= accs[1] + 0.01, accs


def test_restarts_do_not_help_the_model(digits):
    model, x, y = digits
    one = accuracy(model, PGD(steps=5, seed=0)(model, x, y, 0.1), y)
    three = accuracy(model, PGD(steps=5, restarts=3, seed=0)(model, x, y, 0.1), y)
    assert three <= one


@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("mode", ["random", "least-likely"])
def test_targeted_hits_target(loss, mode, digits):
    model, x, y = digits
    target = make_targets(model, x, y, mode, 10, generator=torch.Generator().manual_seed(0))
    assert (target != y).float().mean() > 0.95 and target.min() >= 0 and target.max() < 10
    x_adv = PGD(steps=20, targeted=True, objective=loss, seed=0)(model, x, y, 0.4, target=target)
    with torch.no_grad():
        hit = (model(x_adv).argmax(1) == target).float().mean()
    assert hit >= 0.9


def test_make_targets_modes(digits):
    model, x, y = digits
    r = make_targets(model, x, y, "random", 10, generator=torch.Generator().manual_seed(0))
    assert (r != y).all() and len(r.unique()) == 10
    assert torch.equal(make_targets(model, x, y, "given", 10, target_class=3), torch.full_like(y, 3))
    with torch.no_grad():
        assert torch.equal(make_targets(model, x, y, "least-likely", 10), model(x).argmin(1))
    with pytest.raises(ValueError):
        make_targets(model, x, y, "given", 10)
    with pytest.raises(ValueError):
        make_targets(model, x, y, "nearest", 10)


def test_margin_loss_works(digits):
    model, x, y = digits
    with torch.no_grad():
        logits = model(x)
    m = margin(logits, y)
    assert torch.equal(m > 0, logits.argmax(1) != y)  # positive margin == misclassified
    ce_acc = accuracy(model, PGD(steps=10, seed=0)(model, x, y, 0.1), y)
    margin_acc = accuracy(model, PGD(steps=10, objective="margin", seed=0)(model, x, y, 0.1), y)
    assert margin_acc < accuracy(model, x, y) - 0.3
    assert abs(margin_acc - ce_acc) <= 0.05


def test_custom_loss_callable(digits):
    model, x, y = digits
    calls = []

    def loss(logits, labels):
        calls.append(1)
        return torch.nn.functional.cross_entropy(logits, labels, reduction="none")

    x_adv = PGD(steps=3, objective=loss, seed=0)(model, x, y, 0.2)
    assert calls and accuracy(model, x_adv, y) < accuracy(model, x, y) - 0.3


def test_early_stop_saves_passes_without_weakening(digits):
    model, x, y = digits
    counts, accs = {}, {}
    for early in (True, False):
        counted = CountingModel(model)
        accs[early] = accuracy(model, PGD(steps=10, early_stop=early, seed=0)(counted, x, y, 0.2), y)
        counts[early] = counted.grad_calls
    assert counts[False] == 10 * len(x)
    assert counts[True] < 0.5 * counts[False]
    assert accs[True] <= accs[False]
