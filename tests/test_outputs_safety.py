"""Outputs are owned and swapped, never wiped: ``--force``, staging, locks and file-system faults.

The attack and report stages are replaced by fakes that write a few files (the real ones are
tested in ``test_cli.py``), so every case here is a CLI call of a second or less. The checkpoint
is an untrained ``small_cnn`` saved once per module.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from fault_helpers import assert_one_line, run_cli
from robustcv.cli import main
from robustcv.outputs import MANIFEST, OutputKind, claim_output
from robustcv.results import RunResults, write_json_atomic

CHEAP = ["--no-report", "--quiet", "--n", "4", "--eps", "0,0.1", "--natural", "none", "--attack", "fgsm"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ---------------------------------------------------------------------------------------------
# helpers and fixtures


def tree(root: Path) -> dict[str, bytes | str | None]:
    """Every entry under ``root`` with its bytes (files), link target (symlinks) or None (folders)."""
    def content(p: Path) -> bytes | str | None:
        return os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else None
    return {p.relative_to(root).as_posix(): content(p) for p in root.rglob("*")}


def hidden(folder: Path) -> list[str]:
    """Leftovers beside outputs: staging folders, retired outputs, lock files."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def manifest(directory: Path) -> dict:
    return json.loads((directory / MANIFEST).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained digits ``small_cnn`` checkpoint (enough for --checkpoint; never attacked for real)."""
    from robustcv.checkpoint import ModelMetadata, save_checkpoint
    from robustcv.data import DataSpec, get_dataset
    from robustcv.models import ModelSpec, build_model

    data, spec = DataSpec(name="digits"), ModelSpec(name="small_cnn")
    info = get_dataset(data).info
    meta = ModelMetadata(name="ck", data=data, data_info=info, model=spec)
    return save_checkpoint(tmp_path_factory.mktemp("models") / "ck", build_model(spec, info), meta)


class FakeStage:
    """Stands in for ``run_attack_stage``: writes results.json, config.json and a gallery PNG
    (each run's results differ), then raises ``fail`` if set; ``passthrough`` calls the real one."""

    def __init__(self, real: Callable) -> None:
        self.real, self.calls, self.fail, self.passthrough = real, [], None, False

    def __call__(self, checkpoint, config, out_dir, **kwargs):
        if self.passthrough:
            return self.real(checkpoint, config, out_dir, **kwargs)
        name = kwargs.get("name")
        self.calls.append({"out_dir": Path(out_dir), "name": name})
        (out_dir / "examples").mkdir()
        (out_dir / "examples" / "0_clean.png").write_bytes(b"\x89PNG fake")
        write_json_atomic(out_dir / "config.json", {"checkpoint": str(checkpoint)})
        results = RunResults(run={"name": name, "eps_grid": config.eps, "norm": config.norm, "token": uuid.uuid4().hex})
        results.save(out_dir / "results.json")
        if self.fail is not None:
            raise self.fail
        return results


@pytest.fixture
def stage(monkeypatch) -> FakeStage:
    from robustcv.evaluation import orchestrator

    fake = FakeStage(orchestrator.run_attack_stage)
    monkeypatch.setattr(orchestrator, "run_attack_stage", fake)
    return fake


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The working directory of the command, inside ``tmp_path``."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def attack(capsys, checkpoint: Path, out: str | Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(capsys, "attack", "--checkpoint", checkpoint, "--out", out, *CHEAP, *extra)


def make_run(capsys, checkpoint: Path, out: Path) -> bytes:
    """A finished run (through the fake stage); returns its results.json bytes."""
    code, _, err = attack(capsys, checkpoint, out)
    assert code == 0, err
    return (out / "results.json").read_bytes()


def user_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("mine, not robustcv's")


def legacy_run(folder: Path) -> None:
    """A run directory as robustcv wrote it before manifests."""
    (folder / "examples").mkdir(parents=True)
    (folder / "examples" / "0_clean.png").write_bytes(b"\x89PNG old")
    RunResults(run={"name": folder.name, "eps_grid": [0.0], "norm": "linf"}).save(folder / "results.json")
    (folder / "config.json").write_text("{}")


def deny_writes_under(folder: Path, monkeypatch) -> None:
    """No permission to write in ``folder``: for real (chmod) or, as root, by refusing os.open/os.mkdir there."""
    folder.mkdir(parents=True, exist_ok=True)
    if not IS_ROOT:
        folder.chmod(0o555)
        return
    for name in ("open", "mkdir"):
        real = getattr(os, name)

        def denied(path, *args, _real=real, **kwargs):
            if Path(os.path.abspath(path)).parent == folder:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return _real(path, *args, **kwargs)
        monkeypatch.setattr(os, name, denied)


# ---------------------------------------------------------------------------------------------
# 1. --force replaces only robustcv's own outputs


class Refusal(NamedTuple):
    id: str
    out: str
    setup: Callable[[Path, pytest.MonkeyPatch, Path], None]
    words: tuple[str, ...]


REFUSALS = [
    Refusal("cwd", ".", lambda w, m, ck: user_files(w / "data"), ("current working directory",)),
    Refusal("parent-of-cwd", "..", lambda w, m, ck: user_files(w), ("parent of the current working directory",)),
    Refusal("models-folder", "models", lambda w, m, ck: shutil.copytree(ck, w / "models" / ck.name),
            ("models folder",)),
    Refusal("home", "home", lambda w, m, ck: (user_files(w / "home"), m.setenv("HOME", str(w / "home"))),
            ("home folder",)),
    Refusal("user-folder", "mine", lambda w, m, ck: user_files(w / "mine"), ("did not write", "notes.txt")),
    Refusal("a-checkpoint", "ck", lambda w, m, ck: shutil.copytree(ck, w / "ck"), ("checkpoint, not a run",)),
    Refusal("old-run-plus-user-file", "old", lambda w, m, ck: (legacy_run(w / "old"), user_files(w / "old")),
            ("did not write",)),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c.id for c in REFUSALS])
def test_force_refuses_what_robustcv_does_not_own(case, checkpoint, work, tmp_path, monkeypatch, capsys, stage):
    case.setup(work, monkeypatch, checkpoint)
    before = tree(tmp_path)
    code, _, err = attack(capsys, checkpoint, case.out, "--force")
    assert_one_line(code, err, *case.words)
    assert tree(tmp_path) == before  # nothing deleted, nothing left behind
    assert not stage.calls  # refused before the attack


class Replace(NamedTuple):
    id: str
    setup: Callable  # (capsys, checkpoint, target) -> None: what is at the target before
    link: bool = False  # --out is a live symlink to the target


REPLACEABLE = [
    Replace("robustcv-run", lambda c, ck, t: make_run(c, ck, t)),
    Replace("run-from-before-manifests", lambda c, ck, t: legacy_run(t)),
    Replace("empty-folder", lambda c, ck, t: t.mkdir(parents=True)),
    Replace("symlink-to-a-run", lambda c, ck, t: make_run(c, ck, t), link=True),
]


@pytest.mark.parametrize("case", REPLACEABLE, ids=[c.id for c in REPLACEABLE])
def test_force_replaces_a_robustcv_run_whole(case, checkpoint, work, capsys, stage):
    target = work / "runs" / "r"
    case.setup(capsys, checkpoint, target)
    out = target
    if case.link:
        out = work / "link"
        out.symlink_to(target, target_is_directory=True)
    old = (target / "results.json").read_bytes() if (target / "results.json").exists() else b""
    code, _, err = attack(capsys, checkpoint, out, "--force")
    assert code == 0, err
    assert (target / "results.json").read_bytes() != old
    assert manifest(target)["kind"] == "run"
    assert set(manifest(target)["files"]) == {"results.json", "config.json", "examples/0_clean.png"}
    assert stage.calls[-1]["name"] == out.name and stage.calls[-1]["out_dir"].parent == target.parent
    assert hidden(target.parent) == [] and out.is_symlink() == case.link


def test_checkpoints_carry_a_manifest(checkpoint):
    assert manifest(checkpoint)["kind"] == OutputKind.CHECKPOINT.value
    assert set(manifest(checkpoint)["files"]) == {"model.json", "model.safetensors"}


# ---------------------------------------------------------------------------------------------
# 2. a forced run that fails keeps the old output and leaves no staging folder


class Failure(NamedTuple):
    id: str
    fail: BaseException | None  # what the stage raises after writing its files
    expect: int | type  # exit status, or the exception main() lets through
    words: tuple[str, ...] = ()
    corrupt_weights: bool = False  # the real stage, on a checkpoint with garbage weights


FAILURES = [
    Failure("bad-checkpoint", None, 2, ("weights",), corrupt_weights=True),
    Failure("interrupted", KeyboardInterrupt(), 130),
    Failure("crash", RuntimeError("boom"), RuntimeError),
    Failure("disk-full", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "runs/r/results.json"), 2, ("no space",)),
]


