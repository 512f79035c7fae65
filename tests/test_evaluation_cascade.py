"""The cascade (AutoAttack's scheme): a later attack runs only on what earlier ones left robust."""
from __future__ import annotations

import pytest
import torch

from attack_helpers import trained_digits
from attacks.objectives import Classification
from defenses import parse_defense
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.defense_run import evaluate_defense
from robustcv.evaluation.outcome import worst_case
from robustcv.evaluation.samples import Samples

CPU = torch.device("cpu")
EPS = [0.0, 0.05, 0.1, 0.2]


@pytest.fixture(scope="module")
def digits():
    data = trained_digits()
    return data.model, Samples(data.x[:150], data.y[:150])


def _run(model, samples, attacks, cascade):
    config = EvalConfig(attacks=attacks, cascade=cascade, eps=EPS, headline_eps=0.1, steps=10, natural=[])
    return evaluate_defense("none", parse_defense("none"), model, samples, Classification(), config, CPU)


def test_cascade_step_attacks_only_survivors_and_is_cumulative(digits):
    model, samples = digits
    alone = _run(model, samples, ["fgsm", "pgd(restarts=2)"], cascade=[])
    chained = _run(model, samples, ["fgsm", "pgd(restarts=2)"], cascade=["pgd"])
    fgsm, pgd_alone = alone.outcomes
    _, pgd_chained = chained.outcomes
    assert pgd_chained.extra["cascade"] and not pgd_alone.extra["cascade"]
    # Cumulative: never above FGSM's curve or PGD's own one, and the worst case is unchanged
    # (random starts are keyed per sample, so a survivor meets the same attack either way).
    assert not (pgd_chained.correct & ~fgsm.correct).any()
    assert torch.equal(chained.worst.correct, pgd_chained.correct)
    assert torch.equal(chained.worst.correct, worst_case([fgsm, pgd_alone]).correct)
    # Cheaper: samples FGSM fooled are not attacked again.
    assert pgd_chained.grad_calls < pgd_alone.grad_calls


def test_first_attack_is_never_a_cascade_step(digits):
    model, samples = digits
    run = _run(model, samples, ["pgd"], cascade=["pgd"])
    assert not run.outcomes[0].extra["cascade"]
