"""Binary metrics against scikit-learn; merged batches equal one pass; the edge cases."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from robustcv.metrics.binary import BinaryState, auroc, binary_metrics

sk = pytest.importorskip("sklearn.metrics")


def _data(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    logits = labels * 1.5 - 0.75 + torch.randn(n, generator=g) * 1.5
    logits[::7] = logits[::7].round()  # ties, which AUROC counts half
    return logits, labels


def _sklearn(logits: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, float]:
    y, s = labels.numpy(), logits.double().numpy()
    pred = (s > threshold).astype(int)
    return {
        "accuracy": sk.accuracy_score(y, pred),
        "auroc": sk.roc_auc_score(y, s),
        "precision": sk.precision_score(y, pred, zero_division=0),
        "recall": sk.recall_score(y, pred, zero_division=0),
        "f1": sk.f1_score(y, pred, zero_division=0),
    }


@pytest.mark.parametrize("threshold", [0.0, 0.8, -1.2])
def test_matches_sklearn(threshold):
    logits, labels = _data()
    ours = binary_metrics(logits, labels, threshold)
    for name, value in _sklearn(logits, labels, threshold).items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name
    tn, fp, fn, tp = sk.confusion_matrix(labels.numpy(), (logits > threshold).int().numpy()).ravel()
    assert (ours["tp"], ours["fp"], ours["tn"], ours["fn"]) == (tp, fp, tn, fn)
    assert ours["n"] == len(labels) and ours["threshold"] == threshold


def test_auroc_of_saturated_scores_uses_the_logits():
    logits = torch.tensor([30.0, 40.0, 50.0, -5.0])  # sigmoid rounds the first three to 1.0
    labels = torch.tensor([0, 1, 1, 0])
    assert auroc(logits, labels) == pytest.approx(sk.roc_auc_score(labels.numpy(), logits.numpy()))
    assert auroc(logits, labels) == 1.0


def test_merged_batches_equal_one_pass():
    logits, labels = _data(n=301)
    whole = BinaryState(("even", "odd"), threshold=0.3).update(logits, labels).compute()
    parts = [BinaryState(("even", "odd"), threshold=0.3).update(z, y)
             for z, y in zip(logits.split(64), labels.split(64))]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged + part
    assert merged.compute() == whole
    assert merged.accuracy == pytest.approx(whole["accuracy"])


def test_column_logits_equal_flat_logits():
    logits, labels = _data()
    assert (BinaryState().update(logits[:, None], labels).compute()
            == BinaryState().update(logits, labels).compute())


def test_one_class_only_gives_nan_auroc():
    report = BinaryState().update(torch.tensor([0.5, -0.2, 1.0]), torch.ones(3, dtype=torch.long)).compute()
    assert math.isnan(report["auroc"])
    assert report["recall"] == pytest.approx(2 / 3) and report["precision"] == 1.0


def test_no_positive_predicted_gives_zero_precision_without_warning():
    logits, labels = -torch.rand(20) - 0.1, torch.tensor([0, 1] * 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = BinaryState().update(logits, labels).compute()
    assert report["precision"] == 0.0 and report["recall"] == 0.0 and report["f1"] == 0.0
    assert report["accuracy"] == 0.5 and report["tn"] == 10 and report["fn"] == 10


def test_empty_state():
    report = BinaryState().compute()
    assert report["n"] == 0 and report["accuracy"] == 0.0 and math.isnan(report["auroc"])
    assert BinaryState().accuracy == 0.0


@pytest.mark.parametrize("logits, labels, message", [
    (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), "one logit"),
    (torch.zeros(4), torch.tensor([0, 1, 2, 1]), "0 or 1"),
    (torch.zeros(4), torch.zeros(3, dtype=torch.long), "4 logits but 3 labels"),
], ids=["two-logit-head", "label-2", "sizes"])
def test_bad_batches_are_refused(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        BinaryState().update(logits, labels)


def test_two_class_names_required():
    with pytest.raises(ValueError, match="2 classes"):
        BinaryState(("a", "b", "c"))


def test_auroc_matches_sklearn_on_random_ties():
    rng = np.random.default_rng(1)
    scores = torch.from_numpy(rng.integers(0, 5, 500).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 2, 500))
    assert auroc(scores, labels) == pytest.approx(sk.roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-12)
