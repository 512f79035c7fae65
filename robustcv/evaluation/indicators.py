"""Indicators of attack failure (Pintor, Demetrio, Sotgiu, Demontis, Carlini, Biggio, Roli,
"Indicators of Attack Failure: Debugging and Improving Optimization of Adversarial Examples",
NeurIPS 2022).

Each indicator names one way a gradient attack fails silently, so that the robust figure it
leaves behind is too high. Three come from a traced PGD run (the evaluation's PGD, recorded at
every iterate and judged for real): *silent success*, *incomplete optimization* and *transfer
failure*. One from small random noise: *unstable predictions*. Two are existing checks tagged
with their indicator: *unavailable gradients* (zero input gradients) and *unconstrained attack
failure* (an unbounded PGD that does not fool the model). The more-steps and restarts checks are
tagged *incomplete optimization* too. A failed indicator makes the report's verdict
"inconclusive: <what failed, in plain words>".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robustcv.evaluation.config import pgd_step_size
from robustcv.evaluation.masking import Probe
from robustcv.inference import predict
from robustcv.results import SanityCheck

SAMPLES_SHOWN = 20  # the sample indices a triggered indicator lists
LATE_WINDOW = 0.2  # incomplete optimization compares the last fifth of the steps with the fifth before
LATE_GAIN = 0.1  # ... and flags a sample whose loss still rose by more than a tenth of its total rise there
STILL_RISING_SHARE = 0.1  # more than a tenth of the robust samples still rising: the attack stopped early
TRANSFER_SHARE = 0.5  # more than half of the surrogate's successes failing on the defended model
NOISE_SCALE = 0.1  # unstable predictions: uniform noise of a tenth of the headline eps (L-inf)
NOISE_DRAWS = 4
UNSTABLE_SHARE = 0.02


@dataclass
class Trace:
    """A PGD run recorded at every iterate: the attack model's loss and the judge's verdict.

    ``final_fooled`` and ``surrogate_fooled`` are about the point the evaluation's PGD returns:
    with early stopping the first iterate that fools the attack model, else the last iterate.
    """

    losses: torch.Tensor  # [T, B] the attack model's loss at each iterate (the attack maximizes it)
    fooled: torch.Tensor  # [T, B] whether the judge is fooled at each iterate
    final_fooled: torch.Tensor  # [B] whether the judge is fooled at the point the attack returned
    surrogate_fooled: torch.Tensor  # [B] whether the attack model is fooled at that point


class _Recorder(nn.Module):
    """The attack model, keeping every batch it sees (the attack's iterates) and its logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        self.seen.append((x.detach().clone(), logits.detach()))
        return logits


def traced_pgd(probe: Probe, early_stop: bool = True) -> Trace:
    """The evaluation's PGD at the headline eps, every sample stepped to the end, each iterate
    scored by the attack model's loss and judged by the judge; ``early_stop``: whether the
    evaluation's PGD returns a sample's first iterate that fools the attack model (it does unless
    the judge decides elsewhere: randomized or transfer threat models)."""
    from attacks import PGD

    config = probe.config
    attack = PGD(norm=config.norm, steps=config.steps, step_size=pgd_step_size(config, probe.eps),
                 objective=probe.objective, seed=config.seed, early_stop=False)
    recorder = _Recorder(probe.attack_model)
    x, y = probe.x.to(probe.device), probe.y.to(probe.device)
    x_adv = attack(recorder, x, y, probe.eps, keys=torch.arange(len(x), device=probe.device))
    with torch.no_grad():
        seen = [(batch, logits) for batch, logits in recorder.seen if batch.shape == x.shape]
        seen.append((x_adv, probe.attack_model(x_adv)))
    losses, fooled, surrogate = [], [], []
    for batch, logits in seen:  # the attack model's logits as the attack saw them: no second pass
        losses.append(probe.objective.loss(logits, y).float().cpu())
        surrogate.append(probe.objective.success(logits, y, False).cpu())
        fooled.append(surrogate[-1] if probe.judge is probe.attack_model else _fooled(probe, probe.judge, batch))
    returned = _returned(torch.stack(surrogate), early_stop)
    pick = (lambda rows: rows.gather(0, returned[None]).squeeze(0))
    return Trace(torch.stack(losses[:-1]), torch.stack(fooled[:-1]), pick(torch.stack(fooled)),
                 pick(torch.stack(surrogate)))


def _returned(surrogate: torch.Tensor, early_stop: bool) -> torch.Tensor:
    """Per sample, the index of the iterate PGD returns: with early stopping the first that fools
    the attack model (else the last), without it the last."""
    last = torch.full((surrogate.shape[1],), surrogate.shape[0] - 1, dtype=torch.long)
    if not early_stop:
        return last
    first = surrogate.float().argmax(dim=0)
    return torch.where(surrogate.any(dim=0), first, last)


def _fooled(probe: Probe, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    logits = predict(model, x, probe.device)
    return probe.objective.success(logits.to(probe.device), probe.y.to(probe.device), False).cpu()


def indicator_checks(probe: Probe, transfer: bool, early_stop: bool = True) -> list[SanityCheck]:
    """The trace-based indicators and the noise check for one run (``transfer``: the attack model
    is a surrogate of the judge, so transfer failure applies; ``early_stop``: see :func:`traced_pgd`)."""
    trace = traced_pgd(probe, early_stop)
    robust = probe.reported.float() > 0.5
    checks = [silent_success(probe, trace, robust), incomplete_optimization(probe, trace, robust)]
    if transfer:
        checks.append(transfer_failure(probe, trace))
    checks.append(unstable_predictions(probe))
    return checks


def silent_success(probe: Probe, trace: Trace, robust: torch.Tensor) -> SanityCheck:
    """Samples PGD's path fooled (judged for real) while the point it returned does not, and that
    the evaluation reports robust."""
    flagged = trace.fooled.any(dim=0) & ~trace.final_fooled & robust
    return _check(probe, "silent success", flagged, not bool(flagged.any()),
                  f"{int(flagged.sum())} of {len(flagged)} samples were adversarial at some PGD iterate, but PGD "
                  "returned a point that is not, and the evaluation reports them robust", {})


def incomplete_optimization(probe: Probe, trace: Trace, robust: torch.Tensor) -> SanityCheck:
    """Robust samples whose loss still rose clearly over the last fifth of the steps."""
    steps = trace.losses.shape[0]
    window = max(1, int(round(LATE_WINDOW * steps)))
    if steps < 2 * window + 1:
        return _check(probe, "incomplete optimization", torch.zeros_like(robust), True,
                      f"too few steps ({steps}) to read a trend", {})
    best = trace.losses.cummax(dim=0).values
    total = best[-1] - trace.losses[0]
    late = best[-1] - best[-1 - window]
    rising = robust & ~trace.final_fooled & (total > 0) & (late > LATE_GAIN * total)
    considered = int((robust & ~trace.final_fooled).sum())
    share = float(rising.sum()) / max(1, considered)
    return _check(probe, "incomplete optimization", rising, share <= STILL_RISING_SHARE,
                  f"the loss of {int(rising.sum())} of {considered} robust samples still rose by more than "
                  f"{LATE_GAIN:.0%} of its total rise in the last {window} of {steps} PGD steps (at most "
                  f"{STILL_RISING_SHARE:.0%} allowed)", {"share": round(share, 6), "steps": steps})


def transfer_failure(probe: Probe, trace: Trace) -> SanityCheck:
    """Samples whose final point fools the attack model (the surrogate) but not the defended model."""
    flagged = trace.surrogate_fooled & ~trace.final_fooled
    fooled = int(trace.surrogate_fooled.sum())
    share = float(flagged.sum()) / max(1, fooled)
    return _check(probe, "transfer failure", flagged, share <= TRANSFER_SHARE,
                  f"{int(flagged.sum())} of the {fooled} points that fool the attack's surrogate do not fool the "
                  f"defended model (at most {TRANSFER_SHARE:.0%} allowed)", {"share": round(share, 6)})


def unstable_predictions(probe: Probe) -> SanityCheck:
    """Clean samples whose verdict (right or wrong) changes under uniform noise of a tenth of the
    headline eps: a model that should be deterministic but is not, or sits on a knife's edge."""
    x = probe.x.to(probe.device)
    clean = _fooled(probe, probe.judge, x)
    generator = torch.Generator(device="cpu").manual_seed(probe.config.seed)
    flagged = torch.zeros(len(x), dtype=torch.bool)
    scale = NOISE_SCALE * probe.eps
    for _ in range(NOISE_DRAWS):
        noise = (torch.rand(x.shape, generator=generator) * 2 - 1) * scale
        flagged |= _fooled(probe, probe.judge, (x + noise.to(x.device)).clamp(0, 1)) != clean
    share = float(flagged.float().mean())
    return _check(probe, "unstable predictions", flagged, share <= UNSTABLE_SHARE,
                  f"the model's verdict on {share:.1%} of the clean samples changes under uniform noise of ±{scale:.3g} "
                  f"({NOISE_DRAWS} draws; at most {UNSTABLE_SHARE:.0%} allowed)",
                  {"share": round(share, 6), "noise": scale})


def _check(probe: Probe, name: str, flagged: torch.Tensor, passed: bool, detail: str, values: dict) -> SanityCheck:
    samples = flagged.nonzero().flatten().tolist()
    return SanityCheck(f"no {name}", bool(passed), detail, probe.model_name, probe.defense,
                       {**values, "eps": probe.eps, "n": len(flagged), "samples": samples[:SAMPLES_SHOWN]},
                       indicator=name)
