"""Turn per-sample outcomes into tidy ``Record``s for ``results.json``."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from robustcv.evaluation import segmentation
from robustcv.evaluation.outcome import Outcome
from robustcv.results import Record


def outcome_records(outcome: Outcome, model: str, defense: str, clean_correct: torch.Tensor,
                    targeted: bool = False, per_sample_metrics: bool = True) -> list[Record]:
    """Robust accuracy, attack success rate, confidence, perturbation size and PSNR per eps."""
    records: list[Record] = []
    n = outcome.correct.shape[1]
    base = dict(model=model, defense=defense, attack=outcome.attack, adaptive=outcome.adaptive, n=n)
    for j, eps in enumerate(outcome.eps):
        seconds = round(outcome.seconds[j], 4)
        values = {"robust_accuracy": _mean(outcome.correct[j])}
        values["attack_success_rate"] = _success(outcome, j, clean_correct, targeted)
        if per_sample_metrics:
            values["true_class_confidence"] = _mean(outcome.confidence[j])
            values["linf"] = _mean(outcome.linf[j])
            values["l2"] = _mean(outcome.l2[j])
            values["psnr"] = _nanmean(outcome.psnr[j])
        for metric, value in values.items():
            if value is not None:
                records.append(Record(**base, eps=float(eps), metric=metric, value=value, seconds=seconds))
    return records


def segmentation_records(outcome: Outcome, model: str, defense: str, clean_correct: torch.Tensor,
                         per_sample_metrics: bool = True) -> list[Record]:
    """A segmenter's dataset ``miou`` and ``pixel_accuracy`` on the attacked images per eps (from
    the per-image confusion matrices), the share of images fooled (``attack_success_rate``: at
    least the objective's threshold of their valid pixels wrong) and the perturbation sizes."""
    records: list[Record] = []
    base = dict(model=model, defense=defense, attack=outcome.attack, adaptive=outcome.adaptive,
                n=outcome.correct.shape[1])
    for j, eps in enumerate(outcome.eps):
        values = {"miou": _score(segmentation.miou, outcome.matrices("miou")[j]),
                  "pixel_accuracy": _score(segmentation.pixel_accuracy, outcome.matrices("pixel_accuracy")[j]),
                  "attack_success_rate": _success(outcome, j, clean_correct, False)}
        if per_sample_metrics:
            values.update(true_class_confidence=_nanmean(outcome.confidence[j]), linf=_mean(outcome.linf[j]),
                          l2=_mean(outcome.l2[j]), psnr=_nanmean(outcome.psnr[j]))
        records += [Record(**base, eps=float(eps), metric=metric, value=value, seconds=round(outcome.seconds[j], 4))
                    for metric, value in values.items() if value is not None]
    return records


def class_iou_records(outcome: Outcome, model: str, defense: str, classes: Sequence[str]) -> list[Record]:
    """IoU per class at each eps (``class_iou`` with ``cls``) for the classes present in the
    ground truth or predicted, from the matrices the outcome's mIoU comes from."""
    records = []
    for j, eps in enumerate(outcome.eps):
        cm = outcome.matrices("miou")[j].sum(0).double()
        tp, support = cm.diag(), cm.sum(1)
        union = support + cm.sum(0) - tp
        for k, name in enumerate(classes):
            if union[k] > 0:
                records.append(Record(model=model, defense=defense, attack=outcome.attack, adaptive=outcome.adaptive,
                                      eps=float(eps), metric="class_iou", value=round(float(tp[k] / union[k]), 6),
                                      n=int(support[k]), cls=name))
    return records


def clean_segmentation_records(confusion: torch.Tensor, model: str, defense: str) -> list[Record]:
    """``clean_miou`` and ``clean_pixel_accuracy`` from the clean per-image matrices ``[N, K, K]``."""
    base = dict(model=model, defense=defense, attack="none", adaptive=False, eps=0.0, n=int(confusion.shape[0]))
    return [Record(**base, metric="clean_miou", value=_score(segmentation.miou, confusion)),
            Record(**base, metric="clean_pixel_accuracy", value=_score(segmentation.pixel_accuracy, confusion))]


def _score(metric, matrices: torch.Tensor) -> float | None:
    value = float(metric(matrices.sum(0)))
    return None if math.isnan(value) else round(value, 6)


def class_records(outcome: Outcome, model: str, defense: str, labels: torch.Tensor,
                  classes: Sequence[str]) -> list[Record]:
    """Robust accuracy per true class at each eps (``class_robust_accuracy`` with ``cls``)."""
    records = []
    for k, name in enumerate(classes):
        mask = labels == k
        if not mask.any():
            continue
        for j, eps in enumerate(outcome.eps):
            records.append(Record(model=model, defense=defense, attack=outcome.attack, adaptive=outcome.adaptive,
                                  eps=float(eps), metric="class_robust_accuracy",
                                  value=_mean(outcome.correct[j][mask]), n=int(mask.sum()), cls=name))
    return records


def _success(outcome: Outcome, j: int, clean_correct: torch.Tensor, targeted: bool) -> float | None:
    """Among originally-correct samples (targeted: those whose target is another class; the caller
    passes that mask as ``clean_correct``), the fraction fooled / sent to their target."""
    if not clean_correct.any():
        return None
    if targeted:
        return _mean(outcome.hit_target[j][clean_correct])
    return round(1.0 - _mean(outcome.correct[j][clean_correct]), 6)


def _mean(values: torch.Tensor) -> float:
    return round(float(values.float().mean()), 6) if values.numel() else 0.0


def _nanmean(values: torch.Tensor) -> float | None:
    value = float(torch.nanmean(values.float())) if values.numel() else math.nan
    return None if math.isnan(value) else round(value, 4)
