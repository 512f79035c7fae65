"""FGSM: one signed (L∞) or normalized (L2) gradient step of size eps."""
from __future__ import annotations

import torch
from torch import nn

from attacks import norms
from attacks.base import Attack
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective
from attacks.registry import register_attack


@register_attack("fgsm")
class FGSM(Attack):
    r"""Fast Gradient Sign Method.

    Paper: Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples",
    ICLR 2015, https://arxiv.org/abs/1412.6572. The L2 variant is the fast gradient method
    (step along the L2-normalized gradient).

    Distance: L∞ or L2 (``norm``).

    Arguments:
        norm (Norm | str): ``"linf"`` (sign of the gradient) or ``"l2"``. Default: ``"linf"``.
        objective (Objective | str | callable): the task objective whose loss is stepped up; a
            string names a classification loss (``"ce"``, ``"margin"``, ``"dlr"``). Default: ``"ce"``.
        targeted (bool): step *down* the loss toward ``target``. Default: ``False``.

    Shape:
        - model: images in [0, 1] -> logits [B, K] (or [B, K, H, W] for segmentation).
        - x: [B, C, H, W] floating point in [0, 1].
        - y, target: what the objective takes: [B] long, [B, H, W] masks or [B, K] 0/1 vectors.
        - eps: float >= 0 in pixel units.
        - output: like ``x``, within eps of it and in [0, 1].

    Deterministic: no randomness, so a batch gives the same result as its samples one by one.

    Example:
        >>> attack = FGSM(norm="linf")
        >>> x_adv = attack(model, x, y, eps=8 / 255)
    """

    run_settings = ("norm", "objective", "targeted")
    norms = ("linf", "l2")  # a dense L1 step would not be the steepest ascent of the L1 ball

    def __init__(self, norm: Norm | str = "linf", objective: Objective | str | LossFn = "ce",
                 targeted: bool = False) -> None:
        super().__init__(norm=norm, objective=objective, targeted=targeted)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
            generator: torch.Generator | None) -> torch.Tensor:
        x_in = x.clone().requires_grad_(True)
        loss = self.loss_fn(model(x_in), labels)
        grad, = torch.autograd.grad(loss.sum(), x_in)
        sign = -1.0 if self.targeted else 1.0
        return x + sign * eps * norms.normalize(self.norm, grad)
