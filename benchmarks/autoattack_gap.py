"""Strength and cost of the default evaluation against the AutoAttack authors' code, in one run.

Usage: ``python benchmarks/autoattack_gap.py [--models DIR ...] [--norms linf l2] [--threads 1] [--n 359]``

For each checkpoint (default: the README's digits model and a PGD-AT one, trained if absent into
``./models``), each norm and the default eps grid of that norm, on the evaluation's own samples,
interleaved in one process:

* **ours**: the default worst case (FGSM, PGD-20, the APGD-CE → APGD-T cascade) and the attack
  stage's time;
* **protocol**: our ``--protocol autoattack`` standard (the registered ``autoattack-standard``);
* **pyautoattack**: the authors' ``AutoAttack(version="standard", seed=0)`` (APGD-CE, APGD-T,
  FAB-T, Square) at every eps of the grid, and its time.

Prints the table and writes ``benchmarks/results/autoattack_gap.json`` after every (model, norm),
so a stopped run keeps what it measured. ``--apgd-steps 100 ...`` is the side experiment: only our
default attacks with other APGD budgets (``results/autoattack_gap_apgd_steps.json``). The targets checked (issue 24): ours at most 0.5 points
above pyautoattack at every eps, in at most 0.25x its time; the protocol within one sample of it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from attacks.objectives import Classification
from defenses import parse_defense
from robustcv.checkpoint import load_model
from robustcv.data import DataSpec
from robustcv.evaluation.config import EvalConfig, default_eps_grid
from robustcv.evaluation.defense_run import evaluate_defense
from robustcv.evaluation.samples import select_samples
from robustcv.models import ModelSpec
from robustcv.protocols import choose_protocol
from robustcv.training import Recipe, ensure_trained

CPU = torch.device("cpu")
RECIPES = {"standard": Recipe(), "pgd-at": Recipe(adv_train="pgd-at", train_eps=0.1)}
REFERENCE_NORMS = {"linf": "Linf", "l2": "L2"}
GAP_TARGET, TIME_TARGET = 0.005, 0.25


def ours(model: torch.nn.Module, samples: Any, config: EvalConfig) -> tuple[list[float], float]:
    """Worst-case robust accuracy per eps of an evaluation with ``config.attacks``, and seconds."""
    start = time.perf_counter()
    run = evaluate_defense("none", parse_defense("none"), model, samples, Classification(), config, CPU)
    return [float(c.float().mean()) for c in run.worst.correct], time.perf_counter() - start


def reference(model: torch.nn.Module, samples: Any, grid: list[float], norm: str,
              seed: int) -> tuple[list[float], float]:
    """pyautoattack's standard AutoAttack at every eps (0: clean accuracy), and seconds."""
    from pyautoattack import AutoAttack

    start, accuracy = time.perf_counter(), []
    for eps in grid:
        x = samples.x
        if eps > 0:
            attack = AutoAttack(model, norm=REFERENCE_NORMS[norm], eps=eps, version="standard", seed=seed)
            x = attack.run_standard_evaluation(samples.x, samples.y, batch_size=len(samples.y))[0]
        with torch.no_grad():
            accuracy.append(float((model(x).argmax(1) == samples.y).float().mean()))
    return accuracy, time.perf_counter() - start


def eps_grid(info: Any, norm: str, only: list[float] | None) -> tuple[list[float], float]:
    """The default grid of ``norm`` (with ``only``: 0 and those of ``only`` on it) and its headline."""
    grid, headline = default_eps_grid(info, norm)
    if only:
        grid = [e for e in grid if e == 0 or any(abs(e - o) < 1e-9 for o in only)]
        headline = grid[-1]
    return grid, headline


def ours_only(model: torch.nn.Module, meta: Any, samples: Any, info: Any, norm: str, apgd_steps: int,
              only: list[float] | None = None) -> dict:
    """A side row: our default attack list with ``apgd_steps`` (what a change of default would give)."""
    grid, headline = eps_grid(info, norm, only)
    config = EvalConfig(eps=grid, headline_eps=headline, norm=norm, natural=[], n=len(samples.y),
                        apgd_steps=apgd_steps)
    accuracy, seconds = ours(model, samples, config)
    return {"model": meta.name, "norm": norm, "n": len(samples.y), "eps": grid, "apgd_steps": apgd_steps,
            "ours": accuracy, "seconds": {"ours": seconds}}


