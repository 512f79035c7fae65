"""The attack stage end to end: checkpoint in, run directory (results.json, gallery) out."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from robustcv.checkpoint import load_model
from robustcv.console import progress_bar
from robustcv.errors import UserError
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.gallery import pick_examples, save_gallery
from robustcv.evaluation.natural import natural_records
from robustcv.evaluation.runner import (DefenseRun, Samples, check_config, defense_records, evaluate_defense,
                                        run_metadata, select_samples)
from robustcv.evaluation.sanity import RANDOMIZED_TOLERANCE, large_eps_check, more_steps_check, outcome_checks
from robustcv.results import RunResults, write_json_atomic

SANITY_SAMPLES = 200


def prepare_run_dir(out_dir: Path, force: bool) -> None:
    """Refuse to overwrite an earlier run unless ``force``; nothing is deleted before that check."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise UserError(f"run directory {out_dir} already exists (use --force to replace it, or --out)")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def run_attack_stage(checkpoint: Path, config: EvalConfig, out_dir: Path, *, device: torch.device,
                     command: str = "", show_progress: bool = True) -> RunResults:
    """Attack the checkpoint's model under every defense; write and return the results."""
    check_config(config)
    torch.manual_seed(config.seed)
    model, meta = load_model(checkpoint, device=device)
    model.requires_grad_(False)
    samples, info = select_samples(meta, config.n, config.seed)
    samples.target = _targets(model, samples, config, info.num_classes, device)
    results = RunResults(run=run_metadata(config, meta, info, command, device, out_dir.name, len(samples.y)))
    results.models.append({"name": meta["name"], "checkpoint": str(checkpoint), "spec_hash": meta.get("spec_hash"),
                           # relative to the run directory (the report resolves it there): portable
                           "model_json": os.path.relpath(Path(checkpoint).resolve() / "model.json",
                                                         out_dir.resolve())})
    runs: list[DefenseRun] = []
    with progress_bar(show_progress) as progress:
        for spec in config.defenses:
            run = evaluate_defense(spec, model, samples, config, device, progress)
            runs.append(run)
            records, min_eps_rows = defense_records(run, meta["name"], samples, info, config.targeted != "none")
            results.records += records
            results.min_eps += min_eps_rows
        results.records += natural_records(meta["name"], model, samples, config, device)
    results.sanity_checks = sanity_checks(meta["name"], model, runs, samples, config, device)
    results.gallery = gallery(out_dir, meta["name"], runs[0], samples, info.classes, config, device)
    write_json_atomic(out_dir / "config.json", {"checkpoint": str(checkpoint), **config.to_dict()})
    results.save(out_dir / "results.json")
    return results


def _targets(model, samples: Samples, config: EvalConfig, num_classes: int, device) -> torch.Tensor | None:
    if config.targeted == "none":
        return None
    from attacks.targets import make_targets

    mode, given = ("given", int(config.targeted)) if config.targeted.isdigit() else (config.targeted, None)
    if given is not None and not 0 <= given < num_classes:
        raise UserError(f"--targeted class {given} is outside 0..{num_classes - 1}")
    generator = torch.Generator().manual_seed(config.seed)
    return make_targets(model, samples.x.to(device), samples.y.to(device), mode, num_classes,
                        target_class=given, generator=generator).cpu()


def sanity_checks(model_name: str, model, runs: list[DefenseRun], samples: Samples, config: EvalConfig,
                  device: torch.device) -> list:
    """Every rule-6 check: from the outcomes, plus a very-large-eps and a more-steps PGD run."""
    x, y = samples.x[:SANITY_SAMPLES], samples.y[:SANITY_SAMPLES]
    target = samples.target[:SANITY_SAMPLES] if samples.target is not None else None
    checks = [large_eps_check(model_name, model, x, y, config, device)]
    for run in runs:
        randomized = bool(getattr(run.judge, "randomized", False)) or _is_randomized(run.spec)
        clean = float(run.clean_correct.float().mean())
        checks += outcome_checks(model_name, run.spec, run.outcomes, clean, run.worst, randomized,
                                 targeted=target is not None)
        strongest = _adaptive_threat(run, model, config)
        checks.append(more_steps_check(model_name, run.spec, strongest, run.judge, x, y, config, device,
                                       tol=RANDOMIZED_TOLERANCE if randomized else 0.0, early_stop=not randomized,
                                       target=target))
    return checks


def _is_randomized(spec: str) -> bool:
    from defenses import parse_defense

    return bool(parse_defense(spec).randomized)


def _adaptive_threat(run: DefenseRun, model, config: EvalConfig):
    from defenses import parse_defense

    from robustcv.evaluation.threat import threat_models

    threats = threat_models(run.spec, parse_defense(run.spec), model, config.eot_samples, seed=config.seed)
    return next((t for t in threats if t.adaptive), threats[0]).attack_model


def gallery(out_dir: Path, model_name: str, run: DefenseRun, samples: Samples, classes, config: EvalConfig,
            device) -> list:
    """Examples from the strongest attack on the first defense (the undefended model by default)."""
    candidates = [o for o in run.outcomes if o.headline is not None]
    if not candidates or config.gallery <= 0:
        return []
    index = candidates[0].eps.index(config.headline_eps) if config.headline_eps in candidates[0].eps else -1
    best = min(candidates, key=lambda o: float(o.correct[index].float().mean()))
    indices = pick_examples(run.clean_correct, ~best.correct[index], config.gallery)
    meta: dict[str, Any] = {"model": model_name, "defense": run.spec, "attack": best.attack,
                            "eps": float(best.eps[index])}
    return save_gallery(out_dir, run.judge, samples.x, best.headline, samples.y, indices, classes, meta, device)
