"""Transfer learning through the trainer (``fit`` + ``save_checkpoint``), from a local weights file.

The weights are a torchvision resnet18 ``state_dict`` saved with safetensors (``fc.*`` included,
as a real torchvision checkpoint has it: the loader drops it for our new head), with non-trivial
BatchNorm running statistics so that "bit-identical" says something about the buffers too.
"""
from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from robustcv.checkpoint import read_weights, save_checkpoint
from robustcv.data import DataSpec, Splits
from robustcv.data.base import DataInfo
from robustcv.data.tensors import ImageTensorDataset
from robustcv.models import ModelSpec
from robustcv.tasks import Task
from robustcv.training import Recipe
from robustcv.training import fitting as trainer_module
from robustcv.training.trainer import fit

BODY = "net.backbone.body."  # checkpoint prefix of the torchvision body (RobustModel -> net -> backbone)
INFO = DataInfo(name="tiny", task=Task.CLASSIFICATION, classes=("dark", "bright"), channels=3,
                image_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
LR, SCALE = 2e-3, 0.1


def _tiny_splits(n_train: int = 48, n_eval: int = 16) -> Splits:
    """Random 32x32 RGB images; the class is whether the image is brighter than average."""
    g = torch.Generator().manual_seed(0)

    def make(n: int) -> ImageTensorDataset:
        x = torch.rand(n, 3, 32, 32, generator=g)
        x = (x + torch.linspace(-0.3, 0.3, n)[torch.randperm(n, generator=g)].view(-1, 1, 1, 1)).clamp(0, 1)
        return ImageTensorDataset(x, (x.mean(dim=(1, 2, 3)) > 0.5).long())

    return Splits(make(n_train), make(n_eval), make(n_eval), INFO)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(123)
    net = torchvision.models.resnet18(weights=None)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(1000)
    path = tmp_path_factory.mktemp("weights") / "resnet18_local.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    body = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    return path, body


def _train(tmp_path, path, freeze: str, epochs: int, monkeypatch=None):
    """``fit`` + ``save_checkpoint`` (what ``ensure_trained`` does); returns checkpoint weights,
    metadata and, per epoch, the optimizer's group learning rates and a backbone snapshot."""
    per_epoch: list[dict] = []
    if monkeypatch is not None:
        original = trainer_module._one_epoch

        def spy(model, loader, ctx, plan, recipe, val, epoch, bar):
            record = original(model, loader, ctx, plan, recipe, val, epoch, bar)
            per_epoch.append({
                "base_lr": {g["name"]: g["base_lr"] for g in ctx.optimizer.param_groups},
                "backbone": {k: v.clone() for k, v in model.net.backbone.body.state_dict().items()},
            })
            return record

        monkeypatch.setattr(trainer_module, "_one_epoch", spy)
    spec = ModelSpec("resnet18", weights=str(path))
    recipe = Recipe(epochs=epochs, batch_size=16, augment="none", lr=LR, backbone_lr_scale=SCALE,
                    schedule="constant", freeze=freeze)
    model, meta = fit(_tiny_splits(), DataSpec(name="tiny"), spec, recipe, device=torch.device("cpu"),
                      show_progress=False)
    directory = save_checkpoint(tmp_path / freeze.replace(":", "_"), model, meta)
    return read_weights(directory), meta, per_epoch


def _changed(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in expected if not torch.equal(expected[k], actual[k])}


def test_head_only_keeps_every_backbone_tensor_bit_identical_to_the_weights_file(tmp_path, weights_file):
    path, body = weights_file
    saved, meta, _ = _train(tmp_path, path, "head", epochs=2)
    assert {k for k in saved if k.startswith(BODY)} == {BODY + k for k in body}  # fc.* dropped, nothing else
    assert _changed(body, {k: saved[BODY + k] for k in body}) == set()  # params AND BN buffers
    assert meta.best_epoch >= 1 and len(meta.history) == 2
    head = [k for k in saved if k.startswith("net.head.")]
    assert head  # the new head exists and is what trained


def test_full_fine_tuning_changes_the_backbone_weights_and_bn_statistics(tmp_path, weights_file):
    path, body = weights_file
    saved, _, _ = _train(tmp_path, path, "full", epochs=1)
    changed = _changed(body, {k: saved[BODY + k] for k in body})
    params = [k for k in body if k.endswith(("weight", "bias"))]
    stats = [k for k in body if k.endswith(("running_mean", "running_var"))]
    assert set(params) <= changed and set(stats) <= changed


def test_staged_switches_at_the_stated_epoch_with_the_lower_backbone_lr(tmp_path, weights_file, monkeypatch):
    path, body = weights_file
    saved, meta, per_epoch = _train(tmp_path, path, "staged:1", epochs=2, monkeypatch=monkeypatch)
    assert len(per_epoch) == 2
    # Epoch 1: head only, the backbone (BN statistics included) untouched, one optimizer group.
    assert per_epoch[0]["base_lr"] == {"head": LR}
    assert _changed(body, per_epoch[0]["backbone"]) == set()
    # Epoch 2: everything trains, the backbone at lr * backbone_lr_scale.
    assert per_epoch[1]["base_lr"] == {"head": LR, "backbone": pytest.approx(LR * SCALE)}
    changed = _changed(per_epoch[0]["backbone"], per_epoch[1]["backbone"])
    assert {k for k in body if k.endswith(("weight", "bias", "running_mean", "running_var"))} <= changed
    # The history's lr is the last group's: the head's before the switch, the backbone's after.
    assert [h["lr"] for h in meta.history] == [pytest.approx(LR), pytest.approx(LR * SCALE)]
    # The kept checkpoint is the monitored best epoch: the backbone as loaded, or as fine-tuned.
    kept = {k: saved[BODY + k] for k in body}
    assert _changed(body, kept) == set() if meta.best_epoch == 1 else _changed(per_epoch[1]["backbone"], kept) == set()
