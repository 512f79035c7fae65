"""APGD, APGD-T and the torchattacks adapter: the contract, the pass count, and strength against
torchattacks' independent APGD / APGD-T (and our PGD) on the trained digits model."""
from __future__ import annotations

import subprocess
import sys
from typing import NamedTuple

import pytest
import torch
from torch import nn

from attack_helpers import TinySegmenter, accuracy, trained_digits
from attacks import APGD, APGDT, PGD, CountingModel, get_attack
from attacks.apgd import checkpoints
from attacks.objectives import Segmentation


@pytest.fixture(scope="module")
def digits():
    data = trained_digits()
    return data.model, data.x[:200], data.y[:200]


@pytest.fixture(scope="module")
def digits_all():
    """All 500 held-out digits: one sample is 0.002 of accuracy, so the 0.01 margin is 5 samples."""
    data = trained_digits()
    return data.model, data.x, data.y


def _size(norm: str, delta: torch.Tensor) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _within(norm: str, x: torch.Tensor, x_adv: torch.Tensor, eps: float) -> bool:
    return bool((_size(norm, x_adv - x) <= eps + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1)


# ------------------------------------------------------------------------------------ contract
def test_checkpoints_follow_the_paper():
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99: AutoAttack's intervals 22, 19, ..., 6, 6 at 100 steps
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(50) == [11, 21, 29, 35, 40, 44, 47, 50]
    assert all(1 <= c <= 10 for c in checkpoints(10)) and checkpoints(1) == [1]


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
@pytest.mark.parametrize("attack_class", [APGD, APGDT])
def test_contract(digits, attack_class, norm, eps):
    model, x, y = digits
    version = x._version
    attack = attack_class(norm=norm, steps=10, seed=0)
    x_adv = attack(model, x, y, eps)
    assert x._version == version and x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert _within(norm, x, x_adv, eps)
    assert torch.equal(x_adv, attack_class(norm=norm, steps=10, seed=0)(model, x, y, eps))
    assert torch.equal(attack(model, x, y, 0.0), x)
    assert attack(model, x[:0], y[:0], eps).shape == x[:0].shape
    assert accuracy(model, x_adv, y) < accuracy(model, x, y) - 0.2  # it attacked


@pytest.mark.parametrize("attack", [APGD(steps=10, restarts=2, seed=3), APGDT(steps=10, n_target_classes=3, seed=3),
                                    APGD(norm="l2", steps=10, seed=3)], ids=["apgd", "apgd-t", "apgd-l2"])
def test_keyed_outcome_does_not_depend_on_the_batch(digits, attack):
    model, x, y = digits
    x, y, keys = x[:64], y[:64], torch.arange(64) + 1000
    eps = 0.1 if attack.norm == "linf" else 0.5
    whole = attack.success_mask(model, attack(model, x, y, eps, keys=keys), y)
    parts = torch.cat([attack.success_mask(model, attack(model, x[i:i + 16], y[i:i + 16], eps, keys=keys[i:i + 16]),
                                           y[i:i + 16]) for i in range(0, 64, 16)])
    assert torch.equal(whole, parts)


def test_targeted_apgd_reaches_targets(digits):
    model, x, y = digits
    x, y = x[:50], y[:50]
    target = (y + 1) % 10
    x_adv = APGD(steps=30, targeted=True, seed=0)(model, x, y, 0.3, target=target)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == target).float().mean() > 0.8
    with pytest.raises(ValueError, match="target"):
        APGD(targeted=True)(model, x, y, 0.1)


def test_segmentation_objective_keeps_shape_and_fools_more_pixels():
    model, objective = TinySegmenter(), Segmentation(ignore_index=255)
    x, y = torch.rand(3, 3, 6, 6), torch.randint(0, 4, (3, 6, 6))
    y[:, 0] = 255
    for norm, eps in (("linf", 0.1), ("l2", 0.5)):
        x_adv = APGD(norm=norm, steps=10, objective=objective, seed=0)(model, x, y, eps)
        assert x_adv.shape == x.shape and _within(norm, x, x_adv, eps)
        with torch.no_grad():
            clean, attacked = objective.hit_fraction(model(x), y), objective.hit_fraction(model(x_adv), y)
        assert (attacked <= clean).all() and attacked.sum() < clean.sum()


