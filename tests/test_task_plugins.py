"""The task is a plugin: no module outside ``robustcv/tasks/`` compares task names, and every
registered task implements the whole contract (so a new task is one module in ``robustcv/tasks/``)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from attacks.objectives import Objective
from robustcv.data.base import DataInfo
from robustcv.metrics import MetricInfo, MetricState
from robustcv.tasks import TaskDefinition, get_task, list_tasks, metric_interval, task_of

ROOT = Path(__file__).resolve().parents[1]
SEARCHED = ("robustcv", "attacks", "defenses")
NAMES = "segmentation|multilabel|classification|binary|detection"
COMPARISON = re.compile(
    rf"""(==|!=|\bis\b|\bin\b)\s*\(?\s*(["']({NAMES})["']|Task\.[A-Z]+)"""  # x == "segmentation", x is Task.X
    rf"""|(["']({NAMES})["']|Task\.[A-Z]+)\s*(==|!=|\bin\b)"""  # "segmentation" == x, Task.X in ...
    r"""|\.task\s*(==|!=|\bis\b)"""  # objective.task == ..., info.task is ...
)
# Files other helpers own and are rewriting (issue 22's registry step); each entry must still
# hold a comparison, so the list shrinks as they land.
CLASSES = ("a", "b", "c", "d", "e")
SIZE = (8, 8)


def _comparisons() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for package in SEARCHED:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith("robustcv/tasks/"):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if COMPARISON.search(code):
                    found.setdefault(relative, []).append(f"{relative}:{number}: {line.strip()}")
    return found


def test_no_task_name_is_compared_outside_the_tasks_package():
    found = _comparisons()
    offending = [line for path, lines in found.items() for line in lines]
    assert not offending, "task names compared outside robustcv/tasks/ (ask get_task(...)):\n" + "\n".join(offending)


def test_the_grep_catches_each_form_of_comparison():
    for line in ('if objective.task == "segmentation":', "if info.task is Task.MULTILABEL:",
                 'if "multilabel" == task:', 'task in ("binary", "classification")', "Task.SEGMENTATION in tasks"):
        assert COMPARISON.search(line), line
    for line in ('@register_dataset("voc", tasks=("segmentation",))', 'task: str = "classification"',
                 'BUILDERS = {"segmentation": build}'):
        assert not COMPARISON.search(line), line


def _classes(task: TaskDefinition) -> tuple[str, ...]:
    """Five classes, or as many as the task's datasets always have (a binary task's two)."""
    return CLASSES[:task.class_count or len(CLASSES)]


def _info(task: TaskDefinition) -> DataInfo:
    return DataInfo(name="tiny", task=task.name, classes=_classes(task), channels=3, image_size=SIZE, mean=(0.5,) * 3,
                    std=(0.5,) * 3, ignore_index=task.ignore_index(None))


def _labels(task: TaskDefinition, batch: int) -> torch.Tensor:
    """Valid labels of the task's form: class indices, 0/1 label sets or masks."""
    g = torch.Generator().manual_seed(0)
    k = len(_classes(task))
    ndim, _ = task.label_form(k)
    high, shape = {1: (k, (batch,)), 2: (2, (batch, k)), 3: (k, (batch,) + SIZE)}[ndim]
    return torch.randint(0, high, shape, generator=g)


@pytest.fixture(params=list_tasks())
def task(request) -> TaskDefinition:
    return get_task(request.param)


def test_every_task_overrides_what_has_no_default(task):
    for method in ("objective", "accumulator", "default_attacks"):
        assert getattr(type(task), method) is not getattr(TaskDefinition, method), method


def test_every_task_declares_its_words_and_kinds(task):
    assert task.name and task.summary and task.figure_label and task.robust_label and task.class_label
    assert task.loss_family in ("softmax", "pixel-softmax", "sigmoid", "one-logit")
    assert task.head in ("image", "pixel") and task.gallery in ("labels", "masks", "label-sets")
    assert task.default_loss in task.attack_losses()
    assert task.default_samples > 0 and task.default_dataset and task.default_model
    assert all(isinstance(m, MetricInfo) and m.interval in ("wilson", "bootstrap", "none") for m in task.metrics)
    declared = {m.name for m in task.metrics}
    assert task.robust_metric in declared and task.class_metric in declared
    assert all(isinstance(section, str) for section in task.report_sections)
    assert metric_interval(task.robust_metric) == task.metric(task.robust_metric).interval


def test_every_task_builds_an_objective_and_an_accumulator_for_its_data(task):
    info = _info(task)
    objective = task.objective(info)
    assert isinstance(objective, Objective) and task_of(objective) is task
    batch = 4
    logits = torch.randn(task.logits_shape(batch, len(info.classes), SIZE))
    y = _labels(task, batch)
    assert task.label_problem(y, len(info.classes), info.ignore_index) is None
    assert objective.correct(logits, y).shape == (batch,)
    state = task.accumulator(info)
    assert isinstance(state, MetricState)
    assert isinstance(state.update(logits, y).compute(), dict)
    for name, value in task.sample_state(objective, logits, y).items():
        assert isinstance(name, str) and value.shape[0] == batch


def test_every_task_refuses_labels_of_another_form(task):
    wrong = torch.zeros((4,) * (task.label_form(len(CLASSES))[0] % 3 + 1), dtype=torch.long)
    assert task.label_problem(wrong, len(CLASSES), None) is not None


def test_every_task_has_default_attacks_and_targeting_rules(task):
    attacks = task.default_attacks(len(CLASSES))
    assert attacks and all(isinstance(a, str) for a in attacks)
    assert task.targeted_problem("none", len(CLASSES)) is None
