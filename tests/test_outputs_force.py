"""``--force`` replaces only what robustcv wrote; the API's ``report()`` is claimed like the CLI's;
a full disk or a read-only folder at any write is one line naming the path, exit 2, nothing half-written.

Runs come from the fake attack stage of ``test_outputs_safety`` (a CLI call of a second or less),
reports from the synthetic run of ``test_report_synthetic``; the one real training is two 16-pixel
classes for one epoch.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable, NamedTuple

import pytest
from safetensors import SafetensorError

from fault_helpers import assert_one_line, image_folder, run_cli
from robustcv.errors import UserError
from robustcv.outputs import MANIFEST, OutputKind, check_replaceable, claim_output
from robustcv.results import RunResults
from test_outputs_safety import IS_ROOT, attack, checkpoint, hidden, make_run, manifest, stage, tree, work  # noqa: F401
from test_report_synthetic import make_run as synthetic_run

FULL = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'


def no_space(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


# ---------------------------------------------------------------------------------------------
# 1. --force and the manifest: anything not in its list is the user's


def _notes(folder: Path) -> None:
    (folder / "notes.txt").write_text("mine")


def _data_folder(folder: Path) -> None:
    (folder / "data").mkdir()
    (folder / "data" / "a.csv").write_text("1,2")
    (folder / "data" / "b.csv").write_text("3,4")


def _empty_folder(folder: Path) -> None:
    (folder / "keep").mkdir()


def _inside_examples(folder: Path) -> None:
    (folder / "examples" / "comment.txt").write_text("this one is odd")


def _symlink(folder: Path) -> None:
    (folder / "link").symlink_to(folder.parent)


def _many(folder: Path) -> None:
    for i in range(6):
        (folder / f"mine-{i}.txt").write_text(str(i))


class Extra(NamedTuple):
    id: str
    add: Callable[[Path], None]
    words: tuple[str, ...]


EXTRAS = [
    Extra("a-notes-file", _notes, ("notes.txt", "1 ")),
    Extra("a-data-folder", _data_folder, ("data/",)),
    Extra("an-empty-folder", _empty_folder, ("keep/",)),
    Extra("a-file-among-ours", _inside_examples, ("examples/comment.txt",)),
    Extra("a-symlink", _symlink, ("link",)),
    Extra("six-files", _many, ("mine-0.txt", "6 ")),
]


@pytest.mark.parametrize("case", EXTRAS, ids=[c.id for c in EXTRAS])
def test_force_on_a_run_holding_user_files_refuses_and_keeps_them(case, checkpoint, work, tmp_path, capsys, stage):
    target = work / "runs" / "r"
    make_run(capsys, checkpoint, target)
    case.add(target)
    before, calls = tree(tmp_path), len(stage.calls)
    code, _, err = attack(capsys, checkpoint, target, "--force")
    line = assert_one_line(code, err, str(target), "did not write", *case.words)
    assert "\n" not in line
    assert tree(tmp_path) == before and len(stage.calls) == calls  # refused before the attack


def test_a_user_file_added_during_the_run_stops_the_swap(checkpoint, work, capsys, monkeypatch, stage):
    """The swap checks the folder again: a file the user put there meanwhile is kept, the old run too."""
    target = work / "runs" / "r"
    old = make_run(capsys, checkpoint, target)
    from robustcv.evaluation import orchestrator

    def meanwhile(*args, **kwargs):
        _notes(target)
        return stage(*args, **kwargs)

    monkeypatch.setattr(orchestrator, "run_attack_stage", meanwhile)
    code, _, err = attack(capsys, checkpoint, target, "--force")
    assert_one_line(code, err, "notes.txt", "did not write")
    assert (target / "results.json").read_bytes() == old and (target / "notes.txt").read_text() == "mine"
    assert hidden(target.parent) == []


def test_a_manifest_that_lists_every_file_is_replaced(checkpoint, work, capsys, stage):
    """Control: the same run, untouched, is replaced by --force."""
    target = work / "runs" / "r"
    old = make_run(capsys, checkpoint, target)
    code, _, err = attack(capsys, checkpoint, target, "--force")
    assert code == 0, err
    assert (target / "results.json").read_bytes() != old


def test_check_replaceable_names_user_files_even_without_force(tmp_path):
    folder = tmp_path / "r"
    with claim_output(folder, OutputKind.RUN, force=False) as output, output.staging() as staging:
        (staging / "results.json").write_text("{}")
    _notes(folder)
    with pytest.raises(UserError, match="notes.txt"):
        check_replaceable(folder, OutputKind.RUN, force=False)
    (folder / "notes.txt").unlink()
    with pytest.raises(UserError, match="already exists"):
        check_replaceable(folder, OutputKind.RUN, force=False)
    check_replaceable(folder, OutputKind.RUN, force=True)


@pytest.fixture
def synthetic(tmp_path) -> Path:
    return synthetic_run(tmp_path / "runs", "r", "m", adversarial=False, failing_check=False)


def test_report_force_on_a_report_holding_user_files_refuses(synthetic, work, tmp_path, capsys):
    assert run_cli(capsys, "report", synthetic, "--out", "rep", "--format", "md")[0] == 0
    assert manifest(work / "rep")["kind"] == "report"
    _data_folder(work / "rep")
    before = tree(tmp_path)
    code, _, err = run_cli(capsys, "report", synthetic, "--out", "rep", "--format", "md", "--force")
    assert_one_line(code, err, "did not write", "data/")
    assert tree(tmp_path) == before and hidden(work) == []


# ---------------------------------------------------------------------------------------------
# 2. the API's report(): the same claims, staging and refusals


@pytest.fixture
def results(synthetic):
    from robustcv.api import EvalResults

    return EvalResults(RunResults.load(synthetic / "results.json"), synthetic)


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_api_report_refuses_the_working_directory(results, work, tmp_path, force):
    before = tree(tmp_path)
    with pytest.raises(UserError, match="current working directory"):
        results.report(".", force=force)
    assert tree(tmp_path) == before


def test_api_report_refuses_the_home_folder(results, work, tmp_path, monkeypatch):
    home = tmp_path / "home"
    _notes(home.mkdir() or home)
    monkeypatch.setenv("HOME", str(home))
    before = tree(tmp_path)
    with pytest.raises(UserError, match="home folder"):
        results.report(home, force=True)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_api_report_never_overwrites_a_users_pngs(results, work, tmp_path, force):
    mine = work / "figures"
    mine.mkdir()
    for name in ("robust_vs_eps.png", "gallery.png", "report.md"):
        (mine / name).write_bytes(b"\x89PNG mine")
    before = tree(tmp_path)
    with pytest.raises(UserError, match="did not write"):
        results.report(mine, force=force)
    assert tree(tmp_path) == before


def test_api_report_is_staged_owned_and_replaced_only_with_force(results, work):
    paths = results.report("rep", formats=["md"])
    assert paths == {"md": Path("rep") / "report.md"} and paths["md"].is_file()
    assert manifest(work / "rep")["kind"] == "report" and hidden(work) == []
    with pytest.raises(UserError, match="already exists"):
        results.report("rep", formats=["md"])
    results.report("rep", formats=["html"], force=True)
    assert sorted(p.name for p in (work / "rep").glob("report.*")) == ["report.html"]


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_api_to_json_never_overwrites_a_users_file(results, work, force):
    mine = work / "results.json"
    mine.write_text("my own notes")
    with pytest.raises(UserError, match="not a robustcv results.json"):
        results.to_json(mine, force=force)
    assert mine.read_text() == "my own notes"


def test_api_to_json_replaces_its_own_file_only_with_force(results, work):
    path = results.to_json(work / "out.json")
    with pytest.raises(UserError, match="force=True"):
        results.to_json(path)
    assert results.to_json(path, force=True) == path and RunResults.load(path).records == results.results.records


def test_api_to_json_on_a_full_disk_is_one_line(results, work, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(work / "out.json"))

    monkeypatch.setattr("robustcv.results.write_json_atomic", full)
    with pytest.raises(UserError, match="no space left"):
        results.to_json(work / "out.json")


def test_api_report_refuses_its_own_run_folder(results, synthetic):
    with pytest.raises(UserError, match="the run"):
        results.report(synthetic, force=True)


# ---------------------------------------------------------------------------------------------
# 3. faults at a write: one line with the path, exit 2, nothing half-written


def _tiny_folder(tmp_path: Path) -> Path:
    return image_folder(tmp_path / "imgs", per_class=6, classes={"a": (200, 0, 0), "b": (0, 0, 200)})


def test_disk_full_while_saving_a_checkpoint_is_one_line(tmp_path, monkeypatch, capsys):
    import robustcv.checkpoint

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")  # safetensors leaves what it wrote
        raise SafetensorError(FULL)

    monkeypatch.setattr(robustcv.checkpoint, "save_file", full)
    folder, models = _tiny_folder(tmp_path), tmp_path / "models"
    code, _, err = run_cli(capsys, "train", "--dataset", f"imagefolder:{folder}", "--image-size", "16",
                           "--epochs", "1", "--models-dir", models, "-q")
    line = assert_one_line(code, err, "no space left", str(models), "model.safetensors")
    assert ".staging" not in line
    assert not models.exists() or list(models.iterdir()) == []


class WriteFault(NamedTuple):
    id: str
    errno: int
    words: tuple[str, ...]


WRITE_FAULTS = [
    WriteFault("disk-full", errno.ENOSPC, ("no space left",)),
    WriteFault("read-only", errno.EROFS, ("read-only",)),
    WriteFault("no-permission", errno.EACCES, ("permission denied",)),
]


@pytest.mark.parametrize("case", WRITE_FAULTS, ids=[c.id for c in WRITE_FAULTS])
def test_a_fault_writing_results_json_is_one_line_naming_the_run(case, checkpoint, work, tmp_path, monkeypatch,
                                                                  capsys, stage):
    import robustcv.results

    real = robustcv.results.write_bytes_atomic

    def failing(path, payload):
        if Path(path).name == "results.json":
            raise OSError(case.errno, os.strerror(case.errno), str(path))
        return real(path, payload)

    monkeypatch.setattr(robustcv.results, "write_bytes_atomic", failing)
    target = work / "runs" / "r"
    code, _, err = attack(capsys, checkpoint, target)
    line = assert_one_line(code, err, str(target / "results.json"), *case.words)
    assert ".staging" not in line
    assert not target.parent.exists()  # no staging left, and the folder made for the run removed


def test_disk_full_while_writing_a_report_keeps_the_old_one(synthetic, work, monkeypatch, capsys):
    import robustcv.report.render

    assert run_cli(capsys, "report", synthetic, "--out", "rep", "--format", "md")[0] == 0
    before = tree(work / "rep")

    def full(path, payload):
        raise no_space(path)

    monkeypatch.setattr(robustcv.report.render, "write_bytes_atomic", full)
    code, _, err = run_cli(capsys, "report", synthetic, "--out", "rep", "--format", "md", "--force")
    assert_one_line(code, err, "no space left", str(work / "rep" / "report.md"))
    assert tree(work / "rep") == before and hidden(work) == []


def test_disk_full_while_saving_a_denoiser_is_one_line(checkpoint, work, monkeypatch, capsys):
    import defenses
    import safetensors.torch

    def quick_train(model, data, **kwargs):
        return defenses.Denoiser(channels=1, width=4, depth=2)

    def full(tensors, filename, metadata=None):
        raise SafetensorError(FULL)

    monkeypatch.setattr(defenses, "train_denoiser", quick_train)
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    code, _, err = run_cli(capsys, "train", "--denoiser-for", checkpoint, "--train-eps", "0.1", "--epochs", "1",
                           "--models-dir", work / "models")
    assert_one_line(code, err, "no space left", str(work / "models" / "ck-denoiser-eps0.1"))
    assert not (work / "models").exists()  # no staging left, and the folder made for it removed


def test_a_fault_making_the_staging_folder_is_one_line(tmp_path, monkeypatch):
    import tempfile

    def full(*args, **kwargs):
        raise no_space(Path(kwargs.get("dir", tmp_path)) / ".x.staging-1")

    with claim_output(tmp_path / "x", OutputKind.RUN, force=False) as output:
        monkeypatch.setattr(tempfile, "mkdtemp", full)
        with pytest.raises(UserError, match=f"{tmp_path}.*no space left"):
            with output.staging():
                pass


# ---------------------------------------------------------------------------------------------
# 4. the weights file's mode is every other file's


def test_model_safetensors_is_written_with_the_usual_mode(checkpoint):
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    for name in ("model.safetensors", "model.json", MANIFEST):
        assert stat.S_IMODE((checkpoint / name).stat().st_mode) == expected, name


# ---------------------------------------------------------------------------------------------
# 5. the same faults through the Python API


@pytest.mark.parametrize("message, raised", [(FULL, UserError), ("Error while serializing: odd", SafetensorError)],
                         ids=["disk-full-is-a-user-error", "any-other-error-stays-a-bug"])
def test_save_checkpoint_faults(tmp_path, monkeypatch, message, raised):
    import robustcv.checkpoint
    from fault_helpers import digits_checkpoint

    def failing(tensors, filename, metadata=None):
        raise SafetensorError(message)

    monkeypatch.setattr(robustcv.checkpoint, "save_file", failing)
    with pytest.raises(raised) as info:
        digits_checkpoint(tmp_path / "ck")
    if raised is UserError:
        assert str(info.value).startswith(f"cannot write {tmp_path / 'ck' / 'model.safetensors'}: no space left")
    assert list(tmp_path.iterdir()) == []  # no staging folder, no lock, no half checkpoint


@pytest.mark.skipif(IS_ROOT, reason="root ignores file modes (the monkeypatched cases above run everywhere)")
def test_a_read_only_folder_refuses_the_api_report(results, work, tmp_path):
    folder = work / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(UserError, match="permission denied"):
            results.report(folder / "rep")
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []
