"""Freeze plans: frozen tensors (BN statistics included) stay bit-identical; the schedule is exact."""
from __future__ import annotations

import pytest
import torch

from robustcv.data.base import DataInfo
from robustcv.errors import UserError
from robustcv.models import FreezePlan, ModelSpec, backbone_blocks, build_model
from robustcv.tasks import Task

INFO = DataInfo(name="tiny", task=Task.CLASSIFICATION, classes=("a", "b", "c"), channels=3,
                image_size=(32, 32), mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
X = torch.rand(8, 3, 32, 32)
Y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


def _train(model, plan: FreezePlan, epoch: int = 0, steps: int = 3) -> None:
    """A few SGD steps the way the trainer does them (momentum and weight decay included)."""
    optimizer = torch.optim.SGD(plan.apply(model, epoch, lr=0.05), momentum=0.9, weight_decay=1e-3)
    plan.set_train_mode(model, epoch)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(X), Y).backward()
        optimizer.step()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}  # params AND buffers


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    after = module.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "dual:small_cnn+mobilenet_v3_small"])
def test_head_only_leaves_the_backbone_bit_identical(name):
    model = build_model(ModelSpec(name, dropout=0.2), INFO)
    backbone, head = _snapshot(model.net.backbone), _snapshot(model.net.head)
    _train(model, FreezePlan.parse("head"))
    assert _changed(backbone, model.net.backbone) == set()
    assert _changed(head, model.net.head) == set(head)


def test_full_fine_tuning_changes_weights_and_bn_statistics():
    model = build_model(ModelSpec("resnet18"), INFO)
    before = _snapshot(model.net.backbone)
    _train(model, FreezePlan.parse("full"))
    changed = _changed(before, model.net.backbone)
    assert {"body.conv1.weight", "body.bn1.running_mean", "body.layer4.1.bn2.running_var"} <= changed


def test_last_n_unfreezes_exactly_the_last_blocks():
    model = build_model(ModelSpec("resnet18"), INFO)
    plan = FreezePlan.parse("last:2")
    groups = plan.apply(model, 0, lr=0.1)
    body = model.net.backbone.body
    expected = {id(p) for block in (body.layer3, body.layer4) for p in block.parameters()}
    assert {id(p) for p in groups[1]["params"]} == expected
    assert {id(p) for p in model.net.backbone.parameters() if p.requires_grad} == expected
    assert [g["lr"] for g in groups] == [0.1, 0.1]
    plan.set_train_mode(model, 0)
    assert body.layer4.training and body.layer3[0].bn1.training
    assert not body.layer2.training and not body.bn1.training

    before = _snapshot(model.net.backbone)
    _train(model, plan)
    changed = _changed(before, model.net.backbone)
    assert changed and all(k.startswith(("body.layer3.", "body.layer4.")) for k in changed)


def test_last_n_counts_blocks_per_backbone_in_dual_models():
    model = build_model(ModelSpec("dual:small_cnn+resnet18"), INFO)
    FreezePlan.parse("last:1").apply(model, 0)
    backbone = model.net.backbone
    trainable = {id(p) for p in backbone.parameters() if p.requires_grad}
    expected = {id(p) for block in (backbone.first.stages[-1], backbone.second.body.layer4) for p in block.parameters()}
    assert trainable == expected


@pytest.mark.parametrize("name, count", [("small_cnn", 3), ("resnet18", 5), ("vgg16_bn", 5),
                                          ("mobilenet_v3_small", 13), ("efficientnet_b0", 9)])
def test_blocks_are_ordered_and_cover_every_backbone_parameter(name, count):
    model = build_model(ModelSpec(name), INFO)
    blocks = backbone_blocks(model)
    assert len(blocks) == count
    in_blocks = [id(p) for block in blocks for p in block.parameters()]
    assert sorted(in_blocks) == sorted(id(p) for p in model.net.backbone.parameters())  # each exactly once


def test_staged_switches_at_the_stated_epoch():
    model = build_model(ModelSpec("small_cnn"), INFO)
    plan = FreezePlan.parse("staged:2")
    assert [plan.changes_at(e) for e in range(5)] == [False, False, True, False, False]
    for epoch in (0, 1):
        groups = plan.apply(model, epoch, lr=0.1, backbone_lr_scale=0.25)
        assert [g["name"] for g in groups] == ["head"]
        plan.set_train_mode(model, epoch)
        assert not model.net.backbone.training and model.net.head.training
    groups = plan.apply(model, 2, lr=0.1, backbone_lr_scale=0.25)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 0.1), ("backbone", 0.025)]
    assert len(groups[1]["params"]) == len(list(model.net.backbone.parameters()))
    plan.set_train_mode(model, 2)
    assert all(m.training for m in model.modules())


def test_full_trains_everything_at_full_lr_and_never_changes():
    model = build_model(ModelSpec("small_cnn"), INFO)
    plan = FreezePlan.parse("full")
    groups = plan.apply(model, 0, lr=0.1)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 0.1), ("backbone", 0.1)]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert not any(plan.changes_at(e) for e in range(10))


@pytest.mark.parametrize("text", ["full", "head", "last:2", "staged:3"])
def test_plans_round_trip(text):
    assert FreezePlan.parse(text).to_str() == text


@pytest.mark.parametrize("text", ["", "frozen", "last", "last:0", "staged:x", "last:-1", "head:1"])
def test_bad_plans_are_user_errors(text):
    with pytest.raises(UserError, match="full, head, last:N, staged:EPOCH|at least 1"):
        FreezePlan.parse(text)
