"""Multi-label classifiers under attack: metrics from label margins, flip rates, the worst case.

Each attacked image keeps its ``[K]`` label margins on the kept adversarial: the logits minus
their class's threshold logit (:meth:`attacks.objectives.Multilabel.margins`), so a label is
predicted present where its margin is positive. Average precision ranks images within a class,
which a per-class shift does not change: mAP from the margins equals mAP from the probabilities.

The attacks stop on an image at its first flipped label (that breaks the exact match, the robust
figure), so mAP, F1 and hamming loss under attack are measured on those adversarials.
"""
from __future__ import annotations

from typing import Any

import torch

from robustcv.metrics.multilabel import exact_match, f1_scores, hamming_loss, mean_ap, per_class_ap


def margin_metrics(margins: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """``map``, ``f1_macro``, ``f1_micro``, ``hamming_loss`` and ``exact_match`` of margins ``[N, K]``."""
    predicted = margins > 0
    micro, macro = f1_scores(predicted, labels)
    return {"map": mean_ap(per_class_ap(margins.float(), labels)), "f1_macro": macro, "f1_micro": micro,
            "hamming_loss": hamming_loss(predicted, labels), "exact_match": exact_match(predicted, labels)}


def flip_rates(clean: torch.Tensor, attacked: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, among the images whose clean decision on it is right, the share whose decision
    the attack turned wrong: ``(rates [K] (nan where no image counts), counts [K])``."""
    truth = labels.bool()
    right = (clean > 0) == truth
    flipped = right & ((attacked > 0) != truth)
    counts = right.sum(0)
    rates = flipped.sum(0).double() / counts.clamp_min(1)
    return torch.where(counts > 0, rates, torch.nan), counts
