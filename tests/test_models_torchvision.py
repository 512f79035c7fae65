"""Any torchvision classifier by name: generic head, blocks, input sizes, weights, checkpoints, training.

The reference for "the head was found" is torchvision's own forward: our backbone's features fed
through the ImageNet classifier's last ``Linear`` (named here from torchvision's source) give
torchvision's logits. No test downloads anything: weights are random torchvision state dicts
saved into a fake hub cache or a local file.
"""
from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from robustcv.checkpoint import ModelMetadata, load_model, write_checkpoint_files
from robustcv.cli import main
from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.data.base import DataInfo
from robustcv.errors import UserError
from robustcv.models import FreezePlan, ModelSpec, backbone_blocks, build_model, get_entry
from robustcv.models.tv_generic import AUX_FREE, input_rule, make
from robustcv.tasks import Task

INFO = DataInfo(name="tiny", task=Task.CLASSIFICATION, classes=("a", "b", "c"), channels=3,
                image_size=(32, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
GRAY = DataInfo(name="gray", task=Task.CLASSIFICATION, classes=("a", "b", "c"), channels=1,
                image_size=(28, 28), mean=(0.5,), std=(0.25,))
LAST_LINEAR = {  # where torchvision's classifier keeps its last Linear (from torchvision's source)
    "regnet_x_400mf": "fc", "shufflenet_v2_x0_5": "fc", "mnasnet0_5": "classifier.1",
    "convnext_tiny": "classifier.2", "googlenet": "fc", "vit_b_32": "heads.head",
}


def _reference(name: str) -> torch.nn.Module:
    return torchvision.models.get_model(name, weights=None, **AUX_FREE.get(name, {})).eval()


def _randomize_statistics(net: torch.nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)


# ---------------------------------------------------------------------------------------------
# names


def test_every_torchvision_classifier_resolves_and_nothing_else():
    names = torchvision.models.list_models(module=torchvision.models)
    assert len(names) > 50
    for name in names:
        assert Task.CLASSIFICATION in get_entry(name).tasks, name
    assert Task.CLASSIFICATION in get_entry("VGG19_BN").tasks  # names are case-insensitive
    with pytest.raises(UserError, match="unknown model 'fasterrcnn_resnet50_fpn'"):
        get_entry("fasterrcnn_resnet50_fpn")  # a detection model is no classifier


def test_unknown_name_is_one_line_with_close_matches(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--model", "efficientnet_b22", "--models-dir", str(tmp_path), "-q"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "efficientnet_b2" in lines[0] and "Traceback" not in lines[0]


def test_list_shows_the_torchvision_catalog_compactly(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    count = len(torchvision.models.list_models(module=torchvision.models))
    assert f"any of the {count} classifiers" in out
    family_rows = [line for line in out.splitlines() if line.strip().startswith(("resnet ", "vit ", "inception "))]
    assert any("18, 34, 50, 101, 152" in row for row in family_rows), family_rows
    assert max(len(line) for line in out.splitlines()) < 200


# ---------------------------------------------------------------------------------------------
# the generic rule


@pytest.mark.parametrize("name", sorted(LAST_LINEAR))
def test_generic_features_through_the_old_last_linear_give_torchvision_logits(name):
    model = build_model(ModelSpec(name), INFO).eval()
    assert model.net.backbone.ignored[0] == LAST_LINEAR[name] + "."
    reference = _reference(name)
    missing, unexpected = reference.load_state_dict(model.net.backbone.body.state_dict(), strict=False)
    assert sorted(missing) == [f"{LAST_LINEAR[name]}.bias", f"{LAST_LINEAR[name]}.weight"] and not unexpected
    last = reference.get_submodule(LAST_LINEAR[name])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ours = last(model.net.backbone(x))
        theirs = reference(model.net.backbone.adapt(x))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["regnet_x_400mf", "squeezenet1_1", "convnext_tiny", "vit_b_32", "densenet121"])
def test_generic_blocks_cover_every_parameter_once_in_order(name):
    model = build_model(ModelSpec(name), INFO)
    blocks = backbone_blocks(model)
    ids = [id(p) for block in blocks for p in block.parameters()]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.net.backbone.parameters()}
    assert len(blocks) >= 4
    total = sum(p.numel() for p in model.net.backbone.parameters())
    assert max(sum(p.numel() for p in b.parameters()) for b in blocks) <= 0.8 * total


def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_last_n_on_a_generic_convnet_trains_exactly_the_last_stages_and_the_head():
    model = build_model(ModelSpec("shufflenet_v2_x0_5"), INFO)  # children: conv1 maxpool stage2-4 conv5 fc
    FreezePlan.parse("last:2").apply(model, epoch=0)
    names = {n for n, _ in model.named_parameters()}
    trained = ("net.head.", "net.backbone.body.stage4.", "net.backbone.body.conv5.")
    expected = {n for n in names if n.startswith(trained)}
    assert _trainable(model) == expected and len(expected) < len(names)
    FreezePlan.parse("last:2").set_train_mode(model, epoch=0)
    assert model.net.backbone.body.conv5.training and not model.net.backbone.body.stage3.training


def test_last_n_on_a_vit_freezes_tokens_and_early_layers():
    model = build_model(ModelSpec("vit_b_32"), INFO)
    FreezePlan.parse("last:3").apply(model, epoch=0)
    body = "net.backbone.body.encoder."
    trained = (f"{body}layers.encoder_layer_10.", f"{body}layers.encoder_layer_11.", f"{body}ln.", "net.head.")
    assert _trainable(model) == {n for n, _ in model.named_parameters() if n.startswith(trained)}
    FreezePlan.parse("last:20").apply(model, epoch=0)  # more than the block count: all of it
    assert _trainable(model) == {n for n, _ in model.named_parameters()}


def test_fixed_and_minimum_input_sizes():
    vit = build_model(ModelSpec("vit_b_32"), GRAY).eval()  # fixed 224 grid, fed 28 px gray images
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    vit(x)[:, 0].sum().backward()
    assert vit.net.backbone.adapt.size == 224 and x.grad.abs().sum() > 0
    with pytest.raises(UserError, match="vit_b_32 does not run on 256x256") as info:
        build_model(ModelSpec("vit_b_32", input_size=256), GRAY)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="inception_v3 takes images of at least 75x75"):
        build_model(ModelSpec("inception_v3", input_size=64), GRAY)
    assert input_rule("inception_v3").default == 299 and input_rule("resnet101").default is None


def test_a_vit_is_built_for_its_weights_grid(monkeypatch):
    """vit_h_14's weights are for 518 px (the others' 224): the position embedding must match,
    and the input is resized to it (not built here: 632M parameters)."""
    seen = {}
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, **kwargs: seen.update(kwargs))
    make("vit_h_14")
    grid = torchvision.models.get_model_weights("vit_h_14").DEFAULT.meta["min_size"][0]
    assert seen["image_size"] == grid == input_rule("vit_h_14").default and seen["weights"] is None


