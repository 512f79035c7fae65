"""Turn per-sample outcomes into tidy ``Record``s for ``results.json``."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from robustcv.evaluation import multilabel
from robustcv.evaluation.outcome import Outcome
from robustcv.metrics import segmentation
from robustcv.metrics.multilabel import map_interval
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
    def values(j: int) -> dict[str, float | None]:
        return {"miou": _score(segmentation.miou, outcome.matrices("miou")[j]),
                "pixel_accuracy": _score(segmentation.pixel_accuracy, outcome.matrices("pixel_accuracy")[j]),
                "attack_success_rate": _success(outcome, j, clean_correct, False)}

    def intervals(j: int) -> dict[str, tuple[float, float] | None]:
        return {"miou": segmentation.miou_interval(outcome.matrices("miou")[j])}

    return _per_eps_records(outcome, model, defense, values, per_sample_metrics, intervals)


def _per_eps_records(outcome: Outcome, model: str, defense: str, values: Callable[[int], dict[str, float | None]],
                     per_sample_metrics: bool,
                     intervals: Callable[[int], dict[str, tuple[float, float] | None]] | None = None) -> list[Record]:
    """One record per eps and metric of ``values(j)``; with ``per_sample_metrics`` also the
    true-label confidence and the perturbation sizes. None values are left out. ``intervals(j)``
    gives some metrics their confidence interval."""
    records: list[Record] = []
    base = dict(model=model, defense=defense, attack=outcome.attack, adaptive=outcome.adaptive,
                n=outcome.correct.shape[1])
    for j, eps in enumerate(outcome.eps):
        row = values(j)
        if per_sample_metrics:
            row.update(true_class_confidence=_nanmean(outcome.confidence[j]), linf=_mean(outcome.linf[j]),
                       l2=_mean(outcome.l2[j]), psnr=_nanmean(outcome.psnr[j]))
        added = [Record(**base, eps=float(eps), metric=metric, value=value, seconds=round(outcome.seconds[j], 4))
                 for metric, value in row.items() if value is not None]
        for metric, interval in (intervals(j) if intervals else {}).items():
            for record in added:
                if record.metric == metric:
                    _set_interval(record, interval)
        records += added
    return records


def class_iou_records(outcome: Outcome, model: str, defense: str, classes: Sequence[str]) -> list[Record]:
    """IoU per class at each eps (``class_iou`` with ``cls``) for the classes present in the
    ground truth or predicted, from the matrices the outcome's mIoU comes from."""
    records = []
    for j, eps in enumerate(outcome.eps):
        cm = outcome.matrices("miou")[j].sum(0)
        iou, support = segmentation.class_iou(cm), cm.sum(1)
        for k, name in enumerate(classes):
            if not torch.isnan(iou[k]):
                records.append(Record(model=model, defense=defense, attack=outcome.attack, adaptive=outcome.adaptive,
                                      eps=float(eps), metric="class_iou", value=round(float(iou[k]), 6),
                                      n=int(support[k]), cls=name))
    return records


def target_share_records(outcome: Outcome, model: str, defense: str, target_class: int,
                         source: int | None = None) -> list[Record]:
    """Targeted segmentation: per eps, the share of the targeted pixels predicted as
    ``target_class`` (``target_pixel_share``): every valid pixel, or with ``source`` the pixels
    whose true class is ``source`` (``--targeted A:B``), from the kept adversarials' matrices."""
    records = []
    for j, eps in enumerate(outcome.eps):
        cm = outcome.matrices("miou")[j].sum(0)
        aimed = cm if source is None else cm[source : source + 1]
        share = float(aimed[:, target_class].sum() / aimed.sum().clamp_min(1))
        records.append(Record(model=model, defense=defense, attack=outcome.attack, adaptive=outcome.adaptive,
                              eps=float(eps), metric="target_pixel_share", value=round(share, 6),
                              n=outcome.correct.shape[1]))
    return records


def clean_segmentation_records(confusion: torch.Tensor, model: str, defense: str) -> list[Record]:
    """``clean_miou`` and ``clean_pixel_accuracy`` from the clean per-image matrices ``[N, K, K]``."""
    base = dict(model=model, defense=defense, attack="none", adaptive=False, eps=0.0, n=int(confusion.shape[0]))
    clean = Record(**base, metric="clean_miou", value=_score(segmentation.miou, confusion))
    _set_interval(clean, segmentation.miou_interval(confusion))
    return [clean, Record(**base, metric="clean_pixel_accuracy", value=_score(segmentation.pixel_accuracy, confusion))]


MULTILABEL_METRICS = ("map", "f1_macro", "f1_micro", "hamming_loss")


