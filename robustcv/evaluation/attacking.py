"""Running one attack in one threat model over the eps grid, batch by batch."""
from __future__ import annotations

import time

import torch

from attacks.objectives import Classification, Objective
from robustcv.errors import UserError
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.outcome import Outcome, OutcomeBuilder
from robustcv.evaluation.threat import ThreatModel, judged_elsewhere
from robustcv.inference import predict


PGD_FAMILY = ("pgd", "segpgd", "cospgd")  # PGD's settings (steps, step size, restarts) apply to all
NATIVE = ("fgsm",) + PGD_FAMILY
APGD_FAMILY = ("apgd", "apgd-ce", "apgd-dlr", "apgd-t")
APGD_LOSSES = {"apgd-ce": "ce", "apgd-dlr": "dlr"}
OWN_LOSS = ("segpgd", "cospgd")  # their loss is their name; they take the task objective's settings
EARLY_STOPPING = PGD_FAMILY + APGD_FAMILY  # native attacks with an early_stop flag


def build_attack(spec: str, config: EvalConfig, objective: Objective | None = None, **overrides):
    """An attack from its spec (``NAME`` or ``NAME(key=value, ...)``) and the run's settings; the
    spec's arguments win. A spec's ``loss=NAME`` picks that loss of the run's task objective
    (default: classification). Unknown names and bad arguments are a ``UserError``."""
    from attacks import get_attack
    from attacks.specs import parse_attack_spec

    try:
        name, arguments = parse_attack_spec(spec)
    except ValueError as exc:  # the message names the spec
        raise UserError(str(exc)) from None
    objective = objective or Classification()
    try:
        objective = objective.with_loss(arguments.pop("loss", _default_loss(name, objective, config)))
    except ValueError as exc:
        raise UserError(f"attack {spec!r}: {exc}") from None
    if "targeted" in arguments:
        raise UserError(f"attack {spec!r}: set targeting for every attack with --targeted, not per attack")
    targeted = config.targeted != "none"
    if name in NATIVE:
        kwargs = {"norm": config.norm, "objective": objective, "targeted": targeted}
        if name in PGD_FAMILY:
            kwargs.update(steps=config.steps, step_size=config.step_size, rel_step_size=config.rel_step_size,
                          restarts=config.restarts, seed=config.seed)
        kwargs.update(overrides)
    elif name in APGD_FAMILY:
        if name == "apgd-t" and targeted:
            raise UserError("apgd-t aims at every other class in turn (untargeted by design); with --targeted "
                            "use apgd-ce or pgd")
        kwargs = {"norm": config.norm, "objective": objective, "seed": config.seed, "steps": config.apgd_steps}
        if name == "apgd-t":  # nine target classes: a quarter of the steps each keeps the cascade cheap
            kwargs["steps"] = max(1, config.apgd_steps // 2)
        else:
            kwargs["targeted"] = targeted
        kwargs.update(overrides)
    elif name.startswith("art:"):  # ART takes our norm; foolbox and torchattacks attacks carry their own
        kwargs = {"norm": config.norm, "targeted": targeted, "seed": config.seed}
    else:
        kwargs = {"targeted": targeted, "seed": config.seed}
    kwargs.update(arguments)
    try:
        attack = get_attack(name, **kwargs)
    except (ValueError, ImportError) as exc:
        raise UserError(f"attack {spec!r}: {exc}") from None
    if attack.norm.value != config.norm:
        raise UserError(f"attack {spec!r} measures {attack.norm.value} perturbations but the run uses "
                        f"--norm {config.norm}: pick an attack of that norm or change --norm")
    return attack


def _default_loss(name: str, objective: Objective, config: EvalConfig) -> str | None:
    """APGD-CE and APGD-DLR carry their loss in their name; other attacks use the run's
    ``--attack-loss`` (None: the task's default)."""
    own = name if name in OWN_LOSS else APGD_LOSSES.get(name)
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
