"""Segmentation attack speed: our per-pixel PGD against raw passes and a cospgd-package loop.

Usage: ``python benchmarks/seg_attack_speed.py [--threads 1] [--batch 64] [--steps 10] [--repeats 3]``

On the default segmenter's architecture (a U-Net, weights as built from the seed: speed does not
depend on them) and a batch of ``shapes`` segmentation images (32x32 RGB, masks with 255 where
void), at L∞ eps 8/255 with the same step size and no early stop:

* ours: ``PGD`` and ``SegPGD`` from ``attacks`` with a ``Segmentation`` objective;
* raw: ``steps`` forward + backward passes of the mean per-pixel cross-entropy with respect to
  the input, nothing else (the floor any PGD pays);
* cospgd loop: the loop a user writes with the ``cospgd`` package's helpers
  (``Attack.init_linf``, ``Attack.segpgd_scale``, ``Attack.step_inf``), the package's own usage;
* sweep: our survivors-only eps sweep over 0, 1, 2, 4, 8, 16 /255 (early stop on, an image
  counting as fooled at 99 % of its valid pixels) against one PGD run at the largest eps.

Round-robin, a warm-up each, median of ``--repeats``. Writes ``benchmarks/results/seg_attack_speed.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from attacks import PGD, eps_sweep
from attacks.objectives import Segmentation
from attacks.segpgd import SegPGD
from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.models import ModelSpec, build_model

RESULTS = Path(__file__).resolve().parent / "results"
EPS = 8 / 255
GRID = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255]


def raw_passes(model, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """``steps`` forward + backward passes to the input: the floor."""
    for _ in range(steps):
        xa = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, ignore_index=255)
        torch.autograd.grad(loss, xa)


def cospgd_loop(model, x: torch.Tensor, y: torch.Tensor, steps: int, alpha: float) -> torch.Tensor:
    """SegPGD as the ``cospgd`` package's helpers compose it (void pixels masked out first)."""
    from cospgd import Attack

    valid = y != 255
    labels = y.masked_fill(~valid, 0)
    xa = Attack.init_linf(x, EPS)
    for t in range(steps):
        xa = xa.detach().requires_grad_(True)
        logits = model(xa)
        loss = F.cross_entropy(logits, labels, reduction="none") * valid
        loss = Attack.segpgd_scale(logits, labels, loss, t, steps)
        grad, = torch.autograd.grad(loss, xa)
        xa = Attack.step_inf(xa, EPS, grad, x, alpha, targeted=False)
    return xa


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "seg_attack_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = get_dataset(DataSpec("shapes", task="segmentation"))
    x, y = as_tensors(splits.test)
    x, y = x[: args.batch], y[: args.batch]
    torch.manual_seed(0)
    model = build_model(ModelSpec("unet"), splits.info).eval().requires_grad_(False)
    alpha = EPS / 4
    objective = Segmentation()
    keys = torch.arange(len(x))
    fns: dict[str, Callable[[], object]] = {
        "raw": lambda: raw_passes(model, x, y, args.steps),
        "ours_pgd": lambda: PGD(steps=args.steps, step_size=alpha, objective=objective, early_stop=False,
                                seed=0)(model, x, y, EPS, keys=keys),
        "ours_segpgd": lambda: SegPGD(steps=args.steps, step_size=alpha, objective=objective, early_stop=False,
                                      seed=0)(model, x, y, EPS, keys=keys),
        "cospgd_loop": lambda: cospgd_loop(model, x, y, args.steps, alpha),
        "sweep": lambda: eps_sweep(PGD(steps=args.steps, rel_step_size=0.25, objective=objective, seed=0),
                                   model, x, y, eps_grid=GRID, keys=keys),
        "one_run_at_max": lambda: PGD(steps=args.steps, rel_step_size=0.25, objective=objective, seed=0)(
            model, x, y, GRID[-1], keys=keys),
    }
    for fn in fns.values():
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            seconds[name].append(timed(fn))
    med = {name: statistics.median(s) for name, s in seconds.items()}
    ratios = {
        "ours_pgd_over_raw": med["ours_pgd"] / med["raw"],
        "ours_segpgd_over_raw": med["ours_segpgd"] / med["raw"],
        "cospgd_loop_over_ours_segpgd": med["cospgd_loop"] / med["ours_segpgd"],
        "sweep_over_one_run_at_max": med["sweep"] / med["one_run_at_max"],
    }
    for name, value in ratios.items():
        print(f"{name:32s} {value:6.2f}x")
    print(f"median seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "seg_attack_speed", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__, "threads": args.threads, "batch": args.batch, "steps": args.steps,
        "repeats": args.repeats, "seconds": seconds, "ratios": {k: round(v, 3) for k, v in ratios.items()},
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
