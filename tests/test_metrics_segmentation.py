"""Segmentation metrics from one confusion matrix equal torchmetrics' and a direct numpy count."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustcv.metrics import SegmentationState

torchmetrics = pytest.importorskip("torchmetrics")
K, IGNORE, ABSENT = 5, 255, 3  # class 3 is in neither target nor prediction


def _random_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, K, (4, 16, 16), generator=g)
    target[target == ABSENT] = 0
    target[torch.rand(target.shape, generator=g) < 0.15] = IGNORE
    logits = torch.randn(4, K, 16, 16, generator=g)
    logits[:, ABSENT] = -1e3
    agree = torch.rand(target.shape, generator=g) < 0.6  # a better than random predictor
    logits.scatter_add_(1, target.clamp_max(K - 1).unsqueeze(1), 10.0 * agree.unsqueeze(1).float())
    return logits, target


def _numpy_iou(pred: np.ndarray, target: np.ndarray) -> dict[int, float]:
    valid = target != IGNORE
    ious = {}
    for c in range(K):
        inter = np.sum((pred == c) & (target == c) & valid)
        union = np.sum(((pred == c) | (target == c)) & valid)
        if union:
            ious[c] = inter / union
    return ious


def _state(batches) -> SegmentationState:
    state = SegmentationState([f"c{i}" for i in range(K)], ignore_index=IGNORE)
    for logits, target in batches:
        state.update(logits, target)
    return state


def test_miou_per_class_iou_and_pixel_accuracy_match_references():
    batches = [_random_batch(seed) for seed in range(3)]
    metrics = _state(batches).compute()
    logits, target = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    pred = logits.argmax(1)

    jaccard = torchmetrics.classification.MulticlassJaccardIndex(K, average="none", ignore_index=IGNORE)
    reference = jaccard(pred, target)
    ious = _numpy_iou(pred.numpy(), target.numpy())
    per_class = metrics["per_class_iou"]
    assert per_class[f"c{ABSENT}"] is None  # absent from target and prediction: no IoU at all
    for c in range(K):
        if c != ABSENT:
            assert per_class[f"c{c}"] == pytest.approx(float(reference[c]), abs=1e-6)
            assert per_class[f"c{c}"] == pytest.approx(ious[c], abs=1e-9)
    assert metrics["miou"] == pytest.approx(np.mean(list(ious.values())), abs=1e-9)

    accuracy = torchmetrics.classification.MulticlassAccuracy(K, average="micro", ignore_index=IGNORE)
    assert metrics["pixel_accuracy"] == pytest.approx(float(accuracy(pred, target)), abs=1e-6)
    assert metrics["n"] == int((target != IGNORE).sum())


def test_batch_states_merge_by_addition():
    batches = [_random_batch(seed) for seed in range(4)]
    whole = _state(batches).compute()
    merged = (_state(batches[:1]) + _state(batches[1:])).compute()
    assert merged["confusion_matrix"] == whole["confusion_matrix"]
    assert merged["miou"] == pytest.approx(whole["miou"])


def test_only_ignored_pixels_give_no_miou():
    state = SegmentationState(["a", "b"], ignore_index=IGNORE)
    state.update(torch.randn(1, 2, 4, 4), torch.full((1, 4, 4), IGNORE))
    assert math.isnan(state.compute()["miou"]) and state.compute()["n"] == 0
