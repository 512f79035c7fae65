"""How each defense is attacked: the naive and adaptive threat models of design rule 5.

- undefended: the attack sees the model itself.
- differentiable, deterministic transform: naive = transfer from the undefended model;
  adaptive = white-box gradients through the transform.
- non-differentiable, deterministic (JPEG, bit depth, TV): naive = transfer (gradients through
  the transform are zero); adaptive = BPDA (exact forward, surrogate gradient).
- randomized: naive = a single random draw per gradient; adaptive = EOT over N draws (with BPDA
  inside when the transform is not differentiable).

Adversarials are always *judged* by the real defended model.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class ThreatModel:
    """One way to attack a defended model: what the attack differentiates through."""

    mode: str  # "direct", "transfer", "white-box", "bpda", "single-draw", "eot"
    adaptive: bool
    attack_model: nn.Module  # the model the attack's gradients come from
    judge: nn.Module  # the real defended model that decides success


def threat_models(defense_spec: str, defense, model: nn.Module, eot_samples: int) -> list[ThreatModel]:
    """The naive and adaptive threat models for one defense in front of ``model``."""
    from defenses import DefendedModel, bpda_model, eot_model

    if defense_spec == "none":
        return [ThreatModel("direct", False, model, model)]
    defended = DefendedModel(defense, model)
    if defense.randomized:
        return [ThreatModel("single-draw", False, defended, defended),
                ThreatModel("eot", True, eot_model(defended, samples=eot_samples), defended)]
    naive = ThreatModel("transfer", False, model, defended)
    if defense.differentiable:
        return [naive, ThreatModel("white-box", True, defended, defended)]
    return [naive, ThreatModel("bpda", True, bpda_model(defended), defended)]
