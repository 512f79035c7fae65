"""Model registry: every model builds, is pixel-space, differentiable, and errors are one-line UserErrors."""
from __future__ import annotations

import json

import pytest
import torch

from robustcv.data.base import DataInfo
from robustcv.errors import UserError
from robustcv.models import (ClassifierNet, InputAdapter, ModelSpec, RobustModel, build_model, list_models,
                             register_model)
from robustcv.models import registry
from robustcv.models.transfer import ARCHS
from robustcv.tasks import Task

MODELS = list_models(patterns=False)
CLASSIFIERS = [m for m in MODELS if Task.CLASSIFICATION in registry.get_entry(m).tasks]
EXPECTED = {"small_cnn", "deep_cnn", "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large",
            "efficientnet_b0", "vgg16_bn"}


def tiny_info(channels: int = 3, size: int = 32, classes: int = 3, task: Task = Task.CLASSIFICATION) -> DataInfo:
    return DataInfo(name="tiny", task=task, classes=tuple("abcdefghij"[:classes]), channels=channels,
                    image_size=(size, size), mean=(0.4, 0.5, 0.6)[:channels], std=(0.2, 0.25, 0.3)[:channels])


def test_list_models_names_the_catalog_and_the_dual_form():
    assert EXPECTED <= set(MODELS)
    assert list_models() == MODELS + ["dual:A+B", "ensemble:A+B+..."]


def _built_for_both_channel_counts(name: str) -> dict[int, RobustModel]:
    """Gray and RGB models; a torchvision net does not depend on the channel count (it repeats
    gray to RGB inside), so it is built once and wrapped twice to keep the test fast."""
    if name in ARCHS:
        rgb = build_model(ModelSpec(name), tiny_info(3, 8, classes=4))
        gray = tiny_info(1, 8, classes=4)
        return {3: rgb, 1: RobustModel(rgb.net, gray.mean, gray.std)}
    return {c: build_model(ModelSpec(name), tiny_info(c, 8, classes=4)) for c in (1, 3)}


@pytest.mark.parametrize("name", CLASSIFIERS + ["dual:small_cnn+mobilenet_v3_small"])
def test_builds_logits_and_input_gradients(name):
    for channels, model in _built_for_both_channel_counts(name).items():
        assert isinstance(model, RobustModel) and isinstance(model.net, ClassifierNet)
        model.eval()
        x = torch.rand(2, channels, 8, 8, requires_grad=True)  # 8x8 also exercises the upscaling rule
        logits = model(x)
        assert logits.shape == (2, 4)
        logits[:, 0].sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, channels


def test_transfer_builds_for_gray_data():
    assert build_model(ModelSpec("mobilenet_v3_small"), tiny_info(1, 8))(torch.rand(2, 1, 8, 8)).shape == (2, 3)


def test_normalization_happens_inside_the_model():
    info = tiny_info(3, 8)
    model = build_model(ModelSpec("small_cnn"), info).eval()
    x = torch.rand(2, 3, 8, 8)
    mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), model.net((x - mean) / std), rtol=0, atol=0)


def test_head_options_and_dropout_only_in_train_mode():
    model = build_model(ModelSpec("small_cnn", hidden=16, dropout=0.5, batch_norm=False), tiny_info(1, 8))
    linears = [m for m in model.net.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 16), (16, 3)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("shape, kwargs, expected", [
    ((1, 1, 8, 8), dict(min_size=32, to_rgb=True), (1, 3, 32, 32)),
    ((1, 3, 10, 20), dict(min_size=32, to_rgb=True), (1, 3, 32, 64)),
    ((1, 3, 40, 50), dict(min_size=32, to_rgb=True), (1, 3, 40, 50)),
    ((1, 1, 8, 8), dict(size=24, min_size=32, to_rgb=True), (1, 3, 24, 24)),
    ((1, 1, 8, 8), dict(), (1, 1, 8, 8)),
], ids=["gray-up", "aspect-kept", "big-untouched", "explicit-size", "identity"])
def test_input_adapter_rule(shape, kwargs, expected):
    x = torch.rand(shape)
    out = InputAdapter(**kwargs)(x)
    assert out.shape == expected
    if out.shape == x.shape:
        assert out is x


def test_input_size_reaches_the_backbone():
    model = build_model(ModelSpec("resnet18", input_size=40), tiny_info(1, 8)).eval()
    seen = []
    model.net.backbone.body.conv1.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    model(torch.rand(1, 1, 8, 8))
    assert seen == [torch.Size([1, 3, 40, 40])]


def test_dual_concatenates_features_and_trains_a_step():
    model = build_model(ModelSpec("dual:small_cnn+resnet18", hidden=8), tiny_info(3, 16))
    backbone = model.net.backbone
    assert backbone.out_features == 64 + 512
    assert model.net.head[0].in_features == 576
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.rand(4, 3, 16, 16)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = model.state_dict()
    for part in ("net.backbone.first.", "net.backbone.second.", "net.head."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part


def test_spec_round_trips_through_json():
    spec = ModelSpec("resnet18", weights="imagenet", hidden=32, dropout=0.2, batch_norm=False, input_size=64)
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert ModelSpec.from_dict({"name": "small_cnn", "future_field": 1}) == ModelSpec("small_cnn")
    with pytest.raises(AttributeError):
        spec.name = "other"  # frozen


@pytest.mark.parametrize("kwargs", [dict(hidden=-1), dict(dropout=1.0), dict(input_size=0), dict(name="")])
def test_spec_rejects_bad_values(kwargs):
    with pytest.raises(UserError):
        ModelSpec(**kwargs)


@pytest.mark.parametrize("name, fragment", [
    ("resnet19", r"unknown model 'resnet19'; did you mean resnet18.*\(`robustcv list`"),
    ("dual:resnet18", r"dual:A\+B"),
    ("dual:resnet18+nope", "unknown model 'nope'"),
])
def test_unknown_names_are_user_errors(name, fragment):
    with pytest.raises(UserError, match=fragment) as info:
        build_model(ModelSpec(name), tiny_info())
    assert "\n" not in str(info.value)


def test_segmentation_is_refused_by_classifiers():
    with pytest.raises(UserError, match="not segmentation"):
        build_model(ModelSpec("small_cnn"), tiny_info(task=Task.SEGMENTATION))


def test_transfer_refuses_other_channel_counts():
    info = tiny_info(3)
    info = type(info)(**{**info.__dict__, "channels": 4, "mean": (0.5,) * 4, "std": (0.5,) * 4})
    with pytest.raises(UserError, match="1- or 3-channel"):
        build_model(ModelSpec("resnet18"), info)


def test_register_refuses_duplicates_and_registers_new(monkeypatch):
    monkeypatch.setattr(registry.MODELS, "_entries", dict(registry.MODELS._entries))
    with pytest.raises(ValueError, match="already registered"):
        register_model("small_cnn")(lambda **kwargs: None)
    with pytest.raises(ValueError, match="reserved"):
        register_model("a+b")(lambda **kwargs: None)

    @register_model()
    def my_cnn(**kwargs):
        return registry.get_entry("small_cnn").builder(**kwargs)

    assert "my_cnn" in list_models()
    assert build_model(ModelSpec("my_cnn"), tiny_info(1, 8))(torch.rand(1, 1, 8, 8)).shape == (1, 3)
