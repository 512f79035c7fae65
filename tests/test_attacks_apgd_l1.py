"""APGD-L1 (Croce & Hein, "Mind the box", ICML 2021): the L1 ∩ box projection, the sparse step, the
large-eps schedule, the attack's contract and its strength against the authors' code (pyautoattack)."""
from __future__ import annotations

import pytest
import torch

from attack_helpers import accuracy, trained_digits
from attacks import APGD, APGDT, get_attack
from attacks.apgd_l1 import checkpoint_period, large_reps_schedule, sparse_direction
from attacks.norms import project_l1_box


@pytest.fixture(scope="module")
def digits():
    data = trained_digits()
    return data.model, data.x[:64], data.y[:64]


def _bisection_projection(x0: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Reference: the threshold λ of ``sign(y)·clip(|y| − λ, 0, room)`` found by bisection (float64)."""
    x0, y = x0.double().flatten(1), y.double().flatten(1)
    room = torch.where(y > 0, 1 - x0, x0)

    def size(lam: torch.Tensor) -> torch.Tensor:
        return (y.abs() - lam[:, None]).clamp_min(0).minimum(room).sum(1)

    lo, hi = torch.zeros(len(y), dtype=torch.float64), y.abs().amax(1)
    for _ in range(200):
        mid = (lo + hi) / 2
        big = size(mid) > eps
        lo, hi = torch.where(big, mid, lo), torch.where(big, hi, mid)
    lam = torch.where(size(torch.zeros_like(lo)) <= eps, torch.zeros_like(lo), hi)
    return y.sign() * (y.abs() - lam[:, None]).clamp_min(0).minimum(room)


@pytest.mark.parametrize("width,scale,eps", [(64, 1.0, 3.0), (64, 0.1, 1.0), (3072, 1.0, 12.0), (10, 5.0, 0.5),
                                             (64, 1.0, 100.0), (64, 1.0, 0.0)])
def test_projection_onto_l1_ball_and_box_matches_bisection(width, scale, eps):
    g = torch.Generator().manual_seed(width)
    x0 = torch.rand(40, width, generator=g)
    x0[:, : width // 3] = 0  # dark pixels: the box binds on one side
    x0[:5, -2:] = 1
    y = torch.randn(40, width, generator=g) * scale
    y[:3] = 0
    got = project_l1_box(x0, y, eps)
    assert torch.allclose(got.double(), _bisection_projection(x0, y, eps), atol=1e-5)
    assert (got.abs().sum(1) <= eps * (1 + 1e-5) + 1e-6).all()
    assert ((x0 + got) >= 0).all() and ((x0 + got) <= 1).all()


def test_projection_is_not_the_plain_l1_ball():
    # from a dark pixel a negative move is impossible, so all the budget goes to the free coordinate
    x0, y = torch.tensor([[0.0, 0.5]]), torch.tensor([[-2.0, 0.3]])
    assert torch.allclose(project_l1_box(x0, y, 1.0), torch.tensor([[0.0, 0.3]]))


def test_sparse_direction_moves_the_top_coordinates_by_equal_amounts():
    grad = torch.tensor([[0.1, -3.0, 2.0, 0.0, -0.5]])
    step = sparse_direction(grad, torch.tensor([0.4]))
    assert torch.allclose(step, torch.tensor([[0.0, -0.5, 0.5, 0.0, 0.0]]))
    assert torch.allclose(sparse_direction(grad, torch.tensor([0.0])), torch.tensor([[0.0, -1.0, 0.0, 0.0, 0.0]]))


def test_large_reps_schedule_and_checkpoints_follow_autoattack():
    assert large_reps_schedule(2.0, 100) == [(6.0, 30), (4.0, 30), (2.0, 40)]
    assert [steps for _, steps in large_reps_schedule(1.0, 25)] == [8, 8, 9]
    assert checkpoint_period(100) == 4 and checkpoint_period(10) == 1


@pytest.mark.parametrize("attack", [APGD(norm="l1", steps=10, seed=0),
                                    APGD(norm="l1", steps=10, restarts=2, large_reps=True, seed=0),
                                    APGDT(norm="l1", steps=10, n_target_classes=3, large_reps=True, seed=0)],
                         ids=["apgd", "apgd-largereps", "apgd-t-largereps"])
def test_contract_l1(digits, attack):
    model, x, y = digits
    eps, version = 2.0, x._version
    x_adv = attack(model, x, y, eps)
    assert x._version == version and x_adv.shape == x.shape
    assert ((x_adv - x).flatten(1).abs().sum(1) <= eps + 1e-4).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(model, x_adv, y) < accuracy(model, x, y) - 0.3  # it attacked
    assert torch.equal(x_adv, attack(model, x, y, eps))
    keys = torch.arange(len(x)) + 7
    whole = attack.success_mask(model, attack(model, x, y, eps, keys=keys), y)
    parts = torch.cat([attack.success_mask(model, attack(model, x[i:i + 16], y[i:i + 16], eps, keys=keys[i:i + 16]),
                                           y[i:i + 16]) for i in range(0, len(x), 16)])
    assert torch.equal(whole, parts)


def test_large_reps_needs_l1_and_every_name_accepts_l1():
    with pytest.raises(ValueError, match="large_reps"):
        APGD(norm="linf", large_reps=True)
    with pytest.raises(ValueError, match="large_reps"):
        APGDT(norm="l1", steps=2, large_reps=True)
    for name in ("apgd-ce", "apgd-dlr", "apgd-t"):
        assert get_attack(name, norm="l1", large_reps=True).large_reps
    assert "large_reps" not in repr(APGD())  # L-inf/L2 attacks print as before


# ------------------------------------------------------------------------- against pyautoattack
def _ours(name: str, model, x, y, eps: float) -> float:
    if name == "apgd-ce":
        attack = APGD(norm="l1", steps=100, restarts=5, large_reps=True, seed=0)
    else:
        attack = APGDT(norm="l1", steps=100, n_target_classes=5, large_reps=True, seed=0)
    return accuracy(model, attack(model, x, y, eps), y)


def _reference(name: str, model, x, y, eps: float) -> float:
    autopgd = pytest.importorskip("pyautoattack.autopgd_base")
    if name == "apgd-ce":
        attack = autopgd.APGDAttack(model, norm="L1", eps=eps, n_restarts=5, use_largereps=True, n_iter=100,
                                    seed=0, device="cpu")
    else:
        attack = autopgd.APGDAttack_targeted(model, norm="L1", eps=eps, n_target_classes=5, use_largereps=True,
                                             n_iter=100, seed=0, device="cpu")
    return accuracy(model, attack.perturb(x.clone(), y.clone()), y)


def test_apgd_ce_l1_at_least_as_strong_as_autoattack(digits):
    model, x, y = digits
    x, y = x[:32], y[:32]
    eps = 1.5  # robust accuracy ~0.35: neither attack saturates
    ours, reference = _ours("apgd-ce", model, x, y, eps), _reference("apgd-ce", model, x, y, eps)
    assert 0.2 <= reference <= 0.8 and ours <= reference + 1 / len(y)


@pytest.mark.slow
@pytest.mark.parametrize("eps", [1.0, 1.5, 2.0])
@pytest.mark.parametrize("name", ["apgd-ce", "apgd-t"])
def test_apgd_l1_at_least_as_strong_as_autoattack(digits, name, eps):
    # 64 digits, seed 0: apgd-ce 0.672/0.359/0.094 vs 0.688/0.359/0.078, apgd-t 0.641/0.344/0.078 vs
    # 0.656/0.359/0.078 (ours vs pyautoattack at eps 1, 1.5, 2)
    model, x, y = digits
    assert _ours(name, model, x, y, eps) <= _reference(name, model, x, y, eps) + 1 / len(y)
