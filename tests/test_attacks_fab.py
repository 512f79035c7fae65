"""FAB and FAB-T: the contract, the projections and the strength against the authors' code.

The reference is ``pyautoattack`` (Croce & Hein's AutoAttack, FABAttack_PT) on the same digits
samples and model. On this small CNN the L2 budget 1.0 and the L1 budget 5 of AutoAttack's
defaults fool every sample (both implementations reach 0), so the comparisons use budgets where
about half the samples survive: 0.1 (L∞), 0.5 (L2), 1.25 (L1).
"""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from attack_helpers import TinySegmenter, trained_digits
from attacks import FAB, FABT, Norm, get_attack, norms
from attacks.fab_projections import project_hyperplane_box
from attacks.objectives import Segmentation

BUDGETS = {"linf": 0.1, "l2": 0.5, "l1": 1.25}
PEER_NORM = {"linf": "Linf", "l2": "L2", "l1": "L1"}


class Case(NamedTuple):
    name: str
    norm: str
    kwargs: dict


CASES = [Case(name, norm, {"steps": 10, "seed": 0, **extra})
         for name, extra in (("fab", {"restarts": 2}), ("fab-t", {"n_target_classes": 3}))
         for norm in ("linf", "l2", "l1")]
IDS = [f"{c.name}-{c.norm}" for c in CASES]


@pytest.fixture(scope="module")
def digits():
    d = trained_digits()
    return d.model, d.x[:64], d.y[:64]


