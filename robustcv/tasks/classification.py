"""Classification: one class per image, argmax decisions, accuracy from a confusion matrix."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robustcv.metrics.classification import ClassificationState
from robustcv.tasks.base import TaskDefinition, register_task

if TYPE_CHECKING:
    from attacks.objectives import Objective
    from robustcv.metrics.base import MetricState

# FGSM and PGD, then AutoAttack's cascade: APGD-CE and APGD-T only on what is still robust.
DEFAULT_ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-t")


class ClassificationTask(TaskDefinition):
    """One class per image: argmax decisions, accuracy from a confusion matrix."""

    name = "classification"
    summary = "one class per image (argmax); robust accuracy"
    metrics = ClassificationState.METRICS

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":  # noqa: D102
        from attacks.objectives import Classification

        return Classification(self.checked_loss(loss))

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":  # noqa: D102
        return ClassificationState(tuple(info.classes))

    def default_attacks(self, num_classes: int, targeted: str = "none", norm: str = "linf") -> list[str]:
        """FGSM, PGD and AutoAttack's cascade; APGD-T only untargeted and with at least 4 classes
        (its targeted DLR loss needs them)."""
        attacks = list(DEFAULT_ATTACKS)
        if targeted != "none" or num_classes < 4:
            attacks.remove("apgd-t")
        return attacks


register_task(ClassificationTask())
