"""Running one attack in one threat model over the eps grid, batch by batch."""
from __future__ import annotations

import time

import torch

from attacks.objectives import Classification, Objective
from robustcv.catalogues import ATTACKS, AttackDeclarations
from robustcv.errors import UserError
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.outcome import Outcome, OutcomeBuilder
from robustcv.evaluation.threat import ThreatModel, judged_elsewhere
from robustcv.inference import predict


EARLY_STOPPING = tuple(e.name for e in ATTACKS.entries() if "early_stop" in e.meta["declares"].run_settings)
"""The attacks that take an early_stop flag."""


def build_attack(spec: str, config: EvalConfig, objective: Objective | None = None, **overrides):
    """An attack from its spec (``NAME`` or ``NAME(key=value, ...)``) and the run's settings.

    The attack receives exactly the run settings it declares (``run_settings``, see
    :class:`attacks.base.Attack`), ``overrides`` among them; the spec's arguments win. A spec's
    ``loss=NAME`` picks that loss of the run's task objective (default: classification). Unknown
    names and bad arguments are a ``UserError``.
    """
    from attacks import get_attack

    entry, arguments = ATTACKS.parse(spec)  # one-line UserErrors that name the spec
    name = f"{entry.prefix}:{arguments.pop(entry.params[0])}" if entry.family else entry.name
    declared = entry.meta["declares"]
    if config.norm not in declared.norms:
        raise UserError(f"{name} has no {config.norm.upper()} step ({'/'.join(n.upper() for n in declared.norms)} "
                        f"only); with --norm {config.norm} use apgd-ce, apgd-dlr or apgd-t")
    objective = objective or Classification()
    try:
        objective = objective.with_loss(arguments.pop("loss", _default_loss(declared, objective, config)))
    except ValueError as exc:
        raise UserError(f"attack {spec!r}: {exc}") from None
    if "targeted" in arguments:
        raise UserError(f"attack {spec!r}: set targeting for every attack with --targeted, not per attack")
    if config.targeted != "none" and "targeted" not in declared.run_settings:
        raise UserError(f"{name} {declared.untargeted_reason}; with --targeted use apgd-ce or pgd")
    kwargs = run_settings(declared, config, objective, **overrides)
    kwargs.update(arguments)
    try:
        attack = get_attack(name, **kwargs)
    except (ValueError, ImportError) as exc:
        raise UserError(f"attack {spec!r}: {exc}") from None
    if attack.norm.value != config.norm:
        raise UserError(f"attack {spec!r} measures {attack.norm.value} perturbations but the run uses "
                        f"--norm {config.norm}: pick an attack of that norm or change --norm")
    return attack


def run_settings(declared: AttackDeclarations, config: EvalConfig, objective: Objective, **overrides) -> dict:
    """The run's settings an attack declares (``declared.run_settings``), by constructor keyword.

    ``steps`` comes from the budget the attack names (``--steps`` or ``--apgd-steps``), shared
    among its ``step_share`` descents; ``overrides`` (e.g. ``early_stop``) join the offer.
    """
    budget = getattr(config, declared.step_budget)
    share = declared.step_share
    offered = {"norm": config.norm, "objective": objective, "targeted": config.targeted != "none",
               "seed": config.seed, "steps": budget if share == 1 else max(1, budget // share),
               "step_size": config.step_size, "rel_step_size": config.rel_step_size, "restarts": config.restarts,
               **overrides}
    return {key: offered[key] for key in declared.run_settings if key in offered}


def _default_loss(declared: AttackDeclarations, objective: Objective, config: EvalConfig) -> str | None:
    """An attack whose name carries its loss (APGD-CE, SegPGD...) uses it where the task's
    objective has it; other attacks use the run's ``--attack-loss`` (None: the task's default)."""
    own = declared.own_loss
    return own if own in objective.LOSSES else config.loss


def run_outcome(attack, attack_name: str, threat: ThreatModel, samples, config: EvalConfig,
                device: torch.device, progress=None, label: str = "",
                robust_before: torch.Tensor | None = None) -> Outcome:
    """Attack every batch at every eps in this threat model; judge with the real defended model.

    ``robust_before`` (bool ``[E, N]``) makes the attack a cascade step: it attacks, at each eps,
    only the samples every earlier attack left robust there, and its outcome is the cumulative
    worst case (a sample fooled before stays fooled).
    """
    builder = OutcomeBuilder(attack_name, threat.adaptive, config.eps, config.norm, config.headline_index,
                             objective=attack.objective, save_index=config.save_index)
    total = len(samples.x) * config.progress_scale
    task = progress.add_task(label, total=total, status="") if progress is not None else None
    for start in range(0, len(samples.x), config.batch_size):
        batch = slice(start, start + config.batch_size)
        x, y = samples.x[batch].to(device), samples.y[batch].to(device)
        target = samples.target[batch].to(device) if samples.target is not None else None
        before = None if robust_before is None else robust_before[:, batch]
        keys = samples.keys[batch].to(device)  # per-sample draws: independent of batch and rank
        x_advs, seconds, calls = _adversarials(attack, threat, x, y, target, keys, config, before)
        logits = [predict(threat.judge, x_adv, device) for x_adv in x_advs]
        builder.add_batch(x.cpu(), y.cpu(), x_advs, logits, None if target is None else target.cpu(), seconds, calls,
                          robust_before=before)
        if task is not None:  # rank 0 speaks for all ranks: equal shards advance together
            progress.update(task, advance=len(x) * config.progress_scale,
                            status=f"robust acc at eps {config.eps[-1]:.4g}: {_running(builder):.3f}")
    outcome = builder.build()
    outcome.extra["mode"] = threat.mode
    return outcome


def _adversarials(attack, threat: ThreatModel, x, y, target, keys, config: EvalConfig, before=None):
    """Per-eps adversarials: a survivors-only sweep, or independent runs when judged elsewhere.

    When the attack model is not the judge (a transfer surrogate, a random draw or an EOT
    average), carrying a sample forward once it fools the attack model would understate the
    attack: each eps runs in full.
    """
    from attacks import eps_sweep

    if not judged_elsewhere(threat):
        skip = None if before is None else ~before
        result = eps_sweep(attack, threat.attack_model, x, y, eps_grid=config.eps, target=target, skip=skip,
                           keys=keys)
        return [a.detach() for a in result.x_adv], list(result.seconds), int(result.grad_calls)
    x_advs, seconds = [], []
    for j, eps in enumerate(config.eps):
        start = time.perf_counter()
        x_advs.append(_attack_some(attack, threat.attack_model, x, y, target, keys, eps,
                                   None if before is None else before[j].to(x.device)))
        seconds.append(time.perf_counter() - start)
    return x_advs, seconds, 0


def _attack_some(attack, model, x, y, target, keys, eps: float, wanted: torch.Tensor | None) -> torch.Tensor:
    """``attack`` at ``eps`` on the ``wanted`` samples (all when None); the others stay clean."""
    if eps == 0:
        return x.clone()
    idx = torch.arange(len(x), device=x.device) if wanted is None else wanted.nonzero().squeeze(1)
    out = x.clone()
    if idx.numel():
        kwargs = {"keys": keys[idx]} if target is None else {"keys": keys[idx], "target": target[idx]}
        out[idx] = attack(model, x[idx], y[idx], eps, **kwargs).detach()
    return out


def _running(builder: OutcomeBuilder) -> float:
    parts = builder.parts["correct"]
    if not parts:
        return float("nan")
    return float(torch.cat([p[-1] for p in parts]).float().mean())
