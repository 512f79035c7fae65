"""The binary task end to end: the CLI's default run on a small n, the one-line refusals, the
Python API on a user's one-logit module ([B] and [B, 1] alike) and the AUROC record against
scikit-learn. One tiny training is shared by every test (module-scoped)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score
from torch import nn

import robustcv
from robustcv.cli import cli
from robustcv.data import DataSpec, get_dataset
from robustcv.data.tensors import as_tensors
from robustcv.errors import UserError
from robustcv.tasks import get_task

N = 60
ATTACKS = ["fgsm", "pgd"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> nn.Module:
    """small_cnn with one logit on even-vs-odd digits, 3 epochs."""
    models = tmp_path_factory.mktemp("models")
    net, _ = robustcv.train("digits_binary", "small_cnn", task="binary", models_dir=models, epochs=3)
    return net.eval()


@pytest.fixture(scope="module")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = as_tensors(get_dataset(DataSpec(name="digits_binary", task="binary")).test)
    return x[:N], y[:N]


class Flat(nn.Module):
    """A user's model returning logits ``[B]`` (the wrapped one returns ``[B, 1]``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


def _values(records, metric: str, attack: str | None = None) -> dict[float, float]:
    return {r.eps: r.value for r in records if r.metric == metric and r.cls is None
            and (attack is None or r.attack == attack)}


def _evaluate(model: nn.Module, data) -> list:
    return robustcv.evaluate(model, data, task="binary", classes=("even", "odd"), attacks=ATTACKS, natural=[],
                             eps=[0.1, 0.3], steps=5).records


def test_api_gives_identical_records_for_flat_and_column_logits(trained, test_set):
    column, flat = _evaluate(trained, test_set), _evaluate(Flat(trained), test_set)
    strip = lambda records: sorted((r.attack, r.eps, r.metric, r.cls, r.value) for r in records)  # noqa: E731
    assert strip(column) == strip(flat)
    worst = _values(column, "robust_accuracy", "worst-case")
    assert worst[0.3] < worst[0.1] < worst[0.0]


def test_clean_auroc_equals_scikit_learn(trained, test_set):
    x, y = test_set
    with torch.no_grad():
        logits = trained(x)[:, 0]
    records = _evaluate(trained, test_set)
    assert _values(records, "clean_auroc")[0.0] == pytest.approx(roc_auc_score(y.numpy(), logits.numpy()), abs=1e-6)
    assert set(_values(records, "auroc", "pgd")) == {0.0, 0.1, 0.3}


def test_user_labels_outside_zero_one_and_wrong_class_counts_are_refused(trained, test_set):
    x, y = test_set
    with pytest.raises(UserError, match="0 or 1"):
        _evaluate(trained, (x, y + 1))
    with pytest.raises(UserError, match="2 classes"):
        robustcv.evaluate(trained, (x, y), task="binary", num_classes=3, attacks=ATTACKS, natural=[])


def test_cli_attack_task_binary_writes_auroc_and_a_falling_worst_case(tmp_path):
    result = CliRunner().invoke(cli, ["attack", "--task", "binary", "--n", str(N), "--epochs", "3", "--steps", "5",
                                      "--natural", "none", "--models-dir", str(tmp_path / "models"),
                                      "--out", str(tmp_path / "run"), "--report-dir", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    records = json.loads(Path(tmp_path / "run" / "results.json").read_text())["records"]
    metrics = {r["metric"] for r in records}
    assert {"clean_auroc", "clean_precision", "clean_recall", "auroc"} <= metrics
    worst = {r["eps"]: r["value"] for r in records if r["attack"] == "worst-case" and r["metric"] == "robust_accuracy"}
    assert worst[0.3] < worst[0.1] < worst[0.0] and worst[0.3] < worst[0.0] / 2
    assert get_task("binary").default_attacks(2) == sorted({r["attack"] for r in records} - {"none", "worst-case"},
                                                           key=["fgsm", "pgd", "apgd-ce"].index)


@pytest.mark.parametrize("flags", [["--attack", "apgd-t"], ["--attack", "apgd-dlr"], ["--attack-loss", "dlr"],
                                   ["--targeted", "random"]], ids=["apgd-t", "apgd-dlr", "dlr-loss", "targeted"])
def test_what_a_one_logit_model_cannot_take_is_refused_in_one_line(tmp_path, flags):
    result = CliRunner().invoke(cli, ["attack", "--task", "binary", "--epochs", "1", "--n", "10", "--models-dir", str(tmp_path),
                                      "--out", str(tmp_path / "run"), *flags])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 or "Error:" in result.output.strip().splitlines()[-1]
    if flags[0] in ("--attack", "--targeted"):  # refused from the flags alone: nothing trained first
        assert not list(tmp_path.rglob("model.json"))


def _write_class_folders(root: Path, classes: tuple[str, ...], per_class: int = 20) -> Path:
    """PNG images in one folder per class: class ``i`` is bright in its own stripe."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            pixels = torch.rand(16, 16, 3, generator=generator) * 0.3
            pixels[index * 4:(index + 1) * 4] += 0.6
            Image.fromarray((pixels.clamp(0, 1) * 255).byte().numpy()).save(root / name / f"{k}.png")
    return root


def test_an_image_folder_of_two_classes_is_binary_data_and_three_are_refused(tmp_path):
    two = _write_class_folders(tmp_path / "two", ("good", "defect"))
    splits = get_dataset(DataSpec(name=f"imagefolder:{two}", task="binary", image_size=16))
    assert (splits.info.task, splits.info.classes) == ("binary", ("defect", "good"))
    assert set(as_tensors(splits.train)[1].tolist()) == {0, 1}
    three = _write_class_folders(tmp_path / "three", ("a", "b", "c"))
    with pytest.raises(UserError, match="has 3 classes .* needs 2"):
        get_dataset(DataSpec(name=f"imagefolder:{three}", task="binary", image_size=16))


def test_an_exported_one_logit_model_is_attacked_from_the_cli_as_the_api_attacks_it(trained, tmp_path):
    from robustcv.data.digits_binary import CLASSES

    x, y = as_tensors(get_dataset(DataSpec(name="digits_binary", task="binary")).test)
    program = torch.export.export(Flat(trained), (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "net.pt2"))
    result = CliRunner().invoke(cli, ["attack", "--model-file", str(tmp_path / "net.pt2"), "--task", "binary",
                                      "--dataset", "digits_binary", "--n", str(N), "--attack", ",".join(ATTACKS),
                                      "--natural", "none", "--eps", "0.1,0.3", "--steps", "5", "--no-report",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "run" / "results.json").read_text())["records"]
    cli_curve = {r["eps"]: r["value"] for r in records if r["attack"] == "worst-case" and r["metric"] == "robust_accuracy"}
    api = robustcv.evaluate(Flat(trained), "digits_binary", task="binary", classes=CLASSES, attacks=ATTACKS,
                            natural=[], eps=[0.1, 0.3], steps=5, n=N).records
    assert cli_curve == pytest.approx(_values([r for r in api if r.attack == "worst-case"], "robust_accuracy"))
