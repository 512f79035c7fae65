"""The Python API (``robustcv.evaluate``, ``with_normalization``, ``train``) against the CLI.

A tiny CIFAR-10 is written in the real on-disk format (torchvision's python batches); a model is
trained on it by a plain loop, evaluated by ``robustcv.evaluate`` and, exported, by ``robustcv
attack --model-file``: the records must be the same. torchvision checks the md5 of the official
CIFAR files, which tiny files cannot match: ``check_integrity`` is replaced by a "file exists"
check, as in test_data_torchvision.py.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import torchvision.datasets as tvd
from torch import nn

import robustcv
from robustcv.cli import main
from robustcv.errors import UserError
from robustcv.results import RunResults
from user_models import linear_classifier

ROOT = Path(__file__).resolve().parents[1]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
EPS = ["2/255", "8/255"]
ATTACKS = ["fgsm", "pgd", "apgd-ce"]


@pytest.fixture
def exists_only_integrity(monkeypatch):
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def write_cifar10(root: Path, per_batch: int) -> None:
    """Five training batches and a test batch of ``per_batch`` images each; a class is a colour
    plus noise, so a tiny net learns it in a few steps."""
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 216, (10, 3))
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        noise = rng.normal(0, 40, (per_batch, 3, 32 * 32))
        images = np.clip(colours[labels][:, :, None] + noise, 0, 255).astype(np.uint8).reshape(per_batch, 3072)
        (folder / name).write_bytes(pickle.dumps({"data": images, "labels": [int(v) for v in labels]}))
    names = [f"class{i}" for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))


@pytest.fixture
def cifar_root(tmp_path, exists_only_integrity):
    write_cifar10(tmp_path / "data", per_batch=24)
    return tmp_path / "data"


def plain_training(root: Path) -> nn.Module:
    """What a user writes: torchvision's CIFAR10 with ToTensor, their own net, their own loop."""
    train = torchvision.datasets.CIFAR10(str(root), train=True, transform=torchvision.transforms.ToTensor())
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                        nn.Linear(128, 10))
    model = robustcv.with_normalization(net, CIFAR_MEAN, CIFAR_STD)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        for x, y in torch.utils.data.DataLoader(train, batch_size=40, shuffle=True):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model