def _robust(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


# ------------------------------------------------------------------ contract
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_contract(case: Case, digits):
    model, x, y = digits
    x, y, eps = x[:16].clone(), y[:16], BUDGETS[case.norm]
    before, version = x.clone(), x._version
    attack = get_attack(case.name, norm=case.norm, **case.kwargs)
    x_adv = attack(model, x, y, eps)
    assert x._version == version and torch.equal(x, before)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert (norms.distance(Norm(case.norm), x_adv - x) <= eps * (1 + 1e-5)).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not _robust(model, x_adv, y).all()  # it fooled something
    assert torch.equal(attack(model, x, y, 0.0), x)
    assert attack(model, x[:0], y[:0], eps).shape == x[:0].shape


def test_unfooled_samples_come_back_clean(digits):
    """A point within eps that is not adversarial is the clean input (FAB's budget rule)."""
    model, x, y = digits
    x, y = x[:16], y[:16]
    x_adv = FABT(steps=10, n_target_classes=2, seed=0)(model, x, y, 0.05)
    robust = _robust(model, x_adv, y)
    assert robust.any() and torch.equal(x_adv[robust], x[robust])


# --------------------------------------------------------------- projections
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_projection_is_the_smallest_move_onto_the_hyperplane_in_the_box(norm):
    """Against the authors' projections: ours lands on the hyperplane, in the box, no farther."""
    peer = pytest.importorskip("pyautoattack.fab_projections")
    g = torch.Generator().manual_seed(0)
    t = torch.rand(500, 64, generator=g, dtype=torch.float64)
    w = torch.randn(500, 64, generator=g, dtype=torch.float64) * (torch.rand(500, 64, generator=g) > 0.2)
    b = (w * torch.rand(500, 64, generator=g, dtype=torch.float64)).sum(1) * 2 * torch.rand(500, generator=g)
    d = project_hyperplane_box(Norm(norm), t, w, b)
    theirs = getattr(peer, f"projection_{norm}")(t.float(), w.float(), b.float()).double()
    torch.testing.assert_close((w * (t + d)).sum(1), b, atol=1e-9, rtol=0)
    assert (t + d).min() >= 0 and (t + d).max() <= 1
    ours, ref = norms.distance(Norm(norm), d), norms.distance(Norm(norm), theirs)
    assert (ours <= ref + 1e-5).all() and (ours >= ref - 1e-3).all()


def test_projection_out_of_reach_goes_to_the_nearest_corner():
    t, w = torch.full((1, 3), 0.5, dtype=torch.float64), torch.tensor([[1.0, -2.0, 0.0]], dtype=torch.float64)
    d = project_hyperplane_box(Norm.L2, t, w, torch.tensor([10.0], dtype=torch.float64))
    assert torch.equal(t + d, torch.tensor([[1.0, 0.0, 0.5]], dtype=torch.float64))


# ----------------------------------------------------------------- reference
def _reference(model, x, y, norm: str, eps: float, targeted: bool, restarts: int, steps: int,
               targets: int) -> torch.Tensor:
    peer = pytest.importorskip("pyautoattack.fab_pt")
    fab = peer.FABAttack_PT(model, norm=PEER_NORM[norm], n_restarts=restarts, n_iter=steps, eps=eps, seed=0,
                            targeted=targeted, n_target_classes=targets)
    return fab.perturb(x, y)


def _compare(digits, name: str, norm: str, n: int, restarts: int, steps: int = 100, targets: int = 9) -> None:
    """Ours and the reference with the same settings on the same samples: ours robust on at
    most one sample more."""
    model, x, y = digits
    x, y, eps = x[:n], y[:n], BUDGETS[norm]
    extra = {"n_target_classes": targets} if name == "fab-t" else {}
    attack = get_attack(name, norm=norm, restarts=restarts, steps=steps, seed=0, **extra)
    ours = _robust(model, attack(model, x, y, eps), y)
    x_ref = _reference(model, x, y, norm, eps, name == "fab-t", restarts, steps, targets)
    fooled = ~_robust(model, x_ref, y)
    assert (norms.distance(Norm(norm), x_ref - x)[fooled] <= eps + 1e-4).all()  # the reference counts these
    message = f"{name} {norm}: ours {int(ours.sum())} robust, reference {int((~fooled).sum())}"
    assert ours.sum() <= (~fooled).sum() + 1, message
    assert 0 < ours.sum() < n  # a budget that tells attacks apart


def test_fab_t_linf_as_strong_as_the_reference(digits):
    """A short run of both (the full AutoAttack settings are the slow tests below)."""
    _compare(digits, "fab-t", "linf", n=32, restarts=1, steps=20, targets=3)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_fab_t_as_strong_as_the_reference(norm, digits):
    """AutoAttack standard's FAB-T: 9 targets, 1 restart, 100 steps."""
    _compare(digits, "fab-t", norm, n=64, restarts=1)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_fab_as_strong_as_the_reference(norm, digits):
    """AutoAttack plus's FAB: untargeted, 5 restarts, 100 steps."""
    _compare(digits, "fab", norm, n=64, restarts=5)


# ------------------------------------------------------------- determinism
@pytest.mark.parametrize("name,norm,kwargs", [("fab", "l2", {"restarts": 2}), ("fab-t", "l1", {"n_target_classes": 3})])
def test_batch_independent(name, norm, kwargs, digits):
    """Keyed restarts: the same samples in batches of 8 and of 64 give the same result."""
    model, x, y = digits
    attack = get_attack(name, norm=norm, steps=10, seed=0, **kwargs)
    eps, keys = BUDGETS[norm], torch.arange(len(x))
    whole = attack(model, x, y, eps, keys=keys)
    parts = torch.cat([attack(model, x[i:i + 8], y[i:i + 8], eps, keys=keys[i:i + 8]) for i in range(0, len(x), 8)])
    assert torch.equal(_robust(model, whole, y), _robust(model, parts, y))
    torch.testing.assert_close(whole, parts, atol=1e-5, rtol=0)


def test_minimal_is_no_larger_than_the_budgeted_result(digits):
    """``minimal`` keeps searching where the budgeted run stops and then shrinks: every sample
    fooled within eps has a minimal adversarial no larger; minimal adversarials fool the model."""
    model, x, y = digits
    x, y, eps = x[:24], y[:24], BUDGETS["l2"]
    attack = FABT(norm="l2", steps=20, n_target_classes=3, seed=0)
    smallest = attack.minimal(model, x, y)
    fooled = ~_robust(model, smallest, y)
    size = torch.where(fooled, norms.distance(Norm.L2, smallest - x), torch.tensor(float("inf")))
    assert fooled.float().mean() > 0.9
    budgeted = attack(model, x, y, eps)
    hit = ~_robust(model, budgeted, y)
    assert hit.any() and (size[hit] <= norms.distance(Norm.L2, budgeted - x)[hit] + 1e-6).all()
    assert (size < eps).sum() >= hit.sum()


# ------------------------------------------------------------------- errors
def test_refuses_what_is_not_a_classifier(digits):
    model, x, y = digits
    with pytest.raises(ValueError, match="classification objective"):
        FAB(objective=Segmentation())
    with pytest.raises(ValueError, match=r"logits \[B, K\]"):
        FABT(steps=2)(TinySegmenter(channels=1), x[:4], y[:4] % 4, 0.1)
    with pytest.raises(ValueError, match="K >= 2"):
        FAB(steps=2)(nn.Sequential(nn.Flatten(), nn.Linear(64, 1)), x[:4], y[:4] * 0, 0.1)
    with pytest.raises(ValueError, match="steps"):
        FAB(steps=0)
    with pytest.raises(ValueError, match="n_target_classes"):
        FABT(n_target_classes=0)


def test_fab_t_uses_at_most_the_other_classes():
    """Three classes: two targets at most, whatever n_target_classes says."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(8, 1, 2, 2)
    with torch.no_grad():
        y = model(x).argmax(1)
    x_adv = FABT(norm="linf", steps=20, n_target_classes=9, seed=0)(model, x, y, 1.0)
    assert not _robust(model, x_adv, y).any()  # linear model, eps covering the box: all fooled
