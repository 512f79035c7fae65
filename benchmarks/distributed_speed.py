"""Evaluation throughput with 1 and 2 processes (torchrun, gloo, one thread each), as a ratio.

Usage: ``python benchmarks/distributed_speed.py [--checkpoint DIR] [--samples 359] [--repeats 2]``

Runs the same ``robustcv attack`` (no natural sweeps, no report) once per process count and
repeat, takes the fastest wall time of each, and prints samples/s per process and the speed-up.
The attack stage alone is timed from the command's start to its end, so process start-up and
the sanity checks (rank 0 only) are included: the speed-up a user sees.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(processes: int, checkpoint: Path, samples: int, attacks: str) -> float:
    """Wall seconds of one ``robustcv attack`` with ``processes`` ranks."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    with tempfile.TemporaryDirectory() as out:
        command = launcher + ["-m", "robustcv", "attack", "-q", "--checkpoint", str(checkpoint), "--samples",
                              str(samples), "--natural", "none", "--no-report", "--attack", attacks, "--out", out,
                              "--force"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--samples", type=int, default=359)
    parser.add_argument("--attacks", default="fgsm,pgd,apgd-ce,apgd-t")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    checkpoint = args.checkpoint
    if checkpoint is None:
        from robustcv.data import DataSpec
        from robustcv.models import ModelSpec
        from robustcv.training import Recipe, ensure_trained

        checkpoint = ensure_trained(DataSpec(), ModelSpec(), Recipe(), show_progress=False).checkpoint
    seconds = {p: min(run(p, checkpoint, args.samples, args.attacks) for _ in range(args.repeats)) for p in (1, 2)}
    rate = {p: args.samples / s for p, s in seconds.items()}
    print(f"1 process: {seconds[1]:.1f} s ({rate[1]:.1f} samples/s); 2 processes: {seconds[2]:.1f} s "
          f"({rate[2] / 2:.1f} samples/s per process); speed-up {seconds[1] / seconds[2]:.2f}x")
    out = Path(__file__).parent / "results" / "distributed_speed.json"
    out.write_text(json.dumps({"samples": args.samples, "attacks": args.attacks, "seconds": seconds,
                               "speedup": seconds[1] / seconds[2]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
