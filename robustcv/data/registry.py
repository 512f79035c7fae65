"""Name → builder registry for datasets (typed entries of :class:`robustcv.registry.Registry`).

A name ending in ``:<path>`` (``imagefolder:<path>``) registers a family: any
``imagefolder:SOMETHING`` resolves to that builder, which reads the part after the colon;
``imagefolder(path=SOMETHING)`` is the same dataset. Each entry carries the tasks it serves.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from robustcv.data.base import DatasetBuilder, DataSpec, Splits
from robustcv.errors import UserError
from robustcv.registry import Registry
from robustcv.tasks import DEFAULT_TASK, get_task

PATH_PLACEHOLDER = "<path>"

DATASETS: Registry[DatasetBuilder] = Registry("dataset", error=UserError)


def register_dataset(
    name: str, *, tasks: tuple[str, ...] = (DEFAULT_TASK,), eps_scale: float | None = None
) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Register a builder ``fn(spec: DataSpec) -> Splits`` under ``name``.

    Args:
        name: registry name; ``"prefix:<path>"`` registers a parametrized family.
        tasks: the tasks the builder supports; others are refused before it is called.
        eps_scale: the usual eps scale of its images (``None``: the task's default).

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def wrapper(fn: DatasetBuilder) -> DatasetBuilder:
        params = (PATH_PLACEHOLDER[1:-1],) if name.endswith(PATH_PLACEHOLDER) else ()
        return DATASETS.register(name, fn, tasks=tuple(tasks), params=params, eps_scale=eps_scale,
                                 summary=(fn.__doc__ or "").strip().partition("\n")[0])

    return wrapper


def list_datasets(task: str | None = None) -> list[str]:
    """Sorted registry names; parametrized families appear as ``prefix:<path>``.
    ``task`` keeps only the datasets that offer it."""
    return DATASETS.names(task)


def _check_spec(spec: DataSpec, tasks: tuple[str, ...]) -> None:
    task = get_task(spec.task).name  # an unknown task: one line naming the known ones
    if task not in tasks:
        raise UserError(f"dataset '{spec.name}' offers task(s) {', '.join(tasks)}, not {task}")
    for field in ("val_fraction", "test_fraction"):
        value = getattr(spec, field)
        if not 0.0 <= value < 1.0:
            raise UserError(f"{field} must be in [0, 1), got {value}")
    if spec.image_size is not None and spec.image_size < 1:
        raise UserError(f"image_size must be a positive number of pixels, got {spec.image_size}")


def dataset_eps_scale(name: str) -> float | None:
    """The eps scale a dataset registered (its usual headline L-inf eps), or None: not registered
    (tensor data, a user's name) or registered without one."""
    if name not in DATASETS:
        return None
    return DATASETS.entry(name).eps_scale


def get_dataset(spec: DataSpec) -> Splits:
    """Build the train/val/test splits and ``DataInfo`` that ``spec`` describes.

    Raises:
        UserError: unknown name or task, bad fractions, or data that cannot be found or read.
    """
    spec = dataclasses.replace(spec, name=DATASETS.canonical(spec.name))  # name(key=value) → short form
    entry = DATASETS.entry(spec.name)
    _check_spec(spec, entry.tasks)
    splits = entry.builder(spec)
    _check_classes(spec, splits.info.classes)
    return splits


def _check_classes(spec: DataSpec, classes: tuple[str, ...]) -> None:
    """A task with a fixed class count (a binary task: 2) refuses data with another count."""
    wanted = get_task(spec.task).class_count
    if wanted is not None and len(classes) != wanted:
        raise UserError(f"dataset '{spec.name}' has {len(classes)} classes ({', '.join(classes)}); "
                        f"--task {spec.task} needs {wanted}")
