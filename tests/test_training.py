"""Training stack: recipes, losses, class weights, batch mixing, schedules, metrics, train-if-absent."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.utils.class_weight import compute_class_weight

from robustcv.data import DataSpec
from robustcv.models import ModelSpec
from robustcv.training import Recipe, ensure_trained, spec_hash
from robustcv.training.augment import build_batch_mix
from robustcv.training.losses import balanced_class_weights, focal_loss, make_loss
from robustcv.metrics import classification_report
from robustcv.training.optim import LRSchedule


def test_recipe_json_round_trip_and_stable_hash():
    recipe = Recipe(optimizer="sgd", nesterov=True, mixup=0.2, epochs=3)
    again = Recipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
    assert again == recipe
    shuffled = dict(reversed(list(recipe.to_dict().items())))
    assert spec_hash(recipe.to_dict()) == spec_hash(shuffled)
    assert spec_hash(recipe.to_dict()) != spec_hash(Recipe(optimizer="sgd", epochs=3).to_dict())


@pytest.mark.parametrize("bad", [{"optimizer": "lbfgs"}, {"epochs": 0}, {"adv_train": "pgd-at"}, {"lr": -1.0}])
def test_recipe_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        Recipe(**bad)


def test_balanced_class_weights_match_sklearn():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 5 + [3] * 15)
    expected = compute_class_weight("balanced", classes=np.arange(4), y=labels.numpy())
    assert torch.allclose(balanced_class_weights(labels, 4).double(), torch.tensor(expected), atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_loss_at_gamma_zero_is_cross_entropy(smoothing, weighted):
    logits, target = torch.randn(32, 5), torch.randint(0, 5, (32,))
    weight = torch.rand(5) + 0.5 if weighted else None
    ours = focal_loss(logits, target, gamma=0.0, label_smoothing=smoothing, weight=weight)
    ref = F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_focal_loss_downweights_easy_examples():
    logits = torch.tensor([[6.0, 0.0], [0.2, 0.0]])
    target = torch.tensor([0, 0])
    per_ce = F.cross_entropy(logits, target, reduction="none")
    easy = focal_loss(logits[:1], target[:1], gamma=2.0) / per_ce[0]
    hard = focal_loss(logits[1:], target[1:], gamma=2.0) / per_ce[1]
    assert easy < hard < 1.0


def test_segmentation_loss_ignores_ignore_index():
    logits = torch.randn(2, 3, 4, 4)
    mask = torch.randint(0, 3, (2, 4, 4))
    mask[0, 0] = 255
    loss = make_loss("ce", family="pixel-softmax", num_classes=3, ignore_index=255)(logits, mask)
    assert torch.allclose(loss, F.cross_entropy(logits, mask, ignore_index=255), atol=1e-6)


@pytest.mark.parametrize("mixup,cutmix", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_batch_mixing_produces_soft_targets(mixup, cutmix):
    mix = build_batch_mix(mixup, cutmix, num_classes=10)
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    x_mixed, soft = mix(x, y)
    assert soft.shape == (16, 10)
    assert torch.allclose(soft.sum(1), torch.ones(16))
    assert (soft.max(1).values < 1).any(), "some targets must be mixtures"
    assert not torch.equal(x_mixed, x)
    assert build_batch_mix(0.0, 0.0, 10) is None


def test_schedules_warmup_cosine_step_onecycle():
    steps = 10
    cosine = LRSchedule(Recipe(schedule="cosine", epochs=10, warmup_epochs=2), steps)
    assert cosine.multiplier(0, 0) < cosine.multiplier(1, 0) < cosine.multiplier(2, 0) == pytest.approx(1.0)
    assert cosine.multiplier(9, 9) < 0.05
    step = LRSchedule(Recipe(schedule="step", step_size=3, gamma=0.1, epochs=10), steps)
    assert [round(step.multiplier(e, 0), 6) for e in (0, 2, 3, 6)] == [1.0, 1.0, 0.1, 0.01]
    cycle = LRSchedule(Recipe(schedule="onecycle", epochs=10), steps)
    values = [cycle.multiplier(e, s) for e in range(10) for s in range(steps)]
    assert values[0] < 0.1 and max(values) > 0.99 and values[-1] < 1e-3
    plateau = LRSchedule(Recipe(schedule="plateau", gamma=0.5), steps)
    for value in (0.5, 0.6, 0.6, 0.6, 0.6):
        plateau.observe(value)
    assert plateau.multiplier(5, 0) == pytest.approx(0.5)


def test_classification_report_matches_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, 200))
    report = classification_report(torch.tensor(y_true), torch.tensor(y_pred), ["a", "b", "c", "d"])
    for avg in ("macro", "micro", "weighted"):
        assert report[f"f1_{avg}"] == pytest.approx(f1_score(y_true, y_pred, average=avg))
        assert report[f"precision_{avg}"] == pytest.approx(precision_score(y_true, y_pred, average=avg))
        assert report[f"recall_{avg}"] == pytest.approx(recall_score(y_true, y_pred, average=avg))
    assert np.array_equal(np.array(report["confusion_matrix"]).sum(1), np.bincount(y_true, minlength=4))


@pytest.fixture(scope="module")
def default_model(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    result = ensure_trained(DataSpec(), ModelSpec(), Recipe(), models_dir=models_dir, show_progress=False)
    return models_dir, result


def test_default_training_reaches_95_percent_on_digits(default_model):
    _, result = default_model
    assert result.trained
    assert result.metadata.test_metrics["accuracy"] >= 0.95
    assert len(result.metadata.history) == Recipe().epochs
    assert (result.checkpoint / "learning_curves.png").stat().st_size > 1000


def test_second_identical_call_trains_nothing(default_model):
    models_dir, first = default_model
    before = (first.checkpoint / "model.safetensors").stat().st_mtime_ns
    again = ensure_trained(DataSpec(), ModelSpec(), Recipe(), models_dir=models_dir, show_progress=False)
    assert not again.trained
    assert again.checkpoint == first.checkpoint
    assert (first.checkpoint / "model.safetensors").stat().st_mtime_ns == before


def test_same_seed_same_metrics(tmp_path):
    recipe = Recipe(epochs=2, seed=3)
    a = ensure_trained(DataSpec(), ModelSpec(), recipe, models_dir=tmp_path / "a", show_progress=False)
    b = ensure_trained(DataSpec(), ModelSpec(), recipe, models_dir=tmp_path / "b", show_progress=False)
    assert a.metadata.test_metrics == b.metadata.test_metrics
    assert [h["train_loss"] for h in a.metadata.history] == [h["train_loss"] for h in b.metadata.history]
    c = ensure_trained(DataSpec(), ModelSpec(), Recipe(epochs=2, seed=4), models_dir=tmp_path / "c",
                       show_progress=False)
    assert [h["train_loss"] for h in c.metadata.history] != [h["train_loss"] for h in a.metadata.history]


@pytest.mark.parametrize("extra", [
    {"mixup": 0.4, "cutmix": 1.0},
    {"loss": "focal", "class_weights": "balanced", "label_smoothing": 0.1},
    {"optimizer": "sgd", "lr": 0.05, "nesterov": True, "schedule": "onecycle", "augment": "strong"},
], ids=["mixup+cutmix", "focal+balanced", "sgd-onecycle-strong"])
def test_recipes_train_and_learn(tmp_path, extra):
    result = ensure_trained(DataSpec(), ModelSpec(), Recipe(epochs=3, **extra), models_dir=tmp_path,
                            show_progress=False)
    assert result.metadata.test_metrics["accuracy"] > 0.6
    assert result.metadata.recipe["epochs"] == 3
