"""Per-sample outcomes of one attack over an eps grid, folded so the worst case is kept.

A sample fooled at a small eps stays fooled at every larger eps (the adversarial lies in every
larger ball): correctness is folded with a running AND, which makes robust accuracy monotone.
Likewise each sample keeps, from one eps to the next, whichever adversarial the model does worse
on (the task's per-sample quality: correctness, or a segmenter's share of right pixels), so a
segmenter's pixel accuracy and mIoU are monotone too. Outcomes also keep, at every eps, the
per-sample state the task asks for (``TaskDefinition.sample_state``): a segmenter's pixel
confusion matrix per image, a multi-label classifier's label margins; the worst case over
attacks folds them by the task's rule (``TaskDefinition.worst_case_state``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attacks.objectives import Classification, Objective
from robustcv.metrics.segmentation import pixel_accuracy
from robustcv.tasks import DEFAULT_TASK, get_task, task_of


@dataclass
class Outcome:
    """Per-sample results of one (defense, attack, mode) over the grid; arrays are ``[E, N]``."""

    attack: str
    adaptive: bool
    eps: list[float]
    correct: torch.Tensor  # bool, cumulative: still correct at every eps up to this one
    hit_target: torch.Tensor  # bool, targeted attacks: prediction equals the target
    confidence: torch.Tensor  # softmax probability of the true class on the kept adversarial
    linf: torch.Tensor
    l2: torch.Tensor
    psnr: torch.Tensor  # nan where the kept adversarial equals the clean image
    seconds: list[float]
    grad_calls: int = 0
    headline: torch.Tensor | None = None  # kept adversarials at the headline eps (gallery)
    max_violation: float = 0.0  # largest eps-ball or [0,1] violation seen (should be ~0)
    extra: dict = field(default_factory=dict)
    confusion: torch.Tensor | None = None  # segmentation: [E, N, K, K] pixel confusion per image
    # The worst case's per-image matrices for pixel accuracy, where they differ from ``confusion``
    # (which then holds the mIoU-greedy choice); None: ``confusion`` serves both.
    accuracy_confusion: torch.Tensor | None = None
    label_margins: torch.Tensor | None = None  # multilabel: [E, N, K] label margins of the kept adversarials
    saved: torch.Tensor | None = None  # kept adversarials at the eps of ``--save-adversarials``
    # The task's other per-sample state of the kept adversarials, by name, ``[E, N, ...]`` each
    # (``TaskDefinition.sample_state`` beyond ``confusion`` and ``margins``: a binary model's scores).
    states: dict[str, torch.Tensor] = field(default_factory=dict)
    task: str = DEFAULT_TASK  # whose per-sample state this is, and whose worst-case rule folds it

    def matrices(self, metric: str) -> torch.Tensor | None:
        """The per-image confusion matrices ``[E, N, K, K]`` that ``metric`` is computed from."""
        if metric == "pixel_accuracy" and self.accuracy_confusion is not None:
            return self.accuracy_confusion
        return self.confusion

    def sample_scores(self, j: int) -> torch.Tensor:
        """Per sample at eps ``j``, float ``[N]``: 1/0 robust, or a segmenter's per-image pixel accuracy."""
        matrices = self.matrices("pixel_accuracy")
        if matrices is None:
            return self.correct[j].float()
        return pixel_accuracy(matrices[j]).float()

    def scores(self) -> list[float]:
        """The headline score per eps: robust accuracy, or a segmenter's pixel accuracy."""
        matrices = self.matrices("pixel_accuracy")
        if matrices is None:
            return [round(float(c.float().mean()), 6) for c in self.correct]
        return [round(float(pixel_accuracy(m.sum(0))), 6) for m in matrices]


KNOWN_STATES = ("confusion", "margins")  # the per-sample states an Outcome keeps in their own fields


