"""Segmentation through the objective: per-pixel losses with ignore_index, per-image success;
SegPGD, CosPGD and SEA's losses checked against their papers' formulas and the cospgd package."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attack_helpers import TinySegmenter
from attacks import FGSM, PGD, CosPGD, SegPGD, eps_sweep, get_attack
from attacks import losses
from attacks.losses import pixel_cross_entropy, pixel_margin
from attacks.objectives import Classification, Multilabel, Segmentation
from attacks.specs import parse_attack_spec
from attacks.targets import all_to_class, class_to_class, make_targets, target_share

IGNORE = 255


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 3, 6, 6, generator=g)
    y = torch.randint(0, 4, (4, 6, 6), generator=g)
    y[:, :2] = IGNORE  # the top rows are "void"
    return x, y


def test_per_pixel_ce_ignores_void_pixels():
    x, y = _batch()
    logits = TinySegmenter()(x)
    loss = pixel_cross_entropy(logits, y, IGNORE)
    valid = y != IGNORE
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[i].permute(1, 2, 0)[valid[i]], y[i][valid[i]])
                            for i in range(len(x))])
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(Segmentation("ce", IGNORE).loss(logits, y), expected)
    assert pixel_margin(logits, y, IGNORE).shape == (4,)


def test_pgd_raises_segmentation_loss_within_bounds():
    model, (x, y) = TinySegmenter(), _batch()
    objective = Segmentation(ignore_index=IGNORE)
    with torch.no_grad():
        before = objective.loss(model(x), y)
    for attack, eps, norm in [(PGD(steps=10, objective=objective, seed=0), 0.1, "linf"),
                              (PGD(norm="l2", steps=10, objective=objective, seed=0), 0.5, "l2"),
                              (FGSM(objective=objective), 0.1, "linf")]:
        x_adv = attack(model, x, y, eps)
        delta = (x_adv - x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert (size <= eps + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
        with torch.no_grad():
            after = objective.loss(model(x_adv), y)
        assert (after > before).all()


def test_void_pixels_do_not_drive_the_attack():
    """Only void pixels change label -> the loss, hence the attack, is unchanged."""
    model, (x, y) = TinySegmenter(), _batch()
    y2 = y.clone()
    y2[:, :2] = 0
    y2[y == IGNORE] = IGNORE
    objective = Segmentation(ignore_index=IGNORE)
    a = PGD(steps=3, objective=objective, seed=0)(model, x, y, 0.1)
    b = PGD(steps=3, objective=objective, seed=0)(model, x, y2, 0.1)
    assert torch.equal(a, b)


def _wrong_fraction(logits, y):
    valid = y != IGNORE
    return ((logits.argmax(1) != y) & valid).flatten(1).sum(1) / valid.flatten(1).sum(1)


def test_early_stop_follows_the_objective_threshold():
    model, (x, y) = TinySegmenter(), _batch()
    strict = Segmentation(ignore_index=IGNORE, threshold=1.0)
    res = eps_sweep(PGD(steps=5, objective=strict, seed=0), model, x, y, [0, 0.05, 0.1])
    with torch.no_grad():
        wrong = _wrong_fraction(model(res.x_adv[-1]), y)
    assert torch.equal(res.fooled[-1], wrong >= 1.0)
    loose = Segmentation(ignore_index=IGNORE, threshold=0.5)
    res = eps_sweep(PGD(steps=5, objective=loose, seed=0), model, x, y, [0, 0.5])
    with torch.no_grad():
        wrong = _wrong_fraction(model(res.x_adv[-1]), y)
    assert res.fooled[-1].all() and (wrong >= 0.5).all() and res.grad_calls < 5 * len(x)


def test_segmentation_success_and_correct_are_complements_for_untargeted():
    model, (x, y) = TinySegmenter(), _batch()
    objective = Segmentation(ignore_index=IGNORE, threshold=0.6)
    with torch.no_grad():
        logits = model(x)
    assert torch.equal(objective.success(logits, y, targeted=False), ~objective.correct(logits, y))
    assert torch.equal(objective.correct(logits, y), _wrong_fraction(logits, y) < 0.6)



# ------------------------------------------------------------------ SegPGD, CosPGD and SEA losses
def _logits_and_masks(seed: int = 0, classes: int = 5):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(2, classes, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (2, 6, 6), generator=g)
    y[:, 0] = IGNORE
    y[0, 3, 3] = IGNORE
    return logits, y


def _valid_mean(values: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    valid = y != IGNORE
    return torch.stack([values[i][valid[i]].mean() for i in range(len(y))])


def _pixel_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y.clamp(max=logits.shape[1] - 1), reduction="none")


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
@pytest.mark.parametrize("t", [1, 2, 5, 10])
def test_segpgd_weights_follow_the_paper(t, targeted):
    """λ(t) = (t − 1) / (2T); untargeted: correct pixels weigh 1 − λ, wrong ones λ (targeted: the
    pixels already on target weigh λ, the others 1 − λ); ignored pixels weigh nothing."""
    steps = 10
    logits, y = _logits_and_masks()
    lam = (t - 1) / (2 * steps)
    on_label = logits.argmax(1) == y
    still_to_flip = ~on_label if targeted else on_label
    expected = torch.where(still_to_flip, 1 - lam, lam).to(logits.dtype)
    expected[y == IGNORE] = 0
    weights = losses.segpgd_weights(logits, y, IGNORE, targeted=targeted, progress=(t - 1) / steps)
    torch.testing.assert_close(weights, expected)
    loss = Segmentation("segpgd").loss(logits, y, targeted=targeted, progress=(t - 1) / steps)
    torch.testing.assert_close(loss, _valid_mean(expected * _pixel_ce(logits, y), y))


def test_segpgd_first_step_is_masked_ce_and_progress_is_checked():
    logits, y = _logits_and_masks()
    torch.testing.assert_close(Segmentation("segpgd").loss(logits, y), Segmentation("mce").loss(logits, y))
    with pytest.raises(ValueError, match="progress"):
        losses.segpgd_weights(logits, y, IGNORE, progress=1.5)


class _Recording(Segmentation):
    """A segmentation objective that records the progress each loss evaluation is given."""

    def __init__(self, seen: list[float]) -> None:
        super().__init__(ignore_index=IGNORE)
        self.seen = seen

    def loss(self, logits, labels, *, targeted=False, progress=0.0):
        self.seen.append(progress)
        return super().loss(logits, labels, targeted=targeted, progress=progress)


@pytest.mark.parametrize("attack_class", [PGD, SegPGD])
def test_pgd_tells_the_loss_its_step(attack_class):
    """Step t of T is evaluated at progress (t − 1) / T, so SegPGD's λ runs 0, 1/(2T), ..., (T−1)/(2T)."""
    seen: list[float] = []
    x, y = _batch()
    attack_class(steps=4, objective=_Recording(seen), early_stop=False, seed=0)(TinySegmenter(), x, y, 0.1)
    assert seen == [0.0, 0.25, 0.5, 0.75]


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
def test_cospgd_weights_match_the_cospgd_package(targeted):
    cospgd = pytest.importorskip("cospgd")
    logits, y = _logits_and_masks(seed=1)
    valid = y != IGNORE
    # the package has no ignore_index (it clamps labels to K - 1), so compare on the valid pixels
    reference = cospgd.functions.cospgd_scale(logits, y.clamp(max=4), torch.ones_like(logits[:, 0]),
                                              num_classes=5, targeted=targeted, one_hot=True)
    ours = losses.cospgd_weights(logits, y, IGNORE, targeted=targeted)
    torch.testing.assert_close(ours[valid], reference[valid])
    assert (ours[~valid] == 0).all()
    loss = Segmentation("cospgd").loss(logits, y, targeted=targeted)
    torch.testing.assert_close(loss, _valid_mean(reference * _pixel_ce(logits, y), y))


