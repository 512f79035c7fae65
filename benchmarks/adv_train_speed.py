"""Adversarial training cost per epoch, as a multiple of standard training, through ``fit``.

Usage: ``python benchmarks/adv_train_speed.py [--quick] [--threads 1] [--epochs 2] [--repeats 3]``

Every variant is ``robustcv.training.fit`` on ``digits`` with ``small_cnn`` and the same
``Recipe`` except ``adv_train`` / ``train_eps=0.1`` / ``train_steps=k``: standard, FGSM-RS,
PGD-AT with k = 3 and 7, TRADES with k = 3 and 7. The trainer's own per-epoch ``seconds`` covers
training, clean validation and (adversarial recipes only) the PGD-10 robust validation on up to
256 validation images, so the script times the parts separately by wrapping the names ``fit``
calls (``train_one_epoch``, ``robust_val_accuracy``; the library is not modified):

* train s/epoch: ``train_one_epoch`` only; the ratio to standard training is the number to
  compare with the pass-count expectation (FGSM-RS ~2x, PGD-k ~(k+1)x, TRADES-k ~(k+2)x);
* robust-val s/epoch: the per-epoch robust validation, reported separately;
* recorded s/epoch: the trainer's ``history[i]["seconds"]`` (train + val + robust val).

Passes per batch are read from the objective's own ``counts`` (forward and backward, full-batch
units). The variants run round-robin (one warm-up round, then ``--repeats`` rounds of
``--epochs`` epochs each) so they share the machine's load; figures are medians over all timed
epochs. Augmentation defaults to ``none`` so that per-sample augmentation, the same cost in every
variant, does not dilute the ratios (``--augment basic`` to include it).

Writes ``benchmarks/results/adv_train_speed.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import torch

import robustcv.training.trainer as trainer
from robustcv.data import DataSpec, Splits, get_dataset
from robustcv.models import ModelSpec
from robustcv.training import Recipe

RESULTS = Path(__file__).resolve().parent / "results"
EPS = 0.1


@contextlib.contextmanager
def wrapped(name: str, sink: list[float], capture: list[Any] | None = None) -> Iterator[None]:
    """Time every call of ``trainer.<name>`` into ``sink``; optionally keep its return values."""
    original = getattr(trainer, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            result = original(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - start)
        if capture is not None:
            capture.append(result)
        return result

    setattr(trainer, name, timed)
    try:
        yield
    finally:
        setattr(trainer, name, original)


def variants(quick: bool) -> list[tuple[str, str, int, float]]:
    """(label, adv_train, train_steps, expected cost in standard steps)."""
    rows = [("standard", "none", 1, 1.0), ("fgsm-rs", "fgsm-rs", 1, 2.0), ("pgd-at k=3", "pgd-at", 3, 4.0)]
    if not quick:
        rows += [("pgd-at k=7", "pgd-at", 7, 8.0), ("trades k=3", "trades", 3, 5.0), ("trades k=7", "trades", 7, 9.0)]
    return rows


def run_fit(splits: Splits, data: DataSpec, recipe: Recipe) -> dict[str, Any]:
    """One ``fit``; the per-epoch train / robust-val / recorded seconds and the objective's counts."""
    train_s: list[float] = []
    robust_s: list[float] = []
    objectives: list[Any] = []
    with wrapped("train_one_epoch", train_s), wrapped("robust_val_accuracy", robust_s), \
            wrapped("_objective_for", [], objectives):
        _, meta = trainer.fit(splits, data, ModelSpec("small_cnn"), recipe, device=torch.device("cpu"),
                              show_progress=False)
    objective = objectives[0]
    counts = dict(objective.counts) if objective is not None else None  # None: 1 / 1 per batch
    return {"train": train_s, "robust_val": robust_s, "recorded": [h["seconds"] for h in meta.history],
            "counts": counts, "history": meta.history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="standard, FGSM-RS and PGD-3 only; 1 epoch, 1 round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fit (default 2; quick 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3; quick 1)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--augment", default="none", choices=("none", "basic"))
    parser.add_argument("--out", type=Path, default=RESULTS / "adv_train_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    epochs = args.epochs or (1 if args.quick else 2)
    repeats = args.repeats or (1 if args.quick else 3)
    data = DataSpec("digits")
    splits = get_dataset(data)
    todo = variants(args.quick)
    recipes = {label: Recipe(augment=args.augment, epochs=epochs, batch_size=args.batch, adv_train=kind,
                             train_eps=EPS if kind != "none" else 0.0, train_steps=steps)
               for label, kind, steps, _ in todo}
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in recipes}
    for round_ in range(repeats + 1):  # round 0 is the warm-up
        for label, recipe in recipes.items():
            result = run_fit(splits, data, recipe)
            if round_ > 0:
                runs[label].append(result)
        print(f"round {round_}/{repeats}{' (warm-up)' if round_ == 0 else ''} done", flush=True)

    batches = len(splits.train) // args.batch
    rows = []
    for label, kind, steps, expected in todo:
        flat = lambda key: [s for r in runs[label] for s in r[key]]  # noqa: E731
        counts = runs[label][-1]["counts"]
        rows.append({
            "variant": label, "adv_train": kind, "train_steps": steps if kind in ("pgd-at", "trades") else None,
            "train_s_per_epoch": statistics.median(flat("train")),
            "robust_val_s_per_epoch": statistics.median(flat("robust_val")) if flat("robust_val") else 0.0,
            "recorded_s_per_epoch": statistics.median(flat("recorded")),
            "passes_per_batch": ({k: round(v / (batches * epochs), 3) for k, v in counts.items()}
                                 if counts is not None else {"forward": 1.0, "backward": 1.0}),
            "expected_ratio": expected,
            "val_accuracy": runs[label][-1]["history"][-1]["val_accuracy"],
            "val_robust_accuracy": runs[label][-1]["history"][-1].get("val_robust_accuracy"),
            "train_s_all": flat("train"), "robust_val_s_all": flat("robust_val"),
        })
    base = rows[0]["train_s_per_epoch"]
    base_recorded = rows[0]["recorded_s_per_epoch"]
    for row in rows:
        row["train_ratio"] = round(row["train_s_per_epoch"] / base, 3)
        row["recorded_ratio"] = round(row["recorded_s_per_epoch"] / base_recorded, 3)
    print_table(rows, epochs, repeats, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "adv_train_speed", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__, "threads": args.threads, "dataset": "digits", "model": "small_cnn",
        "train_eps": EPS, "batch": args.batch, "augment": args.augment, "epochs": epochs, "repeats": repeats,
        "train_images": len(splits.train), "quick": args.quick, "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


def print_table(rows: list[dict[str, Any]], epochs: int, repeats: int, args) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"digits / small_cnn, eps {EPS}, batch {args.batch}, augment {args.augment}, "
                        f"threads {args.threads}; median over {repeats} x {epochs} epochs")
    for col in ("variant", "train s/ep", "x standard", "expected", "fwd/bwd per batch",
                "robust-val s/ep", "recorded s/ep", "x standard (recorded)"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for r in rows:
        p = r["passes_per_batch"]
        table.add_row(r["variant"], f"{r['train_s_per_epoch']:.3f}", f"{r['train_ratio']:.2f}",
                      f"{r['expected_ratio']:.0f}", f"{p['forward']:g} / {p['backward']:g}",
                      f"{r['robust_val_s_per_epoch']:.3f}", f"{r['recorded_s_per_epoch']:.3f}",
                      f"{r['recorded_ratio']:.2f}")
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
