"""Multi-label training: sigmoid losses against references, thresholds tuned on validation and
stored in model.json, adversarial training with the BCE loss, and what the task refuses."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from robustcv.cli import main
from robustcv.data import DataSpec, Splits, get_dataset
from robustcv.errors import UserError
from robustcv.models import ModelSpec
from robustcv.tasks import get_task
from robustcv.training.losses import balanced_pos_weight, class_weights_for, make_loss
from robustcv.training.multilabel import CANDIDATES, check_recipe, tune_thresholds
from robustcv.training.recipe import Recipe
from robustcv.training.trainer import fit

K = 5


def _batch(seed: int = 0, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(n, K, generator=g), (torch.rand(n, K, generator=g) < 0.3).long()


# ---------------------------------------------------------------------------------------- losses
def test_bce_with_balanced_pos_weight_equals_torch():
    logits, target = _batch()
    weight = class_weights_for("balanced", target, K, family="sigmoid")
    positives = target.sum(0).float()
    assert torch.allclose(weight, (len(target) - positives) / positives)
    loss = make_loss("ce", family="sigmoid", num_classes=K, class_weights=weight)(logits, target)
    reference = torch.nn.BCEWithLogitsLoss(pos_weight=weight)(logits, target.float())
    assert float(loss) == pytest.approx(float(reference), rel=1e-6)


def test_focal_loss_equals_torchvision_sigmoid_focal_loss():
    from torchvision.ops import sigmoid_focal_loss

    logits, target = _batch(1)
    loss = make_loss("focal", family="sigmoid", num_classes=K, focal_gamma=2.0)(logits, target)
    reference = sigmoid_focal_loss(logits, target.float(), alpha=-1, gamma=2.0, reduction="mean")
    assert float(loss) == pytest.approx(float(reference), rel=1e-6)
    assert float(loss) < float(make_loss("ce", family="sigmoid", num_classes=K)(logits, target))


def test_a_class_without_positives_gets_pos_weight_one():
    target = torch.tensor([[1, 0], [0, 0], [1, 0]])
    assert balanced_pos_weight(target).tolist() == [0.5, 1.0]


# ------------------------------------------------------------------------------------ thresholds
def test_tuned_thresholds_are_the_best_f1_of_the_candidates():
    g = torch.Generator().manual_seed(2)
    labels = (torch.rand(200, K, generator=g) < 0.4).long()
    shift = torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.5])  # classes whose best cut lies away from 0.5
    scores = torch.sigmoid(2 * (2 * labels.float() - 1) + shift + 1.5 * torch.randn(200, K, generator=g))
    tuned = tune_thresholds(scores, labels)
    for k in range(K):
        f1s = [f1_score(labels[:, k].numpy(), (scores[:, k] > c).numpy()) for c in CANDIDATES]
        assert f1_score(labels[:, k].numpy(), (scores[:, k] > tuned[k]).numpy()) == pytest.approx(max(f1s))
    assert tuned[0] < 0.5 < tuned[-1]


def test_a_class_without_positives_or_with_ties_keeps_the_threshold_nearest_one_half():
    scores = torch.tensor([[0.9, 0.2], [0.8, 0.1], [0.1, 0.3]])
    labels = torch.tensor([[1, 0], [1, 0], [0, 0]])
    assert tune_thresholds(scores, labels) == [0.5, 0.5]  # class 0: 0.1 .. 0.75 all give F1 1


# -------------------------------------------------------------------------------- the trainer
@pytest.fixture(scope="module")
def tiny_splits() -> Splits:
    splits = get_dataset(DataSpec(name="shapes", task="multilabel"))
    part = lambda data, n: data.subset(torch.arange(n))  # noqa: E731
    return Splits(train=part(splits.train, 96), val=part(splits.val, 48), test=part(splits.test, 48), info=splits.info)


def _fit(splits: Splits, **recipe) -> tuple[torch.nn.Module, object]:
    settings = dict(epochs=1, batch_size=32, augment="none") | recipe
    return fit(splits, DataSpec(name="shapes", task="multilabel"), ModelSpec(name="small_cnn"), Recipe(**settings),
               device=torch.device("cpu"), show_progress=False)


@pytest.mark.parametrize("adv_train", ["fgsm-rs", "pgd-at"])
def test_adversarial_training_runs_with_the_sigmoid_loss(tiny_splits, adv_train):
    model, meta = _fit(tiny_splits, adv_train=adv_train, train_eps=4 / 255, train_steps=2, class_weights="balanced")
    record = meta.history[-1]
    assert math.isfinite(record["train_loss"]) and record["train_loss"] > 0
    assert 0 <= record["val_robust_accuracy"] <= 1 and "val_map" in record
    assert meta.task_settings == {"thresholds": [0.5] * K}
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_adversarial_training_moves_the_weights_toward_lower_adversarial_bce(tiny_splits):
    """One PGD-AT step on a batch lowers that batch's adversarial loss: the objective is the BCE."""
    from defenses.adversarial import PGDAT
    from robustcv.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelSpec(name="small_cnn"), tiny_splits.info)
    loss_fn = make_loss("ce", family="sigmoid", num_classes=K)
    x, y = tiny_splits.train.images[:32].float() / 255, tiny_splits.train.targets[:32]
    objective, optimizer = PGDAT(4 / 255, steps=3), torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(3):
        torch.manual_seed(1)  # the same random start each time
        loss = objective(model, x, y, loss_fn)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_tuned_thresholds_are_stored_and_used_for_the_test_metrics(tiny_splits):
    from robustcv.data import as_tensors
    from robustcv.inference import predict

    model, meta = _fit(tiny_splits, threshold="tuned", loss="focal")
    thresholds = meta.task_settings["thresholds"]
    assert len(thresholds) == K and set(thresholds) <= set(CANDIDATES)
    x, y = as_tensors(tiny_splits.test)
    logits = predict(model, x, torch.device("cpu"))
    expected = get_task("multilabel").accumulator(tiny_splits.info, thresholds=thresholds).update(logits, y).compute()
    at_half = get_task("multilabel").accumulator(tiny_splits.info).update(logits, y).compute()
    assert meta.test_metrics["hamming_loss"] == expected["hamming_loss"] != at_half["hamming_loss"]
    assert meta.test_metrics["f1_macro"] == expected["f1_macro"]


def test_a_fixed_threshold_is_stored_for_every_class(tiny_splits):
    _, meta = _fit(tiny_splits, threshold="0.3")
    assert meta.task_settings == {"thresholds": [0.3] * K}


# ---------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("recipe, words", [
    (dict(adv_train="trades", train_eps=0.1), "softmax"),
    (dict(adv_train="distillation"), "softmax"),
    (dict(mixup=0.2), "mixup"),
    (dict(label_smoothing=0.1), "label-smoothing"),
], ids=["trades", "distillation", "mixup", "label-smoothing"])
def test_what_the_sigmoid_family_cannot_do_is_refused(recipe, words):
    with pytest.raises(UserError, match=words):
        check_recipe(Recipe(**recipe), get_task("multilabel"))


def test_threshold_is_refused_for_classification_and_checked_in_the_recipe(tmp_path, capsys):
    code = main(["train", "--threshold", "tuned", "--models-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--task multilabel only" in err[0]
    with pytest.raises(ValueError, match="threshold"):
        Recipe(threshold="1.5")
    assert "threshold" not in Recipe().hashed_dict() and Recipe(threshold="tuned").hashed_dict()["threshold"] == "tuned"
