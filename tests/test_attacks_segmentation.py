"""The segmentation hook: per-pixel CE with ignore_index through PGD and FGSM."""
from __future__ import annotations

import torch

from attack_helpers import TinySegmenter
from attacks import FGSM, PGD, eps_sweep
from attacks.losses import cross_entropy, margin

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
    loss = cross_entropy(logits, y, IGNORE)
    valid = y != IGNORE
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[i].permute(1, 2, 0)[valid[i]], y[i][valid[i]])
                            for i in range(len(x))])
    torch.testing.assert_close(loss, expected)
    assert margin(logits, y, IGNORE).shape == (4,)


def test_pgd_raises_segmentation_loss_within_bounds():
    model, (x, y) = TinySegmenter(), _batch()
    with torch.no_grad():
        before = cross_entropy(model(x), y, IGNORE)
    for attack, eps, norm in [(PGD(steps=10, ignore_index=IGNORE, seed=0), 0.1, "linf"),
                              (PGD(norm="l2", steps=10, ignore_index=IGNORE, seed=0), 0.5, "l2"),
                              (FGSM(ignore_index=IGNORE), 0.1, "linf")]:
        x_adv = attack(model, x, y, eps)
        delta = (x_adv - x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert (size <= eps + 1e-5).all() and x_adv.min() >= 0 and x_adv.max() <= 1
        with torch.no_grad():
            after = cross_entropy(model(x_adv), y, IGNORE)
        assert (after > before).all()


def test_void_pixels_do_not_drive_the_attack():
    """Only void pixels change label -> the loss, hence the attack, is unchanged."""
    model, (x, y) = TinySegmenter(), _batch()
    y2 = y.clone()
    y2[:, :2] = 0
    y2[y == IGNORE] = IGNORE
    a = PGD(steps=3, ignore_index=IGNORE, seed=0)(model, x, y, 0.1)
    b = PGD(steps=3, ignore_index=IGNORE, seed=0)(model, x, y2, 0.1)
    assert torch.equal(a, b)


def test_segmentation_never_early_stops_unless_told():
    model, (x, y) = TinySegmenter(), _batch()
    res = eps_sweep(PGD(steps=5, ignore_index=IGNORE, seed=0), model, x, y, [0, 0.05, 0.1])
    assert not torch.stack(res.fooled).any() and torch.isnan(res.min_eps).all()
    assert res.grad_calls == 2 * 5 * len(x)  # every sample attacked at every eps

    def most_pixels_wrong(logits, labels):
        valid = labels != IGNORE
        wrong = (logits.argmax(1) != labels) & valid
        return wrong.flatten(1).sum(1) > 0.5 * valid.flatten(1).sum(1)

    res = eps_sweep(PGD(steps=5, ignore_index=IGNORE, seed=0, success=most_pixels_wrong), model, x, y, [0, 0.5])
    assert res.fooled[-1].all() and res.grad_calls < 5 * len(x)