def test_cospgd_weights_carry_no_gradient():
    logits, y = _logits_and_masks()
    logits.requires_grad_(True)
    loss = Segmentation("cospgd").loss(logits, y).sum()
    grad, = torch.autograd.grad(loss, logits)
    constant = losses.cospgd_weights(logits.detach(), y, IGNORE)
    expected, = torch.autograd.grad(_valid_mean(constant * _pixel_ce(logits, y), y).sum(), logits)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
def test_masked_ce_ignores_pixels_already_fooled(targeted):
    logits, y = _logits_and_masks()
    on_label = logits.argmax(1) == y
    counted = (~on_label if targeted else on_label) & (y != IGNORE)
    expected = _valid_mean(counted * _pixel_ce(logits, y), y)
    logits.requires_grad_(True)
    loss = Segmentation("mce").loss(logits, y, targeted=targeted)
    torch.testing.assert_close(loss.detach(), expected)
    grad, = torch.autograd.grad(loss.sum(), logits)
    assert (grad.abs().sum(1)[~counted] == 0).all() and (grad.abs().sum(1)[counted] > 0).all()


def _numpy_js(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-image mean over valid pixels of JS(softmax, one-hot) = (KL(p||m) + KL(q||m)) / 2."""
    z = logits.double().numpy()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = y.numpy()
    q = np.eye(z.shape[1])[np.where(labels == IGNORE, 0, labels)].transpose(0, 3, 1, 2)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum(1)
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum(1)
    js = (kl_p + kl_q) / 2
    valid = labels != IGNORE
    return np.array([js[i][valid[i]].mean() for i in range(len(labels))])


def test_js_matches_a_direct_computation_and_vanishes_for_a_perfect_prediction():
    logits, y = _logits_and_masks()
    np.testing.assert_allclose(Segmentation("js").loss(logits, y).numpy(), _numpy_js(logits, y), rtol=1e-10)
    perfect = 60.0 * F.one_hot(y.clamp(max=4), 5).permute(0, 3, 1, 2).double()
    assert Segmentation("js").loss(perfect, y).abs().max() < 1e-12
    hopeless = -perfect  # every valid pixel confidently wrong: the bound log 2
    torch.testing.assert_close(Segmentation("js").loss(hopeless, y), torch.full((2,), math.log(2), dtype=torch.float64))


@pytest.mark.parametrize("loss", ["ce", "margin", "segpgd", "cospgd", "mce", "js"])
def test_void_pixels_take_no_part_in_any_loss(loss):
    logits, y = _logits_and_masks()
    other = logits.clone()
    other[:, :, 0] = torch.randn_like(other[:, :, 0]) * 10  # row 0 is void
    objective = Segmentation(loss)
    for targeted in (False, True):
        torch.testing.assert_close(objective.loss(logits, y, targeted=targeted, progress=0.5),
                                   objective.loss(other, y, targeted=targeted, progress=0.5))
    other.requires_grad_(True)
    grad, = torch.autograd.grad(objective.loss(other, y, progress=0.5).sum(), other)
    assert (grad[:, :, 0] == 0).all()


@pytest.mark.parametrize("loss", ["ce", "margin", "segpgd", "cospgd", "mce", "js"])
def test_every_loss_ranks_iterates_by_the_share_of_pixels_fooled(loss):
    """SEA's rule: the returned iterate is the one with the fewest right pixels, not the highest loss."""
    logits, y = _logits_and_masks()
    fooled = 1 - Segmentation().hit_fraction(logits, y)
    torch.testing.assert_close(Segmentation(loss).selection_score(logits, y, targeted=False), fooled)
    target = torch.zeros_like(y).masked_fill(y == 255, 255)
    torch.testing.assert_close(Segmentation(loss).selection_score(logits, target, targeted=True),
                               Segmentation().hit_fraction(logits, target))


# ----------------------------------------------------------------------------- the attacks
class SmallSegmenter(nn.Module):
    """A fixed 3x3-conv segmenter (4 classes) whose decision boundaries cross the unit cube."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(4 * (x - 0.5))


def _scene(model: nn.Module, seed: int = 0):
    """2x3x16x16 images; the masks are the clean prediction (pixel accuracy 1) with void rows."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:, :3] = IGNORE
    y[:, 8, 4:9] = IGNORE
    return x, y


def _pixel_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return Segmentation(ignore_index=IGNORE).hit_fraction(model(x), y)


class Case(NamedTuple):
    spec: str
    loss: str | None  # the objective's loss where the attack does not set it


CASES = [Case("fgsm", "ce"), Case("pgd(steps=10)", "ce"), Case("segpgd(steps=10)", None),
         Case("cospgd(steps=10)", None), Case("apgd(steps=10)", "mce"), Case("apgd(steps=10)", "js")]
EPS = {"linf": 0.1, "l2": 1.5}


def _build(case: Case, norm: str, **extra):
    name, kwargs = parse_attack_spec(case.spec)
    if name != "fgsm":
        kwargs["seed"] = 0
    objective = Segmentation(case.loss or "ce", ignore_index=IGNORE)
    return get_attack(name, norm=norm, objective=objective, **kwargs, **extra)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c.spec.split('(')[0]}-{c.loss or 'own'}" for c in CASES])
