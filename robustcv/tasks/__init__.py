"""Tasks as plugins: the one place in ``robustcv`` that knows what a label is (design.md).

Every module in this package defines one task and registers it with :func:`register_task`;
the package imports them all on first use, so a new task is one new module here (plus its data
and model entries) and nothing else names it. Everything else asks ``get_task(name)``.

Example:
    >>> task = get_task("classification")
    >>> objective = task.objective(info, loss="margin")
    >>> state = task.accumulator(info); state.update(logits, y); state.compute()
"""
from __future__ import annotations

import importlib
import pkgutil

from robustcv.metrics.base import MetricInfo
from robustcv.tasks.base import (DEFAULT_TASK, TASKS, Task, TaskDefinition, get_task, list_tasks, metric_interval,
                                 one_label_tasks, register_task, task_of,
                                 tasks_with_head)

__all__ = ["DEFAULT_TASK", "MetricInfo", "Task", "TaskDefinition", "get_task", "list_tasks", "metric_interval",
           "one_label_tasks", "register_task", "task_of", "tasks_with_head", "TASKS"]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")
