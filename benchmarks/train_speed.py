"""Training throughput: our training loop (``robustcv.training.fit``) against bare PyTorch loops.

Usage: ``python benchmarks/train_speed.py [--quick] [--threads 1] [--batch 64] [--repeats 3]``

For each dataset (``digits``: 8x8 grey, ``shapes``: 32x32 RGB), model (``small_cnn``,
``deep_cnn``) and augmentation policy (``none``, ``basic``) one training epoch is timed three ways,
all on the same model (``build_model`` from the same seed), the same train split, the same batch
size (``drop_last`` as ours), the same optimizer (AdamW with the ``Recipe`` defaults) and the same
per-sample torchvision.transforms.v2 policy:

* ours: ``fit`` with a one-epoch ``Recipe``; only its ``train_one_epoch`` call is timed (a wrapper
  around the name ``fit`` calls; setup, validation and test metrics are not counted). That is
  ``AugmentedDataset`` + ``DataLoader`` + the schedule, loss, accuracy and progress callback.
* bare DataLoader: the torchvision-references idiom, a ``Dataset`` over float tensors (applying
  the transform per sample when augmenting), ``DataLoader(shuffle, drop_last)``,
  ``F.cross_entropy``, ``zero_grad / backward / step``; nothing else.
* bare tensor: no ``DataLoader``; batches are index slices of one float tensor, the transform is
  applied per sample in a list comprehension and stacked.

The three variants run round-robin (a warm-up each, then ``--repeats`` rounds, fresh model and
optimizer every time) so each sees the same machine load; images/s is the median. Ratios
ours/bare are throughput ratios (1.0 = as fast; 0.5 = half as fast).

Writes ``benchmarks/results/train_speed.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import robustcv.training.trainer as trainer
from robustcv.data import DataInfo, DataSpec, Splits, as_tensors, get_dataset
from robustcv.models import ModelSpec, build_model
from robustcv.training import Recipe

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def timing_train_one_epoch(sink: list[float]) -> Iterator[None]:
    """Append the wall seconds of every ``train_one_epoch`` that ``fit`` makes to ``sink``."""
    original = trainer.train_one_epoch

    def wrapped(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - start)

    trainer.train_one_epoch = wrapped
    try:
        yield
    finally:
        trainer.train_one_epoch = original


def ours_epoch(splits: Splits, data: DataSpec, spec: ModelSpec, recipe: Recipe, progress: bool) -> float:
    """Seconds of the one ``train_one_epoch`` inside ``fit`` (recipe has epochs=1)."""
    seconds: list[float] = []
    with timing_train_one_epoch(seconds):
        trainer.fit(splits, data, spec, recipe, device=torch.device("cpu"), show_progress=progress)
    return seconds[0]


def basic_policy(info: DataInfo) -> v2.Transform:
    """Written out here, not imported: what our ``basic`` policy is meant to be."""
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip()] if info.hflip_ok else []
    steps += [v2.RandomAffine(degrees=0, translate=(0.125, 0.125)), v2.ToDtype(torch.float32, scale=False)]
    return v2.Compose(steps)


class TransformDataset(Dataset):
    """The smallest map-style dataset a plain PyTorch user writes: tensors + optional transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: Callable | None) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        img = self.x[i]
        return (img if self.transform is None else self.transform(img)), self.y[i]


def _bare_setup(info: DataInfo, spec: ModelSpec, recipe: Recipe):
    torch.manual_seed(recipe.seed)
    model = build_model(spec, info)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    return model, opt


def _step(model, opt, xb: torch.Tensor, yb: torch.Tensor) -> None:
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bare_loader_epoch(x, y, info: DataInfo, spec: ModelSpec, recipe: Recipe, transform) -> float:
    model, opt = _bare_setup(info, spec, recipe)
    g = torch.Generator().manual_seed(recipe.seed)
    loader = DataLoader(TransformDataset(x, y, transform), batch_size=recipe.batch_size, shuffle=True,
                        generator=g, drop_last=len(x) > recipe.batch_size, num_workers=0)
    start = time.perf_counter()
    for xb, yb in loader:
        _step(model, opt, xb, yb)
    return time.perf_counter() - start


