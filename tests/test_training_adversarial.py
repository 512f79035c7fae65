"""Adversarial training through the trainer (``ensure_trained``/``fit``) on digits.

Fast: the robust-validation history and the best-robust-epoch checkpoint; a freeze plan survives
adversarial epochs (frozen backbone bit-identical, flags and modes intact after the robust-val
attack); the train-accuracy forward does not touch BatchNorm statistics.
Slow: FGSM-RS and PGD-AT gain >= 0.30 of PGD-20 robust accuracy at eps 0.1 over ``Recipe()``.
"""
from __future__ import annotations

import pytest
import torch

from attacks import PGD
from robustcv.checkpoint import load_model
from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.models import ModelSpec, build_model
from robustcv.training import Recipe, ensure_trained
from robustcv.training import fitting as trainer_module
from robustcv.tasks import get_task
from robustcv.training.fitting import Validation, fit, robust_val_accuracy

EPS = 0.1
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return get_dataset(DataSpec())


def _pgd20_accuracy(model, splits) -> float:
    x, y = as_tensors(splits.test)
    model.eval()
    x_adv = PGD(norm="linf", steps=20, seed=0)(model, x, y, EPS)
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def test_adversarial_history_records_robust_val_and_keeps_the_best_robust_epoch(tmp_path, digits):
    recipe = Recipe(epochs=3, adv_train="fgsm-rs", train_eps=EPS)
    result = ensure_trained(DataSpec(), ModelSpec(), recipe, models_dir=tmp_path, show_progress=False)
    meta = result.metadata
    robust = [h["val_robust_accuracy"] for h in meta.history]
    assert len(robust) == 3 and all(0.0 <= r <= 1.0 for r in robust)
    assert all(h["seconds"] > 0 for h in meta.history)
    assert meta.best_epoch == robust.index(max(robust)) + 1  # monitor switched to robust accuracy
    assert 0.0 <= meta.test_metrics["accuracy"] <= 1.0  # clean accuracy of the kept model
    # The checkpoint is that epoch's model: the same fixed robust-val measurement reproduces it.
    model, _ = load_model(result.checkpoint)
    x_val, y_val = as_tensors(digits.val)
    val = Validation(x_val, y_val, get_task(digits.info.task), digits.info)
    assert robust_val_accuracy(model, val, "linf", recipe, CPU) == max(robust)
    assert not ensure_trained(DataSpec(), ModelSpec(), recipe, models_dir=tmp_path, show_progress=False).trained


def test_head_only_survives_adversarial_epochs_and_the_robust_val_attack(digits, monkeypatch):
    """The robust-val PGD and the inner maximization run between and inside epochs; afterwards the
    frozen backbone must still be frozen (flags), in eval mode, and bit-identical (BN buffers too)."""
    torch.manual_seed(0)  # fit seeds with recipe.seed before building: the same initial model
    initial = {k: v.clone() for k, v in build_model(ModelSpec(), digits.info).net.backbone.state_dict().items()}
    entries = []
    original = trainer_module.train_one_epoch

    def spy(model, loader, ctx, epoch, on_step=None):
        backbone, head = model.net.backbone, model.net.head
        entries.append({
            "backbone_grad": {p.requires_grad for p in backbone.parameters()},
            "head_grad": {p.requires_grad for p in head.parameters()},
            "backbone_training": {m.training for m in backbone.modules()},
            "head_training": {m.training for m in head.modules()},
        })
        return original(model, loader, ctx, epoch, on_step)

    monkeypatch.setattr(trainer_module, "train_one_epoch", spy)
    recipe = Recipe(epochs=2, freeze="head", adv_train="fgsm-rs", train_eps=EPS)
    model, meta = fit(digits, DataSpec(), ModelSpec(), recipe, device=CPU, show_progress=False)
    assert len(entries) == 2
    for entry in entries:  # epoch 2 starts after epoch 1's robust validation
        assert entry == {"backbone_grad": {False}, "head_grad": {True},
                         "backbone_training": {False}, "head_training": {True}}
    after = model.net.backbone.state_dict()
    assert {k for k in initial if not torch.equal(initial[k], after[k])} == set()
    assert len(meta.history) == 2 and "val_robust_accuracy" in meta.history[-1]


