"""Training-time defenses: contract of the objectives, pass counts, and a real robustness gain."""
from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from defenses.adversarial import FGSMRS, PGDAT, TRADES, build_objective, kl_logits


def _net():
    # BatchNorm and dropout make the eval-mode inner max observable.
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2),
                         nn.Flatten(), nn.Linear(8 * 64, 10))


class Case(NamedTuple):
    kind: str
    forward: float
    backward: float


# Full-batch passes per call, outer backward included: standard training is 1 + 1.
CASES = [Case("fgsm-rs", 2, 2), Case("pgd-at", 6, 6), Case("trades", 8, 7)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)
def test_objective_contract_and_pass_counts(case):
    net = _net().train()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    x.requires_grad_(False)
    bn_mean = net[1].running_mean.clone()
    obj = build_objective(case.kind, eps=0.1, steps=5)
    loss = obj(net, x, y, F.cross_entropy)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert all(p.grad is None for p in net.parameters())  # nothing accumulated by the inner max
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert x.grad is None
    assert obj.counts == {"forward": case.forward, "backward": case.backward}
    # Only the outer (train-mode) forwards touch BN statistics: 1 for PGD/FGSM, 1 clean + 1 adv for TRADES.
    assert not torch.equal(net[1].running_mean, bn_mean)


@pytest.mark.parametrize("obj", [FGSMRS(0.05), PGDAT(0.05, 4), TRADES(0.05, 4)], ids=["fgsm-rs", "pgd-at", "trades"])
def test_inner_max_respects_eps_and_bounds_and_beats_random_noise(obj):
    torch.manual_seed(0)
    net = _net().eval()
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    x_adv = obj.perturb(net, x, y, F.cross_entropy)
    assert not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    x_rand = (x + (torch.rand_like(x) * 2 - 1) * 0.05).clamp(0, 1)
    with torch.no_grad():
        # The quantity each inner max ascends: CE for FGSM-RS / PGD-AT, KL to the clean output for TRADES.
        inner = (lambda z: kl_logits(net(x), net(z))) if isinstance(obj, TRADES) else (
            lambda z: F.cross_entropy(net(z), y))
        assert inner(x_adv) > inner(x_rand)


def test_build_objective_vocabulary():
    assert build_objective("none", 0.1) is None
    assert isinstance(build_objective("FGSM-RS", 0.1), FGSMRS)
    assert build_objective("fgsm-rs", 0.1).alpha == pytest.approx(0.125)
    t = build_objective("trades", 0.1, steps=3, beta=2.0)
    assert (t.steps, t.beta, t.step_size) == (3, 2.0, pytest.approx(2.5 * 0.1 / 3))
    for bad in [("free-at", 0.1), ("pgd-at", 0.0), ("pgd-at", 0.1, 0)]:
        with pytest.raises(ValueError):
            build_objective(*bad)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[:1200]], y[perm[:1200]], x[perm[1200:1400]], y[perm[1200:1400]]


def _train(objective, x, y, epochs):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), 5e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(100):
            net.train()
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(net(xb), yb) if objective is None else objective(net, xb, yb, F.cross_entropy)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def _robust(net, x, y, eps):
    from attacks import PGD

    x_adv = PGD(norm="linf", steps=20, seed=0)(net, x, y, eps)
    with torch.no_grad():
        return (net(x_adv).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("kind", ["fgsm-rs", "pgd-at", "trades"])
def test_adversarial_training_gains_pgd_robustness(kind, digits):
    xtr, ytr, xte, yte = digits
    standard = _robust(_train(None, xtr, ytr, 15), xte, yte, 0.1)
    robust = _robust(_train(build_objective(kind, 0.1, steps=5), xtr, ytr, 15), xte, yte, 0.1)
    print(f"{kind}: PGD-20 robust acc at eps 0.1: standard {standard:.2f} -> adversarially trained {robust:.2f}")
    assert robust >= standard + 0.2


# ---------------------------------------------------------------------------------------------
# SegPGD-AT: the segmenters' adversarial training


def _segmenter():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))


def _masks(generator: torch.Generator) -> torch.Tensor:
    y = torch.randint(0, 4, (6, 8, 8), generator=generator)
    y[:, :, :2] = 255  # a void band
    return y


def _pixel_ce(logits, y):
    return F.cross_entropy(logits, y, ignore_index=255)


def test_segpgd_at_inner_max_is_segpgd_with_the_void_label_left_out():
    from attacks import SegPGD
    from attacks.objectives import Segmentation

    generator = torch.Generator().manual_seed(0)
    net, x, y = _segmenter().eval(), torch.rand(6, 3, 8, 8, generator=generator), _masks(generator)
    obj = build_objective("segpgd-at", eps=0.05, steps=3, ignore_index=255)
    torch.manual_seed(1)
    ours = obj.perturb(net, x, y, _pixel_ce)
    torch.manual_seed(1)
    segpgd = SegPGD(steps=3, step_size=2.5 * 0.05 / 3, early_stop=False, objective=Segmentation(ignore_index=255))
    assert torch.equal(ours, segpgd(net, x, y, 0.05))
    torch.manual_seed(1)
    plain = build_objective("pgd-at", eps=0.05, steps=3).perturb(net, x, y, _pixel_ce)
    assert not torch.equal(ours, plain)  # the SegPGD weighting, not plain PGD on the training loss
    assert (ours - x).abs().max() <= 0.05 + 1e-6 and 0 <= ours.min() and ours.max() <= 1
    with torch.no_grad():
        assert _pixel_ce(net(ours), y) > _pixel_ce(net(x), y)


def test_segpgd_at_contract_and_pass_counts():
    generator = torch.Generator().manual_seed(0)
    net, x, y = _segmenter().train(), torch.rand(6, 3, 8, 8, generator=generator), _masks(generator)
    obj = build_objective("segpgd-at", eps=0.05, steps=4, ignore_index=255)
    loss = obj(net, x, y, _pixel_ce)
    assert all(p.grad is None for p in net.parameters())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert obj.counts == {"forward": 5, "backward": 5}


def test_segpgd_at_on_a_classifier_is_one_line(tmp_path, capsys):
    from fault_helpers import assert_one_line, run_cli

    code, _, err = run_cli(capsys, "train", "--adv-train", "segpgd-at", "--train-eps", "0.1", "--models-dir", tmp_path,
                           "--quiet")
    assert_one_line(code, err, "--task segmentation")
