"""The members of an ensemble, each attacked alone beside the ensemble (white-box through all).

The ensemble's run directory gets one sub-run per member, ``members/<member>/results.json``,
under the same evaluation config (so the same samples, seed and attacks); the report renders the
ensemble and its members side by side as it renders any several runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from robustcv.checkpoint import ModelMetadata
from robustcv.evaluation.config import EvalConfig
from robustcv.models.ensemble import MEMBERS_DIR, is_ensemble, member_dirs
from robustcv.results import RunResults


def attack_members(checkpoint: Path, meta: ModelMetadata, config: EvalConfig, out_dir: Path, *,
                   device: torch.device, command: str = "", show_progress: bool = True
                   ) -> list[tuple[Path, RunResults | None]]:
    """Attack every member of an ensemble checkpoint alone; ``[]`` for any other model.

    Returns:
        ``(run folder relative to out_dir, results)`` per member, in member order (results None
        on the ranks other than 0 under torchrun).
    """
    from robustcv.checkpoint import load_model
    from robustcv.evaluation.model_card import ModelCard
    from robustcv.evaluation.orchestrator import attack_model
    from robustcv.evaluation.samples import select_samples

    if not is_ensemble(meta.model.name):
        return []
    samples, _ = select_samples(meta, config.n, config.seed)  # the ensemble's samples, drawn once for all
    runs = []
    for member in member_dirs(checkpoint, meta.model):
        relative = Path(MEMBERS_DIR) / member.name
        (out_dir / relative).mkdir(parents=True, exist_ok=True)
        model, member_meta = load_model(member, device=device)
        results = attack_model(model, ModelCard.from_metadata(member_meta, member),
                               dataclasses.replace(samples, target=None), config, out_dir / relative, device=device,
                               command=command, show_progress=show_progress, name=member.name)
        runs.append((relative, results))
    return runs
