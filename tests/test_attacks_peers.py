"""References: our PGD versus foolbox and torchattacks, and the foolbox/ART adapters."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

from attack_helpers import accuracy, trained_digits
from attacks import PGD, get_attack

fb = pytest.importorskip("foolbox")
torchattacks = pytest.importorskip("torchattacks")
pytest.importorskip("art")


class PeerCase(NamedTuple):
    peer: str
    norm: str
    eps: float
    steps: int

    @property
    def step_size(self) -> float:
        return 2.5 * self.eps / self.steps


PEER_CASES = [
    PeerCase("foolbox", "linf", 0.05, 10),
    PeerCase("foolbox", "linf", 0.1, 10),
    PeerCase("foolbox", "linf", 0.15, 20),
    PeerCase("foolbox", "l2", 1.0, 10),
    PeerCase("torchattacks", "linf", 0.05, 10),
    PeerCase("torchattacks", "linf", 0.1, 10),
    PeerCase("torchattacks", "linf", 0.15, 20),
    PeerCase("torchattacks", "l2", 1.0, 10),
]


@pytest.fixture(scope="module")
def digits():
    d = trained_digits()
    return d.model, d.x[:300], d.y[:300]


def _peer_adversarial(case: PeerCase, model, x, y) -> torch.Tensor:
    torch.manual_seed(0)
    if case.peer == "foolbox":
        cls = fb.attacks.LinfPGD if case.norm == "linf" else fb.attacks.L2PGD
        attack = cls(steps=case.steps, abs_stepsize=case.step_size, random_start=True)
        _, x_adv, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=case.eps)
        return x_adv
    cls = torchattacks.PGD if case.norm == "linf" else torchattacks.PGDL2
    return cls(model, eps=case.eps, alpha=case.step_size, steps=case.steps, random_start=True)(x, y)


@pytest.mark.parametrize("case", PEER_CASES, ids=lambda c: f"{c.peer}-{c.norm}-eps{c.eps}-steps{c.steps}")
def test_pgd_at_least_as_strong_as_peer(case: PeerCase, digits):
    model, x, y = digits
    ours = PGD(norm=case.norm, steps=case.steps, step_size=case.step_size, seed=0)(model, x, y, case.eps)
    peer = _peer_adversarial(case, model, x, y)
    ours_acc, peer_acc = accuracy(model, ours, y), accuracy(model, peer, y)
    assert ours_acc <= peer_acc + 0.01, (ours_acc, peer_acc)
    assert peer_acc < accuracy(model, x, y)  # the reference did attack


def test_pgd_without_random_start_matches_torchattacks_exactly(digits):
    """Same deterministic algorithm (no random start, no early stop) -> the same iterates."""
    model, x, y = digits
    ours = PGD(steps=5, step_size=0.02, random_start=False, early_stop=False)(model, x, y, 0.1)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=5, random_start=False)(x, y)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name,kwargs,norm,eps", [
    ("foolbox:LinfPGD", {"steps": 10, "abs_stepsize": 0.025}, "linf", 0.1),
    ("foolbox:L2DeepFoolAttack", {"steps": 20}, "l2", 1.5),  # minimal-norm, eps as epsilons
    ("art:ProjectedGradientDescent", {"max_iter": 10}, "linf", 0.1),
    ("art:FastGradientMethod", {"norm": "l2"}, "l2", 1.5),
], ids=lambda v: v if isinstance(v, str) else "")
def test_adapter_bounded_and_effective(name, kwargs, norm, eps, digits):
    model, x, y = digits
    x, y = x[:100], y[:100]
    attack = get_attack(name, seed=0, **kwargs)
    assert attack.norm == norm
    x_adv = attack(model, x, y, eps)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(model, x_adv, y) < accuracy(model, x, y) - 0.2
    assert torch.equal(attack(model, x, y, 0), x)


def test_adapter_targeted_and_errors(digits):
    model, x, y = digits
    x, y = x[:50], y[:50]
    target = (y + 1) % 10
    x_adv = get_attack("foolbox:LinfPGD", targeted=True, steps=20, abs_stepsize=0.05)(model, x, y, 0.4, target=target)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == target).float().mean() > 0.8
    with pytest.raises(ValueError, match="unexpected"):
        get_attack("art:ProjectedGradientDescent", stepz=3)
    with pytest.raises(ValueError, match="bad arguments"):
        get_attack("foolbox:LinfPGD", stepz=3)
    with pytest.raises(ValueError, match="L∞ and L2"):
        get_attack("foolbox:L1PGD")


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs,eps", [
    ("foolbox:L2CarliniWagnerAttack", {"steps": 100, "binary_search_steps": 5}, 1.5),
    ("foolbox:LInfFMNAttack", {"steps": 50}, 0.15),
    ("foolbox:LinfDeepFoolAttack", {"steps": 50}, 0.15),
    ("art:SquareAttack", {"max_iter": 200}, 0.2),
    ("art:AutoAttack", {}, 0.15),
], ids=lambda v: v if isinstance(v, str) else "")
def test_slow_adapters(name, kwargs, eps, digits):
    """Minimal-norm (CW, FMN, DeepFool), black-box (Square) and ensemble (AutoAttack) peers."""
    if name == "art:AutoAttack":
        pytest.importorskip("multiprocess")  # ART's AutoAttack imports it unconditionally
    model, x, y = digits
    x, y = x[:50], y[:50]
    attack = get_attack(name, seed=0, norm="l2" if "L2" in name else "linf", **kwargs) if name.startswith("art") \
        else get_attack(name, seed=0, **kwargs)
    x_adv = attack(model, x, y, eps)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if attack.norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(model, x_adv, y) < accuracy(model, x, y) - 0.2
