"""``--save-adversarials EPS``: each sample's worst-case adversarial at one eps, as safetensors.

One file per defense, ``adversarials/<defense>.safetensors`` in the run directory, written
atomically with the run (the stage writes into the run's staging folder). Tensors, ``N`` the
evaluated samples in the run's order:

- ``x_adv`` float32 ``[N, C, H, W]`` in [0, 1], within ``eps`` of the clean image in the run's norm;
- ``index`` int64 ``[N]``: the clean image's index in the dataset's test split;
- ``label`` int64 ``[N]`` (multi-label ``[N, K]``, segmentation ``[N, H, W]``): its label;
- ``fooled`` bool ``[N]``: not robust at ``eps`` under the run's worst case (wrong on the clean
  image counts as fooled, as in the robust accuracy); the defended model's worst-case robust
  accuracy at ``eps`` in ``results.json`` is ``1 - fooled.mean()``;
- ``attack`` int64 ``[N]``: which attack's adversarial it is (an index into the ``attacks``
  metadata entry, which names attack and mode);
- ``distance`` float32 ``[N]``: its distance to the clean image in the run's norm.

String metadata: ``schema``, ``model``, ``defense``, ``eps``, ``norm``, ``attacks`` (JSON list).

Which adversarial: a fooled sample's from the first attack (in run order) that fooled it, or, for a
segmenter, the one leaving the fewest right pixels; a robust sample's, the one with the lowest
true-class confidence. Fed to the defended model (a deterministic one) they reproduce ``fooled``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from attacks.norms import Norm, distance
from robustcv.evaluation.config import EvalConfig
from robustcv.results import write_bytes_atomic

SCHEMA = "robustcv.adversarials/1"
FOLDER = "adversarials"


def file_name(defense: str) -> str:
    """``adversarials/<defense>.safetensors`` with the spec made file-safe (``jpeg:75`` -> ``jpeg-75``)."""
    return f"{FOLDER}/{re.sub(r'[^A-Za-z0-9_.=-]+', '-', defense)}.safetensors"


def worst_adversarials(run, index: int) -> dict[str, torch.Tensor]:
    """``x_adv``, ``fooled`` and ``attack`` for one defense's run at eps ``index`` of the grid."""
    outcomes = run.outcomes
    if any(o.saved is None for o in outcomes):
        raise ValueError("the run kept no adversarials: set EvalConfig.save_adversarials")
    scores = torch.stack([o.sample_scores(index) for o in outcomes])  # [A, N], lower: worse for the model
    confidence = torch.stack([o.confidence[index] for o in outcomes]).float()
    fooled = ~run.worst.correct[index]
    worst_first = scores.argmin(0)  # the first of equally bad: cascade steps skipped the fooled ones
    at_minimum = scores == scores.amin(0, keepdim=True)
    least_confident = torch.where(at_minimum, confidence, torch.inf).argmin(0)
    pick = torch.where(fooled, worst_first, least_confident)
    stacked = torch.stack([o.saved for o in outcomes])  # [A, N, C, H, W]
    x_adv = stacked[pick, torch.arange(len(pick))]
    return {"x_adv": x_adv.float().contiguous(), "fooled": fooled.clone(), "attack": pick.long()}


def save_adversarials(out_dir: Path, runs: list, samples, config: EvalConfig, model_name: str) -> list[str]:
    """Write every defense's file (nothing when ``config.save_adversarials`` is None); returns
    the paths written, relative to ``out_dir``."""
    from safetensors.torch import save

    if config.save_index is None:
        return []
    written = []
    for run in runs:
        tensors = worst_adversarials(run, config.save_index)
        delta = tensors["x_adv"] - samples.x.float()
        tensors.update(index=samples.index.long(), label=samples.y.long(),
                       distance=distance(Norm(config.norm), delta).float())
        metadata = {"schema": SCHEMA, "model": model_name, "defense": run.spec, "norm": config.norm,
                    "eps": repr(float(config.save_adversarials)),
                    "attacks": json.dumps([f"{o.attack} ({o.extra.get('mode', 'direct')})" for o in run.outcomes])}
        name = file_name(run.spec)
        write_bytes_atomic(out_dir / name, save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))
        written.append(name)
    return written
