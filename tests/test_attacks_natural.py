"""Natural-transformation sweeps: identity at 0, worst case bounded, shape and range kept."""
from __future__ import annotations

import pytest
import torch

from attack_helpers import accuracy, trained_digits
from attacks.natural import Translate, get_natural, list_natural, natural_sweep

NAMES = ["translate", "rotate", "noise", "blur", "brightness"]


@pytest.fixture(scope="module")
def digits():
    d = trained_digits()
    return d.model, d.x[:200], d.y[:200]


def test_catalog():
    assert list_natural() == sorted(NAMES)
    with pytest.raises(ValueError, match="unknown natural"):
        get_natural("fog")


@pytest.mark.parametrize("name", NAMES)
def test_sweep_invariants(name, digits):
    model, x, y = digits
    transform = get_natural(name)
    assert transform.default_grid[0] == 0
    res = natural_sweep(model, x, y, transform, transform.default_grid, generator=torch.Generator().manual_seed(0))
    assert res.accuracy[0] == pytest.approx(accuracy(model, x, y))
    assert res.correct.shape == (len(res.values), len(x))
    assert all(res.worst_case_accuracy <= a for a in res.accuracy)
    assert res.worst_case_accuracy == pytest.approx(float(res.correct.all(0).float().mean()))
    assert res.accuracy[-1] < res.accuracy[0]  # the largest value of every default grid hurts


@pytest.mark.parametrize("name", NAMES)
def test_apply_keeps_shape_range_and_input(name, digits):
    _, x, _ = digits
    transform = get_natural(name)
    before, version = x.clone(), x._version
    for value in transform.default_grid:
        for variant in transform.variants(value):
            out = transform.apply(x, variant, torch.Generator().manual_seed(0))
            assert out.shape == x.shape and out.dtype == x.dtype
            assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(transform.apply(x, 0, None), x)
    assert x._version == version and torch.equal(x, before)


def test_translate_moves_pixels_and_noise_is_seeded():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = 1.0
    assert Translate().apply(x, (2, 1))[0, 0, 2, 3] == 1.0
    assert Translate().apply(x, 1)[0, 0, 1, 2] == 1.0
    assert Translate().apply(x, 9).sum() == 0
    noise = get_natural("noise")
    a = noise.apply(x, 0.1, torch.Generator().manual_seed(1))
    b = noise.apply(x, 0.1, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_rotate_matches_rot90():
    x = torch.rand(2, 3, 9, 9)
    out = get_natural("rotate").apply(x, 90.0)
    assert torch.allclose(out, torch.rot90(x, k=1, dims=(-2, -1)), atol=1e-5) or \
        torch.allclose(out, torch.rot90(x, k=-1, dims=(-2, -1)), atol=1e-5)


def test_blur_preserves_constant_image():
    x = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(get_natural("blur").apply(x, 1.5), x)
