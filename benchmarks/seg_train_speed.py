"""Segmentation training throughput: our training loop against a bare PyTorch loop.

Usage: ``python benchmarks/seg_train_speed.py [--threads 1] [--batch 64] [--repeats 3] [--models unet]``

On ``shapes`` with ``--task segmentation`` (32x32 RGB, masks of background + 5 shapes), for
each model and augmentation policy (``none``, ``basic``) one training epoch is timed two ways,
on the same model (``build_model`` from the same seed), the same train split, batch size
(``drop_last`` as ours) and optimizer (AdamW with the ``Recipe`` defaults):

* ours: ``fit`` with a one-epoch segmentation ``Recipe``; only its ``train_one_epoch`` is timed
  (``AugmentedDataset`` + ``DataLoader`` + schedule, per-pixel loss, the running confusion
  matrix behind the progress bar's mIoU, the auxiliary head's loss where there is one);
* bare: a minimal ``Dataset`` over float tensors and long masks (with ``basic``, the v2
  transform written out here applied to ``tv_tensors.Image`` / ``tv_tensors.Mask`` pairs),
  ``DataLoader(shuffle, drop_last)``, ``F.cross_entropy(ignore_index=255)``,
  ``zero_grad / backward / step``; no metrics.

The variants run round-robin (a warm-up each, then ``--repeats`` rounds, a fresh model each time),
and images/s is the median. Ratio = ours / bare throughput (1.0 = as fast).

Writes ``benchmarks/results/seg_train_speed.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from robustcv.data import DataInfo, DataSpec, Splits, as_tensors, get_dataset
from robustcv.models import ModelSpec, build_model
from robustcv.training import Recipe

from train_speed import ours_epoch  # noqa: E402  (same directory; run as a script)

RESULTS = Path(__file__).resolve().parent / "results"


def basic_policy(info: DataInfo) -> v2.Transform:
    """Written out here, not imported: what our ``basic`` policy is for segmentation."""
    fill = {tv_tensors.Mask: info.ignore_index, "others": 0}
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip()] if info.hflip_ok else []
    steps += [v2.RandomAffine(degrees=0, translate=(0.125, 0.125), fill=fill), v2.ToDtype(torch.float32, scale=False)]
    return v2.Compose(steps)


class MaskDataset(Dataset):
    """The smallest segmentation dataset a plain PyTorch user writes: images, masks, a transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: Callable | None) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        if self.transform is None:
            return self.x[i], self.y[i]
        image, mask = self.transform(tv_tensors.Image(self.x[i]), tv_tensors.Mask(self.y[i]))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


def bare_epoch(x: torch.Tensor, y: torch.Tensor, info: DataInfo, spec: ModelSpec, recipe: Recipe,
               transform: v2.Transform | None) -> float:
    """Seconds of one epoch of the bare loop (model and optimizer built outside the timing)."""
    torch.manual_seed(recipe.seed)
    model = build_model(spec, info).train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loader = DataLoader(MaskDataset(x, y, transform), batch_size=recipe.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(recipe.seed), drop_last=len(x) > recipe.batch_size)
    start = time.perf_counter()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb, ignore_index=info.ignore_index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def measure(splits: Splits, data: DataSpec, model_name: str, augment: str, batch: int, repeats: int) -> dict:
    """Median images/s of ours and the bare loop, run round-robin."""
    info, spec = splits.info, ModelSpec(model_name)
    recipe = Recipe(augment=augment, epochs=1, batch_size=batch)
    x, y = as_tensors(splits.train)
    transform = basic_policy(info) if augment == "basic" else None
    images = (len(x) // batch) * batch if len(x) > batch else len(x)
    fns: dict[str, Callable[[], float]] = {
        "ours": lambda: ours_epoch(splits, data, spec, recipe, progress=False),
        "bare": lambda: bare_epoch(x, y, info, spec, recipe, transform),
    }
    for fn in fns.values():  # warm-up
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name].append(fn())
    ips = {name: images / statistics.median(s) for name, s in seconds.items()}
    return {"dataset": data.name, "task": "segmentation", "model": model_name, "augment": augment, "batch": batch,
            "images_per_epoch": images, "seconds": seconds, "images_per_s": {k: round(v, 1) for k, v in ips.items()},
            "ours_over_bare": round(ips["ours"] / ips["bare"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="batch size (Recipe default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up")
    parser.add_argument("--models", default="unet", help="comma-separated segmenters")
    parser.add_argument("--out", type=Path, default=RESULTS / "seg_train_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = DataSpec("shapes", task="segmentation")
    splits = get_dataset(data)
    rows = []
    for model_name in args.models.split(","):
        for augment in ("none", "basic"):
            row = measure(splits, data, model_name, augment, args.batch, args.repeats)
            rows.append(row)
            ips = row["images_per_s"]
            print(f"{model_name:24s} {augment:5s} ours {ips['ours']:7.1f}  bare {ips['bare']:7.1f} img/s  "
                  f"ours/bare {row['ours_over_bare']:.3f}", flush=True)
    print(f"threads {args.threads}; batch {args.batch}; median of {args.repeats}; torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "seg_train_speed", "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__, "threads": args.threads, "batch": args.batch, "repeats": args.repeats,
        "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