@pytest.mark.parametrize("case", FAILURES, ids=[c.id for c in FAILURES])
def test_failed_forced_run_keeps_the_old_results(case, checkpoint, work, capsys, stage):
    target = work / "runs" / "r"
    old = make_run(capsys, checkpoint, target)
    old_tree = tree(target)
    if case.corrupt_weights:
        checkpoint = Path(shutil.copytree(checkpoint, work / "broken"))
        (checkpoint / "model.safetensors").write_bytes(b"not safetensors")
        stage.passthrough = True
    stage.fail = case.fail
    if isinstance(case.expect, type):
        with pytest.raises(case.expect):
            main([str(a) for a in ["attack", "--checkpoint", checkpoint, "--out", target, *CHEAP, "--force"]])
    else:
        code, _, err = attack(capsys, checkpoint, target, "--force")
        assert code == case.expect, err
        if code == 2:
            assert_one_line(code, err, *case.words)
    assert (target / "results.json").read_bytes() == old
    assert tree(target) == old_tree
    assert hidden(target.parent) == []  # no staging folder, no retired run, no lock


# ---------------------------------------------------------------------------------------------
# 3. one run per output: a lock beside it


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class LockCase(NamedTuple):
    id: str
    holder: Callable[[], dict | None]  # the lock file's content (None: empty, written a minute ago)
    refused: bool
    words: Callable[[dict | None], tuple[str, ...]] = lambda h: ()


