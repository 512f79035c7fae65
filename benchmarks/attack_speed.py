"""Attack speed, side by side: raw forward+backward, our PGD, torchattacks, foolbox, ART, sweeps.

Usage: ``python benchmarks/attack_speed.py [--quick] [--threads 1] [--batch 256]``

One model (a small CNN on 3x32x32: scikit-learn digits upscaled to 32x32 RGB, trained for a few
seconds so that early stopping and sweeps see a realistic mix of easy and hard samples), one
batch, the same eps / steps / step size for every PGD. Times are the median of a few repeats
after a warm-up, with ``time.perf_counter`` and a fixed ``torch.set_num_threads``. Ratios:

* ours / (steps x raw fwd+bwd): overhead of our loop over the passes it cannot avoid;
* peer / ours: how much slower each peer is than our PGD with early stopping off;
* sweep / one PGD at the largest eps, and naive independent runs / sweep.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from attacks import PGD, eps_sweep, eval_frozen

EPS, STEPS = 0.1, 10
GRID = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3]


def small_cnn() -> nn.Module:
    """A CIFAR-sized CNN (~0.3 M parameters) with BatchNorm, in [0, 1] -> logits."""
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.Flatten(),
                         nn.Linear(128 * 4 * 4, 10))


def digits32() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn digits as 3x32x32 images in [0, 1], shuffled with a fixed seed."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=32, mode="bilinear", align_corners=False).clamp(0, 1).expand(-1, 3, -1, -1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm].contiguous(), torch.tensor(data.target)[perm]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(128):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per function; one warm-up each, then round-robin repeats.

    Interleaving the contenders lets each see the same machine load (the CPU may be shared).
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def raw_fwd_bwd(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """The irreducible cost of one gradient step: forward, loss, input gradient."""
    xi = x.clone().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(xi), y, reduction="sum"), xi)


def peers(model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: float) -> dict[str, Callable[[], object]]:
    """Each installed peer's PGD with our eps / steps / step size and a random start."""
    runs: dict[str, Callable[[], object]] = {}
    try:
        import torchattacks

        ta = torchattacks.PGD(model, eps=EPS, alpha=step, steps=STEPS, random_start=True)
        runs["torchattacks PGD"] = lambda: ta(x, y)
    except ImportError:
        pass
    try:
        import foolbox as fb

        fmodel, fa = fb.PyTorchModel(model, bounds=(0, 1)), fb.attacks.LinfPGD(steps=STEPS, abs_stepsize=step)
        runs["foolbox LinfPGD"] = lambda: fa(fmodel, x, y, epsilons=EPS)
    except ImportError:
        pass
    try:
        import numpy as np
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
        art = ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=step, max_iter=STEPS,
                                       num_random_init=1, batch_size=len(x), verbose=False)
        xn, yn = x.numpy(), y.numpy()
        runs["ART ProjectedGradientDescent"] = lambda: art.generate(xn, y=yn)
    except ImportError:
        pass
    return runs


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> list[tuple[str, float, str]]:
    """Rows of (what, seconds, ratio text), all on the same model and batch."""
    step = 2.5 * EPS / STEPS
    with eval_frozen(model):
        fns = {
            "raw": lambda: [raw_fwd_bwd(model, x, y) for _ in range(STEPS)],
            "off": lambda: PGD(steps=STEPS, step_size=step, early_stop=False, seed=0)(model, x, y, EPS),
            "on": lambda: PGD(steps=STEPS, step_size=step, seed=0)(model, x, y, EPS),
            **peers(model, x, y, step),
        }
        t = timed(fns, repeats)
    raw = t["raw"]
    rows = [
        (f"raw fwd+bwd x{STEPS} ({STEPS * len(x) / raw:,.0f} samples/s, {STEPS / raw:.1f} passes/s)", raw, ""),
        (f"ours PGD-{STEPS}, early stop off", t["off"], f"{t['off'] / raw:.3f} x (steps x raw fwd+bwd)"),
        (f"ours PGD-{STEPS}, early stop on", t["on"], f"{t['on'] / t['off']:.3f} x early-stop-off"),
    ]
    rows += [(name, t[name], f"{t[name] / t['off']:.2f} x ours (stop off)") for name in list(fns)[3:]]
    with eval_frozen(model):
        return rows + sweep_rows(model, x, y, repeats)


def sweep_rows(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> list[tuple[str, float, str]]:
    """The survivors-only sweep against one PGD at the largest eps and against naive runs."""
    def attack(early_stop: bool = True) -> PGD:
        return PGD(steps=STEPS, seed=0, early_stop=early_stop)  # step 2.5 * eps / steps at each eps

    t = timed({
        "on": lambda: attack()(model, x, y, GRID[-1]),
        "off": lambda: attack(False)(model, x, y, GRID[-1]),
        "naive": lambda: [attack()(model, x, y, e) for e in GRID],
        "sweep": lambda: eps_sweep(attack(), model, x, y, GRID),
    }, repeats)
    return [
        (f"one PGD-{STEPS} at largest eps {GRID[-1]} (early stop on)", t["on"], ""),
        (f"one PGD-{STEPS} at largest eps {GRID[-1]} (early stop off)", t["off"], ""),
        (f"naive: {len(GRID)} independent PGD runs (early stop on)", t["naive"], f"{t['naive'] / t['sweep']:.2f} x sweep"),
        (f"eps_sweep over {len(GRID)} budgets {GRID}", t["sweep"],
         f"{t['sweep'] / t['on']:.2f} x one largest (stop on), {t['sweep'] / t['off']:.2f} x (stop off)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batch, fewer repeats and epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch, repeats, epochs = (args.batch or 128, 3, 2) if args.quick else (args.batch or 256, 5, 4)
    x, y = digits32()
    model = train(small_cnn(), x[:-batch], y[:-batch], epochs)
    x_test, y_test = x[-batch:], y[-batch:]
    with torch.no_grad():
        clean = float((model(x_test).argmax(1) == y_test).float().mean())
    rows = measure(model, x_test, y_test, repeats)
    print(f"model: small CNN 3x32x32 (digits upscaled), clean acc {clean:.3f}; batch {batch}; "
          f"Linf eps {EPS}, {STEPS} steps, step {2.5 * EPS / STEPS:g}; threads {args.threads}; "
          f"torch {torch.__version__}; median of {repeats}")
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'seconds':>9}  ratio")
    for what, seconds, ratio in rows:
        print(f"{what:<{width}}  {seconds:9.4f}  {ratio}")


if __name__ == "__main__":
    main()