class OutcomeBuilder:
    """Folds batches of per-eps adversarials into an ``Outcome``."""

    def __init__(self, attack: str, adaptive: bool, eps: list[float], norm: str, headline_index: int,
                 objective: Objective | None = None, save_index: int | None = None) -> None:
        self.attack, self.adaptive, self.eps, self.norm = attack, adaptive, eps, norm
        self.objective = objective or Classification()
        self.task = task_of(self.objective)
        self.headline_index, self.save_index = headline_index, save_index
        self.parts: dict[str, list[torch.Tensor]] = {k: [] for k in (
            "correct", "hit", "conf", "linf", "l2", "psnr", "headline", "saved")}
        self.seconds = [0.0] * len(eps)
        self.grad_calls = 0
        self.max_violation = 0.0
        self.state_keys: set[str] = set()

    def add_batch(self, x: torch.Tensor, y: torch.Tensor, x_advs: list[torch.Tensor], logits: list[torch.Tensor],
                  target: torch.Tensor | None, seconds: list[float], grad_calls: int = 0,
                  robust_before: torch.Tensor | None = None) -> None:
        """Fold one batch: ``x_advs[j]``/``logits[j]`` are the adversarials at eps j and the
        evaluated model's logits on them; ``robust_before[j]`` (a cascade step) marks the samples
        earlier attacks left robust at eps j, the others count as fooled."""
        kept = x.clone()
        alive = torch.ones(len(x), dtype=torch.bool)
        # Targeted: a sample counts as hit from the first eps whose adversarial reaches the target
        # (the sweep keeps attacking misclassified samples until they do), whatever was kept.
        hit = torch.zeros(len(x), dtype=torch.bool)
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("correct", "hit", "conf", "linf", "l2", "psnr")}
        kept_logits, kept_quality = None, None
        states: dict[str, list[torch.Tensor]] = {}  # the task's per-sample state, per eps
        for j, (x_adv, out) in enumerate(zip(x_advs, logits)):
            x_adv, out = x_adv.detach().cpu(), out.detach().cpu()
            self.max_violation = max(self.max_violation, _violation(x, x_adv, self.eps[j], self.norm))
            correct = self.objective.correct(out, y)
            if robust_before is not None:
                correct &= robust_before[j].cpu()
            quality = self.objective.quality(out, y)
            replace = _replaced(alive, quality, kept_quality)
            kept[replace] = x_adv[replace]
            if kept_logits is None:
                kept_logits, kept_quality = out.clone(), quality.clone()
            kept_logits[replace] = out[replace]  # any logits shape: per image, per pixel, per label
            kept_quality[replace] = quality[replace]
            alive &= correct
            for key, value in self.task.sample_state(self.objective, kept_logits, y).items():
                states.setdefault(key, []).append(value)
            if target is not None:
                hit |= self.objective.success(out, target, targeted=True)
            self._row(rows, x, y, kept, self.objective.confidence(kept_logits, y), alive, hit)
            self.seconds[j] += seconds[j]
            if j == self.headline_index:
                self.parts["headline"].append(kept.clone())
            if j == self.save_index:
                self.parts["saved"].append(kept.clone())
        for key, values in rows.items():
            self.parts[key].append(torch.stack(values))
        for key, values in states.items():
            self.parts.setdefault(key, []).append(torch.stack(values))
            self.state_keys.add(key)
        self.grad_calls += grad_calls

    @staticmethod
    def _row(rows, x, y, kept, confidence, alive, hit) -> None:
        delta = (kept - x).flatten(1)
        mse = delta.pow(2).mean(1)
        rows["correct"].append(alive.clone())
        rows["hit"].append(hit.clone())
        rows["conf"].append(confidence)
        rows["linf"].append(delta.abs().amax(1))
        rows["l2"].append(delta.norm(dim=1))
        rows["psnr"].append(torch.where(mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(1e-20)), torch.nan))

    def build(self) -> Outcome:
        cat = {k: torch.cat(v, dim=1) for k, v in self.parts.items() if k not in ("headline", "saved") and v}
        confusion = cat.get("confusion")
        return Outcome(
            attack=self.attack, adaptive=self.adaptive, eps=list(self.eps), correct=cat["correct"],
            hit_target=cat["hit"], confidence=cat["conf"], linf=cat["linf"], l2=cat["l2"], psnr=cat["psnr"],
            seconds=self.seconds, grad_calls=self.grad_calls,
            headline=torch.cat(self.parts["headline"]) if self.parts["headline"] else None,
            max_violation=self.max_violation, confusion=confusion, label_margins=cat.get("margins"),
            saved=torch.cat(self.parts["saved"]) if self.parts["saved"] else None,
            states={key: cat[key] for key in self.state_keys if key not in KNOWN_STATES}, task=self.task.name,
        )


