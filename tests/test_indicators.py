"""Indicators of attack failure (Pintor et al. 2022): each fires on the failure it names, stays
clear on a sound attack, and a fired one turns the report's verdict into "inconclusive"."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from attacks import PGD
from attacks.objectives import as_objective
from robustcv.attack_failures import INDICATORS, inconclusive_reason
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.indicators import (Trace, incomplete_optimization, silent_success, traced_pgd,
                                            transfer_failure, unstable_predictions)
from robustcv.evaluation.masking import Probe
from robustcv.report.queries import Headline, verdict


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()


def _probe(model: nn.Module, judge: nn.Module | None = None, n: int = 8, reported: torch.Tensor | None = None,
           steps: int = 10) -> Probe:
    x = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    reported = torch.ones(n) if reported is None else reported
    config = EvalConfig(eps=[0.0, 0.1], headline_eps=0.1, steps=steps, seed=0)
    return Probe("m", "none", model, judge or model, x, y, reported, as_objective("ce"), config, torch.device("cpu"))


def _trace(losses: list[list[float]], fooled: list[list[bool]] | None = None, final: list[bool] | None = None,
           surrogate: list[bool] | None = None) -> Trace:
    loss = torch.tensor(losses).T  # given per sample, stored [T, B]
    b = loss.shape[1]
    fooled_t = torch.zeros_like(loss, dtype=torch.bool) if fooled is None else torch.tensor(fooled).T
    final_t = torch.zeros(b, dtype=torch.bool) if final is None else torch.tensor(final)
    return Trace(loss, fooled_t, final_t, final_t if surrogate is None else torch.tensor(surrogate))


def test_every_indicator_has_plain_words_and_broken_gradients_say_masking():
    assert len(INDICATORS) == 6
    words = inconclusive_reason(["unavailable gradients", "unconstrained attack failure", "silent success"])
    assert words.startswith("gradient masking suspected (unavailable gradients, unconstrained attack failure)")
    assert "lost adversarial examples" in words


def test_a_fired_indicator_makes_the_verdict_inconclusive():
    h = Headline(run="r", model="m", defense="none", eps=0.1, clean=0.99, robust=0.6, attack="pgd", fooled=0.4,
                 worst_case=True, naive_robust=None)
    assert verdict(h).startswith("partly robust")
    line = verdict(h, failed_checks=1, indicators=["unavailable gradients"])
    assert line.startswith("inconclusive: gradient masking suspected") and "0.6" in line


def test_silent_success_flags_a_path_that_fooled_but_ended_robust():
    trace = _trace([[1, 2, 3], [1, 2, 3]], fooled=[[False, True, False], [False, False, False]])
    check = silent_success(_probe(_linear(), n=2), trace, torch.tensor([True, True]))
    assert not check.passed and check.values["samples"] == [0] and check.indicator == "silent success"
    reported_fooled = silent_success(_probe(_linear(), n=2), trace, torch.tensor([False, True]))
    assert reported_fooled.passed  # the evaluation already counts sample 0 as fooled


def test_incomplete_optimization_flags_losses_still_rising_at_the_end():
    rising = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]] * 4
    flat = [[0, 5, 9, 10, 10, 10, 10, 10, 10, 10, 10]] * 4
    robust = torch.ones(4, dtype=torch.bool)
    probe = _probe(_linear(), n=4)
    fired = incomplete_optimization(probe, _trace(rising), robust)
    assert not fired.passed and fired.values["samples"] == [0, 1, 2, 3]
    assert incomplete_optimization(probe, _trace(flat), robust).passed


def test_transfer_failure_flags_surrogate_successes_that_do_not_transfer():
    probe = _probe(_linear(), n=4)
    trace = _trace([[0, 1]] * 4, final=[False, False, False, True], surrogate=[True, True, True, True])
    check = transfer_failure(probe, trace)
    assert not check.passed and check.values["samples"] == [0, 1, 2]
    assert transfer_failure(probe, _trace([[0, 1]] * 4, final=[True] * 4, surrogate=[True] * 4)).passed


class _Noisy(nn.Module):
    """A model whose logits carry fresh noise on every call (an unstable prediction)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _linear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + 10 * torch.randn(x.shape[0], 4)


def test_unstable_predictions_fire_on_a_noisy_model_only():
    steady = _linear()
    with torch.no_grad():
        steady[1].weight.mul_(0.01)  # far from every decision boundary: tiny noise cannot flip it
        steady[1].bias.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert unstable_predictions(_probe(steady, n=32)).passed
    noisy = _Noisy()
    check = unstable_predictions(_probe(noisy.net, judge=noisy, n=32))
    assert not check.passed and check.values["samples"]


@pytest.mark.parametrize("early_stop", [True, False])
def test_the_trace_returns_what_the_evaluations_pgd_returns(early_stop):
    model = _linear()
    probe = _probe(model, n=8, steps=6)
    trace = traced_pgd(probe, early_stop=early_stop)
    assert trace.losses.shape == (6, 8) and trace.fooled.shape == (6, 8)
    attack = PGD(steps=6, step_size=0.025, objective=as_objective("ce"), seed=0, early_stop=early_stop)
    x_adv = attack(model, probe.x, probe.y, 0.1, keys=torch.arange(8))
    with torch.no_grad():
        assert torch.equal(trace.final_fooled, model(x_adv).argmax(1) != probe.y)
    assert trace.losses[-1].mean() >= trace.losses[0].mean()  # PGD raised the loss along the way


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_each_indicator_means_something(name):
    assert len(INDICATORS[name].meaning) > 30 and INDICATORS[name].verdict
