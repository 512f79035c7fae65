"""Synthetic run directories for the report tests (results.json, model.json, gallery PNGs).

Imported by the other ``test_report*`` files; it also checks that what it builds loads back.
"""
from __future__ import annotations

import atexit
import functools
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from PIL import Image as PILImage

from robustcv.results import GalleryItem, MinEps, Record, RunResults, SanityCheck

EVIL_CLASS = "<img src=x onerror=alert(1)>"
EVIL_MODEL = "<script>alert(1)</script>"
CLASSES = ["0", "1", "2", EVIL_CLASS, "a|b", "$x_1$"]
GRID = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]
NATURAL = {"rotate": [0.0, 10.0, 20.0, 30.0], "noise": [0.0, 0.05, 0.1]}


def _curve(clean: float, strength: float, eps: float) -> float:
    return round(clean * math.exp(-strength * eps), 6)


def _records(model: str, defense: str, clean: float, strength: float, adaptive: bool) -> list[Record]:
    records = [Record(model, defense, "clean", False, 0.0, "clean_accuracy", clean, 60)]
    attacks = [("fgsm", strength, adaptive), ("pgd", strength * 1.6, adaptive)]
    if defense != "none":
        attacks += [("pgd", strength * 0.5, False)]  # naive PGD on the defense: looks better than it is
    for attack, s, adapt in attacks + [("worst-case", strength * 1.7, adaptive)]:
        for eps in GRID:
            value = _curve(clean, s, eps)
            records.append(Record(model, defense, attack, adapt, eps, "robust_accuracy", value, 60, 0.5))
            records.append(Record(model, defense, attack, adapt, eps, "attack_success_rate",
                                  round(1 - value / clean, 6), 60, 0.5))
        if attack == "worst-case":
            for k, cls in enumerate(CLASSES):
                for eps in GRID:
                    records.append(Record(model, defense, attack, adapt, eps, "class_robust_accuracy",
                                          _curve(clean, s * (1 + 0.2 * k), eps), 10, 0.0, cls=cls))
    for kind, params in NATURAL.items():
        for j, p in enumerate(params):
            records.append(Record(model, defense, f"natural:{kind}", False, p, "robust_accuracy",
                                  round(clean * (1 - 0.1 * j), 6), 60))
        records.append(Record(model, defense, f"natural:{kind}", False, params[-1], "worst_case_accuracy",
                              round(clean * (1 - 0.1 * len(params)), 6), 60))
    return records