def export(model: nn.Module, path: Path) -> Path:
    program = torch.export.export(model.eval(), (torch.rand(2, 3, 32, 32),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    return path


def comparable(results: RunResults) -> dict:
    """Everything measured, nothing timed: records without seconds, per-sample min eps, checks."""
    records = [{k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"} for r in results.records]
    checks = [(c.name, c.defense, c.passed, c.values) for c in results.sanity_checks]
    return {"records": records, "min_eps": [dataclasses.asdict(m) for m in results.min_eps], "checks": checks,
            "eps_grid": results.run["eps_grid"], "headline": results.run["headline_eps"], "n": results.run["n"]}


# ---------------------------------------------------------------------------------------------


def test_importing_robustcv_does_not_import_torch():
    code = "import robustcv, sys; robustcv.evaluate; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # 10 s; the default run checks CLI = API in test_front_door.py and test_binary_task.py
def test_evaluate_equals_the_cli_on_the_same_model(tmp_path, capsys, cifar_root):
    model = plain_training(cifar_root)
    api = robustcv.evaluate(model, "cifar10", data_root=str(cifar_root), eps=EPS, attacks=ATTACKS, natural=["noise"],
                            n=24, name="net", out=tmp_path / "api-run")
    code = main(["attack", "--model-file", str(export(model, tmp_path / "net.pt2")), "--dataset", "cifar10",
                 "--data-root", str(cifar_root), "--eps", ",".join(EPS), "--attack", ",".join(ATTACKS),
                 "--natural", "noise", "--n", "24", "--quiet", "--out", str(tmp_path / "cli-run"),
                 "--report-dir", str(tmp_path / "cli-report")])
    assert code == 0, capsys.readouterr().err
    cli = RunResults.load(tmp_path / "cli-run" / "results.json")
    assert comparable(api.results) == comparable(cli)
    assert comparable(RunResults.load(tmp_path / "api-run" / "results.json")) == comparable(cli)
    # eps 0 is the clean accuracy of the user's model on the whole (24-image) test split
    test = torchvision.datasets.CIFAR10(str(cifar_root), train=False, transform=torchvision.transforms.ToTensor())
    x, y = next(iter(torch.utils.data.DataLoader(test, batch_size=len(test))))
    with torch.no_grad():
        clean = float((model.eval()(x).argmax(1) == y).float().mean())
    curve = api.robust_accuracy()
    assert clean > 0.5 and curve[0.0] == pytest.approx(clean) and curve[8 / 255] < clean
    written = api.report(tmp_path / "api-report")
    assert written["html"].is_file() and written["md"].is_file()
    assert (tmp_path / "cli-report" / "report.html").is_file()


def test_evaluate_on_tensors_a_dataloader_and_a_dataset_gives_the_same_records(digits_model):
    model, (x, y) = digits_model
    settings = dict(eps=[0.1], attacks=["fgsm", "pgd"], natural=[], num_classes=10, n=30)
    pair = robustcv.evaluate(model, (x, y), **settings)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    batches = robustcv.evaluate(model, loader, **settings)
    assert comparable(pair.results) == comparable(batches.results)
    dataset = robustcv.evaluate(model, torch.utils.data.TensorDataset(x, y), **settings)
    assert comparable(pair.results) == comparable(dataset.results)
    with torch.no_grad():
        clean = float((model(x[:30]).argmax(1) == y[:30]).float().mean())
    assert pair.robust_accuracy()[0.0] == pytest.approx(clean)
    assert pair.run["dataset"] is None and pair.run["data_info"]["name"] == "tensors"


def test_evaluate_gives_the_model_back_as_it_came(digits_model):
    model, (x, y) = digits_model
    model.train()
    robustcv.evaluate(model, (x, y), eps=[0.1], attacks=["fgsm"], natural=[], num_classes=10, n=10)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_with_normalization_feeds_the_model_normalized_pixels():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten())
    wrapped = robustcv.with_normalization(net, CIFAR_MEAN, CIFAR_STD)
    x = torch.rand(4, 3, 5, 5)
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    assert torch.allclose(wrapped(x), net((x - mean) / std))
    with pytest.raises(UserError):
        robustcv.with_normalization(net, (0.5, 0.5), (0.2, 0.2, 0.2))


@pytest.fixture(scope="module")
def digits_model():
    from robustcv.data import DataSpec, as_tensors, get_dataset

    splits = get_dataset(DataSpec(name="digits"))
    return linear_classifier(*as_tensors(splits.train)), as_tensors(splits.test)


def _bad(case: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """(model, data, extra kwargs) for one kind of mistake."""
    k = dict(num_classes=10)
    return {
        "flat images": (model, (x.flatten(1), y), k),
        "images above 1": (model, (x * 255, y), k),
        "uint8 images": (model, ((x * 255).to(torch.uint8), y), k),
        "label out of range": (model, (x, torch.where(torch.arange(len(y)) == 3, 10, y)), k),
        "labels not matching images": (model, (x, y[:-1]), k),
        "no class count": (model, (x, y), {}),
        "model with 7 outputs": (nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 7)), (x, y), k),
        "model that fails": (nn.Linear(3, 3), (x, y), k),
        "not data": (model, 42, k),
        "bad eps": (model, (x, y), dict(k, eps=["a lot"])),
        "unknown attack": (model, (x, y), dict(k, attacks=["nope"])),
        "empty eps": (model, (x, y), dict(k, eps=[])),
        "empty eps text": (model, (x, y), dict(k, eps="")),
        "eps a number list with a bool": (model, (x, y), dict(k, eps=[0, True])),
        "eps too large for a float": (model, (x, y), dict(k, eps=["1e400"])),
        "norm l3": (model, (x, y), dict(k, norm="l3")),
        "norm not a string": (model, (x, y), dict(k, norm=2)),
        "fractional n": (model, (x, y), dict(k, n=2.5)),
        "n as text": (model, (x, y), dict(k, n="5")),
        "zero steps": (model, (x, y), dict(k, steps=0)),
        "fractional steps": (model, (x, y), dict(k, steps=1.5)),
        "negative step size": (model, (x, y), dict(k, step_size=-0.1)),
        "zero restarts": (model, (x, y), dict(k, restarts=0)),
        "zero batch size": (model, (x, y), dict(k, batch_size=0)),
        "negative seed": (model, (x, y), dict(k, seed=-1)),
        "seed beyond 2**32": (model, (x, y), dict(k, seed=2 ** 70)),
        "seed as text": (model, (x, y), dict(k, seed="0")),
        "headline eps as text": (model, (x, y), dict(k, headline_eps="much")),
        "infinite headline eps": (model, (x, y), dict(k, headline_eps=float("inf"))),
        "attacks not strings": (model, (x, y), dict(k, attacks=[1, 2])),
        "attacks empty": (model, (x, y), dict(k, attacks=[])),
        "defenses not strings": (model, (x, y), dict(k, defenses=[3])),
        "unknown natural sweep text": (model, (x, y), dict(k, natural="nope")),
        "duplicate class names": (model, (x, y), dict(classes=["0", "1", "2", "3", "0", "5", "6", "7", "8", "9"])),
        "zero classes": (model, (x, y), dict(num_classes=0)),
        "class count as text": (model, (x, y), dict(num_classes="10")),
        "task settings not a dict": (model, (x, y), dict(k, task_settings=[1])),
        "name not a string": (model, (x, y), dict(k, name=3)),
        "model on the meta device": (copy.deepcopy(model).to("meta"), (x, y), k),
        "model with lazy parameters": (nn.Sequential(nn.Flatten(), nn.LazyLinear(10)), (x, y), k),
        "model not a module": (lambda t: t, (x, y), k),
    }[case]


BAD_CASES = ["flat images", "images above 1", "uint8 images", "label out of range", "labels not matching images",
             "no class count", "model with 7 outputs", "model that fails", "not data", "bad eps", "unknown attack",
             "empty eps", "empty eps text", "eps a number list with a bool", "eps too large for a float", "norm l3",
             "norm not a string", "fractional n", "n as text", "zero steps", "fractional steps", "negative step size",
             "zero restarts", "zero batch size", "negative seed", "seed beyond 2**32", "seed as text",
             "headline eps as text", "infinite headline eps", "attacks not strings", "attacks empty", "defenses not strings",
             "unknown natural sweep text", "duplicate class names", "zero classes", "class count as text",
             "task settings not a dict", "name not a string", "model on the meta device",
             "model with lazy parameters", "model not a module"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_clear_line(digits_model, case):
    model, (x, y) = digits_model
    bad_model, data, kwargs = _bad(case, model, x[:20], y[:20])
    with pytest.raises(UserError) as info:
        robustcv.evaluate(bad_model, data, **{"natural": [], **kwargs})
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message, message


def test_duplicate_class_names_name_the_duplicate(digits_model):
    model, (x, y) = digits_model
    names = ["a", "b", "c", "d", "e", "b", "g", "h", "i", "j"]
    with pytest.raises(UserError, match="'b'"):
        robustcv.evaluate(model, (x[:8], y[:8]), classes=names, natural=[])
    with pytest.raises(UserError, match="'3'"):
        robustcv.evaluate(model, "digits", classes=[str(i) for i in range(9)] + ["3"], natural=[], n=4)


def test_single_strings_are_read_as_the_cli_reads_them(digits_model):
    """``eps="0,8/255"`` is ``--eps 0,8/255`` and ``attacks="fgsm,pgd"`` is ``--attack fgsm,pgd``:
    never split into characters."""
    model, (x, y) = digits_model
    common = dict(num_classes=10, natural=[], steps=2)
    as_text = robustcv.evaluate(model, (x[:8], y[:8]), eps="0,8/255", attacks="fgsm,pgd", defenses="jpeg:75",
                                headline_eps="8/255", **common)
    as_lists = robustcv.evaluate(model, (x[:8], y[:8]), eps=[0, 8 / 255], attacks=["fgsm", "pgd"],
                                 defenses=["jpeg:75"], **common)
    assert as_text.run["eps_grid"] == [0.0, 8 / 255] and as_text.run["headline_eps"] == 8 / 255
    assert {r.attack for r in as_text.records} == {r.attack for r in as_lists.records} >= {"fgsm", "pgd"}
    assert {r.defense for r in as_text.records} == {"none", "jpeg:75"}
    strip = [{k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"} for r in as_text.records]
    assert strip == [{k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"} for r in as_lists.records]


@pytest.mark.parametrize("recipe", [dict(epochs=0), dict(epochs=1.5), dict(epochs="2"), dict(lr=-0.1),
                                    dict(batch_size=0), dict(seed=-3), dict(seed=2 ** 64), dict(dataset=3),
                                    dict(force="yes")],
                         ids=["zero epochs", "fractional epochs", "epochs as text", "negative lr", "zero batch size",
                              "negative seed", "seed beyond 2**32", "dataset not a name", "force as text"])
def test_train_bad_recipe_is_one_clear_line(tmp_path, recipe):
    with pytest.raises(UserError) as info:
        robustcv.train(**{"dataset": "digits", "model": "small_cnn", "models_dir": tmp_path / "models", **recipe})
    assert str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "models").exists()


def test_train_returns_the_model_and_its_checkpoint(tmp_path):
    model, result = robustcv.train("digits", "small_cnn", epochs=1, models_dir=tmp_path / "models")
    again, meta = robustcv.load_model(result.checkpoint)
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert meta.recipe["epochs"] == 1 and result.trained
    with pytest.raises(UserError, match="unknown training setting"):
        robustcv.train("digits", epochs=1, learning_rate=0.1, models_dir=tmp_path / "models")


def readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_readme_example_is_the_example_file_line_for_line():
    example = (ROOT / "examples" / "bring_your_own_model.py").read_text(encoding="utf-8")
    ours = [block for block in readme_blocks("python") if "robustcv.evaluate(net" in block]
    assert len(ours) == 1 and ours[0] in example
    assert len(ours[0].strip().splitlines()) <= 10
    export = [block for block in readme_blocks("python") if "torch.export.save" in block]
    assert len(export) == 1 and export[0] in example


@pytest.mark.slow
def test_readme_example_runs_and_the_cli_gives_its_numbers(tmp_path, capsys, monkeypatch, exists_only_integrity):
    """examples/bring_your_own_model.py (the README's script) on tiny CIFAR files, then the
    README's CLI line on the model it exported: the same records."""
    write_cifar10(tmp_path / "data", per_batch=24)
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(ROOT / "examples" / "bring_your_own_model.py"), run_name="__main__")
    assert (tmp_path / "reports" / "resnet18" / "report.html").is_file()
    command = next(line for block in readme_blocks("bash") for line in block.splitlines()
                   if "--model-file resnet18.pt2" in line)
    argv = shlex.split(command)[1:] + ["--quiet", "--out", "cli-run", "--report-dir", "cli-report"]
    assert main(argv) == 0, capsys.readouterr().err
    api, cli = namespace["results"].results, RunResults.load(tmp_path / "cli-run" / "results.json")
    assert comparable(api) == comparable(cli) and api.run["n"] == 24
