"""Multi-label classification: independent sigmoid decisions per class; mAP and exact match."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robustcv.metrics.multilabel import MultilabelState
from robustcv.tasks.base import TaskDefinition, register_task

if TYPE_CHECKING:
    import torch

    from attacks.objectives import Objective
    from robustcv.metrics.base import MetricState

# FGSM and PGD, then APGD on the BCE loss (apgd-ce takes the task's loss) as a cascade step;
# APGD-T aims at other classes of a softmax, which a label set does not have.
DEFAULT_ATTACKS = ("fgsm", "pgd", "apgd-ce")


class MultilabelTask(TaskDefinition):
    """Independent sigmoid decisions per class; mAP and exact match."""

    name = "multilabel"
    summary = "a 0/1 label set per image (sigmoid > threshold); robust exact match, mAP"
    loss_family = "sigmoid"
    gallery = "label-sets"
    default_loss = "bce"
    headline_metric = "map"
    robust_label = "robust exact match"
    figure_label = "exact match"
    class_checks = False  # no single class to be at chance, to target or to search a minimal norm for
    metrics = MultilabelState.METRICS
    class_metric = "class_flip_rate"
    class_label = "label flip rate"
    class_note = (" A label's flip rate: among the images whose clean decision on that class is right, the share "
                  "the attack turned wrong (lower is better).")
    report_sections = ("label-metrics",)  # mAP, F1, Hamming loss under attack; per-class flip rates
    default_dataset = "shapes"
    default_model = "deep_cnn"  # small_cnn sees too little of a shape: mAP 0.74
    objective_class = "Multilabel"

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":  # noqa: D102
        from attacks.objectives import Multilabel

        return Multilabel(self.checked_loss(loss), thresholds=settings.get("thresholds", 0.5))

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":  # noqa: D102
        return MultilabelState(tuple(info.classes), thresholds=settings.get("thresholds", 0.5))

    def sample_state(self, objective: "Objective", logits: "torch.Tensor",
                     y: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """``margins``: each image's label margins ``[B, K]`` (logit minus its threshold logit)."""
        return {"margins": objective.margins(logits)}

    def worst_case_state(self, outcomes: list[Any], worst: Any) -> None:
        """Per image and eps, the label margins of an attack that fooled it, and among those (or
        all, if none did) the one leaving the least confidence in the true labels."""
        import torch

        from robustcv.metrics.multilabel import worst_margins

        worst.label_margins = worst_margins(*(torch.stack([getattr(o, name) for o in outcomes])
                                              for name in ("correct", "confidence", "label_margins")))

    def label_form(self, num_classes: int) -> tuple[int, str]:  # noqa: D102
        return 2, f"[N, {num_classes}] 0/1 label sets"

    def label_values(self, y: "torch.Tensor", num_classes: int) -> tuple["torch.Tensor", str]:  # noqa: D102
        return (y >= 0) & (y <= 1), "0 or 1"

    def default_attacks(self, num_classes: int, targeted: str = "none", norm: str = "linf") -> list[str]:  # noqa: D102
        return list(DEFAULT_ATTACKS)

    def targeted_problem(self, text: str, num_classes: int) -> str | None:
        """Targeted attacks on label sets (hide or add a class) are not built."""
        if text == "none":
            return None
        return "targeted attacks do not apply to multilabel models yet; attack untargeted"


register_task(MultilabelTask())