# ---------------------------------------------------------------------------------------------
# weights and checkpoints


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _body_matches(model, state: dict, ignored: tuple[str, ...]) -> None:
    body = model.net.backbone.body.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith(ignored)}
    assert body.keys() == expected.keys()
    assert all(torch.equal(body[k], v) for k, v in expected.items())


def test_imagenet_weights_of_a_generic_model_from_the_hub_cache(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    reference = _reference("mnasnet0_5")
    _randomize_statistics(reference)
    url = torchvision.models.get_model_weights("mnasnet0_5").DEFAULT.url
    os.makedirs(tmp_path / "checkpoints")
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / os.path.basename(url))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the ImageNet classifier is expected, not "ignored keys"
        model = build_model(ModelSpec("mnasnet0_5", weights="imagenet"), INFO)
    _body_matches(model, reference.state_dict(), ("classifier.1.",))


def test_aux_classifier_weights_are_dropped_without_a_warning(tmp_path):
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    state = reference.state_dict()
    assert any(k.startswith("aux1.") for k in state)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "googlenet.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_model(ModelSpec("googlenet", weights=str(tmp_path / "googlenet.safetensors")), INFO)
    _body_matches(model, state, ("fc.", "aux1.", "aux2."))


@pytest.mark.parametrize("name", ["regnet_x_400mf", "mnasnet0_5"])  # MNASNet needs its state's version
def test_checkpoint_of_a_generic_model_reloads_to_identical_logits(tmp_path, name):
    spec = ModelSpec(name, hidden=8)
    model = build_model(spec, INFO)
    _randomize_statistics(model)
    with torch.no_grad():
        for p in model.net.head.parameters():
            p.normal_()
    meta = ModelMetadata(name="m", data=DataSpec("shapes"), data_info=INFO, model=spec)
    write_checkpoint_files(tmp_path, model, meta)
    assert json.loads((tmp_path / "model.json").read_text())["model"]["name"] == name
    loaded, _ = load_model(tmp_path)
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(loaded(x), model.eval()(x))


# ---------------------------------------------------------------------------------------------
# training on shapes through the CLI: 60 images, one epoch (5 s each on a busy 2-core machine)


@pytest.fixture
def few_shapes(monkeypatch, tmp_path):
    import robustcv.data.shapes as shapes

    monkeypatch.setattr(shapes, "N_IMAGES", 60)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _train(models_dir: Path, *argv: str) -> Path:
    assert main(["train", "--dataset", "shapes", "--epochs", "1", "--batch-size", "16", "--augment", "none",
                 "--models-dir", str(models_dir), "-q", *argv]) == 0
    (checkpoint,) = [p for p in models_dir.iterdir() if not p.name.startswith(".")]
    return checkpoint


def _reloaded_test_accuracy(checkpoint: Path) -> tuple[float, float]:
    """(accuracy of the reloaded checkpoint on the test split, the accuracy training recorded)."""
    model, meta = load_model(checkpoint)
    x, y = as_tensors(get_dataset(meta.data).test)
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).float().mean().item()
    return correct, meta.test_metrics["accuracy"]


@pytest.mark.parametrize("name, argv", [
    ("vgg19_bn", ["--image-size", "32"]),
    ("efficientnet_b2", ["--image-size", "32", "--freeze", "last:3"]),
    ("inception_v3", ["--image-size", "32", "--input-size", "75", "--freeze", "last:4"]),
])
def test_torchvision_classifiers_train_on_shapes_and_reload(few_shapes, name, argv):
    checkpoint = _train(few_shapes / "models", "--model", name, *argv)
    meta = json.loads((checkpoint / "model.json").read_text())
    assert meta["model"]["name"] == name and len(meta["history"]) == 1
    reloaded, recorded = _reloaded_test_accuracy(checkpoint)
    assert reloaded == pytest.approx(recorded, abs=1e-6)