def test_attacks_lower_pixel_accuracy_within_the_ball(case, norm):
    model = SmallSegmenter()
    x, y = _scene(model)
    x_before = x.clone()
    x_adv = _build(case, norm)(model, x, y, EPS[norm])
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert x_adv.shape == x.shape and torch.equal(x, x_before)
    assert (size <= EPS[norm] + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (_pixel_accuracy(model, x_adv, y) < _pixel_accuracy(model, x, y)).all()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.spec.split('(')[0]}-{c.loss or 'own'}" for c in CASES])
def test_void_pixels_do_not_change_what_the_attacks_do_elsewhere(case):
    """With a 1x1-conv segmenter pixels are independent: replacing the image under the void
    pixels must leave the L∞ attack's result on the valid pixels exactly as it was."""
    model = TinySegmenter()
    x, y = _scene(model)
    x2 = x.clone()
    void = (y == IGNORE).unsqueeze(1).expand_as(x)
    x2[void] = torch.rand(int(void.sum()), generator=torch.Generator().manual_seed(5))
    attack = _build(case, "linf")
    a, b = attack(model, x, y, 0.1), attack(model, x2, y, 0.1)
    assert torch.equal(a[~void], b[~void])
    if case.spec.startswith(("fgsm", "pgd", "segpgd", "cospgd")):  # without a random start they stay put
        plain = _build(case, "linf", **({} if case.spec == "fgsm" else {"random_start": False}))
        assert torch.equal(plain(model, x, y, 0.1)[void], x[void])