def test_restarts_keep_the_most_fooled_point_for_segmentation():
    """Nothing is ever wholly 'fooled' here (threshold 1), so each image must get the point with
    the fewest right pixels of all runs (SEA's rule), whatever its loss."""
    model, objective = TinySegmenter(), Segmentation(ignore_index=255, threshold=1.0)
    x, y = torch.rand(4, 3, 6, 6), torch.randint(0, 4, (4, 6, 6))
    with torch.no_grad():  # APGD takes its gradients even here
        one = objective.hit_fraction(model(APGD(steps=5, objective=objective, seed=0)(model, x, y, 0.05)), y)
        three = objective.hit_fraction(model(APGD(steps=5, restarts=3, objective=objective, seed=0)(model, x, y, 0.05)), y)
    assert (three <= one + 1e-6).all()


def test_registered_names_and_bad_arguments():
    assert type(get_attack("apgd")) is APGD and get_attack("apgd", objective="dlr").objective.loss_name == "dlr"
    assert isinstance(get_attack("apgd-ce"), APGD) and get_attack("apgd-ce").objective.loss_name == "ce"
    assert get_attack("apgd-dlr").objective.loss_name == "dlr"
    assert isinstance(get_attack("apgd-t", n_target_classes=3), APGDT) and not get_attack("apgd-t").targeted
    for bad in (dict(steps=0), dict(restarts=0), dict(rho=0), dict(rho=1.5), dict(norm="l3"), dict(objective="nope")):
        with pytest.raises(ValueError):
            APGD(**bad)
    with pytest.raises(ValueError, match="n_target_classes"):
        APGDT(n_target_classes=0)
    with pytest.raises(ValueError, match="classification"):
        APGDT(objective=Segmentation())
    with pytest.raises(ValueError, match="bad arguments"):
        get_attack("apgd-t", targeted=True)


def test_apgd_t_needs_four_classes():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="4 classes"):
        APGDT(steps=2)(model, torch.rand(2, 1, 2, 2), torch.tensor([0, 1]), 0.1)


# ---------------------------------------------------------------------------------- pass count
def test_one_gradient_per_step_and_early_stop_saves_passes(digits):
    model, x, y = digits
    keys = torch.arange(len(x))  # the same random start per sample in both runs
    counts, fooled = {}, {}
    for early in (True, False):
        counted = CountingModel(model)
        attack = APGD(steps=20, early_stop=early, seed=0)
        fooled[early] = attack.success_mask(model, attack(counted, x, y, 0.1, keys=keys), y)
        counts[early] = counted.grad_calls
    # one at the random start, one after each step but the last (only judged, forward pass)
    assert counts[False] == 20 * len(x)
    assert counts[True] < 0.7 * counts[False]
    assert not (fooled[False] & ~fooled[True]).any()  # stopping a fooled sample never loses it


def test_restarts_and_targets_only_attack_survivors(digits):
    model, x, y = digits
    counted = CountingModel(model)
    attack = APGD(steps=10, restarts=3, seed=0)
    fooled = attack.success_mask(model, attack(counted, x, y, 0.1), y)
    assert counted.grad_calls < 3 * 10 * len(x)
    assert fooled.sum() >= APGD(steps=10, seed=0).success_mask(model, APGD(steps=10, seed=0)(model, x, y, 0.1), y).sum()
    counted = CountingModel(model)
    APGDT(steps=10, seed=0)(counted, x, y, 0.1)
    assert counted.grad_calls < 9 * 10 * len(x) / 2  # the robust half, shrinking target by target


