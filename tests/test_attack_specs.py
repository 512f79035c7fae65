"""Attack specs on the command line: NAME or NAME(key=value, ...), in a comma-separated list."""
from __future__ import annotations

import pytest

from robustcv.errors import UserError
from attacks.specs import parse_attack_spec, split_attack_list
from robustcv.evaluation.attacking import build_attack
from robustcv.evaluation.config import EvalConfig


def test_split_keeps_commas_inside_parentheses():
    text = "fgsm, pgd(steps=40, restarts=2) ,foolbox:L2CarliniWagnerAttack(steps=50, confidence=0.5),"
    assert split_attack_list(text) == ["fgsm", "pgd(steps=40, restarts=2)",
                                       "foolbox:L2CarliniWagnerAttack(steps=50, confidence=0.5)"]


def test_parse_literals_and_bare_strings():
    name, kwargs = parse_attack_spec("pgd(steps=40, random_start=False, loss=margin, step_size=0.01)")
    assert name == "pgd"
    assert kwargs == {"steps": 40, "random_start": False, "loss": "margin", "step_size": 0.01}
    assert parse_attack_spec("fgsm") == ("fgsm", {})


@pytest.mark.parametrize("spec", ["pgd(3)", "pgd(=3)", "pgd(steps=1", "pgd)(", "pgd(stepz=3)"])
def test_bad_specs_are_user_errors(spec):
    with pytest.raises(UserError):
        build_attack(spec, EvalConfig(eps=[0.0, 0.1], headline_eps=0.1))


def test_spec_arguments_win_over_the_run_settings():
    attack = build_attack("pgd(steps=7, rel_step_size=0.5)", EvalConfig(eps=[0.0, 0.1], headline_eps=0.1, steps=20))
    assert attack.steps == 7
    assert attack.step_for(0.1) == pytest.approx(0.05)
    assert build_attack("pgd", EvalConfig(eps=[0.0, 0.1], headline_eps=0.1, steps=20)).steps == 20


def test_targeted_success_counts_hits_after_a_misclassification():
    """A sample misclassified at a small eps but sent to its target only at a larger one counts as
    a hit there (the kept adversarial is the first misclassified one, the hit is tracked apart)."""
    import torch

    from robustcv.evaluation.outcome import OutcomeBuilder, worst_case

    builder = OutcomeBuilder("pgd", False, [0.0, 0.1, 0.2], "linf", headline_index=1)
    x, y, target = torch.zeros(2, 1, 2, 2), torch.tensor([0, 0]), torch.tensor([2, 2])
    logits = [torch.tensor([[5.0, 0, 0], [5.0, 0, 0]]),   # eps 0: both correct
              torch.tensor([[0, 5.0, 0], [5.0, 0, 0]]),   # eps 0.1: sample 0 fooled into class 1
              torch.tensor([[0, 0, 5.0], [0, 0, 5.0]])]   # eps 0.2: both reach the target
    builder.add_batch(x, y, [x, x + 0.1, x + 0.2], logits, target, [0.0, 0.0, 0.0])
    outcome = builder.build()
    assert outcome.hit_target.float().mean(1).tolist() == [0.0, 0.0, 1.0]
    assert outcome.correct.float().mean(1).tolist() == [1.0, 0.5, 0.0]
    assert worst_case([outcome]).hit_target.float().mean(1).tolist() == [0.0, 0.0, 1.0]
