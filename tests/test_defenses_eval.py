"""Defenses against real attacks on a tiny digits model: BPDA beats gradient masking, EOT beats
randomness, the denoiser learns, adversarial training buys robustness."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from defenses import (
    DefendedModel, RandomResizePad, attack_defended, defended_accuracy, eot_model, parse_defense,
)
from defenses.adversarial import FGSMRS, PGDAT, TRADES, build_objective
from defenses.denoiser import Denoiser, load_denoiser, save_denoiser, train_denoiser


def _pgd(steps=10):
    from attacks import PGD

    return PGD(norm="linf", steps=steps)


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def _fit(model, x, y, steps=150, objective=None, augment=None, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(steps):
        xb, yb = (x, y) if augment is None else (torch.cat([x, augment(x)]), torch.cat([y, y]))
        loss = F.cross_entropy(model(xb), yb) if objective is None else objective(model, xb, yb, F.cross_entropy)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1200], perm[1200:1400]
    return x[tr], y[tr], x[te], y[te]


@pytest.fixture(scope="module")
def model(digits):
    xtr, ytr, xte, yte = digits
    m = _fit(_mlp(), xtr, ytr)
    assert (m(xte).argmax(1) == yte).float().mean() > 0.9
    return m


# Measured (200 test digits, eps 0.2, PGD-10): naive stays near clean accuracy, BPDA drops it.
@pytest.mark.parametrize("spec", ["bitdepth:2", "jpeg:75"])
def test_bpda_breaks_gradient_masking(spec, digits, model):
    _, _, x, y = digits
    x, y = x[:100], y[:100]
    defended = DefendedModel(parse_defense(spec), model)
    clean = defended_accuracy(defended, x, y)
    torch.manual_seed(1)
    naive = defended_accuracy(defended, attack_defended(_pgd(), defended, x, y, 0.2, "naive"), y)
    torch.manual_seed(1)
    bpda = defended_accuracy(defended, attack_defended(_pgd(), defended, x, y, 0.2, "bpda"), y)
    print(f"{spec}: clean {clean:.2f} naive {naive:.2f} bpda {bpda:.2f}")
    assert naive >= clean - 0.1  # the zero gradient leaves naive PGD stuck near its random start
    assert bpda <= naive and bpda <= 0.5 * clean


def test_eot_at_least_as_strong_as_single_draw(digits):
    xtr, ytr, x, y = digits
    rp = RandomResizePad(0.7)
    m = _fit(_mlp(), xtr, ytr, augment=rp)
    defended = DefendedModel(rp, m)
    accs = {}
    for mode in ("naive", "eot"):
        torch.manual_seed(2)
        accs[mode] = defended_accuracy(defended, attack_defended(_pgd(), defended, x, y, 0.1, mode, samples=8), y)
    print(accs)
    # Verdicts are single random draws, so allow 0.03 (6 of 200) of sampling noise.
    assert accs["eot"] <= accs["naive"] + 0.03
    assert accs["eot"] < defended_accuracy(defended, x, y) - 0.2


def test_eot_model_averages_batched_draws(digits, model):
    _, _, x, _ = digits
    defended = DefendedModel(RandomResizePad(0.7), model)
    eot = eot_model(defended, samples=4)
    torch.manual_seed(3)
    out = eot(x[:5])
    torch.manual_seed(3)
    draws = defended.defense(x[:5].repeat(4, 1, 1, 1))
    torch.testing.assert_close(out, model(draws).view(4, 5, 10).mean(0))


# --- denoiser -----------------------------------------------------------------------------

def test_denoiser_save_load_bit_exact(tmp_path):
    den = Denoiser(3, width=8, depth=3)
    for p in den.parameters():
        nn.init.normal_(p)
    save_denoiser(den, tmp_path / "den")
    back = parse_defense(f"denoiser:{tmp_path / 'den'}")
    assert not any(p.suffix == ".pt" for p in (tmp_path / "den").iterdir())
    for (k, a), (k2, b) in zip(den.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(den(x), back(x)) and back.differentiable
    assert load_denoiser(tmp_path / "den" / "denoiser.safetensors").width == 8


def test_denoiser_corrupt_file_is_value_error(tmp_path):
    save_denoiser(Denoiser(1, 4, 2), tmp_path)
    (tmp_path / "denoiser.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError):
        parse_defense(f"denoiser:{tmp_path}")


def test_denoiser_training_reduces_adversarial_mse(digits, model):
    xtr, ytr, x, y = digits
    x_adv = _pgd(5)(model, x, y, 0.1)
    before = F.mse_loss(Denoiser(1)(x_adv), x).item()  # a fresh denoiser is the identity
    den = train_denoiser(model, (xtr[:600], ytr[:600]), _pgd(5), eps=0.1, epochs=4, batch_size=100, lr=3e-3)
    after = F.mse_loss(den(x_adv), x).item()
    print(f"denoiser adversarial MSE {before:.4f} -> {after:.4f}", den.history)
    assert after < 0.7 * before
    assert den.history[-1]["loss"] < den.history[0]["loss"]
