"""The six indicators of attack failure (Pintor et al., NeurIPS 2022) by name, with the verdict
each leads to and what it means in plain words: shared by the evaluation that measures them
(``robustcv.evaluation.indicators``) and the report that words the verdict (torch-free)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Indicator:
    """One indicator: its name (Pintor et al.'s), the verdict it leads to and what it means."""

    name: str
    verdict: str
    meaning: str


INDICATORS: dict[str, Indicator] = {i.name: i for i in (
    Indicator("silent success", "the attack lost adversarial examples it had found",
              "an attack passed through an adversarial point but returned one that is not adversarial"),
    Indicator("incomplete optimization", "the attacks had not converged",
              "the attack's loss was still rising when it stopped: more steps or restarts fool more samples"),
    Indicator("transfer failure", "the attack's surrogate misleads it",
              "adversarial examples that fool the attack's surrogate do not fool the defended model"),
    Indicator("unconstrained attack failure", "gradient masking suspected",
              "even an attack with no budget cannot fool the model: its gradients point attacks the wrong way"),
    Indicator("unavailable gradients", "gradient masking suspected",
              "the loss has a zero gradient on many inputs, so gradient attacks have nothing to follow"),
    Indicator("unstable predictions", "the model's predictions are unstable",
              "tiny random noise changes the model's predictions, so one attack run measures noise"),
)}
"""The six indicators, in Pintor et al.'s order."""


def inconclusive_reason(indicators: list[str]) -> str:
    """The verdict's words for failed indicators: each distinct reason once, with its indicators."""
    reasons: dict[str, list[str]] = {}
    for name in indicators:
        indicator = INDICATORS.get(name)
        if indicator is not None:
            reasons.setdefault(indicator.verdict, []).append(name)
    return "; ".join(f"{verdict} ({', '.join(names)})" for verdict, names in reasons.items())
