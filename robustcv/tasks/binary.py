"""Binary classification: one logit per image and a threshold (defect, screening, spam or
deepfake detectors); accuracy, AUROC, precision and recall at the threshold."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robustcv.metrics.binary import BinaryState, binary_metrics
from robustcv.tasks.base import TaskDefinition, register_task

if TYPE_CHECKING:
    import torch

    from attacks.objectives import Objective
    from robustcv.metrics.base import MetricState

# FGSM and PGD, then APGD on the task's loss (BCE) as AutoAttack's cascade step. APGD-T and
# APGD-DLR need the gaps between three or more logits; a one-logit model has none.
DEFAULT_ATTACKS = ("fgsm", "pgd", "apgd-ce")
# What runs through the Binary objective: the native gradient attacks (apgd with loss=bce or
# margin) and the Square attack (score-based, on the objective's margin).
OFFERED_ATTACKS = ("fgsm", "pgd", "apgd", "apgd-ce", "square")
# The threshold-free and at-threshold figures a set of logits has beyond accuracy.
SCORE_METRICS = ("auroc", "precision", "recall", "f1")


class BinaryTask(TaskDefinition):
    """One logit per image (``[B]`` or ``[B, 1]``), positive above a threshold; 0/1 labels ``[N]``."""

    name = "binary"
    summary = "one logit per image (sigmoid > threshold), 0/1 labels; robust accuracy, AUROC"
    loss_family = "one-logit"
    default_loss = "bce"
    class_checks = False  # one logit: no class to target, no DLR to compare, no other class at chance
    class_count = 2  # label 0 and label 1 (the positive class)
    metrics = BinaryState.METRICS
    report_sections = ("binary-scores",)
    default_dataset = "digits_binary"
    default_model = "small_cnn"
    objective_class = "Binary"

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":  # noqa: D102
        from attacks.objectives import Binary

        return Binary(self.checked_loss(loss), threshold=settings.get("threshold", 0.0))

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":  # noqa: D102
        return BinaryState(tuple(info.classes), threshold=settings.get("threshold", 0.0))

    def sample_state(self, objective: "Objective", logits: "torch.Tensor",
                     y: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """``scores``: each image's logit minus the threshold ``[B]`` (positive: predicted positive)."""
        return {"scores": objective.shifted(logits)}

    def score_metrics(self, state: dict[str, "torch.Tensor"], y: "torch.Tensor") -> dict[str, float | None]:
        """AUROC, and precision, recall and F1 at the threshold, of the kept logits."""
        scores = binary_metrics(state["scores"].float(), y.long(), threshold=0.0)
        return {name: _finite(scores[name]) for name in SCORE_METRICS}

    def class_probabilities(self, logits: "torch.Tensor") -> "torch.Tensor":
        """``[B, 2]``: the sigmoid's complement (label 0) and the sigmoid (label 1) of the logit
        (threshold 0, as the gallery's model is judged)."""
        import torch

        p = torch.sigmoid(logits.reshape(len(logits), -1)[:, 0])
        return torch.stack([1 - p, p], dim=1)

    def outputs(self, num_classes: int) -> int:
        """One logit, whatever the two classes are called."""
        return 1

    def accepts_logits(self, shape: tuple[int, ...], batch: int, num_classes: int,
                       image_size: tuple[int, int]) -> bool:
        """``[B]`` or ``[B, 1]``."""
        return tuple(shape) in ((batch,), (batch, 1))

    def logits_shape(self, batch: int, num_classes: int, image_size: tuple[int, int]) -> tuple[int, ...]:  # noqa: D102
        return (batch, 1)

    def label_form(self, num_classes: int) -> tuple[int, str]:  # noqa: D102
        return 1, "[N] 0/1 labels"

    def label_values(self, y: "torch.Tensor", num_classes: int) -> tuple["torch.Tensor", str]:  # noqa: D102
        return (y >= 0) & (y <= 1), "0 or 1"

    def default_attacks(self, num_classes: int, targeted: str = "none", norm: str = "linf") -> list[str]:  # noqa: D102
        return list(DEFAULT_ATTACKS)

    def attack_problem(self, name: str) -> str | None:
        """The attacks a one-logit model can take are :data:`OFFERED_ATTACKS`."""
        if name in OFFERED_ATTACKS:
            return None
        return (f"attack {name!r} does not apply to a binary (one-logit) model; the binary task offers "
                f"{', '.join(OFFERED_ATTACKS)}")

    def targeted_problem(self, text: str, num_classes: int) -> str | None:
        """A one-logit model's only other class is the wrong one: untargeted is the targeted attack."""
        if text == "none":
            return None
        return "targeted attacks do not apply to binary models (the only target is the other class): attack untargeted"


def _finite(value: float) -> float | None:
    return None if value != value else round(float(value), 6)  # nan (one class only) is left out


register_task(BinaryTask())