def test_restarts_never_hurt(digits):
    model, x, y = digits
    one = accuracy(model, APGD(steps=20, seed=0)(model, x, y, 0.1), y)
    three = accuracy(model, APGD(steps=20, restarts=3, seed=0)(model, x, y, 0.1), y)
    assert three <= one


# ------------------------------------------------------------------------------------ strength
class StrengthCase(NamedTuple):
    attack: str  # "apgd-ce" or "apgd-t"
    norm: str
    eps: float
    steps: int
    restarts: int = 1


STRENGTH_CASES = [
    StrengthCase("apgd-ce", "linf", 0.1, 50),
    StrengthCase("apgd-t", "linf", 0.1, 50),
    StrengthCase("apgd-ce", "l2", 0.5, 50),
    StrengthCase("apgd-t", "l2", 0.5, 50),
    StrengthCase("apgd-ce", "linf", 0.1, 20, restarts=2),
]
SLOW_STRENGTH_CASES = [
    StrengthCase("apgd-ce", "linf", 0.1, 100),
    StrengthCase("apgd-t", "linf", 0.1, 100),
    StrengthCase("apgd-ce", "linf", 0.05, 100),
    StrengthCase("apgd-ce", "l2", 0.5, 100),
    StrengthCase("apgd-t", "l2", 0.5, 100),
]


def _case_id(case: StrengthCase) -> str:
    return f"{case.attack}-{case.norm}-eps{case.eps}-steps{case.steps}-restarts{case.restarts}"


def _check_strength(case: StrengthCase, model, x, y) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    norm = {"linf": "Linf", "l2": "L2"}[case.norm]
    if case.attack == "apgd-ce":
        ours = APGD(norm=case.norm, steps=case.steps, restarts=case.restarts, seed=0)
        theirs = torchattacks.APGD(model, norm=norm, eps=case.eps, steps=case.steps, n_restarts=case.restarts,
                                   loss="ce", seed=0)
    else:
        ours = APGDT(norm=case.norm, steps=case.steps, restarts=case.restarts, seed=0)
        theirs = torchattacks.APGDT(model, norm=norm, eps=case.eps, steps=case.steps, n_restarts=case.restarts,
                                    n_classes=10, seed=0)
    ours_acc = accuracy(model, ours(model, x, y, case.eps), y)
    theirs_acc = accuracy(model, theirs(x, y), y)
    assert ours_acc <= theirs_acc + 0.01, (ours_acc, theirs_acc)
    assert 0.1 < theirs_acc < accuracy(model, x, y) - 0.1  # a mid eps: neither ~0 nor ~clean
    if case.attack == "apgd-ce":
        pgd = PGD(norm=case.norm, steps=case.steps, restarts=case.restarts, seed=0)
        assert ours_acc <= accuracy(model, pgd(model, x, y, case.eps), y) + 0.01


@pytest.mark.parametrize("case", STRENGTH_CASES, ids=_case_id)
def test_at_least_as_strong_as_torchattacks(case, digits_all):
    _check_strength(case, *digits_all)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_STRENGTH_CASES, ids=_case_id)
def test_at_least_as_strong_as_torchattacks_100_steps(case, digits_all):
    _check_strength(case, *digits_all)


# ------------------------------------------------------------------------ torchattacks adapter
@pytest.mark.parametrize("spec,kwargs", [("torchattacks:PGD", {"steps": 10, "alpha": 0.025}),
                                         ("torchattacks:APGD", {"steps": 20, "loss": "ce"}),
                                         ("torchattacks:PGDL2", {"steps": 10, "alpha": 0.25})])