STARTED = "2031-01-02T03:04:05Z"
LOCKS = [
    LockCase("running-here", lambda: {"pid": os.getppid(), "host": socket.gethostname(), "started": STARTED},
             True, lambda h: (f"pid {h['pid']}", h["host"], h["started"])),
    LockCase("running-elsewhere", lambda: {"pid": 1, "host": "other.example", "started": STARTED},
             True, lambda h: ("other.example", "delete")),
    LockCase("stale-dead-pid", lambda: {"pid": _dead_pid(), "host": socket.gethostname(), "started": "x"}, False),
    LockCase("stale-unreadable", lambda: None, False),
]


@pytest.mark.parametrize("case", LOCKS, ids=[c.id for c in LOCKS])
def test_a_lock_refuses_a_second_run_or_is_taken_over(case, checkpoint, work, capsys, stage):
    target = work / "runs" / "r"
    old = make_run(capsys, checkpoint, target)
    lock, holder = target.parent / ".r.lock", case.holder()
    lock.write_text(json.dumps(holder) if holder else "")
    if holder is None:
        os.utime(lock, (time.time() - 60, time.time() - 60))
    (target.parent / ".r.staging-killed").mkdir()  # what a killed run leaves
    stage.calls.clear()
    code, _, err = attack(capsys, checkpoint, target, "--force")
    if case.refused:
        assert_one_line(code, err, "another robustcv run", *case.words(holder))
        assert (target / "results.json").read_bytes() == old and not stage.calls
        assert lock.read_text() == json.dumps(holder)  # not ours to delete
    else:
        assert code == 0, err
        assert (target / "results.json").read_bytes() != old
        assert hidden(target.parent) == []  # lock released, the killed run's staging cleared


