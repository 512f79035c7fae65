"""``robustcv attack --model-file``: TorchScript and torch.export models attacked from the CLI, and
files that would run code while loading refused (one line, exit 2) before anything runs.

Every hostile file is crafted here: a real model archive with one member replaced by a payload that
would create a marker file if torch unpickled, evaluated or exec'd it. The marker must never appear.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from robustcv.cli import main
from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.errors import UserError
from robustcv.model_files import load_model_file
from robustcv.results import RunResults
from user_models import linear_classifier

SMALL = ["--n", "30", "--eps", "0,0.05", "--attack", "fgsm,pgd", "--natural", "none", "--quiet"]


class Payload:
    """Unpickling this runs ``os.system('touch MARKER')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def digits():
    splits = get_dataset(DataSpec(name="digits"))
    return as_tensors(splits.train), as_tensors(splits.test)


@pytest.fixture(scope="module")
def net(digits):
    """A linear digits classifier trained by a plain loop (the user's own model)."""
    (x, y), _ = digits
    return linear_classifier(x, y)


def export_program(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    return path


def script_archive(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(model, example), str(path))
    return path


def replace_member(src: Path, dst: Path, suffix: str, payload: bytes) -> Path:
    """Copy the zip ``src`` to ``dst`` with the member ending in ``suffix`` replaced by ``payload``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        hits = [i for i in zin.infolist() if i.filename.endswith(suffix)]
        assert len(hits) == 1, (suffix, zin.namelist())
        for info in zin.infolist():
            zout.writestr(info, payload if info is hits[0] else zin.read(info.filename))
    return dst


def edit_program(src: Path, dst: Path, edit) -> Path:
    """Copy a .pt2 with its program JSON (``models/model.json``) changed by ``edit(doc)``."""
    with zipfile.ZipFile(src) as zin:
        name = next(n for n in zin.namelist() if n.endswith("models/model.json"))
        doc = json.loads(zin.read(name))
    edit(doc)
    return replace_member(src, dst, "models/model.json", json.dumps(doc).encode())


def assert_refused(capsys, tmp_path: Path, model_file: Path, *words: str) -> str:
    code = main(["attack", "--model-file", str(model_file), "--out", str(tmp_path / "run"),
                 "--report-dir", str(tmp_path / "rep"), *SMALL])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("Error: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "run" / "results.json").exists()
    return err


def assert_live(marker: Path, load) -> None:
    """Control: torch's own loader does run the payload (so refusing it is what kept it from running)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load()
        except Exception:  # the payload ran (or not) before torch failed on the rest: the marker says
            pass
    assert marker.exists(), "the crafted payload is not live; the refusal test proves nothing"


def drawn_accuracy(model: nn.Module, test: tuple[torch.Tensor, torch.Tensor], n: int, seed: int) -> float:
    """Accuracy on the attack's samples: the first ``n`` test images after a shuffle seeded by ``seed``."""
    x, y = test
    rows = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    with torch.no_grad():
        return float((model(x[rows]).argmax(1) == y[rows]).float().mean())


# ---------------------------------------------------------------------------------------------
# exported models attacked from the CLI


@pytest.mark.parametrize("kind", ["export", "torchscript"])
def test_exported_model_attacked_from_the_cli(tmp_path, capsys, digits, net, kind):
    (x, _), test = digits
    save = export_program if kind == "export" else script_archive
    model_file = save(net, x[:2], tmp_path / ("net.pt2" if kind == "export" else "net.pt"))
    code = main(["attack", "--model-file", str(model_file), "--out", str(tmp_path / "run"),
                 "--report-dir", str(tmp_path / "rep"), *SMALL])
    assert code == 0, capsys.readouterr().err
    results = RunResults.load(tmp_path / "run" / "results.json")
    curve = {r.eps: r.value for r in results.records if r.metric == "robust_accuracy" and r.attack == "worst-case"
             and r.cls is None}
    clean = drawn_accuracy(net, test, 30, seed=0)
    assert clean > 0.7  # the model is a real classifier, so eps 0 says something
    assert curve[0.0] == pytest.approx(clean)
    assert curve[0.05] < curve[0.0]  # the attack does reach the exported model's gradients
    assert results.models[0]["model_file"] == str(model_file) and results.models[0]["name"] == "net"
    assert (tmp_path / "rep" / "report.html").is_file()


def test_class_names_from_the_json_beside_the_file_and_from_flags(tmp_path, capsys, digits, net):
    model_file = export_program(net, digits[0][0][:2], tmp_path / "net.pt2")
    names = [f"digit-{i}" for i in range(10)]
    (tmp_path / "net.pt2.json").write_text(json.dumps({"classes": names}))
    assert main(["attack", "--model-file", str(model_file), "--out", str(tmp_path / "run"), "--no-report",
                 *SMALL]) == 0
    assert RunResults.load(tmp_path / "run" / "results.json").run["data_info"]["classes"] == names
    assert main(["attack", "--model-file", str(model_file), "--classes", ",".join("abcdefghij"), "--out",
                 str(tmp_path / "run2"), "--no-report", *SMALL]) == 0
    assert RunResults.load(tmp_path / "run2" / "results.json").run["data_info"]["classes"] == list("abcdefghij")
    capsys.readouterr()
    code = main(["attack", "--model-file", str(model_file), "--classes", "a,b,c", *SMALL])
    assert code == 2 and "3 class names given" in capsys.readouterr().err


@pytest.mark.parametrize("flags, word", [(["--checkpoint", "models/x"], "--checkpoint"),
                                         (["--model", "small_cnn"], "--model"), (["--epochs", "3"], "--epochs")],
                         ids=["checkpoint", "model", "epochs"])
def test_model_file_conflicts_with_model_and_training_flags(tmp_path, capsys, digits, net, flags, word):
    model_file = export_program(net, digits[0][0][:2], tmp_path / "net.pt2")
    code = main(["attack", "--model-file", str(model_file), *flags, *SMALL])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and word in err and "--model-file" in err, err


def test_a_program_exported_for_one_batch_size_is_refused_with_a_hint(tmp_path, capsys, digits, net):
    program = torch.export.export(net, (digits[0][0][:2],))  # static batch of 2
    torch.export.save(program, str(tmp_path / "static.pt2"))
    assert_refused(capsys, tmp_path, tmp_path / "static.pt2", "dynamic batch")


def test_a_model_with_the_wrong_number_of_outputs_is_refused(tmp_path, capsys, digits):
    x = digits[0][0]
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 7)).eval()
    assert_refused(capsys, tmp_path, export_program(wrong, x[:2], tmp_path / "seven.pt2"), "(4, 7)", "10 classes")