def _model_json(path: Path, name: str, adversarial: bool) -> None:
    history = []
    for epoch in range(1, 6):
        entry = {"epoch": epoch, "train_loss": 2.0 / epoch, "train_accuracy": 1 - 0.5 / epoch,
                 "val_loss": 2.2 / epoch, "val_accuracy": 1 - 0.6 / epoch, "lr": 0.003, "seconds": 1.1}
        if adversarial:
            entry["val_robust_accuracy"] = 0.5 - 0.3 / epoch
        history.append(entry)
    doc = {"schema": "robustcv.model/1", "name": name, "spec_hash": "1a2b3c4d5e6f",
           "data": {"name": "digits", "seed": 0}, "data_info": {"name": "digits", "classes": CLASSES},
           "model": {"name": "small_cnn", "weights": None, "hidden": 0, "dropout": 0.0},
           "recipe": {"augment": "basic", "optimizer": "adamw", "lr": 0.003, "epochs": 5,
                      "adv_train": "pgd" if adversarial else "none", "train_eps": 0.1 if adversarial else 0.0},
           "history": history, "best_epoch": 5,
           "test_metrics": {"accuracy": 0.97, "f1_macro": 0.96, "per_class_accuracy": {"0": 1.0}},
           "versions": {"robustcv": "0.1.0", "torch": "2.14.1"}, "created": "2026-11-22T12:00:00Z",
           "seconds": 20.5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def _png(path: Path, seed: int) -> str:
    image = PILImage.new("L", (8, 8))
    image.putdata([(i * 37 + seed * 53) % 256 for i in range(64)])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path.name if path.parent.name != "examples" else f"examples/{path.name}"


def make_run(root: Path, name: str, model: str, adversarial: bool, failing_check: bool) -> Path:
    """One run directory with two defenses (none, jpeg:75) on one model."""
    run_dir = root / name
    model_json = root / "models" / model.replace("/", "_").replace("<", "_").replace(">", "_") / "model.json"
    _model_json(model_json, model, adversarial)
    clean = 0.95 if not adversarial else 0.88
    strength = 30.0 if not adversarial else 6.0
    records = _records(model, "none", clean, strength, False) + _records(model, "jpeg:75", clean - 0.02,
                                                                        strength, True)
    min_eps = [MinEps(model, "none", "worst-case", False, [0, 1, 2, 3],
                      [0.02, 0.05, None, 0.0 if adversarial else 0.1])]
    checks = [SanityCheck("large eps reaches zero", True, "robust accuracy at eps 1.0 is 0.0", model, "none",
                          {"eps": 1.0, "robust_accuracy": 0.0}),
              SanityCheck("pgd at least as strong as fgsm", not failing_check,
                          "PGD left 0.12 robust where FGSM left 0.05" if failing_check else "PGD <= FGSM",
                          model, "none", {"pgd": 0.12, "fgsm": 0.05})]
    gallery = []
    for g in range(2):
        paths = [_png(run_dir / "examples" / f"{g}_{kind}.png", g * 3 + k)
                 for k, kind in enumerate(("clean", "perturbation", "adversarial"))]
        gallery.append(GalleryItem(model, "none", "pgd", 0.1, CLASSES[3 if g else 0], CLASSES[3 if g else 0], 0.99,
                                   "1", 0.87, *paths))
    results = RunResults(
        run={"name": name, "command": f"robustcv attack --model {model} --eps 0,0.02,0.05,0.1,0.2,0.3",
             "created": "2026-11-22T12:30:00Z", "seed": 0, "device": "cpu",
             "versions": {"robustcv": "0.1.0", "torch": "2.14.1"}, "task": "classification", "norm": "linf",
             "eps_grid": GRID, "headline_eps": 0.1, "n": 60, "dataset": {"name": "digits"},
             "data_info": {"name": "digits", "classes": CLASSES}},
        models=[{"name": model, "checkpoint": str(model_json.parent), "spec_hash": "1a2b3c4d5e6f",
                 "model_json": os.path.relpath(model_json, run_dir)}],  # as robustcv writes it
        records=records, min_eps=min_eps, sanity_checks=checks, gallery=gallery)
    results.save(run_dir / "results.json")
    return run_dir


def make_two_runs(root: Path) -> list[Path]:
    """A standard model (all checks pass) and an adversarially trained one with a failed check."""
    return [make_run(root, "standard", "digits-small_cnn-1a2b3c4d", adversarial=False, failing_check=False),
            make_run(root, "pgd-trained", EVIL_MODEL, adversarial=True, failing_check=True)]


@functools.lru_cache(maxsize=None)
def rendered_two_runs() -> tuple[list[Path], dict[str, Path]]:
    """The two-run report, rendered once per test session (matplotlib dominates the cost)."""
    from robustcv.report import render_report

    root = Path(tempfile.mkdtemp(prefix="robustcv-report-test-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    run_dirs = make_two_runs(root / "runs")
    return run_dirs, render_report(run_dirs, root / "out")


def test_synthetic_runs_load_back(tmp_path: Path) -> None:
    for run_dir in make_two_runs(tmp_path):
        results = RunResults.load(run_dir / "results.json")
        assert results.gallery and all((run_dir / g.clean_path).is_file() for g in results.gallery)
        assert {r.attack for r in results.records} >= {"fgsm", "pgd", "worst-case", "natural:rotate"}
