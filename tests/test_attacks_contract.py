"""Contract tests every attack must pass (torchvision check_kernel style, plus eps and range)."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from attack_helpers import digits_cnn, trained_digits
from attacks import FGSM, PGD, Norm, eval_frozen, get_attack, list_attacks


class Case(NamedTuple):
    name: str
    kwargs: dict
    norm: str
    eps: float


CASES = [
    Case("fgsm", {}, "linf", 0.1),
    Case("fgsm", {"norm": "l2"}, "l2", 1.0),
    Case("pgd", {"steps": 5, "seed": 0}, "linf", 0.1),
    Case("pgd", {"steps": 5, "norm": "l2", "seed": 0}, "l2", 1.0),
    Case("pgd", {"steps": 5, "objective": "margin", "restarts": 2, "seed": 0}, "linf", 0.2),
    Case("pgd", {"steps": 5, "early_stop": False, "random_start": False}, "linf", 0.05),
]
IDS = [f"{c.name}-{c.norm}-{'-'.join(f'{k}={v}' for k, v in c.kwargs.items() if k != 'norm') or 'default'}"
       for c in CASES]


@pytest.fixture(scope="module")
def digits():
    d = trained_digits()
    return d.model, d.x[:64], d.y[:64]


def _distance(norm: str, delta: torch.Tensor) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bounds_and_range(case: Case, digits):
    model, x, y = digits
    x_adv = get_attack(case.name, **case.kwargs)(model, x, y, case.eps)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert (_distance(case.norm, x_adv - x) <= case.eps + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not torch.equal(x_adv, x)  # it did something


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_input_untouched_and_eps_zero(case: Case, digits):
    model, x, y = digits
    x = x.clone()
    before, version = x.clone(), x._version
    attack = get_attack(case.name, **case.kwargs)
    attack(model, x, y, case.eps)
    assert x._version == version and torch.equal(x, before)
    assert torch.equal(attack(model, x, y, 0.0), x)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_empty_batch(case: Case, digits):
    model, x, y = digits
    out = get_attack(case.name, **case.kwargs)(model, x[:0], y[:0], case.eps)
    assert out.shape == x[:0].shape


def test_float64_preserved(digits):
    model, x, y = digits
    model64 = digits_cnn().double()
    model64.load_state_dict(model.state_dict())
    for attack in (FGSM(), PGD(steps=3, seed=0)):
        out = attack(model64, x.double(), y, 0.1)
        assert out.dtype == torch.float64
        assert (out - x.double()).abs().max() <= 0.1 + 1e-12


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_batched_equals_per_sample(norm, digits):
    model, x, y = digits
    x, y = x[:8], y[:8]
    attack = FGSM(norm=norm)
    batched = attack(model, x, y, 0.1)
    single = torch.cat([attack(model, x[i:i + 1], y[i:i + 1], 0.1) for i in range(len(x))])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=0)


def test_pgd_deterministic_under_seed(digits):
    model, x, y = digits
    a = PGD(steps=5, seed=3)(model, x, y, 0.1)
    torch.manual_seed(123)  # the global RNG must not matter when seeded
    b = PGD(steps=5, seed=3)(model, x, y, 0.1)
    c = PGD(steps=5, seed=4)(model, x, y, 0.1)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pgd_uses_global_rng_without_seed(digits):
    model, x, y = digits
    torch.manual_seed(0)
    a = PGD(steps=2, early_stop=False)(model, x, y, 0.1)
    torch.manual_seed(0)
    b = PGD(steps=2, early_stop=False)(model, x, y, 0.1)
    assert torch.equal(a, b)


def test_model_state_restored(digits):
    model, x, y = digits
    net = nn.Sequential(nn.Dropout(0.5), digits_cnn())
    net.load_state_dict({f"1.{k}": v for k, v in model.state_dict().items()})
    net.train()
    net[1][0].eval()  # mixed modes must come back as they were
    net[1][0].weight.requires_grad_(False)
    PGD(steps=2, seed=0)(net, x, y, 0.1)
    assert net.training and net[0].training and not net[1][0].training
    assert not net[1][0].weight.requires_grad and net[1][2].weight.requires_grad
    assert all(p.grad is None for p in net.parameters())


def test_eval_frozen_restores_on_error():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    with pytest.raises(RuntimeError), eval_frozen(net):
        assert not net.training and not net[0].weight.requires_grad
        raise RuntimeError("boom")
    assert net.training and net[0].weight.requires_grad


def test_attack_runs_in_eval_mode(digits):
    """Dropout off during the attack: two seeded runs on a dropout model agree."""
    model, x, y = digits
    net = nn.Sequential(digits_cnn(), nn.Dropout(0.9)).train()
    assert torch.equal(FGSM()(net, x, y, 0.1), FGSM()(net, x, y, 0.1))


def test_registry_and_errors(digits):
    model, x, y = digits
    assert {"fgsm", "pgd"} <= set(list_attacks())
    assert isinstance(get_attack("PGD", steps=3), PGD)
    assert Norm("l2") is Norm.L2 and Norm.LINF == "linf"
    for bad in ("nope", "foolbox:NoSuchAttack", "art:NoSuchAttack", "cleverhans:FGSM"):
        with pytest.raises(ValueError, match="unknown|no attack|no evasion"):
            get_attack(bad)
    with pytest.raises(ValueError, match="bad arguments"):
        get_attack("pgd", stepz=3)
    with pytest.raises(ValueError, match="norm"):
        PGD(norm="l3")
    with pytest.raises(ValueError, match="loss"):
        PGD(objective="hinge")
    with pytest.raises(ValueError, match="eps"):
        PGD()(model, x, y, -0.1)
    with pytest.raises(ValueError, match="target"):
        PGD(targeted=True)(model, x, y, 0.1)
    with pytest.raises(ValueError, match="targeted=True"):
        PGD()(model, x, y, 0.1, target=y)
