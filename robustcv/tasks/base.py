"""The task contract: what every task module in ``robustcv/tasks/`` provides.

A :class:`TaskDefinition` gives the attack objective, the training loss family, a mergeable
metric accumulator, the model head kind, the run defaults (dataset, model, samples, attacks),
the targeting rules and the words the console and the report use. Nothing else decides the
task from a tensor's shape or compares task names: it asks ``get_task(info.task)``.
"""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from robustcv.registry import Registry
from robustcv.errors import UserError

if TYPE_CHECKING:
    from attacks.objectives import Objective
    from robustcv.metrics import MetricState


class Task(str, Enum):
    """The built-in task names (kept for callers that name them; new tasks need no member)."""

    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    MULTILABEL = "multilabel"


DEFAULT_SAMPLES = 500  # evaluated test samples when --n is not given (a task may lower it)


class TaskDefinition:
    """What a task means for attacks, training, metrics, models, the CLI and the report.

    Attributes:
        name: the task's name (``--task NAME``), its registry key.
        summary: one line for ``robustcv list``.
        loss_family: ``softmax`` (one class per image), ``pixel-softmax`` or ``sigmoid``.
        head: ``image`` (one logit vector per image) or ``pixel`` (logits per pixel).
        gallery: ``labels``, ``masks`` or ``label-sets``.
        default_loss: the attack loss used when none is named.
        headline_metric: the metric training selects epochs by and the summary quotes.
        robust_metric: the record metric the console and the API quote as the robust figure.
        robust_label: how the console names that figure.
        default_dataset, default_model: what runs offline when no ``--dataset``/``--model`` is given.
        default_samples: evaluated samples when ``--n`` is not given.
    """

    name: str = ""
    summary: str = ""
    loss_family = "softmax"
    head = "image"
    gallery = "labels"
    default_loss = "ce"
    headline_metric = "accuracy"
    robust_metric = "robust_accuracy"
    robust_label = "robust accuracy"
    default_dataset = "digits"
    default_model = "small_cnn"
    default_samples = DEFAULT_SAMPLES
    objective_class = "Classification"  # the class in ``attacks.objectives``

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":
        """The attack objective for a dataset's ``DataInfo`` (``loss`` by name; default per task)."""
        raise NotImplementedError

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":
        """An empty mergeable metric state for this dataset (``settings``: the checkpoint's
        ``task_settings``, e.g. multi-label thresholds; other tasks ignore them)."""
        raise NotImplementedError

    def default_attacks(self, num_classes: int, targeted: str = "none") -> list[str]:
        """The attacks a run uses when ``--attack`` is not given."""
        raise NotImplementedError

    def targeted_problem(self, text: str, num_classes: int) -> str | None:
        """What is wrong with a ``--targeted`` setting (none, random, least-likely, a class
        index), or None when this task can run it."""
        if text in ("none", "random", "least-likely"):
            return None
        if not (text.isdigit() and int(text) < num_classes):
            return f"{text!r}: use none, random, least-likely, a class index 0..{num_classes - 1}"
        return None

    def attack_losses(self) -> tuple[str, ...]:
        """The loss names an attack on this task accepts."""
        from attacks import objectives

        return tuple(getattr(objectives, self.objective_class).LOSSES)

    def checked_loss(self, loss: str | None) -> str:
        """``loss`` (default: the task's) when an attack on this task accepts it, else a ``UserError``."""
        name = self.default_loss if loss is None else loss
        if name not in self.attack_losses():
            raise UserError(f"attack loss {name!r} does not apply to {self.name}; choose from "
                            f"{', '.join(self.attack_losses())}")
        return name


TASKS: Registry[TaskDefinition] = Registry("task", error=UserError)


def register_task(definition: TaskDefinition) -> TaskDefinition:
    """Add a task definition; a second one for the same name is refused."""
    return TASKS.register(definition.name, definition)


def get_task(task: Any) -> TaskDefinition:
    """The definition of ``task`` (its name, case-insensitive, or a :class:`Task`)."""
    import robustcv.tasks  # noqa: F401  (registers every task module on first use)

    return TASKS.get(str(getattr(task, "value", task)))


def list_tasks() -> list[str]:
    """The registered task names, sorted."""
    import robustcv.tasks  # noqa: F401

    return TASKS.names()