def multilabel_records(outcome: Outcome, model: str, defense: str, clean_correct: torch.Tensor,
                       labels: torch.Tensor, per_sample_metrics: bool = True) -> list[Record]:
    """A multi-label classifier's records per eps: ``robust_accuracy`` (exact match under attack),
    ``attack_success_rate`` (share of clean exact matches broken), and ``map``, ``f1_macro``,
    ``f1_micro``, ``hamming_loss`` of the kept adversarials' label margins; with
    ``per_sample_metrics`` also the true-label confidence and the perturbation sizes."""
    def values(j: int) -> dict[str, float | None]:
        scores = multilabel.margin_metrics(outcome.label_margins[j], labels)
        return {"robust_accuracy": _mean(outcome.correct[j]),
                "attack_success_rate": _success(outcome, j, clean_correct, False),
                **{metric: _finite(scores[metric]) for metric in MULTILABEL_METRICS}}

    def intervals(j: int) -> dict[str, tuple[float, float] | None]:
        return {"map": map_interval(outcome.label_margins[j].float(), labels)}

    return _per_eps_records(outcome, model, defense, values, per_sample_metrics, intervals)


def clean_multilabel_records(margins: torch.Tensor, labels: torch.Tensor, model: str, defense: str) -> list[Record]:
    """``clean_accuracy`` (exact match) and ``clean_map``, ``clean_f1_macro``, ``clean_f1_micro``,
    ``clean_hamming_loss`` from the clean label margins ``[N, K]``."""
    scores = multilabel.margin_metrics(margins, labels)
    base = dict(model=model, defense=defense, attack="none", adaptive=False, eps=0.0, n=int(margins.shape[0]))
    values = {"clean_accuracy": _finite(scores["exact_match"]),
              **{f"clean_{metric}": _finite(scores[metric]) for metric in MULTILABEL_METRICS}}
    records = [Record(**base, metric=metric, value=value) for metric, value in values.items() if value is not None]
    for record in records:
        if record.metric == "clean_map":
            _set_interval(record, map_interval(margins.float(), labels))
    return records


def clean_score_records(values: dict[str, float | None], model: str, defense: str, n: int) -> list[Record]:
    """``clean_NAME`` records of a task's set-level metrics on the clean images (None left out)."""
    base = dict(model=model, defense=defense, attack="none", adaptive=False, eps=0.0, n=n)
    return [Record(**base, metric=f"clean_{metric}", value=value) for metric, value in values.items()
            if value is not None]


def score_records(outcome: Outcome, model: str, defense: str,
                  metrics: Callable[[dict[str, torch.Tensor]], dict[str, float | None]]) -> list[Record]:
    """Per eps, the task's set-level metrics (``metrics(state)``) of the kept adversarials'
    per-sample state (``outcome.states`` at that eps); None values are left out."""
    if not outcome.states:
        return []
    return _per_eps_records(outcome, model, defense,
                            lambda j: metrics({key: value[j] for key, value in outcome.states.items()}), False)


def _set_interval(record: Record, interval: tuple[float, float] | None) -> None:
    """Give a record a bootstrap interval (6 decimals), kept around its rounded value."""
    if interval is not None and record.value is not None:
        record.ci_low = round(min(interval[0], record.value), 6)
        record.ci_high = round(max(interval[1], record.value), 6)


def class_flip_records(outcome: Outcome, clean_margins: torch.Tensor, labels: torch.Tensor, model: str,
                       defense: str, classes: Sequence[str]) -> list[Record]:
    """Per class and eps, ``class_flip_rate`` (with ``cls``): among the images whose clean decision
    on the class is right, the share the attack turned wrong (``n``: how many such images)."""
    records = []
    for j, eps in enumerate(outcome.eps):
        rates, counts = multilabel.flip_rates(clean_margins, outcome.label_margins[j], labels)
        records += [Record(model=model, defense=defense, attack=outcome.attack, adaptive=outcome.adaptive,
                           eps=float(eps), metric="class_flip_rate", value=round(float(rates[k]), 6),
                           n=int(counts[k]), cls=name)
                    for k, name in enumerate(classes) if counts[k] > 0]
    return records


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


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


# Proportions of samples: their records carry a Wilson interval (mIoU and mAP carry a bootstrap
# interval over images, set where they are recorded).
PROPORTION_METRICS = ("clean_accuracy", "robust_accuracy", "class_robust_accuracy", "worst_case_accuracy")


def attach_intervals(records: Sequence[Record], metrics: Sequence[str] = PROPORTION_METRICS) -> None:
    """Set ``ci_low``/``ci_high`` (95 % Wilson, 6 decimals) on every record of ``metrics``, in place."""
    from robustcv.stats import proportion_interval

    for record in records:
        interval = proportion_interval(record.value, record.n) if record.metric in metrics else None
        if interval is not None:
            record.ci_low, record.ci_high = (round(v, 6) for v in interval)