class _Watched(nn.Module):
    """Records, per forward pass, each image's share of fooled valid pixels."""

    def __init__(self, model: nn.Module, y: torch.Tensor) -> None:
        super().__init__()
        self.model, self.y, self.fooled = model, y, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if len(x) == len(self.y):  # nothing is fooled at threshold 0.99, so the batch stays whole
            self.fooled.append(1 - Segmentation().hit_fraction(logits.detach(), self.y))
        return logits


@pytest.mark.parametrize("loss", ["mce", "segpgd", "cospgd"])
def test_apgd_on_a_masked_loss_returns_its_most_fooled_iterate(loss):
    """These losses fall as pixels flip, so the highest-loss iterate is an early one; the point
    returned must be the iterate with the most fooled pixels (as SEA keeps)."""
    model = TinySegmenter()
    x, y = _scene(model)
    watched = _Watched(model, y)
    x_adv = get_attack("apgd", steps=10, seed=0, objective=Segmentation(loss))(watched, x, y, 4 / 255)
    best = torch.stack(watched.fooled).amax(0)
    torch.testing.assert_close(1 - _pixel_accuracy(model, x_adv, y), best)
    assert (best > 0).all()


@pytest.mark.parametrize("attack_class", [SegPGD, CosPGD])
def test_restarts_keep_the_most_fooled_run(attack_class):
    """Each restart is ``steps`` forward+backward passes, then one forward pass judging its end
    point; the result must be the end point with the most fooled pixels."""
    model = SmallSegmenter()
    x, y = _scene(model)
    watched = _Watched(model, y)
    steps, restarts = 3, 4
    x_adv = attack_class(steps=steps, restarts=restarts, seed=0)(watched, x, y, 0.03)
    assert len(watched.fooled) == restarts * (steps + 1)
    judged = torch.stack(watched.fooled[steps::steps + 1]).amax(0)
    torch.testing.assert_close(1 - _pixel_accuracy(model, x_adv, y), judged)


