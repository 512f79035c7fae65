"""One defense evaluated: clean correctness, then every attack in every threat model."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from attacks.objectives import Objective
from attacks.specs import parse_attack_spec
from robustcv.data.base import DataInfo
from robustcv.evaluation.attacking import EARLY_STOPPING, build_attack, run_outcome
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.outcome import Outcome, merge_outcomes, min_eps, worst_case
from robustcv.evaluation.records import (class_flip_records, class_iou_records, class_records,
                                         clean_multilabel_records, clean_score_records, clean_segmentation_records,
                                         multilabel_records, outcome_records, score_records, segmentation_records,
                                         target_share_records)
from robustcv.evaluation.samples import Samples
from robustcv.evaluation.threat import ThreatModel, judged_elsewhere, threat_models
from robustcv.metrics.segmentation import pixel_accuracy
from robustcv.tasks import TaskDefinition, get_task, task_of
from robustcv.inference import predict
from robustcv.results import MinEps, Record


@dataclass
class DefenseRun:
    """Everything measured for one defense: clean correctness and one outcome per attack/mode."""

    spec: str
    clean_correct: torch.Tensor
    threats: list[ThreatModel]
    outcomes: list[Outcome] = field(default_factory=list)
    worst: Outcome | None = None
    clean_confusion: torch.Tensor | None = None  # segmentation: per-image pixel confusion [N, K, K]
    clean_margins: torch.Tensor | None = None  # multilabel: clean label margins [N, K]
    clean_state: dict[str, torch.Tensor] = field(default_factory=dict)  # the task's sample_state, clean

    @property
    def judge(self) -> nn.Module:
        """The real defended model that decides every sample's fate."""
        return self.threats[0].judge

    @property
    def strongest_attack_model(self) -> nn.Module:
        """What the adaptive attack differentiates through (the model itself when undefended)."""
        return next((t for t in self.threats if t.adaptive), self.threats[0]).attack_model

    def clean_score(self) -> float:
        """Clean accuracy, or a segmenter's clean pixel accuracy."""
        if self.clean_confusion is None:
            return float(self.clean_correct.float().mean())
        return float(pixel_accuracy(self.clean_confusion.sum(0)))

    @property
    def randomized(self) -> bool:
        """Whether the defended model draws randomness per call."""
        return bool(getattr(self.judge, "randomized", False))


def evaluate_defense(spec: str, defense, model: nn.Module, samples: Samples, objective: Objective,
                     config: EvalConfig, device: torch.device, progress=None) -> DefenseRun:
    """Clean correctness and every attack in every threat model for one parsed defense."""
    threats = threat_models(spec, defense.to(device), model, config.eot_samples, seed=config.seed)
    judge = threats[0].judge
    # Judged in the attack loop's batches, so a randomized judge gives each sample the same draw.
    clean_logits = torch.cat([predict(judge, samples.x[i:i + config.batch_size], device)
                              for i in range(0, len(samples.x), config.batch_size)])
    run = DefenseRun(spec, objective.correct(clean_logits, samples.y), threats)
    state = task_of(objective).sample_state(objective, clean_logits, samples.y)
    run.clean_confusion, run.clean_margins, run.clean_state = state.get("confusion"), state.get("margins"), state
    for attack_spec in config.attacks:
        cascaded = parse_attack_spec(attack_spec)[0] in config.cascade and bool(run.outcomes)
        # A cascade step attacks only what every earlier attack (in any threat model) left robust.
        before = worst_case(run.outcomes).correct if cascaded else None
        for threat in threats:
            attack = build_attack(attack_spec, config, objective, **_overrides(attack_spec, threat))
            label = f"{spec} · {attack_spec} · {threat.mode}"
            outcome = run_outcome(attack, attack_spec + threat.suffix, threat, samples, config, device, progress,
                                  label, robust_before=before)
            outcome.extra["cascade"] = cascaded
            if cascaded:
                _inherit_adversarials(outcome, run.outcomes, ~before, config.headline_index)
            run.outcomes.append(outcome)
    run.worst = worst_case(run.outcomes)
    return run


def _inherit_adversarials(outcome: Outcome, earlier: list[Outcome], skipped: torch.Tensor, index: int) -> None:
    """A cascade step did not attack what earlier attacks had fooled (``skipped``, ``[E, N]``):
    those samples' kept adversarials and their measures come from the first earlier attack that
    fooled them, so the gallery and the perturbation sizes show real adversarials."""
    todo = skipped.clone()
    for previous in earlier:
        take = todo & ~previous.correct
        for name in ("confidence", "linf", "l2", "psnr", "label_margins"):
            if getattr(outcome, name) is not None:
                getattr(outcome, name)[take] = getattr(previous, name)[take]
        for name, values in outcome.states.items():
            values[take] = previous.states[name][take]
        if outcome.headline is not None and previous.headline is not None:
            outcome.headline[take[index]] = previous.headline[take[index]]
        todo &= ~take


def shard_state(run: DefenseRun) -> tuple:
    """What one rank sends for ``merge_runs``."""
    return run.clean_correct, run.outcomes, run.clean_confusion, run.clean_margins, run.clean_state


def merge_runs(local: DefenseRun, parts: list[tuple]) -> DefenseRun:
    """The whole set's run from every shard's ``shard_state`` (ranks in order); the threat
    models are this rank's own."""
    run = DefenseRun(local.spec, torch.cat([part[0] for part in parts]), local.threats,
                     [merge_outcomes(list(same)) for same in zip(*(part[1] for part in parts))])
    if local.clean_confusion is not None:
        run.clean_confusion = torch.cat([part[2] for part in parts])
    if local.clean_margins is not None:
        run.clean_margins = torch.cat([part[3] for part in parts])
    run.clean_state = {key: torch.cat([part[4][key] for part in parts]) for key in local.clean_state}
    run.worst = worst_case(run.outcomes)
    return run


