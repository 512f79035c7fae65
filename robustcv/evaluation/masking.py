"""Checks that catch gradient masking and unconverged attacks (design rule 7).

In the spirit of AutoAttack's ``checks.py``, Carlini et al. 2019 ("On evaluating adversarial
robustness") and Pintor et al. 2022 ("Indicators of attack failure"). Each check attacks the
first samples at the headline eps with a *different* attack than the evaluation's and asks
whether it finds robust samples the evaluation missed; if so, the reported figure overstates
robustness and the check fails, loudly, in the report.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attacks.objectives import Objective
from robustcv.evaluation.config import EvalConfig, pgd_step_size
from robustcv.inference import predict
from robustcv.results import SanityCheck
from robustcv.tasks import task_of

RESTART_TOLERANCE = 0.01  # restarts may find one point more; beyond that the attack had not converged
LOSS_TOLERANCE = 0.02  # margin/DLR beating cross-entropy by more than two points means masking
ZERO_GRADIENT = 1e-12
ZERO_GRADIENT_SHARE = 0.01


@dataclass
class Probe:
    """What a masking check attacks: the first samples, the model to differentiate and the judge,
    and the evaluation's own verdict on those samples at the headline eps."""

    model_name: str
    defense: str
    attack_model: nn.Module
    judge: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    # float [n]: each sample's quality under the evaluation's worst case (1/0 robust, or a
    # segmenter's pixel accuracy)
    reported: torch.Tensor
    objective: Objective
    config: EvalConfig
    device: torch.device

    @property
    def eps(self) -> float:
        return self.config.headline_eps

    def robust(self, attack) -> torch.Tensor:
        """Per sample, the quality ``attack`` at the headline eps leaves (judged for real): 1/0
        still correct, or a segmenter's share of right pixels."""
        keys = torch.arange(len(self.x), device=self.device)
        x_adv = attack(self.attack_model, self.x.to(self.device), self.y.to(self.device), self.eps, keys=keys)
        return self.objective.quality(predict(self.judge, x_adv, self.device), self.y).cpu()

    def check(self, name: str, robust: torch.Tensor, tolerance: float, found: str, values: dict,
              indicator: str = "") -> SanityCheck:
        """Fail when ``robust`` (another attack's per-sample quality) lowers the reported figure by
        more than ``tolerance`` on these samples (per sample the worse of the two counts);
        ``indicator``: the indicator of attack failure the check stands for, if any."""
        reported = float(self.reported.float().mean())
        other = float(torch.minimum(robust.float(), self.reported.float()).mean())
        gap = reported - other
        passed = gap <= tolerance + 1e-9
        detail = (f"{found}: robust accuracy {other:.4f} vs the evaluation's {reported:.4f} at eps {self.eps:.4g} "
                  f"on {len(self.y)} samples")
        if not passed:
            detail += f" — the reported figure is {gap:.1%} too optimistic"
        return SanityCheck(name, passed, detail, self.model_name, self.defense,
                           {"eps": self.eps, "reported": round(reported, 6), "other": round(other, 6),
                            "n": len(self.y), **values}, indicator=indicator)


def masking_checks(probe: Probe) -> list[SanityCheck]:
    """Every masking indicator that applies to this task and threat model."""
    checks = [restarts_check(probe), zero_gradient_check(probe)]
    if task_of(probe.objective).class_checks:
        checks.append(loss_check(probe))
        if probe.config.norm == "linf":
            checks.append(black_box_check(probe))
    return checks


def restarts_check(probe: Probe, restarts: int = 5) -> SanityCheck:
    """PGD with random restarts must not fool more than a point beyond the evaluation."""
    from attacks import PGD

    config = probe.config
    attack = PGD(norm=config.norm, steps=config.steps, step_size=pgd_step_size(config, probe.eps),
                 restarts=restarts, objective=probe.objective, seed=config.seed + 1)
    return probe.check("random restarts do not lower robust accuracy", probe.robust(attack), RESTART_TOLERANCE,
                       f"PGD-{config.steps} with {restarts} restarts", {"restarts": restarts},
                       indicator="incomplete optimization")


def loss_check(probe: Probe) -> SanityCheck:
    """Margin and DLR losses must not beat the evaluation by more than two points: when they do,
    the softmax is saturated and cross-entropy gradients vanish (masking, e.g. distillation)."""
    from attacks import PGD

    config = probe.config
    robust = torch.ones_like(probe.reported, dtype=torch.float)
    classes = predict(probe.judge, probe.x[:1], probe.device).shape[1]
    losses = ("margin", "dlr") if classes >= 3 else ("margin",)  # DLR divides by the third logit's gap
    for loss in losses:
        attack = PGD(norm=config.norm, steps=config.steps, step_size=pgd_step_size(config, probe.eps),
                     objective=probe.objective.with_loss(loss), seed=config.seed)
        robust = torch.minimum(robust, probe.robust(attack))
    return probe.check("margin and DLR losses do not beat the evaluation", robust, LOSS_TOLERANCE,
                       f"PGD-{config.steps} with the " + ("margin and DLR losses" if len(losses) == 2 else
                                                         "margin loss (DLR needs 3 classes)"), {"losses": list(losses)})


def black_box_check(probe: Probe, queries: int = 1000) -> SanityCheck:
    """A gradient-free attack (Square) must not fool samples the white-box attacks missed."""
    from attacks import Square

    attack = Square(queries=queries, objective=probe.objective.with_loss("margin"), seed=probe.config.seed)
    return probe.check("a black-box attack does not beat the white-box ones", probe.robust(attack), 0.0,
                       f"Square with {queries} queries", {"queries": queries})


def zero_gradient_check(probe: Probe) -> SanityCheck:
    """Correctly classified samples must not have (near) zero input gradients of the loss."""
    x = probe.x.to(probe.device).clone().requires_grad_(True)
    with torch.enable_grad():
        loss = probe.objective.loss(probe.attack_model(x), probe.y.to(probe.device)).sum()
        grad, = torch.autograd.grad(loss, x)
    flat = grad.detach().flatten(1).abs().amax(dim=1).cpu()
    zero = (flat <= ZERO_GRADIENT) & (probe.reported > 0)
    share = float(zero.float().mean())
    passed = share <= ZERO_GRADIENT_SHARE
    detail = (f"{share:.1%} of the samples have a zero gradient of the {probe.objective.loss_name} loss "
              f"(at most {ZERO_GRADIENT_SHARE:.0%} allowed)")
    if not passed:
        detail += " — gradient masking suspected: gradient attacks have nothing to follow on those samples"
    return SanityCheck("input gradients are not zero", passed, detail, probe.model_name, probe.defense,
                       {"zero_share": round(share, 6), "n": len(probe.y),
                        "samples": zero.nonzero().flatten().tolist()[:20]}, indicator="unavailable gradients")
