"""Per-sample minimal perturbation norms from the run's minimization attacks (FMN, DDN, C&W...).

The grid says only between which two budgets a sample falls; a minimization attack
(``attack.minimizes``, e.g. ``foolbox:L2FMNAttack``, ``foolbox:DDNAttack``,
``foolbox:BoundaryAttack``) searches each sample's smallest adversarial with no budget. Its
norm, judged by the defended model, is recorded per sample as a ``MinEps`` row with
``exact=True`` (0 for a sample wrong on its clean image, None where the attack found no
adversarial). A budgeted run of the same attack on the grid sometimes finds a smaller one (FMN
and DDN schedule their step sizes by the budget): each sample keeps the smaller of the two, so
the row never contradicts the attack's grid curve. Plus records ``minimal_norm_median`` (over the samples it fooled) and
``minimal_norm_fooled`` (their share), both at ``eps`` 0. It is an upper bound on the true
minimal norm, like every attack's.

Measured in the threat model where the attack model is the judge (the undefended model, or a
defense's white-box/BPDA attack); transfer and randomized settings are left out.
"""
from __future__ import annotations

import torch

from attacks.norms import Norm, distance
from attacks.objectives import Objective
from robustcv.evaluation.attacking import build_attack
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.threat import judged_elsewhere
from robustcv.inference import predict
from robustcv.results import MinEps, Record
from robustcv.tasks import task_of


def minimal_norm_rows(model_name: str, runs: list, samples, objective: Objective, config: EvalConfig,
                      device: torch.device) -> tuple[list[MinEps], list[Record]]:
    """``MinEps`` rows (``exact``) and summary records for every minimization attack and defense."""
    if not task_of(objective).class_checks:
        return [], []
    rows, records = [], []
    for spec in config.attacks:
        attack = build_attack(spec, config, objective)
        if not attack.minimizes:
            continue
        for run in runs:
            threat = next((t for t in run.threats if not judged_elsewhere(t)), None)
            if threat is None:
                continue
            values = sample_minimal_norms(attack, threat, samples, run.clean_correct, config, device)
            grid = next((o for o in run.outcomes if o.attack == spec + threat.suffix), None)
            if grid is not None and spec not in config.cascade:
                values = _tightest(values, grid_distances(grid, config.norm))
            rows.append(MinEps(model=model_name, defense=run.spec, attack=spec, adaptive=threat.adaptive,
                               labels=samples.y.tolist(), values=values, exact=True))
            records += _summary(model_name, run.spec, spec, threat.adaptive, values)
    return rows, records


def sample_minimal_norms(attack, threat, samples, clean_correct: torch.Tensor, config: EvalConfig,
                         device: torch.device) -> list[float | None]:
    """Per sample: 0 if wrong when clean, the norm of the attack's adversarial if the judge is
    fooled by it, else None."""
    values: list[float | None] = []
    for start in range(0, len(samples.x), config.batch_size):
        batch = slice(start, start + config.batch_size)
        x, y = samples.x[batch].to(device), samples.y[batch].to(device)
        target = None if samples.target is None else samples.target[batch].to(device)
        x_min = attack.minimal(threat.attack_model, x, y, target)
        logits = predict(threat.judge, x_min, device)
        fooled = attack.objective.success(logits, (target if attack.targeted else y).cpu(), attack.targeted)
        norm = distance(Norm(config.norm), x_min.cpu() - x.cpu())
        for clean, hit, size in zip(clean_correct[batch].tolist(), fooled.tolist(), norm.tolist()):
            values.append(0.0 if not clean else (round(size, 6) if hit else None))
    return values


def grid_distances(outcome, norm: str) -> torch.Tensor:
    """Per sample, the size of the adversarial kept where the grid sweep first fooled it (inf: never)."""
    fooled = ~outcome.correct  # [E, N], monotone: once fooled, the kept adversarial stays
    sizes = getattr(outcome, norm)
    first = fooled.float().argmax(0)
    size = sizes[first, torch.arange(fooled.shape[1])]
    return torch.where(fooled.any(0), size, torch.inf)


def _tightest(values: list[float | None], grid: torch.Tensor) -> list[float | None]:
    out = []
    for value, bound in zip(values, grid.tolist()):
        best = min(float("inf") if value is None else value, bound)
        out.append(None if best == float("inf") else round(best, 6))
    return out


def _summary(model_name: str, defense: str, attack: str, adaptive: bool, values: list) -> list[Record]:
    found = sorted(v for v in values if v is not None)
    n = len(values)
    records = [Record(model=model_name, defense=defense, attack=attack, adaptive=adaptive, eps=0.0,
                      metric="minimal_norm_fooled", value=round(len(found) / n, 6) if n else 0.0, n=n)]
    if found:
        median = float(torch.tensor(found).median())  # the lower middle value, like the report's
        records.append(Record(model=model_name, defense=defense, attack=attack, adaptive=adaptive, eps=0.0,
                              metric="minimal_norm_median", value=round(median, 6), n=len(found)))
    return records
