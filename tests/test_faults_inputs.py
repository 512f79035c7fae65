"""Input faults of ``robustcv attack``: malformed lists and flags that ``--checkpoint`` would
silently ignore. Each is one line and exit 2 before anything is attacked or written."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from fault_helpers import assert_one_line, digits_checkpoint, run_cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return digits_checkpoint(tmp_path_factory.mktemp("models") / "ck")


class Case(NamedTuple):
    name: str
    args: tuple[str, ...]
    words: tuple[str, ...]


CASES = [
    Case("eps list of nothing", ("--eps", ","), ("--eps", "empty entry")),
    Case("eps list with an empty entry", ("--eps", "0,,0.1"), ("--eps", "empty entry")),
    Case("eps too large for a float", ("--eps", "1e400"), ("--eps", "1e400")),
    Case("attack list of nothing", ("--attack", ","), ("--attack", "names no attack")),
    Case("seed beyond 2**32", ("--seed", "99999999999999999999"), ("--seed", "99999999999999999999")),
    Case("negative seed", ("--seed", "-1"), ("--seed",)),
    Case("seed study of a hundred million", ("--seeds", "0-100000000"), ("--seeds", "at most 1000")),
    Case("--model beside --checkpoint", ("--model", "resnet18"), ("--model", "ignored with --checkpoint")),
    Case("--dataset and --lr beside --checkpoint", ("--dataset", "digits", "--lr", "0.1"),
         ("--dataset, --lr", "ignored with --checkpoint")),
    Case("--epochs beside --checkpoint", ("--epochs", "3"), ("--epochs", "ignored with --checkpoint")),
    Case("--task contradicting the checkpoint", ("--task", "segmentation"), ("--task segmentation", "contradicts")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_or_ignored_arguments_are_one_line(case, checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "attack", "--checkpoint", checkpoint, "--n", "4", "--natural", "none",
                           "--no-report", "--quiet", *case.args)
    assert_one_line(code, err, *case.words)
    assert not (tmp_path / "runs").exists()


def test_seed_beside_checkpoint_is_not_refused(checkpoint, tmp_path, monkeypatch, capsys):
    """--seed seeds the attacks too: it is not one of the flags the checkpoint fixes."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "attack", "--checkpoint", checkpoint, "--seed", "3", "--n", "4", "--eps", "0,0.1",
                           "--attack", "fgsm", "--steps", "2", "--natural", "none", "--no-report", "--quiet")
    assert code == 0, err


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """An exported (untrained) digits classifier: the class names are refused before it runs."""
    import torch

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    program = torch.export.export(net, (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path_factory.mktemp("files") / "net.pt2"
    torch.export.save(program, str(path))
    return path


CLASS_CASES = [
    Case("--classes naming one class twice", ("--classes", "0,0,1,2,3,4,5,6,7,8"), ("'0'", "twice")),
    Case("--classes repeating a name among spaces", ("--classes", "a, b,c,d,e,f,g,h,i, b"), ("'b'", "twice")),
]


@pytest.mark.parametrize("case", CLASS_CASES, ids=[c.name for c in CLASS_CASES])
def test_duplicate_class_names_are_one_line(case, model_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "attack", "--model-file", model_file, "--n", "4", "--natural", "none",
                           "--no-report", "--quiet", *case.args)
    assert_one_line(code, err, *case.words)
    assert not (tmp_path / "runs").exists()


def test_duplicate_class_names_beside_the_model_file_are_one_line(model_file, tmp_path, monkeypatch, capsys):
    import json
    import shutil

    copy = Path(shutil.copy(model_file, tmp_path / "net.pt2"))
    (tmp_path / "net.pt2.json").write_text(json.dumps({"classes": list("abcdefghia")}))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "attack", "--model-file", copy, "--n", "4", "--natural", "none", "--no-report",
                           "--quiet")
    assert_one_line(code, err, "net.pt2.json", "'a'", "twice")
    assert not (tmp_path / "runs").exists()
