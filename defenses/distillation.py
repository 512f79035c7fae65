"""Defensive distillation (Papernot, McDaniel, Wu, Jha, Swami, IEEE S&P 2016) as training objectives.

A teacher is trained on ``softmax(logits / T)``; a student of the same architecture is then
trained on the teacher's soft labels at the same temperature; at test time the student is used
at temperature 1, so its logits are about ``T`` times larger than needed and its softmax is
saturated. Cross-entropy gradients then vanish (the classic *gradient masking*: Carlini & Wagner
2016 broke it with a logit-margin loss), which is what the evaluation's masking checks must flag.
Both objectives follow ``defenses.adversarial``'s interface: ``obj(model, x, y, loss_fn) -> loss``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from defenses.adversarial import LossFn, PassCounted


class TemperedTeacher(PassCounted):
    """The teacher's objective: the training loss on ``logits / temperature``."""

    def __init__(self, temperature: float = 100.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"distillation temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:  # noqa: D102
        with self._counting(model, x.shape[0]):
            return loss_fn(model(x) / self.temperature, y)


class DistilledStudent(PassCounted):
    """The student's objective: cross-entropy to the teacher's soft labels, both at temperature T.

    Args:
        teacher: the trained teacher (run in eval mode, no gradients).
        temperature: T of the paper (100 in its MNIST experiments).
    """

    def __init__(self, teacher: nn.Module, temperature: float = 100.0) -> None:
        super().__init__()
        TemperedTeacher(temperature)  # validates the temperature
        self.teacher, self.temperature = teacher.eval().requires_grad_(False), float(temperature)

    def soft_labels(self, x: Tensor) -> Tensor:
        """The teacher's ``softmax(logits / T)`` on ``x``."""
        with torch.no_grad():
            return F.softmax(self.teacher(x) / self.temperature, dim=1)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn) -> Tensor:  # noqa: D102
        with self._counting(model, x.shape[0]):
            log_q = F.log_softmax(model(x) / self.temperature, dim=1)
            return -(self.soft_labels(x) * log_q).sum(dim=1).mean()
