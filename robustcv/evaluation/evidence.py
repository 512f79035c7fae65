"""Checks that the evaluation can say anything at all: enough samples, finite outputs, a model
better than chance. They are *blocking*: when one fails, the report gives no verdict of
robustness (an untrained or broken model is trivially "robust" to an attack that has nothing
to flip, and four samples carry no evidence either way)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from attacks.objectives import Objective
from robustcv.inference import predict
from robustcv.results import SanityCheck
from robustcv.stats import wilson_interval
from robustcv.tasks import task_of

MIN_SAMPLES = 30  # below this a 95 % interval of an accuracy spans more than ±0.18
SAMPLES_CHECK = "enough test samples to conclude"
FINITE_CHECK = "model outputs are finite"
CHANCE_CHECK = "clean accuracy above chance"


def evidence_checks(model_name: str, model: nn.Module, runs: Sequence, samples, objective: Objective,
                    batch_size: int, device: torch.device) -> list[SanityCheck]:
    """Sample count and finite outputs for the model (every defense), chance per defense."""
    checks = [sample_count_check(model_name, len(samples.y)),
              finite_outputs_check(model_name, model, samples.x, batch_size, device)]
    if task_of(objective).class_checks:
        checks += [chance_check(model_name, run.spec, run.clean_correct, samples.y) for run in runs]
    return checks


def sample_count_check(model_name: str, n: int, minimum: int = MIN_SAMPLES) -> SanityCheck:
    """At least ``minimum`` evaluated samples."""
    low, high = wilson_interval(n // 2, n) if n else (0.0, 1.0)
    return SanityCheck(SAMPLES_CHECK, n >= minimum,
                       f"{n} samples evaluated (at least {minimum} needed): an accuracy of "
                       f"{(n // 2) / max(n, 1):.2f} could be anywhere in [{low:.2f}, {high:.2f}] at 95 %",
                       model_name, "", {"n": n, "minimum": minimum}, blocking=True)


def finite_outputs_check(model_name: str, model: nn.Module, x: torch.Tensor, batch_size: int,
                         device: torch.device) -> SanityCheck:
    """Every logit of every clean sample is finite (nan weights give nan logits, argmax class 0)."""
    batches = (predict(model, x[i:i + batch_size], device) for i in range(0, len(x), batch_size))
    bad = sum(int((~torch.isfinite(out.reshape(len(out), -1))).any(1).sum()) for out in batches)  # also [B] logits
    return SanityCheck(FINITE_CHECK, bad == 0,
                       f"{bad} of {len(x)} samples give nan or infinite outputs" + (
                           " (non-finite weights or a diverged model?)" if bad else ""),
                       model_name, "", {"non_finite": bad, "n": len(x)}, blocking=True)


def chance_check(model_name: str, defense: str, clean_correct: torch.Tensor, labels: torch.Tensor) -> SanityCheck:
    """The clean accuracy's 95 % interval lies above what always answering the most frequent
    class would score on the same samples."""
    n = len(labels)
    chance = float(torch.bincount(labels).max()) / n if n else 1.0
    correct = int(clean_correct.sum())
    low, high = wilson_interval(correct, n) if n else (0.0, 1.0)
    return SanityCheck(CHANCE_CHECK, low > chance,
                       f"clean accuracy {correct / max(n, 1):.4f} [{low:.3f}, {high:.3f}] vs {chance:.4f} for "
                       "always answering the most frequent class", model_name, defense,
                       {"clean": round(correct / max(n, 1), 6), "ci_low": round(low, 6), "chance": round(chance, 6),
                        "n": n}, blocking=True)