def test_a_run_in_progress_refuses_a_second_one_at_once(checkpoint, work, capsys, stage):
    target = work / "runs" / "r"
    with claim_output(target, OutputKind.RUN, force=False):  # the first run, still going
        code, _, err = attack(capsys, checkpoint, target)
        assert_one_line(code, err, "another robustcv run", f"pid {os.getpid()}", socket.gethostname())
    assert not stage.calls and not target.parent.exists()  # lock gone, and the folder made for it
    make_run(capsys, checkpoint, target)  # released: the next run goes ahead


# ---------------------------------------------------------------------------------------------
# 4. file-system faults are one line, found before any work


class Fault(NamedTuple):
    id: str
    argv: Callable[[Path], list[str]]  # command line; it gets --checkpoint (attack) from the test
    setup: Callable[[Path, pytest.MonkeyPatch], None]
    words: tuple[str, ...]


def _file(path: Path) -> None:
    path.write_text("a file")


FAULTS = [
    Fault("file-in-the-way", lambda ck: ["attack", "--checkpoint", ck, "--out", "f/run", *CHEAP],
          lambda w, m: _file(w / "f"), ("is a file",)),
    Fault("dangling-symlink", lambda ck: ["attack", "--checkpoint", ck, "--out", "dl", *CHEAP],
          lambda w, m: (w / "dl").symlink_to(w / "nowhere"), ("dangling symlink",)),
    Fault("dangling-symlink-above", lambda ck: ["attack", "--checkpoint", ck, "--out", "dl/run", *CHEAP],
          lambda w, m: (w / "dl").symlink_to(w / "nowhere"), ("dangling symlink",)),
    Fault("name-over-255-bytes", lambda ck: ["attack", "--checkpoint", ck, "--out", "é" * 130, *CHEAP],
          lambda w, m: None, ("260 bytes", "255")),
    Fault("no-permission", lambda ck: ["attack", "--checkpoint", ck, "--out", "ro/run", *CHEAP],
          lambda w, m: deny_writes_under(w / "ro", m), ("permission denied",)),
    Fault("report-no-permission", lambda ck: ["attack", "--checkpoint", ck, "--out", "run", "--report-dir", "ro/rep",
                                              *CHEAP[1:]], lambda w, m: deny_writes_under(w / "ro", m),
          ("permission denied",)),
    # before training: the models folder must take the checkpoint, the run folder the run
    Fault("train-models-dir-under-a-file", lambda ck: ["train", "--models-dir", "f/models", "-q"],
          lambda w, m: _file(w / "f"), ("is a file",)),
    Fault("train-models-dir-no-permission", lambda ck: ["train", "--models-dir", "ro", "-q"],
          lambda w, m: deny_writes_under(w / "ro", m), ("permission denied",)),
    Fault("attack-to-train-out-under-a-file", lambda ck: ["attack", "--out", "f/run", *CHEAP],
          lambda w, m: _file(w / "f"), ("is a file",)),
]


@pytest.mark.parametrize("case", FAULTS, ids=[c.id for c in FAULTS])
def test_file_system_faults_are_one_line(case, checkpoint, work, tmp_path, monkeypatch, capsys, stage):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before finding the output unwritable")

    monkeypatch.setattr("robustcv.training.trainer.fit", no_training)
    case.setup(work, monkeypatch)
    before = tree(tmp_path)
    code, _, err = run_cli(capsys, *case.argv(checkpoint))
    assert_one_line(code, err, *case.words)
    assert tree(tmp_path) == before and not stage.calls


# ---------------------------------------------------------------------------------------------
# 5. robustcv report --out: the same rules


class FakeReport:
    """Stands in for ``write_report`` (what ``render_report`` writes into its staging folder):
    writes the chosen formats, then raises ``fail`` if set."""

    def __init__(self) -> None:
        self.fail: BaseException | None = None

    def __call__(self, runs, folder, formats=("html", "md")):
        Path(folder).mkdir(parents=True, exist_ok=True)  # as write_report does
        paths = {f: Path(folder) / f"report.{f}" for f in formats}
        for path in paths.values():
            path.write_text(f"<title>Robustness report</title> {uuid.uuid4().hex}")
        if self.fail is not None:
            raise self.fail
        return paths


