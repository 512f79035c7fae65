"""torch.distributed under torchrun (gloo on the CPU): results equal the one-process run's."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _robustcv(args: list[str], cwd: Path, processes: int = 1) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    return subprocess.run(launcher + ["-m", "robustcv", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    done = _robustcv(["train", "-q", "--epochs", "3"], root)
    assert done.returncode == 0, done.stderr
    return next((root / "models").iterdir())


def _records(path: Path) -> list[dict]:
    results = json.loads((path / "results.json").read_text())
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results["records"]]


def test_two_processes_write_the_records_of_one(checkpoint, tmp_path):
    args = ["attack", "-q", "--checkpoint", str(checkpoint), "--samples", "60", "--natural", "none", "--no-report",
            "--attack", "fgsm,pgd(restarts=2)"]
    one = _robustcv(args + ["--out", "one"], tmp_path)
    two = _robustcv(args + ["--out", "two"], tmp_path, processes=2)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr, two.stderr)
    assert _records(tmp_path / "one") == _records(tmp_path / "two")
    assert two.stdout.count("robust accuracy (linf)") == 1  # rank 0 alone prints


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["autoattack", "autoattack:rand"])
def test_two_processes_give_the_protocols_records_of_one(checkpoint, tmp_path, protocol):
    """AutoAttack's cascade draws its random starts per sample: the process count cannot move it."""
    args = ["attack", "-q", "--checkpoint", str(checkpoint), "--samples", "24", "--natural", "none", "--no-report",
            "--protocol", protocol, "--eps", "0,0.1"]
    one = _robustcv(args + ["--out", "one"], tmp_path)
    two = _robustcv(args + ["--out", "two"], tmp_path, processes=2)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr, two.stderr)
    assert _records(tmp_path / "one") == _records(tmp_path / "two")


@pytest.mark.slow  # 18-30 s; test_determinism.test_evaluation_is_batch_size_independent shows it in-process
def test_batch_size_does_not_change_records(checkpoint, tmp_path):
    args = ["attack", "-q", "--checkpoint", str(checkpoint), "--samples", "60", "--natural", "none", "--no-report",
            "--attack", "pgd"]
    small = _robustcv(args + ["--out", "small", "--eval-batch-size", "7"], tmp_path)
    large = _robustcv(args + ["--out", "large", "--eval-batch-size", "250"], tmp_path)
    assert small.returncode == 0 and large.returncode == 0
    assert _records(tmp_path / "small") == _records(tmp_path / "large")


def test_ddp_training_reaches_the_one_process_accuracy_band(tmp_path):
    one = _robustcv(["train", "-q", "--epochs", "4", "--models-dir", "one"], tmp_path)
    two = _robustcv(["train", "-q", "--epochs", "4", "--models-dir", "two"], tmp_path, processes=2)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    accuracy = {}
    for name in ("one", "two"):
        model_dir = next((tmp_path / name).iterdir())
        accuracy[name] = json.loads((model_dir / "model.json").read_text())["test_metrics"]["accuracy"]
    assert [d.name for d in (tmp_path / "one").iterdir()] == [d.name for d in (tmp_path / "two").iterdir()]
    assert accuracy["two"] > 0.9 and abs(accuracy["two"] - accuracy["one"]) < 0.04


def test_a_failing_rank_ends_the_job_in_bounded_time(tmp_path):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(HERE / "distributed_worker.py")], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "Error: bad data in shard 1" in done.stderr
    assert time.perf_counter() - start < 60


def _our_lines(stderr: str) -> list[str]:
    """What the ranks said on stderr: their errors and tracebacks (torchrun's own failure summary
    and its traceback through the launcher's frames are left out)."""
    return [line for line in stderr.splitlines()
            if line.startswith(("Error:", "[rank")) or ("File " in line and "/robustcv/" in line)]


REFUSED = {  # a folder of the user's files as --out; a file where the models folder must go
    "attack": ["attack", "-q", "--samples", "20", "--natural", "none", "--no-report", "--attack", "fgsm",
               "--out", "mine", "--force"],
    "train": ["train", "-q", "--epochs", "1", "--models-dir", "mine/notes.txt/models"],
}


@pytest.mark.parametrize("stage", sorted(REFUSED))
def test_an_output_rank_0_refuses_stops_every_rank_with_one_line(checkpoint, tmp_path, stage):
    """Only rank 0 claims outputs; its refusal must reach rank 1 (which would otherwise wait in a
    collective for 30 minutes) and be said once, without a traceback. Nothing is written."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    args = REFUSED[stage] + (["--checkpoint", str(checkpoint)] if stage == "attack" else [])
    started = time.monotonic()
    done = _robustcv(args, tmp_path, processes=2)
    assert done.returncode != 0 and time.monotonic() - started < 120
    lines = _our_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr[-2000:]
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


USER_ERRORS = {  # a mistake every rank makes alike: a bad flag value, a file that is not there
    "bad eps": (["--eps", "0,x"], "--eps"),
    "missing model file": (["--model-file", "absent.pt2"], "absent.pt2"),
    "bad seed": (["--seed", "99999999999999999999"], "--seed"),
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c == "bad eps" else pytest.mark.slow)
                                  for c in sorted(USER_ERRORS)])  # ~25 s each: one by default, as its neighbours
def test_a_user_error_is_one_line_from_rank_0_and_every_rank_fails(checkpoint, tmp_path, case):
    flags, word = USER_ERRORS[case]
    model = [] if "--model-file" in flags else ["--checkpoint", str(checkpoint)]
    done = _robustcv(["attack", "-q", "--samples", "20", "--natural", "none", "--no-report", "--attack", "fgsm",
                      *model, *flags], tmp_path, processes=2)
    assert done.returncode != 0
    lines = _our_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and word in lines[0], done.stderr[-2000:]
    frames = [line for line in done.stderr.splitlines() if 'File "' in line and "site-packages/torch" not in line
              and "<frozen" not in line]
    assert not frames, frames  # torchrun's own failure summary is all the traceback there is
    exits = re.findall(r"exitcode\s*:\s*(-?\d+)", done.stderr)
    assert exits and all(code != "0" for code in exits), done.stderr[-2000:]
