"""Multi-label evaluation: metrics from label margins, flip rates, the per-image worst case, cascade
inheritance, and records that do not depend on sharding or the batch size."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from attacks.objectives import Multilabel
from defenses import parse_defense
from robustcv.data.base import DataInfo
from robustcv.evaluation.config import EvalConfig
from robustcv.tasks.multilabel import DEFAULT_ATTACKS as DEFAULT_MULTILABEL_ATTACKS
from robustcv.evaluation.defense_run import defense_records, evaluate_defense, merge_runs, shard_state
from robustcv.evaluation.multilabel import flip_rates, margin_metrics
from robustcv.metrics.multilabel import worst_margins
from robustcv.evaluation.samples import Samples
from robustcv.metrics.multilabel import multilabel_metrics
from robustcv.tasks import Task

K = 4
THRESHOLDS = [0.4, 0.5, 0.6, 0.5]
CLASSES = ("a", "b", "c", "d")


def test_margin_metrics_equal_the_probability_metrics_at_per_class_thresholds():
    g = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(60, K, generator=g)
    labels = (torch.rand(60, K, generator=g) < 0.5).long()
    objective = Multilabel(thresholds=torch.tensor(THRESHOLDS))
    from_margins = margin_metrics(objective.margins(logits), labels)
    reference = multilabel_metrics(torch.sigmoid(logits), labels, THRESHOLDS)
    for key in ("map", "f1_macro", "f1_micro", "hamming_loss", "exact_match"):
        assert from_margins[key] == pytest.approx(reference[key], abs=1e-9), key


def test_flip_rates_count_right_clean_decisions_turned_wrong():
    labels = torch.tensor([[1, 0], [1, 1], [0, 0], [0, 1]])
    clean = torch.tensor([[2.0, -1.0], [1.0, -1.0], [-1.0, -1.0], [-3.0, 1.0]])  # (1, 1) is wrong already
    attacked = torch.tensor([[-1.0, 1.0], [1.0, 1.0], [1.0, -1.0], [-3.0, 1.0]])
    rates, counts = flip_rates(clean, attacked, labels)
    # class 0 right on all four; flipped on rows 0 and 2. class 1 right on rows 0, 2, 3; flipped on row 0.
    assert counts.tolist() == [4, 3] and rates.tolist() == pytest.approx([0.5, 1 / 3])


def test_worst_margins_prefer_a_fooled_image_then_the_least_confidence():
    correct = torch.tensor([[True, True, False], [False, True, False]])  # [A=2, N=3]
    confidence = torch.tensor([[0.9, 0.2, 0.5], [0.95, 0.6, 0.5]])
    margins = torch.stack([torch.full((3, K), 0.0), torch.full((3, K), 1.0)])
    chosen = worst_margins(correct, confidence, margins)[:, 0].tolist()
    assert chosen == [1.0, 0.0, 0.0]  # fooled beats confident; lower confidence; a tie goes to the first


# ----------------------------------------------------------------------------- the attack stage
@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, K)).eval()
    x = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    objective = Multilabel(thresholds=torch.tensor(THRESHOLDS))
    with torch.no_grad():
        y = objective.decisions(model(x)).long()
    y[::4, 0] = 1 - y[::4, 0]  # some images wrong on clean input
    info = DataInfo(name="toy", task=Task.MULTILABEL, classes=CLASSES, channels=3, image_size=(8, 8), mean=(0.5,) * 3,
                    std=(0.25,) * 3)
    config = EvalConfig(attacks=list(DEFAULT_MULTILABEL_ATTACKS), eps=[0.0, 0.01, 0.03, 0.1], headline_eps=0.03,
                        steps=5, apgd_steps=5, natural=[], n=12, batch_size=5, seed=3)
    return model, Samples(x, y), objective, info, config


def _evaluate(setup, samples=None, **changes):
    import dataclasses

    model, all_samples, objective, _, config = setup
    return evaluate_defense("none", parse_defense("none"), model, samples or all_samples, objective,
                            dataclasses.replace(config, **changes), torch.device("cpu"))


def test_eps_zero_margins_are_the_clean_margins_and_exact_match_is_monotone(setup):
    model, samples, objective, _, _ = setup
    run = _evaluate(setup)
    with torch.no_grad():
        clean = objective.margins(model(samples.x))
    assert torch.allclose(run.clean_margins, clean, atol=1e-6)
    for outcome in run.outcomes + [run.worst]:
        assert torch.allclose(outcome.label_margins[0], clean, atol=1e-6)
        assert torch.equal(outcome.correct[0], run.clean_correct)
        assert (outcome.correct[1:] <= outcome.correct[:-1]).all()  # fooled stays fooled
    assert not run.worst.correct[-1].any()  # eps 0.1 breaks every label set of this linear model


def test_a_cascade_step_inherits_the_margins_of_what_earlier_attacks_fooled(setup):
    run = _evaluate(setup)
    fgsm, pgd, apgd = run.outcomes
    assert apgd.extra["cascade"]
    fooled_before = ~(fgsm.correct & pgd.correct)
    by_fgsm = fooled_before & ~fgsm.correct
    assert by_fgsm.any()
    assert torch.equal(apgd.label_margins[by_fgsm], fgsm.label_margins[by_fgsm])
    assert (apgd.label_margins[by_fgsm] > 0).ne(setup[1].y.bool().expand(4, -1, -1)[by_fgsm]).any(dim=1).all()


def _measured(records) -> list[tuple]:
    return [(r.attack, r.eps, r.metric, r.cls, r.n, r.value) for r in records]


def test_records_do_not_depend_on_shards_or_batch_size(setup):
    _, samples, _, info, _ = setup
    whole = _evaluate(setup)
    shards = [_evaluate(setup, samples.part(slice(0, 7))), _evaluate(setup, samples.part(slice(7, 12)))]
    merged = merge_runs(shards[0], [shard_state(s) for s in shards])
    rebatched = _evaluate(setup, batch_size=12)
    expected, min_eps = defense_records(whole, "toy", samples, info, targeted=False)
    for other in (merged, rebatched):
        records, other_min_eps = defense_records(other, "toy", samples, info, targeted=False)
        assert _measured(records) == _measured(expected)
        assert [m.values for m in other_min_eps] == [m.values for m in min_eps]
    metrics = {r.metric for r in expected}
    assert {"clean_accuracy", "clean_map", "robust_accuracy", "map", "f1_macro", "hamming_loss",
            "class_flip_rate"} <= metrics
    assert min_eps[0].labels == samples.y.sum(dim=1).tolist()
