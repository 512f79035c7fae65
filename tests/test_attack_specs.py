"""Attack specs on the command line: NAME or NAME(key=value, ...), in a comma-separated list."""
from __future__ import annotations

import pytest

from robustcv.errors import UserError
from robustcv.evaluation.attacking import build_attack, parse_attack_spec, split_attack_list
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
