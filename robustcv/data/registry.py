"""Name → builder registry for datasets, in the style of torchvision's ``models/_api.py``.

A name ending in ``:<path>`` (``imagefolder:<path>``) registers a family: any
``imagefolder:SOMETHING`` resolves to that builder, which reads the part after the colon.
"""
from __future__ import annotations

from typing import Callable

from robustcv.data.base import DatasetBuilder, DataSpec, Splits
from robustcv.errors import UserError
from robustcv.tasks import Task

PATH_PLACEHOLDER = "<path>"

_BUILDERS: dict[str, DatasetBuilder] = {}
_TASKS: dict[str, tuple[Task, ...]] = {}


def register_dataset(
    name: str, *, tasks: tuple[Task | str, ...] = (Task.CLASSIFICATION,)
) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Register a builder ``fn(spec: DataSpec) -> Splits`` under ``name``.

    Args:
        name: registry name; ``"prefix:<path>"`` registers a parametrized family.
        tasks: the tasks the builder supports; others are refused before it is called.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def wrapper(fn: DatasetBuilder) -> DatasetBuilder:
        if name in _BUILDERS:
            raise ValueError(f"An entry is already registered under the name '{name}'.")
        _BUILDERS[name] = fn
        _TASKS[name] = tuple(Task(t) for t in tasks)
        return fn

    return wrapper


def list_datasets() -> list[str]:
    """Sorted registry names; parametrized families appear as ``prefix:<path>``."""
    return sorted(_BUILDERS)


def _resolve(name: str) -> str:
    """The registry key for ``name``; names are case-insensitive (a path after a colon is not)."""
    if name.lower() in _BUILDERS:
        return name.lower()
    prefix, sep, rest = name.partition(":")
    family = f"{prefix.lower()}:{PATH_PLACEHOLDER}"
    if sep and family in _BUILDERS:
        if not rest.strip():
            raise UserError(f"dataset '{name}' needs a path after the colon, e.g. '{prefix}:./my_images'")
        return family
    raise UserError(f"unknown dataset '{name}'; known: {', '.join(list_datasets())}")


def _check_spec(spec: DataSpec, key: str) -> None:
    try:
        task = Task(spec.task)
    except ValueError:
        known = ", ".join(t.value for t in Task)
        raise UserError(f"unknown task '{spec.task}'; known: {known}") from None
    if task not in _TASKS[key]:
        offered = ", ".join(t.value for t in _TASKS[key])
        raise UserError(f"dataset '{spec.name}' offers task(s) {offered}, not {task.value}")
    for field in ("val_fraction", "test_fraction"):
        value = getattr(spec, field)
        if not 0.0 <= value < 1.0:
            raise UserError(f"{field} must be in [0, 1), got {value}")
    if spec.image_size is not None and spec.image_size < 1:
        raise UserError(f"image_size must be a positive number of pixels, got {spec.image_size}")


def get_dataset(spec: DataSpec) -> Splits:
    """Build the train/val/test splits and ``DataInfo`` that ``spec`` describes.

    Raises:
        UserError: unknown name or task, bad fractions, or data that cannot be found or read.
    """
    key = _resolve(spec.name)
    _check_spec(spec, key)
    return _BUILDERS[key](spec)