@pytest.mark.parametrize("kind", ["fgsm-rs", "pgd-at"])
def test_batchnorm_statistics_see_only_the_training_forward(digits, kind):
    """One train-mode forward per step (on the adversarial batch): the clean forward that counts
    train accuracy must not also fold the clean batch into the running statistics."""
    recipe = Recipe(epochs=1, adv_train=kind, train_eps=EPS, train_steps=2)
    model, _ = fit(digits, DataSpec(), ModelSpec(), recipe, device=CPU, show_progress=False)
    steps = len(digits.train) // recipe.batch_size  # drop_last
    counts = {int(m.num_batches_tracked) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert counts == {steps}


def test_robust_monitor_without_adversarial_training_is_refused_up_front():
    with pytest.raises(ValueError, match="needs --adv-train"):
        Recipe(monitor="val_robust_accuracy")
    assert Recipe(monitor="val_robust_accuracy", adv_train="fgsm-rs", train_eps=EPS).monitor == "val_robust_accuracy"


@pytest.fixture(scope="module")
def standard(tmp_path_factory, digits):
    result = ensure_trained(DataSpec(), ModelSpec(), Recipe(), models_dir=tmp_path_factory.mktemp("std"),
                            show_progress=False)
    return result.metadata, _pgd20_accuracy(load_model(result.checkpoint)[0], digits)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{"adv_train": "fgsm-rs"}, {"adv_train": "pgd-at", "train_steps": 7}],
                         ids=["fgsm-rs", "pgd-at"])
def test_adversarial_training_gains_30_points_of_pgd20_robust_accuracy(tmp_path, digits, standard, extra):
    std_meta, std_robust = standard
    result = ensure_trained(DataSpec(), ModelSpec(), Recipe(train_eps=EPS, **extra), models_dir=tmp_path,
                            show_progress=False)
    meta = result.metadata
    robust = _pgd20_accuracy(load_model(result.checkpoint)[0], digits)
    clean, std_clean = meta.test_metrics["accuracy"], std_meta.test_metrics["accuracy"]
    history = meta.history
    ratio = sum(h["seconds"] for h in history) / sum(h["seconds"] for h in std_meta.history)
    print(f"{extra['adv_train']}: PGD-20 robust acc at eps {EPS}: standard {std_robust:.3f} -> {robust:.3f}; "
          f"clean {std_clean:.3f} -> {clean:.3f}; epoch time x{ratio:.1f}; best epoch {meta.best_epoch}")
    assert robust >= std_robust + 0.30
    assert clean >= 0.90  # the clean-accuracy cost is recorded, and small on digits
    robust_val = [h["val_robust_accuracy"] for h in history]
    assert len(robust_val) == Recipe().epochs
    assert meta.best_epoch == robust_val.index(max(robust_val)) + 1


@pytest.mark.slow
def test_batchnorm_deep_cnn_adversarial_training_keeps_clean_accuracy(tmp_path, digits):
    spec = ModelSpec("deep_cnn")
    standard = ensure_trained(DataSpec(), spec, Recipe(epochs=5), models_dir=tmp_path, show_progress=False)
    adv = ensure_trained(DataSpec(), spec, Recipe(epochs=5, adv_train="fgsm-rs", train_eps=EPS),
                         models_dir=tmp_path, show_progress=False)
    clean = adv.metadata.test_metrics["accuracy"]
    robust = _pgd20_accuracy(load_model(adv.checkpoint)[0], digits)
    std_robust = _pgd20_accuracy(load_model(standard.checkpoint)[0], digits)
    print(f"deep_cnn fgsm-rs: clean {standard.metadata.test_metrics['accuracy']:.3f} -> {clean:.3f}, "
          f"PGD-20 robust {std_robust:.3f} -> {robust:.3f}")
    assert clean >= 0.90
    assert robust >= std_robust + 0.30
