"""The task contract: what every task module in ``robustcv/tasks/`` provides.

A :class:`TaskDefinition` gives the attack objective, the training loss family, a mergeable
metric accumulator, the model head kind, the run defaults (dataset, model, samples, attacks),
the targeting rules, label validation and the logits' shape, the per-sample state evaluation
keeps, the sanity checks that apply, the natural-sweep hook, the record metrics with their
labels and interval kinds, and the words and sections of the console and the report. Nothing
else decides the task from a tensor's shape or compares task names: it asks
``get_task(info.task)`` (or ``task_of(objective)``).
"""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from robustcv.registry import Registry
from robustcv.errors import UserError
from robustcv.metrics.base import WILSON, MetricInfo

if TYPE_CHECKING:
    import torch

    from attacks.objectives import Objective
    from robustcv.metrics.base import MetricState


class Task(str, Enum):
    """The built-in task names (kept for callers that name them; new tasks need no member)."""

    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    MULTILABEL = "multilabel"


DEFAULT_TASK = "classification"  # what a spec, a request or a results file without a task means
DEFAULT_SAMPLES = 500  # evaluated test samples when --n is not given (a task may lower it)


class TaskDefinition:
    """What a task means for attacks, training, metrics, models, the CLI and the report.

    Attributes:
        name: the task's name (``--task NAME``), its registry key.
        summary: one line for ``robustcv list``.
        loss_family: ``softmax`` (one class per image), ``pixel-softmax``, ``sigmoid`` (a 0/1
            label set) or ``one-logit`` (one logit, a 0/1 label).
        head: ``image`` (one logit vector per image) or ``pixel`` (logits per pixel).
        gallery: ``labels``, ``masks`` or ``label-sets``.
        default_loss: the attack loss used when none is named.
        headline_metric: the metric training selects epochs by and the summary quotes.
        robust_metric: the record metric the console and the API quote as the robust figure.
        robust_label: how the console names that figure.
        figure_label: what the headline numbers measure, for the report's headings.
        class_metric: the per-class record metric the report's per-class section shows.
        class_label: how the report names it; class_note: what the report adds to explain it.
        default_dataset, default_model: what runs offline when no ``--dataset``/``--model`` is given.
        default_samples: evaluated samples when ``--n`` is not given.
        default_ignore_index: the label value that marks "no label" when the data gives none.
        label_moves_with_image: the natural-sweep hook: a shifted or rotated image moves its
            label too (a mask), so the sweep transforms the labels with the images.
        large_eps_share: the share of the clean quality an unbounded PGD may leave at most
            (None: 5 % of the samples, the classifiers' rule).
        large_eps_loss: the attack loss of that large-eps check (None: the task's default).
        class_checks: the checks that need one class decided per image apply: clean accuracy
            above chance, margin/DLR losses against CE, black-box against white-box, and the
            minimal-norm search.
        class_count: how many classes every dataset of the task has (a binary task: 2), or None.
        metrics: the record metrics the task's runs hold, each with its label and interval kind.
        report_sections: the report sections (by name) the task's runs contribute.
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
    figure_label = "accuracy"
    class_metric = "class_robust_accuracy"
    class_label = "robust accuracy"
    class_note = ""
    default_dataset = "digits"
    default_model = "small_cnn"
    default_samples = DEFAULT_SAMPLES
    objective_class = "Classification"  # the class in ``attacks.objectives``
    default_ignore_index: int | None = None
    label_moves_with_image = False
    large_eps_share: float | None = None
    large_eps_loss: str | None = None
    class_checks = True
    class_count: int | None = None  # the classes every dataset of the task has (None: any number)
    metrics: tuple[MetricInfo, ...] = ()
    report_sections: tuple[str, ...] = ()

    def objective(self, info: Any, loss: str | None = None, **settings: Any) -> "Objective":
        """The attack objective for a dataset's ``DataInfo`` (``loss`` by name; default per task)."""
        raise NotImplementedError

    def accumulator(self, info: Any, **settings: Any) -> "MetricState":
        """An empty mergeable metric state for this dataset (``settings``: the checkpoint's
        ``task_settings``, e.g. multi-label thresholds; other tasks ignore them)."""
        raise NotImplementedError

    def sample_state(self, objective: "Objective", logits: "torch.Tensor",
                     y: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """Per-sample state an evaluation keeps beside correctness, by name (``[B, ...]`` each):
        what the task's records and worst case are computed from. Nothing by default."""
        return {}

    def worst_case_state(self, outcomes: list[Any], worst: Any) -> None:
        """Fill the per-sample state of ``worst``, the per-sample worst case of ``outcomes`` (attacks
        on the same samples and grid), by this task's rule; correctness and confidence are already
        folded (a sample is robust only if every attack left it correct). Nothing by default."""

    def score_metrics(self, state: dict[str, "torch.Tensor"], y: "torch.Tensor") -> dict[str, float | None]:
        """Set-level metrics beyond accuracy from the per-sample state (:meth:`sample_state`) of a
        set of images and their labels, by record name (recorded as ``clean_NAME`` on the clean
        images and ``NAME`` per eps under attack; None is left out). Nothing by default."""
        return {}

    def class_probabilities(self, logits: "torch.Tensor") -> "torch.Tensor":
        """Each image's probability per class ``[B, K]`` from its logits (default: a softmax)."""
        import torch

        return torch.softmax(logits, 1)

    def outputs(self, num_classes: int) -> int:
        """How many logits per image (per pixel) a model of this task ends in: one per class."""
        return num_classes

    def accepts_logits(self, shape: tuple[int, ...], batch: int, num_classes: int,
                       image_size: tuple[int, int]) -> bool:
        """Whether a user's model returning logits of ``shape`` for ``batch`` images fits the task
        (default: exactly :meth:`logits_shape`)."""
        return tuple(shape) == self.logits_shape(batch, num_classes, image_size)

    def attack_problem(self, name: str) -> str | None:
        """What is wrong with running the attack registered as ``name`` on this task, or None
        (default: every attack; an attack whose loss does not apply refuses through its objective)."""
        return None

    def label_form(self, num_classes: int) -> tuple[int, str]:
        """The number of dimensions of a batch of labels and how to say it (``[N] class indices``)."""
        return 1, "[N] class indices"

    def label_values(self, y: "torch.Tensor", num_classes: int) -> tuple["torch.Tensor", str]:
        """Which label values are valid (a bool mask like ``y``) and how to say the valid range."""
        return (y >= 0) & (y < num_classes), f"0..{num_classes - 1}"

    def label_problem(self, y: "torch.Tensor", num_classes: int, ignore_index: int | None) -> str | None:
        """What is wrong with a batch of int64 labels ``y`` (shape or values), or None."""
        ndim, form = self.label_form(num_classes)
        if y.ndim != ndim or (ndim == 2 and y.shape[1] != num_classes):
            return f"{self.name} labels must be {form}, got shape {tuple(y.shape)}"
        valid, allowed = self.label_values(y, num_classes)
        if ignore_index is not None:
            valid |= y == ignore_index
        if not bool(valid.all()):
            return f"label {int(y[~valid][0])} is outside {allowed} ({num_classes} classes)"
        return None

    def logits_shape(self, batch: int, num_classes: int, image_size: tuple[int, int]) -> tuple[int, ...]:
        """The shape of the logits a model of this task returns for ``batch`` images."""
        return (batch, num_classes) + ((int(image_size[0]), int(image_size[1])) if self.head == "pixel" else ())

    def ignore_index(self, given: int | None) -> int | None:
        """The ``ignore_index`` of tensor data: ``given`` or the task's default where the task
        has unlabeled values at all (else None)."""
        if self.default_ignore_index is None:
            return None
        return self.default_ignore_index if given is None else given

    def metric(self, name: str) -> MetricInfo | None:
        """The declared metric called ``name`` (also as ``clean_NAME``), or None."""
        bare = name.removeprefix("clean_")
        return next((m for m in self.metrics if m.name == bare), None)

    def default_attacks(self, num_classes: int, targeted: str = "none", norm: str = "linf") -> list[str]:
        """The attacks a run uses when ``--attack`` is not given, for its targeting and norm."""
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


def metric_interval(metric: str) -> str:
    """The interval kind (``wilson``, ``bootstrap``, ``none``) a task declares for a record metric;
    Wilson when no task declares it."""
    for name in list_tasks():
        info = TASKS.get(name).metric(metric)
        if info is not None:
            return info.interval
    return WILSON


def task_of(objective: Any) -> TaskDefinition:
    """The definition of the task an attack objective was built for (its ``task`` name)."""
    return get_task(objective.task)


def tasks_with_head(head: str) -> tuple[str, ...]:
    """The registered tasks whose models end in ``head`` logits (``image`` or ``pixel``): what a
    registered architecture with that head can serve."""
    return tuple(name for name in list_tasks() if get_task(name).head == head)


def one_label_tasks() -> tuple[str, ...]:
    """The registered tasks whose label is one class index per image (``[N]`` labels): what a
    folder-per-class dataset can serve."""
    return tuple(name for name in list_tasks() if get_task(name).label_form(2)[0] == 1)


def list_tasks() -> list[str]:
    """The registered task names, sorted."""
    import robustcv.tasks  # noqa: F401

    return TASKS.names()