def compare(model: torch.nn.Module, meta: Any, samples: Any, info: Any, norm: str,
            only: list[float] | None = None) -> dict:
    """One row: ours, our AutoAttack protocol and pyautoattack's on the same samples, per eps."""
    grid, headline = eps_grid(info, norm, only)
    config = EvalConfig(eps=grid, headline_eps=headline, norm=norm, natural=[], n=len(samples.y))
    protocol = choose_protocol("autoattack", info, norm)
    default, default_s = ours(model, samples, config)
    aa = EvalConfig(attacks=[protocol.attack], protocol=protocol.label, eps=grid, headline_eps=headline,
                    norm=norm, natural=[], n=len(samples.y))
    ours_aa, ours_aa_s = ours(model, samples, aa)
    ref, ref_s = reference(model, samples, grid, norm, seed=0)
    n = len(samples.y)
    gaps = [a - b for a, b in zip(default, ref)]
    return {"model": meta.name, "norm": norm, "n": n, "eps": grid, "apgd_steps": config.apgd_steps, "ours": default,
            "protocol": ours_aa, "pyautoattack": ref,
            "seconds": {"ours": default_s, "protocol": ours_aa_s, "pyautoattack": ref_s},
            "gap": gaps, "max_gap": max(gaps), "time_ratio": default_s / ref_s,
            "protocol_max_diff_samples": max(round(abs(a - b) * n) for a, b in zip(ours_aa, ref)),
            "gap_holds": max(gaps) <= GAP_TARGET, "time_holds": default_s / ref_s <= TIME_TARGET}


def show(row: dict) -> None:
    """Print one row as a small table (a side row: our accuracies and time only)."""
    print(f"\n{row['model']} {row['norm']} apgd_steps={row['apgd_steps']} (n={row['n']})\n eps          " +
          " ".join(f"{e:>6.3g}" for e in row["eps"]))
    for key in ("ours", "protocol", "pyautoattack", "gap"):
        if key in row:
            print(f" {key:<12} " + " ".join(f"{v:6.3f}" for v in row[key]))
    s = row["seconds"]
    if "pyautoattack" not in row:
        print(f" seconds: ours {s['ours']:.1f}", flush=True)
        return
    print(f" max gap {row['max_gap']:+.4f}; seconds: ours {s['ours']:.1f}, protocol {s['protocol']:.1f}, "
          f"pyautoattack {s['pyautoattack']:.1f}; ours/pyautoattack {row['time_ratio']:.3f}x; "
          f"protocol vs pyautoattack: at most {row['protocol_max_diff_samples']} samples apart", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", type=Path, help="checkpoint directories (default: trained here)")
    parser.add_argument("--norms", nargs="*", default=["linf", "l2"], choices=sorted(REFERENCE_NORMS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=359)
    parser.add_argument("--apgd-steps", type=int, nargs="*", default=[],
                        help="side experiment: only our default attacks with these APGD budgets (no references)")
    parser.add_argument("--eps", type=float, nargs="*", help="only these eps of each norm's grid (and 0)")
    parser.add_argument("--out", type=Path, help="default: results/autoattack_gap.json (side: ..._apgd_steps.json)")
    args = parser.parse_args()
    name = "autoattack_gap_apgd_steps.json" if args.apgd_steps else "autoattack_gap.json"
    args.out = args.out or Path(__file__).parent / "results" / name
    torch.set_num_threads(args.threads)
    checkpoints = args.models or [ensure_trained(DataSpec(), ModelSpec(), recipe, show_progress=False).checkpoint
                                  for recipe in RECIPES.values()]
    rows: list[dict] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for checkpoint in checkpoints:
        model, meta = load_model(Path(checkpoint))
        model.requires_grad_(False)
        samples, info = select_samples(meta, args.n, seed=0)
        for norm in args.norms:
            new = [ours_only(model, meta, samples, info, norm, steps, args.eps) for steps in args.apgd_steps] or \
                [compare(model, meta, samples, info, norm, args.eps)]
            for row in new:
                show(row)
            rows += new
            args.out.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
