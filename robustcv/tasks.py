"""Tasks as objects: the one place in ``robustcv`` that knows what a label is (design.md).

A :class:`TaskDefinition` gives the attack objective, the training loss family, a mergeable
metric accumulator, the model head kind and what the gallery draws. Nothing else decides the
task from a tensor's shape: it asks ``get_task(info.task)``.

Example:
    >>> task = get_task("classification")
    >>> objective = task.objective(info, loss="margin")
    >>> state = task.accumulator(info); state.update(logits, y); state.compute()
"""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from attacks.registries import Registry
from robustcv.errors import UserError

if TYPE_CHECKING:
    from attacks.objectives import Objective
    from robustcv.metrics import MetricState


class Task(str, Enum):
    """What a model predicts: one label per image, one 0/1 vector per image, or one label per pixel."""

    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    MULTILABEL = "multilabel"


class TaskDefinition:
    """What a task means for attacks, training, metrics, models and the gallery.

    Attributes:
        task: the :class:`Task` it defines.
        loss_family: ``softmax`` (one class per image), ``pixel-softmax`` or ``sigmoid``.
        head: ``image`` (one logit vector per image) or ``pixel`` (logits per pixel).
        gallery: ``labels``, ``masks`` or ``label-sets``.
        default_loss: the attack loss used when none is named.
        headline_metric: the metric the summary quotes.
    """

    task: Task
    loss_family = "softmax"
    head = "image"
    gallery = "labels"
    default_loss = "ce"
    headline_metric = "accuracy"
    objective_class = "Classification"  # the class in ``attacks.objectives``

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":
        """The attack objective for a dataset's ``DataInfo`` (``loss`` by name; default per task)."""
        raise NotImplementedError

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":
        """An empty mergeable metric state for this dataset (``settings``: the checkpoint's
        ``task_settings``, e.g. multi-label thresholds; other tasks ignore them)."""
        raise NotImplementedError

    def attack_losses(self) -> tuple[str, ...]:
        """The loss names an attack on this task accepts."""
        from attacks import objectives

        return tuple(getattr(objectives, self.objective_class).LOSSES)

    def _checked_loss(self, loss: str | None) -> str:
        name = self.default_loss if loss is None else loss
        if name not in self.attack_losses():
            raise UserError(f"attack loss {name!r} does not apply to {self.task.value}; choose from "
                            f"{', '.join(self.attack_losses())}")
        return name


class ClassificationTask(TaskDefinition):
    """One class per image: argmax decisions, accuracy from a confusion matrix."""

    task = Task.CLASSIFICATION

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":  # noqa: D102
        from attacks.objectives import Classification

        return Classification(self._checked_loss(loss))

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":  # noqa: D102
        from robustcv.metrics import ClassificationState

        return ClassificationState(tuple(info.classes))


class SegmentationTask(TaskDefinition):
    """One class per pixel with an ``ignore_index``; mIoU from one confusion matrix."""

    task = Task.SEGMENTATION
    loss_family = "pixel-softmax"
    head = "pixel"
    gallery = "masks"
    headline_metric = "miou"

    objective_class = "Segmentation"

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":  # noqa: D102
        from attacks.objectives import Segmentation

        return Segmentation(self._checked_loss(loss), ignore_index=info.ignore_index, **settings)

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":  # noqa: D102
        from robustcv.metrics import SegmentationState

        return SegmentationState(tuple(info.classes), info.ignore_index)


class MultilabelTask(TaskDefinition):
    """Independent sigmoid decisions per class; mAP and exact match."""

    task = Task.MULTILABEL
    loss_family = "sigmoid"
    gallery = "label-sets"
    default_loss = "bce"
    headline_metric = "map"

    objective_class = "Multilabel"

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":  # noqa: D102
        from attacks.objectives import Multilabel

        return Multilabel(self._checked_loss(loss), thresholds=settings.get("thresholds", 0.5))

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":  # noqa: D102
        from robustcv.metrics import MultilabelState

        return MultilabelState(tuple(info.classes), thresholds=settings.get("thresholds", 0.5))


TASKS: Registry[TaskDefinition] = Registry("task", error=UserError)


def register_task(definition: TaskDefinition) -> TaskDefinition:
    """Add a task definition; a second one for the same task is refused."""
    return TASKS.register(definition.task.value, definition)


def get_task(task: Task | str) -> TaskDefinition:
    """The definition of ``task`` (a :class:`Task` or its name, case-insensitive)."""
    return TASKS.get(str(getattr(task, "value", task)))


def list_tasks() -> list[str]:
    """The registered task names, sorted."""
    return TASKS.names()


for _definition in (ClassificationTask(), SegmentationTask(), MultilabelTask()):
    register_task(_definition)
