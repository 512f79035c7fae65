"""How each defense is attacked: the naive and adaptive threat models of design rule 5.

- undefended: the attack sees the model itself.
- differentiable, deterministic transform: naive = transfer from the undefended model;
  adaptive = white-box gradients through the transform.
- non-differentiable, deterministic (JPEG, bit depth, TV): naive = transfer (gradients through
  the transform are zero); adaptive = BPDA (exact forward, surrogate gradient).
- randomized: naive = a single random draw per gradient; adaptive = EOT over N draws (with BPDA
  inside when the transform is not differentiable).

Adversarials are always *judged* by the real defended model. A randomized one judges with a
fixed draw (``FixedDrawJudge``): the sample in the same batch position sees the same randomness at
every judgment, so the clean point, every attack and every eps are judged alike, and the per-sample
worst case across attacks measures the attacks, not luck in the judge's draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ThreatModel:
    """One way to attack a defended model: what the attack differentiates through."""

    mode: str  # "direct", "transfer", "white-box", "bpda", "single-draw", "eot"
    adaptive: bool
    attack_model: nn.Module  # the model the attack's gradients come from
    judge: nn.Module  # the real defended model that decides success
    suffix: str = ""  # appended to the attack's name when a defense has two adaptive modes


def judged_elsewhere(threat: ThreatModel) -> bool:
    """Whether fooling the attack model does not mean fooling the judge: transfer surrogates and
    randomized defenses (one draw, or the EOT average, against the judge's own draw)."""
    return threat.mode in ("transfer", "single-draw", "eot")


class IdentityBPDA(nn.Module):
    """The defended model with the transform's backward pass replaced by the identity (BPDA with
    the identity surrogate, Athalye et al. 2018): the attack that broke learned denoisers whose
    own gradients are unhelpful."""

    def __init__(self, defended: nn.Module) -> None:
        super().__init__()
        self.defended = defended

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        from defenses.base import forward_as

        with torch.no_grad():
            cleaned = self.defended.defense(x)
        return self.defended.model(forward_as(x, cleaned))


class FixedDrawJudge(nn.Module):
    """A randomized defended model that reseeds torch's RNG at every call (inside ``fork_rng``,
    so nobody else's randomness moves): the same batch gets the same draws every time."""

    randomized = True

    def __init__(self, defended: nn.Module, seed: int) -> None:
        super().__init__()
        self.defended = defended
        self.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            return self.defended(x)


def threat_models(defense_spec: str, defense, model: nn.Module, eot_samples: int, seed: int = 0) -> list[ThreatModel]:
    """The naive and adaptive threat models for one defense in front of ``model``."""
    from defenses import DefendedModel, bpda_model, eot_model

    if defense_spec == "none":
        return [ThreatModel("direct", False, model, model)]
    defended = DefendedModel(defense, model)
    if defense.randomized:
        judge = FixedDrawJudge(defended, seed)
        return [ThreatModel("single-draw", False, defended, judge),
                ThreatModel("eot", True, eot_model(defended, samples=eot_samples), judge)]
    naive = ThreatModel("transfer", False, model, defended)
    if defense.differentiable:
        threats = [naive, ThreatModel("white-box", True, defended, defended)]
        if defense.learned:  # a trained network in front can mask gradients
            threats.append(ThreatModel("bpda-identity", True, IdentityBPDA(defended), defended,
                                       suffix="+bpda-identity"))
        return threats
    return [naive, ThreatModel("bpda", True, bpda_model(defended), defended)]