@pytest.mark.parametrize("name", ["pgd", "segpgd", "cospgd", "apgd"])
def test_targeted_all_to_background_raises_its_share(name):
    model = SmallSegmenter()
    x, y = _scene(model)
    target = all_to_class(y, 0)
    loss = "mce" if name == "apgd" else "ce"
    attack = get_attack(name, steps=10, seed=0, targeted=True, objective=Segmentation(loss, ignore_index=IGNORE))
    x_adv = attack(model, x, y, 0.1, target=target)
    with torch.no_grad():
        before, after = target_share(model(x), target), target_share(model(x_adv), target)
    assert (after > before).all()


def test_target_masks_keep_void_and_untouched_pixels():
    _, y = _scene(TinySegmenter())
    void = y == IGNORE
    everything = all_to_class(y, 0)
    assert (everything[void] == IGNORE).all() and (everything[~void] == 0).all()
    moved = class_to_class(y, 2, 0)
    assert (moved[y == 2] == 0).all() and torch.equal(moved[y != 2], y[y != 2])
    given = make_targets(None, None, y, "given", 4, target_class=1, ignore_index=IGNORE)
    assert (given[void] == IGNORE).all() and (given[~void] == 1).all()
    with pytest.raises(ValueError):
        all_to_class(y, IGNORE)


def test_target_share_counts_valid_and_optionally_only_changed_pixels():
    y = torch.tensor([[[0, 1], [2, IGNORE]]])
    target = class_to_class(y, 1, 0)  # [[0, 0], [2, void]]
    logits = F.one_hot(torch.tensor([[[0, 0], [1, 3]]]), 4).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(target_share(logits, target), torch.tensor([2 / 3]))
    torch.testing.assert_close(target_share(logits, target, y=y), torch.tensor([1.0]))  # the one pixel 1 -> 0
    objective = Segmentation(ignore_index=IGNORE, threshold=0.6)
    assert objective.success(logits, target, targeted=True).item() and not Segmentation().success(
        logits, target, targeted=True).item()


@pytest.mark.parametrize("name", ["segpgd", "cospgd"])
@pytest.mark.parametrize("objective", [Classification(), Multilabel(), "ce", lambda logits, y: logits.sum()],
                         ids=["classification", "multilabel", "loss-name", "callable"])
def test_segmentation_attacks_refuse_other_objectives(name, objective):
    with pytest.raises(ValueError, match="Segmentation objective"):
        get_attack(name, objective=objective)


def test_specs_build_segmentation_attacks_like_pgd():
    name, kwargs = parse_attack_spec("segpgd(steps=20, norm='l2', restarts=2)")
    objective = Segmentation("margin", ignore_index=0, threshold=0.5)
    attack = get_attack(name, objective=objective, **kwargs)
    assert type(attack) is SegPGD and (attack.steps, attack.norm.value, attack.restarts) == (20, "l2", 2)
    assert (attack.objective.loss_name, attack.objective.ignore_index, attack.objective.threshold) == ("segpgd", 0, 0.5)
    assert objective.loss_name == "margin"  # the caller's objective is not changed
    assert type(get_attack("cospgd")) is CosPGD and get_attack("cospgd").objective.ignore_index == IGNORE
    with pytest.raises(ValueError, match="bad arguments"):
        get_attack("segpgd", stepz=3)
