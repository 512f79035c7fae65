"""Square (attacks/square.py): today's default search kept bit for bit, AutoAttack's settings in
L∞, L2 and L1 checked against the authors' code (``pyautoattack``) on the same digits samples."""
from __future__ import annotations

import hashlib

import pytest
import torch

from attacks import Square
from tests.attack_helpers import trained_digits


def _digest(x: torch.Tensor, x_adv: torch.Tensor, eps: float) -> str:
    """A fingerprint of the perturbation in units of eps (rounded: robust to the last float bit)."""
    steps = torch.round((x_adv - x) / eps * 1000).to(torch.int32)
    return hashlib.sha256(steps.numpy().tobytes()).hexdigest()[:16]


# Recorded on the code before AutoAttack's settings joined (commit 3897249): the evaluation's
# masking indicator runs Square with its defaults, and its numbers must not move.
DEFAULT_DIGESTS = [
    # (keys, queries, p_init, seed, eps) -> digest
    ((None, 300, 0.05, 0, 0.1), "3be3e647effc451c"),
    ((None, 50, 0.3, 3, 0.05), "aed7c08258b40b8d"),
    ((100, 300, 0.05, 0, 0.1), "c00f4537efbccd51"),
    ((100, 50, 0.3, 3, 0.05), "e3ed36d57687211c"),
]


@pytest.mark.parametrize("setting, digest", DEFAULT_DIGESTS, ids=[str(s) for s, _ in DEFAULT_DIGESTS])
def test_default_square_gives_exactly_todays_output(setting, digest):
    key_start, queries, p_init, seed, eps = setting
    digits = trained_digits()
    x, y = digits.x[:32], digits.y[:32]
    keys = None if key_start is None else torch.arange(key_start, key_start + 32)
    x_adv = Square(queries=queries, p_init=p_init, seed=seed)(digits.model, x, y, eps=eps, keys=keys)
    assert _digest(x, x_adv, eps) == digest
