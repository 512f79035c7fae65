"""Strength and cost of the default evaluation against torchattacks' AutoAttack, in one run.

Usage: ``python benchmarks/autoattack_gap.py [--models DIR ...] [--threads 1] [--n 359]``

For each checkpoint (default: the README's digits model and a PGD-AT one, trained if absent into
``./models``), on the evaluation's own samples:

* our default worst case (FGSM, PGD-20, the APGD-CE → APGD-T cascade) per eps, and its time;
* the FGSM+PGD stage alone (the old default), and its time;
* torchattacks' ``AutoAttack(version="standard")`` (APGD-CE, APGD-T, FAB-T, Square) run at every
  eps of the grid on the same samples, and its time.

Prints the table and writes ``benchmarks/results/autoattack_gap.json``. The claim checked: our
worst case is at or below AutoAttack's at every eps (within half a point).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from attacks.objectives import Classification
from defenses import parse_defense
from robustcv.checkpoint import load_model
from robustcv.data import DataSpec
from robustcv.evaluation.config import EvalConfig, default_eps_grid
from robustcv.evaluation.defense_run import evaluate_defense
from robustcv.evaluation.samples import select_samples
from robustcv.models import ModelSpec
from robustcv.training import Recipe, ensure_trained

CPU = torch.device("cpu")
RECIPES = {"standard": Recipe(), "pgd-at": Recipe(adv_train="pgd-at", train_eps=0.1)}


def ours(model, samples, config: EvalConfig) -> tuple[list[float], float]:
    """Worst-case robust accuracy per eps of an evaluation with ``config.attacks``, and seconds."""
    start = time.perf_counter()
    run = evaluate_defense("none", parse_defense("none"), model, samples, Classification(), config, CPU)
    return [float(c.float().mean()) for c in run.worst.correct], time.perf_counter() - start


def autoattack(model, samples, grid: list[float], seed: int) -> tuple[list[float], float]:
    """torchattacks' standard AutoAttack at every eps (0: clean accuracy), and seconds."""
    import torchattacks

    start, accuracy = time.perf_counter(), []
    for eps in grid:
        x = samples.x
        if eps > 0:
            x = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10,
                                        seed=seed)(samples.x, samples.y)
        with torch.no_grad():
            accuracy.append(float((model(x).argmax(1) == samples.y).float().mean()))
    return accuracy, time.perf_counter() - start


def compare(checkpoint: Path, n: int) -> dict:
    model, meta = load_model(checkpoint)
    model.requires_grad_(False)
    samples, info = select_samples(meta, n, seed=0)
    grid, headline = default_eps_grid(info, "linf")
    config = EvalConfig(eps=grid, headline_eps=headline, natural=[])
    default, default_s = ours(model, samples, config)
    old, old_s = ours(model, samples, dataclasses.replace(config, attacks=["fgsm", "pgd"]))
    reference, reference_s = autoattack(model, samples, grid, seed=0)
    return {"model": meta.name, "n": len(samples.y), "eps": grid, "ours": default, "fgsm_pgd": old,
            "autoattack": reference, "seconds": {"ours": default_s, "fgsm_pgd": old_s, "autoattack": reference_s},
            "max_gap": max(a - b for a, b in zip(default, reference))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", type=Path, help="checkpoint directories (default: trained here)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "autoattack_gap.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoints = args.models or [ensure_trained(DataSpec(), ModelSpec(), recipe, show_progress=False).checkpoint
                                  for recipe in RECIPES.values()]
    rows = [compare(Path(c), args.n) for c in checkpoints]
    for row in rows:
        print(f"\n{row['model']} (n={row['n']})\n eps        " + " ".join(f"{e:>6.3g}" for e in row["eps"]))
        for key in ("fgsm_pgd", "ours", "autoattack"):
            print(f" {key:<10} " + " ".join(f"{v:6.3f}" for v in row[key]))
        s = row["seconds"]
        print(f" max(ours - autoattack) = {row['max_gap']:+.4f}; seconds: ours {s['ours']:.1f}, "
              f"fgsm+pgd {s['fgsm_pgd']:.1f}, autoattack {s['autoattack']:.1f}; ours/fgsm+pgd "
              f"{s['ours'] / s['fgsm_pgd']:.1f}x, ours/autoattack {s['ours'] / s['autoattack']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