def bare_tensor_epoch(x, y, info: DataInfo, spec: ModelSpec, recipe: Recipe, transform) -> float:
    model, opt = _bare_setup(info, spec, recipe)
    g = torch.Generator().manual_seed(recipe.seed)
    batch = recipe.batch_size
    start = time.perf_counter()
    perm = torch.randperm(len(x), generator=g)
    perm = perm[: len(x) // batch * batch] if len(x) > batch else perm
    for idx in perm.split(batch):
        xb = x[idx]
        if transform is not None:
            xb = torch.stack([transform(img) for img in xb])
        _step(model, opt, xb, y[idx])
    return time.perf_counter() - start


def measure(splits: Splits, data: DataSpec, model_name: str, augment: str, batch: int,
            repeats: int, progress: bool) -> dict:
    """Median images/s of ours and both bare loops, run round-robin."""
    info = splits.info
    spec = ModelSpec(model_name)
    recipe = Recipe(augment=augment, epochs=1, batch_size=batch)
    x, y = as_tensors(splits.train)  # float32 in [0, 1], converted once (a bare loop would)
    x = x.contiguous()
    transform = basic_policy(info) if augment == "basic" else None
    images = (len(x) // batch) * batch if len(x) > batch else len(x)
    fns: dict[str, Callable[[], float]] = {
        "ours": lambda: ours_epoch(splits, data, spec, recipe, progress),
        "bare_loader": lambda: bare_loader_epoch(x, y, info, spec, recipe, transform),
        "bare_tensor": lambda: bare_tensor_epoch(x, y, info, spec, recipe, transform),
    }
    for fn in fns.values():  # warm-up
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name].append(fn())
    med = {name: statistics.median(s) for name, s in seconds.items()}
    ips = {name: images / s for name, s in med.items()}
    return {
        "dataset": data.name, "model": model_name, "augment": augment, "batch": batch,
        "images_per_epoch": images, "seconds": seconds,
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "ours_over_bare_loader": round(ips["ours"] / ips["bare_loader"], 3),
        "ours_over_bare_tensor": round(ips["ours"] / ips["bare_tensor"], 3),
    }


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="training throughput, images/s (median); ratio = ours / bare throughput")
    for col in ("data", "model", "augment", "ours", "bare DL", "bare tensor", "ours/bare DL", "ours/bare tensor"):
        table.add_column(col, justify="right" if col not in ("data", "model", "augment") else "left")
    for r in rows:
        ips = r["images_per_s"]
        table.add_row(r["dataset"], r["model"], r["augment"], f"{ips['ours']:,.0f}", f"{ips['bare_loader']:,.0f}",
                      f"{ips['bare_tensor']:,.0f}", f"{r['ours_over_bare_loader']:.2f}",
                      f"{r['ours_over_bare_tensor']:.2f}")
    Console(width=120).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits + small_cnn only, 2 repeats")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="batch size (Recipe default 64)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds after the warm-up")
    parser.add_argument("--progress", action="store_true", help="ours with its rich progress bar on")
    parser.add_argument("--out", type=Path, default=RESULTS / "train_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        grid, repeats = [("digits", "small_cnn")], args.repeats or 2
    else:
        grid = [(d, m) for d in ("digits", "shapes") for m in ("small_cnn", "deep_cnn")]
        repeats = args.repeats or 5
    rows = []
    cache: dict[str, Splits] = {}
    for dataset, model_name in grid:
        data = DataSpec(dataset)
        splits = cache.setdefault(dataset, get_dataset(data))
        for augment in ("none", "basic"):
            row = measure(splits, data, model_name, augment, args.batch, repeats, args.progress)
            rows.append(row)
            ips = row["images_per_s"]
            print(f"{dataset:7s} {model_name:9s} {augment:5s} ours {ips['ours']:8.0f}  bare DL "
                  f"{ips['bare_loader']:8.0f}  bare tensor {ips['bare_tensor']:8.0f} img/s", flush=True)
    print(f"threads {args.threads}; batch {args.batch}; AdamW lr 3e-3 wd 5e-4; median of {repeats}; "
          f"torch {torch.__version__}; {platform.processor() or platform.machine()}")
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "train_speed", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__, "threads": args.threads, "batch": args.batch, "repeats": repeats,
        "quick": args.quick, "progress_bar": args.progress, "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
