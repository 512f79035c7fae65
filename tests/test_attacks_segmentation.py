"""Segmentation through the objective: per-pixel losses with ignore_index, per-image success."""
from __future__ import annotations

import torch

from attack_helpers import TinySegmenter
from attacks import FGSM, PGD, eps_sweep
from attacks.losses import pixel_cross_entropy, pixel_margin
from attacks.objectives import Segmentation

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
