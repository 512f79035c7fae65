"""Do the main jobs still give the same records? A refactor must keep the numbers (issue 22).

Runs the README's main job and the segmentation and multi-label jobs with ``OMP_NUM_THREADS=1``
in a work folder (training their default models there when absent), then compares every record
of each ``results.json`` (values, n, intervals, sanity checks, minimal eps) with the committed
reference in ``benchmarks/results/records/<job>.json``. Timings (``seconds``) are left out.

Usage:
    python scripts/records_regression.py                       # run all three jobs and compare
    python scripts/records_regression.py --jobs main --workdir /tmp/rr  # reuse trained models there
    python scripts/records_regression.py --save                # record the references anew

Exit status 0 when every job matches, 1 otherwise (the differing records are printed).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REFERENCES = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "records"
JOBS = {"main": [], "segmentation": ["--task", "segmentation"], "multilabel": ["--task", "multilabel"]}
IGNORED_KEYS = {"seconds"}


def run_job(job: str, workdir: Path) -> dict:
    """Run one job's ``robustcv attack`` in ``workdir`` and return its comparable content."""
    out = workdir / "runs" / job
    command = [sys.executable, "-m", "robustcv", "attack", *JOBS[job], "--out", str(out), "--no-report",
               "--force", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(command, cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL)
    return comparable(json.loads((out / "results.json").read_text()))


def comparable(results: dict) -> dict:
    """What must not move: records, minimal eps and sanity checks, without timings."""
    strip = lambda item: {k: v for k, v in item.items() if k not in IGNORED_KEYS}  # noqa: E731
    return {"records": [strip(r) for r in results["records"]],
            "min_eps": results.get("min_eps"),
            "sanity_checks": [strip(c) for c in results.get("sanity_checks", [])]}


def differences(reference: dict, current: dict) -> list[str]:
    """Human-readable lines for every record that differs (empty when equal)."""
    lines = []
    for part in reference:
        old, new = reference[part], current.get(part)
        if old == new:
            continue
        if not (isinstance(old, list) and isinstance(new, list)):
            lines.append(f"{part}: differs")
            continue
        if len(old) != len(new):
            lines.append(f"{part}: {len(old)} entries before, {len(new)} now")
        lines += [f"{part}[{i}]: {a} -> {b}" for i, (a, b) in enumerate(zip(old, new)) if a != b]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default=",".join(JOBS), help="comma-separated: " + ", ".join(JOBS))
    parser.add_argument("--workdir", type=Path, default=None, help="keep trained models here (default: a temp dir)")
    parser.add_argument("--save", action="store_true", help="write the references instead of comparing")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="records-"))
    workdir.mkdir(parents=True, exist_ok=True)
    failed = False
    for job in args.jobs.split(","):
        current = run_job(job, workdir)
        reference_file = REFERENCES / f"{job}.json"
        if args.save:
            REFERENCES.mkdir(parents=True, exist_ok=True)
            reference_file.write_text(json.dumps(current, indent=1) + "\n")
            print(f"{job}: saved {len(current['records'])} records")
            continue
        diff = differences(json.loads(reference_file.read_text()), current)
        print(f"{job}: {'same records' if not diff else f'{len(diff)} differences'} "
              f"({len(current['records'])} records)")
        for line in diff[:40]:
            print("  " + line)
        failed |= bool(diff)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
