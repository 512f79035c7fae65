"""torchvision and segmentation-models-pytorch segmenters: built offline, trained an epoch on shapes
at 64 px, the auxiliary head in the training loss, freeze plans on the encoder, weights the tests make."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from robustcv.data import DataSpec, get_dataset
from robustcv.data.base import DataInfo, Splits
from robustcv.errors import UserError
from robustcv.models import FreezePlan, ModelSpec, build_model
from robustcv.tasks import Task
from robustcv.training import Recipe
from robustcv.training.trainer import fit

pytest.importorskip("segmentation_models_pytorch")

INFO = DataInfo(name="tiny", task=Task.SEGMENTATION, classes=("bg", "a", "b"), channels=3, image_size=(64, 64),
                mean=(0.5,) * 3, std=(0.25,) * 3, ignore_index=255)
SMALL = ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "deeplabv3plus:mobilenet_v2")
LARGE = ("deeplabv3_resnet50", "fcn_resnet50", "unet:resnet18")


@pytest.fixture(scope="module")
def shapes64() -> Splits:
    """Shapes rendered at 64 px, cut to 96 training and 48 test images to keep the epoch short."""
    splits = get_dataset(DataSpec(name="shapes", task="segmentation", image_size=64))
    keep = lambda ds, n: ds.subset(torch.arange(n))  # noqa: E731
    return Splits(keep(splits.train, 96), keep(splits.val, 32), keep(splits.test, 48), splits.info)


def _train_one_epoch(name: str, splits: Splits):
    recipe = Recipe(epochs=1, batch_size=16, augment="basic")
    return fit(splits, DataSpec(name="shapes", task="segmentation", image_size=64), ModelSpec(name), recipe,
               device=torch.device("cpu"), show_progress=False)


def _check_trained(name: str, splits: Splits) -> None:
    before = build_model(ModelSpec(name), splits.info).state_dict()
    model, meta = _train_one_epoch(name, splits)
    x, _ = splits.test[0]
    assert model(x.unsqueeze(0)).shape == (1, 6, 64, 64)
    assert 0.0 <= meta.test_metrics["miou"] <= 1.0 and meta.test_metrics["pixel_accuracy"] > 0.3
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("net.backbone.") for k in changed) and any(k.startswith("net.head.") for k in changed)


@pytest.mark.parametrize("name", SMALL)
def test_small_segmenters_train_an_epoch_on_shapes_64(name, shapes64):
    _check_trained(name, shapes64)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_large_segmenters_train_an_epoch_on_shapes_64(name, shapes64):
    _check_trained(name, shapes64)


@pytest.mark.parametrize("name", SMALL + LARGE)
def test_logits_at_input_resolution_for_odd_sizes(name):
    model = build_model(ModelSpec(name), INFO).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 50, 70)).shape == (1, 3, 50, 70)


def test_auxiliary_head_trains_with_the_main_loss_and_is_skipped_in_eval():
    from robustcv.training.loop import _batch_loss, EpochContext

    model = build_model(ModelSpec("deeplabv3_mobilenet_v3_large"), INFO).train()
    ctx = EpochContext(optimizer=None, schedule=None, loss_fn=lambda logits, y: torch.nn.functional.cross_entropy(
        logits, y, ignore_index=255), device=torch.device("cpu"), new_metrics=None)
    x, y = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    loss, logits = _batch_loss(model, x, y, ctx)
    loss.backward()
    aux = model.net.head["aux"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in aux.parameters() if p.requires_grad)
    main_only = ctx.loss_fn(logits, y)
    assert float(loss.detach()) > float(main_only.detach()) + 1e-3  # 0.5 x the auxiliary loss on top
    model.eval()
    model(x)
    assert model.net.aux_logits is None


@pytest.mark.parametrize("name", ("deeplabv3_mobilenet_v3_large", "deeplabv3plus:mobilenet_v2"))
def test_head_plan_freezes_the_encoder(name):
    model = build_model(ModelSpec(name), INFO)
    FreezePlan.parse("head").apply(model, 0)
    assert not any(p.requires_grad for p in model.net.backbone.parameters())
    assert all(p.requires_grad for p in model.net.head.parameters())
    assert len(model.net.backbone.blocks()) > 10  # last:N counts MobileNet's stages, not one wrapper


def test_local_imagenet_style_weights_load_into_the_encoder(tmp_path):
    classifier = torchvision.models.mobilenet_v3_large(weights=None)
    path = tmp_path / "mnv3.safetensors"
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(path))
    model = build_model(ModelSpec("deeplabv3_mobilenet_v3_large", weights=str(path)), INFO)
    body = model.net.backbone.body
    assert torch.equal(body.state_dict()["0.0.weight"], classifier.state_dict()["features.0.0.weight"])
    assert torch.equal(body.state_dict()["16.0.weight"], classifier.state_dict()["features.16.0.weight"])


def test_imagenet_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    resnet = torchvision.models.resnet18(weights=None)
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(resnet.state_dict(), cache / Path(url).name)
    model = build_model(ModelSpec("unet:resnet18", weights="imagenet"), INFO)
    assert torch.equal(model.net.backbone.body.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)


@pytest.mark.parametrize("name, words", [("unet:no_such_encoder", "no encoder 'no_such_encoder'"),
                                         ("deeplabv3_resnet50", "does segmentation, not classification")])
def test_bad_model_is_one_clear_error(name, words):
    info = INFO if ":" in name else DataInfo(name="t", task=Task.CLASSIFICATION, classes=("a", "b"), channels=3,
                                             image_size=(32, 32), mean=(0.5,) * 3, std=(0.25,) * 3)
    with pytest.raises(UserError, match=words):
        build_model(ModelSpec(name), info)


def test_segmentation_models_pytorch_is_imported_only_when_such_a_model_is_built():
    code = ("import sys, robustcv.cli, robustcv.models; "
            "assert 'segmentation_models_pytorch' not in sys.modules, 'imported at start'")
    subprocess.run([sys.executable, "-c", code], check=True)
