"""Multi-label metrics equal scikit-learn's and torchmetrics' on random scores."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from robustcv.metrics import MultilabelState
from robustcv.metrics.multilabel import multilabel_metrics
from robustcv.tasks import get_task

K = 5
CLASSES = tuple(f"c{k}" for k in range(K))


def _scores_labels(seed: int, n: int = 40, absent: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores that agree with the labels better than chance, every class positive somewhere
    (except ``absent``), and some tied scores (AP's tie handling must match)."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, K, generator=g) < 0.4).long()
    labels[:K, :] = torch.eye(K, dtype=torch.long)
    if absent is not None:
        labels[:, absent] = 0
    logits = 1.5 * (2 * labels.float() - 1) + torch.randn(n, K, generator=g)
    scores = torch.sigmoid(logits)
    scores[::7] = torch.round(scores[::7] * 4) / 4  # ties
    return scores, labels


def test_ap_and_map_equal_scikit_learn_average_precision():
    scores, labels = _scores_labels(0)
    report = multilabel_metrics(scores, labels, 0.5, CLASSES)
    reference = skm.average_precision_score(labels.numpy(), scores.numpy(), average=None)
    assert [report["per_class_ap"][c] for c in CLASSES] == pytest.approx(list(reference), abs=1e-12)
    assert report["map"] == pytest.approx(skm.average_precision_score(labels.numpy(), scores.numpy(),
                                                                      average="macro"), abs=1e-12)


def test_ap_equals_torchmetrics_multilabel_average_precision():
    torchmetrics = pytest.importorskip("torchmetrics")
    scores, labels = _scores_labels(1)
    report = multilabel_metrics(scores, labels, 0.5, CLASSES)
    per_class = torchmetrics.classification.MultilabelAveragePrecision(K, average="none", thresholds=None)
    assert [report["per_class_ap"][c] for c in CLASSES] == pytest.approx(per_class(scores, labels).tolist(), abs=1e-6)
    macro = torchmetrics.classification.MultilabelAveragePrecision(K, average="macro", thresholds=None)
    assert report["map"] == pytest.approx(float(macro(scores, labels)), abs=1e-6)


def test_a_class_without_positives_has_no_ap_and_is_left_out_of_the_mean():
    scores, labels = _scores_labels(2, absent=3)
    report = multilabel_metrics(scores, labels, 0.5, CLASSES)
    assert report["per_class_ap"]["c3"] is None
    kept = [k for k in range(K) if k != 3]
    expected = skm.average_precision_score(labels[:, kept].numpy(), scores[:, kept].numpy(), average="macro")
    assert report["map"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("thresholds", [0.5, [0.3, 0.5, 0.7, 0.4, 0.6]], ids=["global", "per-class"])
def test_f1_hamming_and_exact_match_equal_scikit_learn(thresholds):
    scores, labels = _scores_labels(3)
    report = multilabel_metrics(scores, labels, thresholds, CLASSES)
    predicted = (scores.numpy() > np.asarray(thresholds)).astype(int)
    truth = labels.numpy()
    assert report["f1_micro"] == pytest.approx(skm.f1_score(truth, predicted, average="micro"), abs=1e-12)
    assert report["f1_macro"] == pytest.approx(skm.f1_score(truth, predicted, average="macro"), abs=1e-12)
    assert report["hamming_loss"] == pytest.approx(skm.hamming_loss(truth, predicted), abs=1e-12)
    assert report["exact_match"] == pytest.approx(skm.accuracy_score(truth, predicted), abs=1e-12)
    assert report["accuracy"] == report["exact_match"]


def test_per_class_thresholds_change_the_decisions():
    scores, labels = _scores_labels(4)
    low = multilabel_metrics(scores, labels, 0.05, CLASSES)
    high = multilabel_metrics(scores, labels, 0.95, CLASSES)
    assert low["hamming_loss"] != high["hamming_loss"]
    assert low["map"] == high["map"]  # AP does not depend on the threshold


def test_state_merges_batches_and_reads_thresholds_from_the_task_settings():
    scores, labels = _scores_labels(5)
    logits = torch.logit(scores.double()).float()
    info = type("Info", (), {"classes": CLASSES})()
    thresholds = [0.3, 0.5, 0.7, 0.4, 0.6]
    left = get_task("multilabel").accumulator(info, thresholds=thresholds).update(logits[:17], labels[:17])
    right = get_task("multilabel").accumulator(info, thresholds=thresholds).update(logits[17:], labels[17:])
    merged = (left + right).compute()
    whole = multilabel_metrics(torch.sigmoid(logits), labels, thresholds, CLASSES)
    assert merged["n"] == len(labels)
    for key in ("map", "f1_micro", "f1_macro", "hamming_loss", "exact_match"):
        assert merged[key] == pytest.approx(whole[key], abs=1e-6)
    assert (left + right).accuracy == pytest.approx(whole["exact_match"], abs=1e-9)


def test_empty_state_gives_nan_not_an_error():
    report = MultilabelState(CLASSES).compute()
    assert report["n"] == 0 and math.isnan(report["map"])