def test_torchattacks_adapter_matches_the_library(digits, spec, kwargs):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = digits
    adapter = get_attack(spec, seed=0, **kwargs)
    eps = 1.0 if adapter.norm == "l2" else 0.1
    x_adv = adapter(model, x, y, eps)
    assert x_adv.shape == x.shape and _within(adapter.norm.value, x, x_adv, eps)
    assert torch.equal(adapter(model, x, y, 0.0), x)
    torch.manual_seed(0)  # what the adapter's seed does for classes that take none
    direct = getattr(torchattacks, spec.split(":")[1])(model, eps=eps, **kwargs)(x, y)
    ours_acc, direct_acc = accuracy(model, x_adv, y), accuracy(model, direct, y)
    assert abs(ours_acc - direct_acc) <= 0.01 and direct_acc < accuracy(model, x, y) - 0.2
    torch.testing.assert_close(x_adv, direct, atol=1e-6, rtol=0)  # same library, same seed: same points


def test_torchattacks_adapter_adds_no_normalization(digits):
    """torchattacks normalizes inputs for models named RobModel that carry mean/std; ours
    normalize inside, so the adapter must attack the [0, 1] image as it is."""
    pytest.importorskip("torchattacks")
    model, x, y = digits

    class RobModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.mean, self.std = model, torch.tensor([0.5]), torch.tensor([0.25])

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.net(inputs)

    attack = get_attack("torchattacks:PGD", seed=0, steps=5, alpha=0.03)
    torch.testing.assert_close(attack(RobModel(), x, y, 0.1), attack(model, x, y, 0.1), atol=0, rtol=0)


def test_torchattacks_adapter_targeted_and_global_rng(digits):
    pytest.importorskip("torchattacks")
    model, x, y = digits
    x, y = x[:50], y[:50]
    target = (y + 1) % 10
    x_adv = get_attack("torchattacks:PGD", targeted=True, seed=0, steps=20, alpha=0.05)(model, x, y, 0.4, target=target)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == target).float().mean() > 0.8
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    get_attack("torchattacks:APGD", steps=2)(model, x, y, 0.1)  # reseeds torch with its default seed inside
    assert torch.equal(torch.rand(3), expected)


def test_torchattacks_adapter_names_norms_and_errors(digits):
    pytest.importorskip("torchattacks")
    model, x, y = digits
    assert get_attack("torchattacks:PGDL2").norm.value == "l2"
    assert get_attack("torchattacks:APGD", norm="L2").norm.value == "l2"
    assert get_attack("torchattacks:AutoAttack").norm.value == "linf"
    assert get_attack("torchattacks:CW").norm.value == "l2"  # minimal-norm: clipped to the call's eps
    six_classes = nn.Sequential(model, nn.Linear(10, 6))
    assert get_attack("torchattacks:APGDT")._peer_kwargs(six_classes, x)["n_classes"] == 6
    with pytest.raises(ValueError, match="no attack"):
        get_attack("torchattacks:NoSuchAttack")
    with pytest.raises(ValueError, match="L0/L1"):
        get_attack("torchattacks:OnePixel")
    with pytest.raises(ValueError, match="unexpected"):
        get_attack("torchattacks:PGD", stepz=3)
    with pytest.raises(ValueError, match="eps"):
        get_attack("torchattacks:PGD", eps=0.1)
    with pytest.raises(ValueError, match="torchattacks:<name>"):
        get_attack("no-such-attack")


def test_torchattacks_is_imported_only_when_built():
    code = ("import sys, attacks; attacks.get_attack('pgd'); assert 'torchattacks' not in sys.modules; "
            "attacks.get_attack('torchattacks:PGD'); assert 'torchattacks' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.slow
def test_torchattacks_autoattack_adapter(digits):
    pytest.importorskip("torchattacks")
    model, x, y = digits
    x, y = x[:50], y[:50]
    attack = get_attack("torchattacks:AutoAttack", version="standard", seed=0)
    x_adv = attack(model, x, y, 0.1)
    assert _within("linf", x, x_adv, 0.1)
    assert accuracy(model, x_adv, y) <= accuracy(model, APGDT(steps=100, seed=0)(model, x, y, 0.1), y) + 0.02