def _replaced(alive: torch.Tensor, quality: torch.Tensor, kept_quality: torch.Tensor | None) -> torch.Tensor:
    """Which samples take the new eps's adversarial: all at the first eps; later, the ones the
    model does worse on, and survivors also on a tie (their newest attempt is shown). For
    classifiers that is: survivors take the newest attempt, fooled samples keep theirs."""
    if kept_quality is None:
        return torch.ones_like(alive)
    return (quality < kept_quality) | (alive & (quality <= kept_quality))


def _violation(x: torch.Tensor, x_adv: torch.Tensor, eps: float, norm: str) -> float:
    """How far ``x_adv`` leaves the eps ball or the [0, 1] box (0 when it respects both)."""
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    box = torch.clamp(-x_adv, min=0).amax() + torch.clamp(x_adv - 1, min=0).amax()
    return float(max((size - eps).clamp_min(0).max().item() if len(size) else 0.0, box.item()))


def worst_case(outcomes: list[Outcome], name: str = "worst-case") -> Outcome:
    """Per-sample worst case over several outcomes on the same samples and grid (for segmenters,
    per image: the fewest right pixels for pixel accuracy, SEA's greedy choice for mIoU)."""
    correct = torch.stack([o.correct for o in outcomes]).all(0)
    first = outcomes[0]
    nan = torch.full_like(first.confidence, torch.nan)
    worst = Outcome(attack=name, adaptive=any(o.adaptive for o in outcomes), eps=first.eps, correct=correct,
                    hit_target=torch.stack([o.hit_target for o in outcomes]).any(0),
                    confidence=torch.stack([o.confidence for o in outcomes]).amin(0),
                    linf=nan, l2=nan, psnr=nan, seconds=[sum(s) for s in zip(*(o.seconds for o in outcomes))],
                    max_violation=max(o.max_violation for o in outcomes), task=first.task)
    get_task(first.task).worst_case_state(outcomes, worst)
    return worst


def min_eps(outcome: Outcome) -> list[float | None]:
    """Per sample, the smallest grid eps at which it is no longer correct (None: never)."""
    fooled = ~outcome.correct  # [E, N], monotone in E
    values: list[float | None] = []
    for column in fooled.T:
        hits = torch.nonzero(column)
        values.append(outcome.eps[int(hits[0])] if len(hits) else None)
    return values


def merge_outcomes(parts: list[Outcome]) -> Outcome:
    """One outcome from the same attack's outcomes on consecutive shards of the samples (ranks in
    order): per-sample arrays concatenate, costs add up, wall-clock seconds take the slowest."""
    first = parts[0]
    per_sample = {name: torch.cat([getattr(p, name) for p in parts], dim=1)
                  for name in ("correct", "hit_target", "confidence", "linf", "l2", "psnr")}
    headlines = [p.headline for p in parts if p.headline is not None]
    saved = [p.saved for p in parts if p.saved is not None]
    if first.confusion is not None:
        per_sample["confusion"] = torch.cat([p.confusion for p in parts], dim=1)
    if first.label_margins is not None:
        per_sample["label_margins"] = torch.cat([p.label_margins for p in parts], dim=1)
    per_sample["states"] = {key: torch.cat([p.states[key] for p in parts], dim=1) for key in first.states}
    return Outcome(attack=first.attack, adaptive=first.adaptive, eps=list(first.eps), **per_sample,
                   seconds=[max(s) for s in zip(*(p.seconds for p in parts))],
                   grad_calls=sum(p.grad_calls for p in parts),
                   headline=torch.cat(headlines) if len(headlines) == len(parts) else None,
                   saved=torch.cat(saved) if len(saved) == len(parts) else None,
                   max_violation=max(p.max_violation for p in parts), extra=dict(first.extra), task=first.task)
