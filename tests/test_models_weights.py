"""Pretrained weights: local files load bit-exactly, pickles never execute, offline ImageNet fails cleanly."""
from __future__ import annotations

import os
import pickle
import socket

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from robustcv.data.base import DataInfo
from robustcv.errors import UserError
from robustcv.models import ModelSpec, build_model
from robustcv.models.transfer import ARCHS
from robustcv.tasks import Task

INFO = DataInfo(name="tiny", task=Task.CLASSIFICATION, classes=("a", "b", "c"), channels=3,
                image_size=(32, 32), mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    """A torchvision resnet18 state dict (seeded random init) with non-trivial BN statistics."""
    torch.manual_seed(123)
    net = torchvision.models.resnet18(weights=None)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return {k: v.clone() for k, v in net.state_dict().items()}


def _assert_backbone_equals(model, state):
    body = model.net.backbone.body.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith("fc.")}
    assert body.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(body[key], value), key


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".pt"])
def test_torchvision_state_dict_loads_bit_exactly(tmp_path, reference, suffix):
    path = tmp_path / f"resnet18{suffix}"
    save_file(reference, str(path)) if suffix == ".safetensors" else torch.save(reference, path)
    model = build_model(ModelSpec("resnet18", weights=str(path)), INFO)
    _assert_backbone_equals(model, reference)
    assert model.net.head[-1].out_features == 3  # torchvision's fc.* was ignored, our head kept


def test_our_own_checkpoint_state_loads_into_the_backbone(tmp_path, reference):
    source = build_model(ModelSpec("resnet18"), INFO)
    source.net.backbone.body.load_state_dict(reference, strict=False)
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))  # RobustModel keys: net.backbone.body.*
    torch.save({"state_dict": source.net.backbone.state_dict()}, tmp_path / "backbone.pth")  # body.*
    for name in ("model.safetensors", "backbone.pth"):
        _assert_backbone_equals(build_model(ModelSpec("resnet18", weights=str(tmp_path / name)), INFO), reference)


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if ever unpickled


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_is_refused_without_executing(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"conv1.weight": _Payload(str(marker))}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(UserError, match="weights_only=True"):
        build_model(ModelSpec("resnet18", weights=str(path)), INFO)
    assert not marker.exists()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve or connect fails at once and is recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def test_imagenet_offline_with_empty_cache_names_the_expected_file(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    expected = tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(UserError) as info:
        build_model(ModelSpec("resnet18", weights="imagenet"), INFO)
    assert str(expected) in str(info.value) and "\n" not in str(info.value)
    assert not expected.exists()


def test_imagenet_reads_the_hub_cache(tmp_path, monkeypatch, no_network, reference):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    os.makedirs(tmp_path / "checkpoints")
    torch.save(reference, tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    _assert_backbone_equals(build_model(ModelSpec("resnet18", weights="imagenet"), INFO), reference)
    assert no_network == []


def test_wrong_shapes_and_missing_tensors_are_user_errors(tmp_path, reference):
    wrong = dict(reference, **{"conv1.weight": torch.zeros(64, 1, 7, 7)})
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(UserError, match=r"conv1\.weight: file \(64, 1, 7, 7\) vs model \(64, 3, 7, 7\)"):
        build_model(ModelSpec("resnet18", weights=str(tmp_path / "wrong.safetensors")), INFO)
    partial = {k: v for k, v in reference.items() if not k.startswith("layer4.")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(UserError, match="missing .*layer4"):
        build_model(ModelSpec("resnet18", weights=str(tmp_path / "partial.safetensors")), INFO)


def test_extra_keys_only_warn(tmp_path, reference):
    save_file(dict(reference, **{"extra.weight": torch.zeros(2)}), str(tmp_path / "extra.safetensors"))
    with pytest.warns(UserWarning, match="extra.weight"):
        model = build_model(ModelSpec("resnet18", weights=str(tmp_path / "extra.safetensors")), INFO)
    _assert_backbone_equals(model, reference)


@pytest.mark.parametrize("weights, fragment", [
    ("missing.safetensors", "not found"),
    ("weights.npz", "must end in"),
    ("garbage.safetensors", "cannot read"),
    ("garbage.pth", "refusing to load"),
])
def test_unusable_files_are_user_errors(tmp_path, weights, fragment):
    for name in ("weights.npz", "garbage.safetensors", "garbage.pth"):
        (tmp_path / name).write_bytes(b"not weights")
    with pytest.raises(UserError, match=fragment):
        build_model(ModelSpec("resnet18", weights=str(tmp_path / weights)), INFO)


def test_scratch_models_have_no_imagenet_weights_but_load_their_own(tmp_path):
    with pytest.raises(UserError, match="from scratch"):
        build_model(ModelSpec("small_cnn", weights="imagenet"), INFO)
    source = build_model(ModelSpec("small_cnn"), INFO)
    save_file(source.state_dict(), str(tmp_path / "model.safetensors"))
    loaded = build_model(ModelSpec("small_cnn", weights=str(tmp_path / "model.safetensors")), INFO)
    for key, value in source.net.backbone.state_dict().items():
        assert torch.equal(loaded.net.backbone.state_dict()[key], value), key


def test_dual_weights_by_name_and_by_directory(tmp_path, reference):
    small = build_model(ModelSpec("small_cnn"), INFO).net.backbone.state_dict()
    save_file(small, str(tmp_path / "small_cnn.safetensors"))
    torch.save(reference, tmp_path / "resnet18.pth")
    by_name = f"resnet18={tmp_path / 'resnet18.pth'}"
    for weights in (by_name, str(tmp_path)):
        model = build_model(ModelSpec("dual:small_cnn+resnet18", weights=weights), INFO)
        second = model.net.backbone.second.body.state_dict()
        assert all(torch.equal(second[k], v) for k, v in reference.items() if not k.startswith("fc."))
    first = build_model(ModelSpec("dual:small_cnn+resnet18", weights=str(tmp_path)), INFO).net.backbone.first
    assert all(torch.equal(first.state_dict()[k], v) for k, v in small.items())
    with pytest.raises(UserError, match="vgg16_bn"):
        build_model(ModelSpec("dual:small_cnn+resnet18", weights="vgg16_bn=x.pth"), INFO)
    with pytest.raises(UserError, match="A=SRC,B=SRC"):
        build_model(ModelSpec("dual:small_cnn+resnet18", weights=str(tmp_path / "resnet18.pth")), INFO)


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_real_imagenet_weights_load_when_cached(arch, no_network):
    """Runs only where the torch hub cache holds the real files (e.g. a developer machine)."""
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    if not os.path.isfile(cached):
        pytest.skip(f"{cached} not cached")
    model = build_model(ModelSpec(arch, weights="imagenet"), INFO).eval()
    assert torch.isfinite(model(torch.rand(2, 3, 32, 32))).all()
