"""One-logit (binary) models: the Binary objective, our attacks against torchattacks, the contract.

The reference is torchattacks run on the two-logit equivalent ``[-z/2, z/2]`` of the same model:
its softmax gives class 1 the probability ``sigmoid(z)``, so its cross-entropy is our binary
cross-entropy and its signed gradient is ours.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import pytest
import torch
from torch import nn

from attacks import APGD, FGSM, PGD, get_attack
from attacks.objectives import Binary, Classification

torchattacks = pytest.importorskip("torchattacks")


class BinaryDigits(NamedTuple):
    model: nn.Module  # images [B, 1, 8, 8] in [0, 1] -> one logit [B, 1]
    x: torch.Tensor  # held-out images
    y: torch.Tensor  # 0/1 labels (1: odd digit)


class TwoLogit(nn.Module):
    """``[-z/2, z/2]`` from a one-logit model: the two-class model with the same decisions."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x).reshape(-1)
        return torch.stack([-z / 2, z / 2], dim=1)


class Flat(nn.Module):
    """The same model returning ``[B]`` instead of ``[B, 1]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).squeeze(1)


def one_logit_cnn() -> nn.Module:
    """A tiny CNN for 1x8x8 inputs with a single output logit."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 1),
    )


@functools.lru_cache(maxsize=1)
def binary_digits(epochs: int = 4, seed: int = 0) -> BinaryDigits:
    """The CNN trained briefly with BCE on odd-vs-even digits (not to saturation, so no gradient
    underflows to zero in one formulation and not in the other); 300 held-out images."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target % 2, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = one_logit_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    x_train, y_train = x[:-300], y[:-300]
    for _ in range(epochs):
        for idx in torch.randperm(len(x_train), generator=g).split(128):
            opt.zero_grad()
            logits = model(x_train[idx]).squeeze(1)
            nn.functional.binary_cross_entropy_with_logits(logits, y_train[idx].float()).backward()
            opt.step()
    return BinaryDigits(model.eval(), x[-300:], y[-300:])


@pytest.fixture(scope="module")
def digits() -> BinaryDigits:
    return binary_digits()


def fooled(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return Binary().success(model(x_adv), y, targeted=False)


# ------------------------------------------------------------------------ the objective
def test_losses_equal_the_two_logit_losses():
    z = torch.randn(64, 1) * 4
    y = torch.randint(0, 2, (64,))
    two = TwoLogit(nn.Identity())(z)
    bce = Binary("bce").loss(z, y)
    assert torch.allclose(bce, Classification("ce").loss(two, y), atol=1e-5)
    assert torch.allclose(Binary("margin").loss(z, y), Classification("margin").loss(two, y), atol=1e-6)


def test_margin_is_positive_exactly_when_wrong():
    z = torch.tensor([2.0, -1.0, 0.5, -3.0])
    y = torch.tensor([1, 1, 0, 0])
    objective = Binary("margin")
    assert torch.equal(objective.loss(z, y) > 0, ~objective.correct(z, y))
    assert objective.correct(z, y).tolist() == [True, False, False, True]


def test_threshold_moves_the_decision_in_logit_space():
    z = torch.tensor([0.5, 1.5, -0.5])
    assert Binary().decisions(z).tolist() == [True, True, False]
    assert Binary(threshold=1.0).decisions(z).tolist() == [False, True, False]
    # bce is centred on the threshold: at the threshold the loss is log 2 for either label
    at = Binary(threshold=1.0).loss(torch.tensor([1.0, 1.0]), torch.tensor([0, 1]))
    assert torch.allclose(at, torch.full((2,), 0.6931472))


def test_success_correct_and_confidence():
    z = torch.tensor([[3.0], [-2.0]])
    y = torch.tensor([1, 1])
    objective = Binary()
    assert objective.correct(z, y).tolist() == [True, False]
    assert objective.success(z, y, targeted=False).tolist() == [False, True]
    assert objective.success(z, 1 - y, targeted=True).tolist() == [False, True]
    assert torch.allclose(objective.confidence(z, y), torch.sigmoid(z.squeeze(1)))
    assert objective.quality(z, y).tolist() == [1.0, 0.0]


def test_flat_and_column_logits_agree():
    z = torch.randn(16)
    y = torch.randint(0, 2, (16,))
    for loss in Binary.LOSSES:
        objective = Binary(loss)
        assert torch.equal(objective.loss(z, y), objective.loss(z[:, None], y))
        assert torch.equal(objective.success(z, y, False), objective.success(z[:, None], y, False))


def test_with_loss_keeps_the_threshold():
    objective = Binary("bce", threshold=0.7).with_loss("margin")
    assert isinstance(objective, Binary) and objective.threshold == 0.7 and objective.loss_name == "margin"
    assert objective.with_loss(None).loss_name == "bce"


# ---------------------------------------------------------------- against torchattacks
@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_fgsm_equals_torchattacks_on_the_two_logit_model(digits, eps):
    ours = FGSM(objective=Binary())(digits.model, digits.x, digits.y, eps)
    theirs = torchattacks.FGSM(TwoLogit(digits.model), eps=eps)(digits.x, digits.y)
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("early_stop", [False, True], ids=["all-steps", "early-stop"])
@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2])
def test_pgd_agrees_with_torchattacks_within_one_sample(digits, eps, early_stop):
    steps, step = 20, 2.5 * eps / 20
    attack = PGD(steps=steps, step_size=step, random_start=False, early_stop=early_stop, objective=Binary())
    ours = attack(digits.model, digits.x, digits.y, eps)
    two = TwoLogit(digits.model)
    theirs = torchattacks.PGD(two, eps=eps, alpha=step, steps=steps, random_start=False)(digits.x, digits.y)
    ours_fooled, theirs_fooled = fooled(digits.model, ours, digits.y), fooled(digits.model, theirs, digits.y)
    assert 0 < int(theirs_fooled.sum()) < len(digits.y), "the case must separate attacks"
    assert int((ours_fooled != theirs_fooled).sum()) <= 1
    with torch.no_grad():  # the two-logit model judges as the one-logit model does
        assert torch.equal(two(theirs).argmax(1) != digits.y, theirs_fooled)


# ------------------------------------------------------------------------- the contract
class Case(NamedTuple):
    name: str
    build: object


CASES = [
    Case("fgsm", lambda: FGSM(objective=Binary())),
    Case("pgd", lambda: PGD(steps=10, objective=Binary(), seed=0)),
    Case("pgd-margin", lambda: PGD(steps=10, objective=Binary("margin"), seed=0)),
    Case("pgd-restarts", lambda: PGD(steps=5, restarts=3, objective=Binary(threshold=0.5), seed=0)),
    Case("apgd", lambda: APGD(steps=20, objective=Binary(), seed=0)),
    Case("apgd-ce", lambda: get_attack("apgd-ce", steps=20, objective=Binary(), seed=0)),
    Case("square", lambda: get_attack("square", queries=50, objective=Binary("margin"), seed=0)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_contract(digits, case):
    x, y, eps = digits.x[:64], digits.y[:64], 0.1
    before, version = x.clone(), x._version
    x_adv = case.build()(digits.model, x, y, eps)
    assert x._version == version and torch.equal(x, before), "the input was modified"
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    flat = case.build()(Flat(digits.model), x, y, eps)
    assert torch.allclose(flat, x_adv, atol=1e-6), "[B] and [B, 1] logits must give the same result"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_attacks_fool_more_with_eps(digits, case):
    small = fooled(digits.model, case.build()(digits.model, digits.x, digits.y, 0.02), digits.y)
    large = fooled(digits.model, case.build()(digits.model, digits.x, digits.y, 0.3), digits.y)
    assert float(large.float().mean()) > float(small.float().mean())


def test_targeted_pgd_reaches_the_other_side(digits):
    target = 1 - digits.y
    x_adv = PGD(steps=20, objective=Binary(), targeted=True, seed=0)(digits.model, digits.x, digits.y, 0.3,
                                                                      target=target)
    with torch.no_grad():
        reached = Binary().success(digits.model(x_adv), target, targeted=True)
    assert float(reached.float().mean()) > 0.9


# ------------------------------------------------------------------------------ refusals
def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("loss", ["dlr", "dlr-targeted"])
def test_dlr_losses_are_refused(loss):
    with pytest.raises(ValueError) as excinfo:
        Binary().with_loss(loss)
    assert "3 or more classes" in _one_line(excinfo)
    with pytest.raises(ValueError, match="3 or more classes"):
        Binary(loss)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError) as excinfo:
        Binary("ce")
    assert "bce, margin" in _one_line(excinfo)


def test_apgd_t_is_refused():
    with pytest.raises(ValueError) as excinfo:
        get_attack("apgd-t", objective=Binary())
    assert "classification objective" in _one_line(excinfo)


@pytest.mark.parametrize("objective", [Binary(), Binary("margin")])
def test_apgd_dlr_refuses_an_objective_without_dlr_instead_of_running_another_loss(objective):
    with pytest.raises(ValueError, match="apgd-dlr needs the DLR loss") as info:
        get_attack("apgd-dlr", objective=objective)
    assert "\n" not in str(info.value)


def test_a_two_logit_head_is_refused(digits):
    with pytest.raises(ValueError) as excinfo:
        PGD(steps=2, objective=Binary())(TwoLogit(digits.model), digits.x[:4], digits.y[:4], 0.1)
    assert "one logit per image" in _one_line(excinfo)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf")])
def test_a_non_finite_threshold_is_refused(threshold):
    with pytest.raises(ValueError, match="finite"):
        Binary(threshold=threshold)