def _overrides(attack_spec: str, threat: ThreatModel) -> dict:
    """Keep pushing after the attack model is fooled when it is not the judge (see
    ``threat.judged_elsewhere``): a barely-fooled point rarely fools the judge."""
    early_stopping = parse_attack_spec(attack_spec)[0] in EARLY_STOPPING
    return {"early_stop": False} if judged_elsewhere(threat) and early_stopping else {}


def defense_records(run: DefenseRun, model_name: str, samples: Samples, info: DataInfo,
                    targeted: bool) -> tuple[list[Record], list[MinEps]]:
    """Tidy records and per-sample minimal eps for one defense."""
    if run.clean_confusion is not None:
        return _segmentation_records(run, model_name, info, _target_pair(samples, info)), []
    if run.clean_margins is not None:
        return _multilabel_records(run, model_name, samples, info)
    n = len(samples.y)
    records = [Record(model=model_name, defense=run.spec, attack="none", adaptive=False, eps=0.0,
                      metric="clean_accuracy", value=round(float(run.clean_correct.float().mean()), 6), n=n)]
    min_eps_rows = []
    # A targeted success needs a target other than the true class (a given class equals some labels).
    eligible = run.clean_correct & (samples.target != samples.y) if targeted else run.clean_correct
    for outcome in run.outcomes + [run.worst]:
        is_worst = outcome is run.worst
        records += outcome_records(outcome, model_name, run.spec, eligible, targeted,
                                   per_sample_metrics=not is_worst)
        min_eps_rows.append(MinEps(model=model_name, defense=run.spec, attack=outcome.attack,
                                   adaptive=outcome.adaptive, labels=samples.y.tolist(), values=min_eps(outcome)))
    records += class_records(run.worst, model_name, run.spec, samples.y, info.classes)
    return records + _score_records(run, model_name, samples, get_task(info.task)), min_eps_rows


def _score_records(run: DefenseRun, model_name: str, samples: Samples, task: TaskDefinition) -> list[Record]:
    """The task's set-level metrics beyond accuracy (``TaskDefinition.score_metrics``: a binary
    model's AUROC, precision, recall): clean, and per eps of each attack's kept adversarials (the
    worst case, a per-sample choice across attacks, has none)."""
    records = clean_score_records(task.score_metrics(run.clean_state, samples.y), model_name, run.spec,
                                  len(samples.y))
    for outcome in run.outcomes:
        records += score_records(outcome, model_name, run.spec, lambda state: task.score_metrics(state, samples.y))
    return records


def _target_pair(samples: Samples, info: DataInfo) -> tuple[int | None, int] | None:
    """``(None, B)`` when every valid pixel is sent to class B (``--targeted B``), ``(A, B)`` when
    only class A's pixels are (``--targeted A:B``), else None (random or least-likely targets)."""
    if samples.target is None:
        return None
    valid = samples.target != info.ignore_index if info.ignore_index is not None else torch.ones_like(samples.y, dtype=torch.bool)
    aimed = samples.target[valid].unique()
    if len(aimed) == 1:
        return None, int(aimed[0])
    moved = valid & (samples.target != samples.y)
    sources, targets = samples.y[moved].unique(), samples.target[moved].unique()
    return (int(sources[0]), int(targets[0])) if len(sources) == 1 and len(targets) == 1 else None


def _segmentation_records(run: DefenseRun, model_name: str, info: DataInfo,
                          target: tuple[int | None, int] | None = None) -> list[Record]:
    """A segmenter's records: clean and attacked mIoU and pixel accuracy, per-class IoU of the
    worst case; with a target class, the share of the targeted pixels predicted as it. (Minimal
    eps per image is left out: an image is rarely fooled whole.)"""
    records = clean_segmentation_records(run.clean_confusion, model_name, run.spec)
    for outcome in run.outcomes + [run.worst]:
        records += segmentation_records(outcome, model_name, run.spec, run.clean_correct,
                                        per_sample_metrics=outcome is not run.worst)
        if target is not None:
            records += target_share_records(outcome, model_name, run.spec, target[1], source=target[0])
    return records + class_iou_records(run.worst, model_name, run.spec, info.classes)


def _multilabel_records(run: DefenseRun, model_name: str, samples: Samples,
                        info: DataInfo) -> tuple[list[Record], list[MinEps]]:
    """A multi-label classifier's records: clean and attacked exact match, mAP, F1 and hamming
    loss, per-class flip rates of the worst case, and each image's minimal eps (the smallest that
    flips one of its labels; ``labels`` holds each image's number of labels)."""
    records = clean_multilabel_records(run.clean_margins, samples.y, model_name, run.spec)
    counts = samples.y.sum(dim=1).tolist()
    min_eps_rows = []
    for outcome in run.outcomes + [run.worst]:
        records += multilabel_records(outcome, model_name, run.spec, run.clean_correct, samples.y,
                                      per_sample_metrics=outcome is not run.worst)
        min_eps_rows.append(MinEps(model=model_name, defense=run.spec, attack=outcome.attack,
                                   adaptive=outcome.adaptive, labels=counts, values=min_eps(outcome)))
    records += class_flip_records(run.worst, run.clean_margins, samples.y, model_name, run.spec, info.classes)
    return records, min_eps_rows
