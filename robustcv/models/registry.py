"""Name -> builder registry, in the style of torchvision's ``models/_api.py``.

A builder takes keyword-only arguments ``in_channels, num_classes, hidden, dropout, batch_norm,
input_size`` and returns a ``ClassifierNet`` (``backbone`` + ``head``); weights are loaded
afterwards through ``net.backbone.load_weights``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

from torch import nn

from attacks.registries import Registry
from robustcv.errors import UserError
from robustcv.tasks import Task

DUAL_PREFIX = "dual:"
DUAL_PATTERN = "dual:A+B"
ENSEMBLE_PREFIX = "ensemble:"
ENSEMBLE_PATTERN = "ensemble:A+B+..."

IMAGE_LABEL_TASKS = (Task.CLASSIFICATION, Task.MULTILABEL)
"""What a network with one logit vector per image can do: K softmax classes or K sigmoid labels."""

Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)


@dataclass(frozen=True)
class ModelEntry:
    """A registered builder and the tasks its networks can do."""

    name: str
    builder: Builder
    tasks: tuple[Task, ...]


MODELS: Registry[ModelEntry] = Registry("model", error=UserError)


def register_model(name: str | None = None, *,
                   tasks: Iterable[Task] = (Task.CLASSIFICATION,)) -> Callable[[B], B]:
    """Register a builder under ``name`` (default: the function's name); refuses duplicates.

    Example:
        >>> @register_model("tiny")
        ... def tiny(*, in_channels, num_classes, **_): ...
    """

    def wrapper(fn: B) -> B:
        key = name if name is not None else fn.__name__
        if key.startswith((DUAL_PREFIX, ENSEMBLE_PREFIX)) or "+" in key:
            raise ValueError(f"'{key}': 'dual:', 'ensemble:' and '+' are reserved for dual models and ensembles")
        MODELS.register(key, ModelEntry(key, fn, tuple(Task(t) for t in tasks)))
        return fn

    return wrapper


def list_models(*, patterns: bool = True, task: Task | str | None = None) -> list[str]:
    """Registered model names, sorted; with ``patterns`` the ``dual:A+B`` (classification) and
    ``ensemble:A+B+...`` forms are appended. ``task`` keeps only the models that offer it."""
    names = MODELS.names()
    if task is not None:
        names = [n for n in names if Task(task) in MODELS.get(n).tasks]
    if not patterns:
        return names
    dual_fits = task is None or Task(task) is Task.CLASSIFICATION
    return names + ([DUAL_PATTERN] if dual_fits else []) + [ENSEMBLE_PATTERN]


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; an unknown name is a ``UserError`` listing the known ones."""
    return MODELS.get(name)