class ReportCase(NamedTuple):
    id: str
    out: str
    setup: Callable[[Path], None]
    code: int
    words: tuple[str, ...] = ()
    fail: BaseException | None = None


REPORT_CASES = [
    ReportCase("cwd", ".", lambda w: None, 2, ("current working directory",)),
    ReportCase("user-folder", "mine", lambda w: user_files(w / "mine"), 2, ("did not write",)),
    ReportCase("the-run-itself", "runs/r", lambda w: None, 2, ("the run",)),
    ReportCase("interrupted-keeps-the-old-report", "rep", lambda w: None, 130, fail=KeyboardInterrupt()),
    ReportCase("replaces-a-robustcv-report", "rep", lambda w: None, 0),
]


@pytest.mark.parametrize("case", REPORT_CASES, ids=[c.id for c in REPORT_CASES])
def test_report_out_follows_the_same_rules(case, checkpoint, work, tmp_path, monkeypatch, capsys, stage):
    import robustcv.report.render

    fake = FakeReport()
    monkeypatch.setattr(robustcv.report.render, "write_report", fake)
    make_run(capsys, checkpoint, work / "runs" / "r")
    assert run_cli(capsys, "report", "runs/r", "--out", "rep")[0] == 0
    case.setup(work)
    before = tree(tmp_path)
    fake.fail = case.fail
    code, _, err = run_cli(capsys, "report", "runs/r", "--out", case.out, "--force")
    assert code == case.code, err
    if code == 2:
        assert_one_line(code, err, *case.words)
    if code == 0:
        assert (work / "rep" / "report.html").read_bytes() != before["work/rep/report.html"]
        assert manifest(work / "rep")["kind"] == "report"
    else:
        assert tree(tmp_path) == before
    assert hidden(work) == []


# ---------------------------------------------------------------------------------------------
# denoiser folders: owned like checkpoints


class DenoiserCase(NamedTuple):
    id: str
    setup: Callable[[Path], None]  # given the denoiser folder the command will write
    code: int
    words: tuple[str, ...] = ()


def _old_denoiser(folder: Path) -> None:
    """A denoiser folder as robustcv wrote it before manifests."""
    folder.mkdir(parents=True)
    (folder / "denoiser.json").write_text(json.dumps({"format": "robustcv-denoiser/1"}))
    (folder / "denoiser.safetensors").write_bytes(b"old weights")


DENOISER_CASES = [
    DenoiserCase("user-files-refused", user_files, 2, ("did not write", "notes.txt")),
    DenoiserCase("a-run-is-not-a-denoiser", legacy_run, 2, ("is a robustcv run", "not a denoiser")),
    DenoiserCase("old-denoiser-replaced", _old_denoiser, 0),
    DenoiserCase("new", lambda folder: None, 0),
]


@pytest.mark.parametrize("case", DENOISER_CASES, ids=[c.id for c in DENOISER_CASES])
def test_denoiser_folders_are_owned(case, checkpoint, work, tmp_path, monkeypatch, capsys):
    import defenses

    def quick_train(model, data, **kwargs):  # the real training is tested in test_defenses_eval.py
        return defenses.Denoiser(channels=1, width=4, depth=2)

    monkeypatch.setattr(defenses, "train_denoiser", quick_train)
    folder = work / "models" / "ck-denoiser-eps0.1"
    case.setup(folder)
    before = tree(tmp_path)
    code, out, err = run_cli(capsys, "train", "--denoiser-for", checkpoint, "--train-eps", "0.1", "--epochs", "1",
                             "--models-dir", work / "models", "--force")
    if case.code == 2:
        assert_one_line(code, err, *case.words)
        assert tree(tmp_path) == before
    else:
        assert code == 0, err
        assert "training one" in out
        assert manifest(folder)["kind"] == "denoiser"
        assert defenses.load_denoiser(folder).width == 4
    assert hidden(folder.parent) == []
