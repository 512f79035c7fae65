"""Degenerate models and test sets: non-finite outputs, a model no better than chance, too few
samples. Each gets a failed *blocking* sanity check in results.json and a verdict in the report
that never says "robust" (an untrained model is trivially hard to fool further)."""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import pytest
import torch

from fault_helpers import CHEAP_ATTACK, digits_checkpoint, run_cli
from robustcv.evaluation.evidence import CHANCE_CHECK, FINITE_CHECK, SAMPLES_CHECK
from robustcv.report.queries import Headline, verdict
from robustcv.results import RunResults
from test_report import markdown_table


def nan_weights(net: torch.nn.Module) -> None:
    for p in net.parameters():
        p.fill_(math.nan)


def constant(net: torch.nn.Module) -> None:
    """Every input gets class 0: zero weights, a bias on the last layer only."""
    for p in net.parameters():
        p.zero_()
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.bias[0] = 5.0


class Degenerate(NamedTuple):
    name: str
    edit: Callable[[torch.nn.Module], None]
    n: int
    failed: set[str]


CASES = [
    Degenerate("nan weights", nan_weights, 40, {FINITE_CHECK, CHANCE_CHECK}),
    Degenerate("constant classifier", constant, 40, {CHANCE_CHECK}),
    Degenerate("constant classifier on four samples", constant, 4, {SAMPLES_CHECK, CHANCE_CHECK}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_degenerate_model_fails_a_blocking_check_and_is_not_called_robust(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    checkpoint = digits_checkpoint(tmp_path / "models" / "ck", case.edit)
    code, _, err = run_cli(capsys, "attack", "--checkpoint", checkpoint, "--n", case.n, "--out", "run",
                           "--report-dir", "report", *CHEAP_ATTACK)
    assert code == 0, err
    results = RunResults.load(tmp_path / "run" / "results.json")
    failed = {c.name for c in results.sanity_checks if c.blocking and not c.passed}
    assert failed == case.failed, [(c.name, c.detail) for c in results.sanity_checks]
    _, rows = markdown_table((tmp_path / "report" / "report.md").read_text("utf-8"), "Run", "Model", "Defense")
    (row,) = rows
    assert row[-1].startswith("inconclusive") and "robust" not in row[-1].lower(), row[-1]


def test_a_working_model_passes_the_blocking_checks():
    """Control: the checks are not failed by a model that does better than chance on enough samples."""
    from robustcv.evaluation.evidence import chance_check, sample_count_check

    labels = torch.arange(40) % 4
    assert chance_check("m", "none", labels < 4, labels).passed  # all 40 right; chance 0.25
    assert not chance_check("m", "none", labels == 0, labels).passed  # right on one class only: chance
    assert sample_count_check("m", 30).passed and not sample_count_check("m", 29).passed


HEADLINE = Headline(run="r", model="m", defense="none", eps=0.1, clean=1.0, robust=1.0, attack="PGD",
                    fooled=0.0, worst_case=True, naive_robust=None)


@pytest.mark.parametrize("blocking", [[SAMPLES_CHECK], [FINITE_CHECK], [CHANCE_CHECK], [SAMPLES_CHECK, CHANCE_CHECK]])
def test_verdict_gives_no_verdict_when_a_blocking_check_failed(blocking):
    line = verdict(HEADLINE, failed_checks=len(blocking), blocking=blocking)
    assert line.startswith("inconclusive") and "robust" not in line.lower(), line
    assert all(name in line for name in blocking)
    assert verdict(HEADLINE).startswith("robust at eps 0.1")  # the same figures, checks passed