# ---------------------------------------------------------------------------------------------
# files that would run code while loading: refused, never run


def test_pickle_in_a_torchscript_archive_is_refused_and_never_run(tmp_path, capsys, digits, net):
    marker = tmp_path / "MARKER"
    good = script_archive(net, digits[0][0][:2], tmp_path / "net.pt")
    evil = replace_member(good, tmp_path / "evil.pt", "/data.pkl", pickle.dumps(Payload(marker), protocol=2))
    assert_refused(capsys, tmp_path, evil, "posix.system", "refused")
    assert not marker.exists()


def test_pickle_in_the_sample_inputs_of_a_pt2_is_refused_and_never_run(tmp_path, capsys, digits, net):
    """torch.export.load itself would run this one: weights_only=True fails, then it retries with
    weights_only=False (torch 2.14, _export/serde/serialize.py ``deserialize_torch_artifact``)."""
    marker = tmp_path / "MARKER"
    good = export_program(net, digits[0][0][:2], tmp_path / "net.pt2")
    buffer = io.BytesIO()
    torch.save(Payload(marker), buffer)
    evil = replace_member(good, tmp_path / "evil.pt2", "sample_inputs/model.pt", buffer.getvalue())
    assert_refused(capsys, tmp_path, evil, "posix.system")
    assert not marker.exists()
    assert_live(marker, lambda: torch.export.load(str(evil)))


