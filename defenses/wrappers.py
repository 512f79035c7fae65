"""Put a defense in front of a model and build the models each evaluation mode attacks.

Rule 5 of the design: a defense is attacked naively *and* adaptively, and the adaptive number
is the one that counts. The attacker differentiates one model; the verdict always comes from
the real defended model:

============  ======================================  =========================================
mode          attacker differentiates                  use for
============  ======================================  =========================================
naive         ``defended`` as it is                    showing gradient masking (zero gradients)
transfer      the undefended ``defended.model``        a gradient-free baseline
bpda          ``bpda_model(defended)``                 non-differentiable transforms
eot           ``eot_model(defended, samples=N)``       randomized transforms (BPDA inside if the
                                                       transform is also non-differentiable)
============  ======================================  =========================================

Protocol for the verdict: ``defended_predict`` runs the real defended model once per image
(one random draw for randomized defenses), never the averaged EOT surrogate.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from defenses.base import InputDefense

MODES = ("naive", "transfer", "bpda", "eot")


class DefendedModel(nn.Module):
    """``model(defense(x))``: the deployed defended classifier, images in [0, 1] -> logits."""

    def __init__(self, defense: InputDefense, model: nn.Module) -> None:
        super().__init__()
        self.defense = defense
        self.model = model

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.model(self.defense(x))


class BPDAModel(nn.Module):
    """``model(defense.bpda(x))``: exact forward, the defense's surrogate gradient backward."""

    def __init__(self, defended: DefendedModel) -> None:
        super().__init__()
        self.defended = defended

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.defended.model(self.defended.defense.bpda(x))


class EOTModel(nn.Module):
    """Expectation over Transformation (Athalye et al. 2018) as a model.

    ``forward`` tiles the batch ``samples`` times, runs the defense (one independent draw per
    copy) and the model on all ``samples * B`` images at once, and returns the mean logits
    ``[B, K]``. Plain PGD on this module is EOT-PGD: its gradient is the average of the
    per-draw gradients of the logits (averaging logits rather than per-draw losses is the
    usual batched form; with CE it is the gradient of the loss of the mean logits). The mean
    is a *surrogate*: evaluate the resulting examples with ``defended_predict``.

    Args:
        defended: the defended model.
        samples: transform draws per image.
        bpda: route gradients through ``defense.bpda``; default True iff the defense is not
            differentiable.
    """

    def __init__(self, defended: DefendedModel, samples: int = 8, bpda: bool | None = None) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError(f"EOT samples must be >= 1, got {samples}")
        self.defended, self.samples = defended, int(samples)
        self.use_bpda = (not defended.defense.differentiable) if bpda is None else bool(bpda)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        d = self.defended.defense
        tiled = x.repeat(self.samples, *([1] * (x.dim() - 1)))
        logits = self.defended.model(d.bpda(tiled) if self.use_bpda else d(tiled))
        return logits.view(self.samples, x.shape[0], *logits.shape[1:]).mean(0)


def bpda_model(defended: DefendedModel) -> BPDAModel:
    """The model a BPDA attacker differentiates."""
    return BPDAModel(defended)


def eot_model(defended: DefendedModel, samples: int = 8, bpda: bool | None = None) -> EOTModel:
    """The model an EOT attacker differentiates (see ``EOTModel``)."""
    return EOTModel(defended, samples, bpda)


def attack_model(defended: DefendedModel, mode: str, samples: int = 8) -> nn.Module:
    """The model the attacker differentiates in evaluation ``mode`` (one of ``MODES``).

    ``"bpda"`` on a randomized defense returns the BPDA model with a single draw per step;
    prefer ``"eot"`` there.
    """
    if mode == "naive":
        return defended
    if mode == "transfer":
        return defended.model
    if mode == "bpda":
        return bpda_model(defended)
    if mode == "eot":
        return eot_model(defended, samples)
    raise ValueError(f"unknown evaluation mode {mode!r}; choose from: {', '.join(MODES)}")


def adaptive_mode(defense: InputDefense) -> str:
    """The mode whose number counts for ``defense``: eot if randomized, bpda if
    non-differentiable, else naive (its gradients are the real ones)."""
    if defense.randomized:
        return "eot"
    return "naive" if defense.differentiable else "bpda"


def attack_defended(
    attack: Callable[..., Tensor], defended: DefendedModel, x: Tensor, y: Tensor, eps: float,
    mode: str = "bpda", samples: int = 8,
) -> Tensor:
    """Adversarial examples for ``defended`` crafted in ``mode``; ``attack(model, x, y, eps)``."""
    return attack(attack_model(defended, mode, samples), x, y, eps)


@torch.inference_mode()
def defended_predict(defended: DefendedModel, x: Tensor, batch_size: int = 512) -> Tensor:
    """Labels from the real defended model in eval mode: one forward (one random draw)
    per image. This is the verdict for every mode."""
    was_training = defended.training
    defended.eval()
    try:
        return torch.cat([defended(xb).argmax(1) for xb in x.split(batch_size)])
    finally:
        defended.train(was_training)


def defended_accuracy(defended: DefendedModel, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Fraction of ``x`` the real defended model classifies as ``y``."""
    return (defended_predict(defended, x, batch_size) == y).float().mean().item()
