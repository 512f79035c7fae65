"""APGD and APGD-T: the contract, and strength against torchattacks' implementation."""
from __future__ import annotations

import pytest
import torch

from attack_helpers import TinySegmenter, accuracy, trained_digits
from attacks import APGD, APGDT, PGD, CountingModel, get_attack
from attacks.apgd import checkpoints
from attacks.objectives import Segmentation


@pytest.fixture(scope="module")
def digits():
    data = trained_digits()
    return data.model, data.x[:200], data.y[:200]


def test_checkpoints_follow_the_paper():
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert all(1 <= c <= 10 for c in checkpoints(10))


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
@pytest.mark.parametrize("attack_class", [APGD, APGDT])
def test_contract(digits, attack_class, norm, eps):
    model, x, y = digits
    version = x._version
    attack = attack_class(norm=norm, steps=10, seed=0)
    x_adv = attack(model, x, y, eps)
    assert x._version == version and x_adv.shape == x.shape and x_adv.dtype == x.dtype
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x_adv, attack_class(norm=norm, steps=10, seed=0)(model, x, y, eps))
    assert torch.equal(attack(model, x, y, 0.0), x)
    assert attack(model, x[:0], y[:0], eps).shape == x[:0].shape


def test_registered_names_and_arguments():
    assert isinstance(get_attack("apgd-ce"), APGD) and get_attack("apgd-ce").objective.loss_name == "ce"
    assert get_attack("apgd-dlr").objective.loss_name == "dlr"
    assert isinstance(get_attack("apgd-t", n_target_classes=3), APGDT)
    with pytest.raises(ValueError):
        APGD(steps=0)
    with pytest.raises(ValueError, match="rho"):
        APGD(rho=1.5)


def test_apgd_t_needs_four_classes():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match="4 classes"):
        APGDT(steps=2)(model, torch.rand(2, 1, 2, 2), torch.tensor([0, 1]), 0.1)


def test_segmentation_objective_runs_and_raises_the_masked_loss():
    model, objective = TinySegmenter(), Segmentation(ignore_index=255)
    x, y = torch.rand(3, 3, 6, 6), torch.randint(0, 4, (3, 6, 6))
    y[:, 0] = 255
    x_adv = APGD(steps=10, objective=objective, seed=0)(model, x, y, 0.1)
    with torch.no_grad():
        assert (objective.loss(model(x_adv), y) > objective.loss(model(x), y)).all()


def test_early_stop_saves_passes_without_weakening(digits):
    model, x, y = digits
    counts, accs = {}, {}
    for early in (True, False):
        counted = CountingModel(model)
        accs[early] = accuracy(model, APGD(steps=20, early_stop=early, seed=0)(counted, x, y, 0.1), y)
        counts[early] = counted.grad_calls
    assert counts[False] == 21 * len(x)  # one evaluation at the start, then one per step
    assert counts[True] < 0.7 * counts[False] and accs[True] <= accs[False]


def test_restarts_never_hurt(digits):
    model, x, y = digits
    one = accuracy(model, APGD(steps=20, seed=0)(model, x, y, 0.1), y)
    three = accuracy(model, APGD(steps=20, restarts=3, seed=0)(model, x, y, 0.1), y)
    assert three <= one


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_at_least_as_strong_as_torchattacks(digits, eps):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = digits
    ours_ce = accuracy(model, APGD(steps=50, seed=0)(model, x, y, eps), y)
    theirs_ce = accuracy(model, torchattacks.APGD(model, eps=eps, steps=50, loss="ce", seed=0)(x, y), y)
    ours_t = accuracy(model, APGDT(steps=50, seed=0)(model, x, y, eps), y)
    theirs_t = accuracy(model, torchattacks.APGDT(model, eps=eps, steps=50, seed=0, n_classes=10)(x, y), y)
    assert ours_ce <= theirs_ce + 0.01 and ours_t <= theirs_t + 0.01
    assert ours_ce <= accuracy(model, PGD(steps=50, seed=0)(model, x, y, eps), y) + 0.01
    assert ours_ce < accuracy(model, x, y) - 0.1  # the comparison is not at a trivial point


def test_l2_at_least_as_strong_as_torchattacks(digits):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = digits
    ours = accuracy(model, APGD(norm="l2", steps=50, seed=0)(model, x, y, 0.5), y)
    theirs = accuracy(model, torchattacks.APGD(model, norm="L2", eps=0.5, steps=50, loss="ce", seed=0)(x, y), y)
    assert ours <= theirs + 0.01 and ours < accuracy(model, x, y) - 0.1


@pytest.mark.parametrize("spec,kwargs", [("torchattacks:PGD", {"steps": 10, "alpha": 0.025}),
                                         ("torchattacks:APGD", {"steps": 20, "loss": "ce"})])
def test_torchattacks_adapter_matches_the_library(digits, spec, kwargs):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = digits
    adapter = get_attack(spec, seed=0, **kwargs)
    x_adv = adapter(model, x, y, 0.1)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    direct = getattr(torchattacks, spec.split(":")[1])(model, eps=0.1, **kwargs)
    torch.manual_seed(0)
    assert abs(accuracy(model, x_adv, y) - accuracy(model, direct(x, y), y)) <= 0.03
    assert get_attack("torchattacks:PGDL2").norm.value == "l2"
    with pytest.raises(ValueError, match="no attack"):
        get_attack("torchattacks:NoSuchAttack")