def test_a_pickled_weight_in_a_pt2_is_refused_and_never_run(tmp_path, capsys, digits, net):
    marker = tmp_path / "MARKER"
    good = export_program(net, digits[0][0][:2], tmp_path / "net.pt2")
    with zipfile.ZipFile(good) as archive:
        name = next(n for n in archive.namelist() if n.endswith("model_weights_config.json"))
        config = json.loads(archive.read(name))
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True  # torch.export.load: torch.load(weights_only=False) of that member
    step = replace_member(good, tmp_path / "step.pt2", "model_weights_config.json", json.dumps(config).encode())
    buffer = io.BytesIO()
    torch.save(Payload(marker), buffer)
    evil = replace_member(step, tmp_path / "evil.pt2", "weights/" + first["path_name"], buffer.getvalue())
    assert_refused(capsys, tmp_path, evil, "pickled object")
    assert not marker.exists()


def test_code_in_a_shape_expression_is_refused_and_never_run(tmp_path, capsys, digits, net):
    """Symbolic shapes go through sympy.sympify, i.e. eval."""
    marker = tmp_path / "MARKER"
    good = export_program(net, digits[0][0][:2], tmp_path / "net.pt2")

    def inject(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr_str":
                    node[key] = f"__import__('os').system('touch {marker}')"
                else:
                    inject(value)
        elif isinstance(node, list):
            for value in node:
                inject(value)

    evil = edit_program(good, tmp_path / "evil.pt2", inject)
    assert "__import__" in zipfile.ZipFile(evil).read(next(n for n in zipfile.ZipFile(evil).namelist()
                                                            if n.endswith("models/model.json"))).decode()
    assert_refused(capsys, tmp_path, evil, "evaluate as code")
    assert not marker.exists()
    assert_live(marker, lambda: torch.export.load(str(evil)))


def test_guard_code_in_a_pt2_is_refused_and_never_run(tmp_path, capsys, digits, net):
    """``guards_code`` is Python source (torch 2.14's load keeps it unused, but it is code by
    design: refused rather than trusted to stay unused)."""
    marker = tmp_path / "MARKER"
    good = export_program(net, digits[0][0][:2], tmp_path / "net.pt2")
    evil = edit_program(good, tmp_path / "evil.pt2",
                        lambda doc: doc.update(guards_code=[f"__import__('os').system('touch {marker}') == 0"]))
    assert_refused(capsys, tmp_path, evil, "guard code")
    assert not marker.exists()


def test_torchscript_that_writes_files_or_runs_setstate_is_refused(tmp_path, capsys):
    marker = tmp_path / "MARKER"

    class Writes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.target = str(marker)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch.ops.aten.save(x, self.target)
            return x.flatten(1)

    class Restores(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = 1.0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) * self.scale

        @torch.jit.export
        def __getstate__(self) -> tuple[float, bool]:
            return self.scale, self.training

        @torch.jit.export
        def __setstate__(self, state: tuple[float, bool]) -> None:
            self.scale = state[0]
            self.training = state[1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(Writes()), str(tmp_path / "writes.pt"))
        torch.jit.save(torch.jit.script(Restores()), str(tmp_path / "restores.pt"))
    with pytest.raises(UserError, match="aten::save"):
        load_model_file(tmp_path / "writes.pt")
    with pytest.raises(UserError, match="__setstate__"):
        load_model_file(tmp_path / "restores.pt")
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_a_torch_save_pickle_is_refused_with_what_to_do_instead(tmp_path, capsys, net, legacy):
    marker = tmp_path / "MARKER"
    path = tmp_path / "net.pth"
    torch.save({"model": net, "x": Payload(marker)}, path, _use_new_zipfile_serialization=not legacy)
    err = assert_refused(capsys, tmp_path, path, "never unpickles")
    assert "torch.export.save" in err and "safetensors" in err
    assert not marker.exists()


def test_a_missing_foreign_or_damaged_file_is_one_line(tmp_path, capsys, digits, net):
    assert_refused(capsys, tmp_path, tmp_path / "absent.pt2", "no model file")
    (tmp_path / "notes.pt2").write_text("hello")
    assert_refused(capsys, tmp_path, tmp_path / "notes.pt2", "not a TorchScript archive")
    good = export_program(net, digits[0][0][:2], tmp_path / "net.pt2").read_bytes()
    damaged = bytearray(good)
    middle = len(good) // 2
    damaged[middle:middle + 64] = bytes(64)  # zeroed inside a member: the CRC no longer matches
    (tmp_path / "damaged.pt2").write_bytes(bytes(damaged))
    assert_refused(capsys, tmp_path, tmp_path / "damaged.pt2")
