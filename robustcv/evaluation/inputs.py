"""A user's evaluation data and model, checked: what ``robustcv.evaluate`` and ``--model-file`` attack.

Data comes as a dataset name (drawn like a checkpoint's test samples), an ``(x, y)`` pair of
tensors or a DataLoader. Every mistake (wrong shapes, labels out of range, images outside
[0, 1], a model with the wrong number of outputs) is a one-line ``UserError``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from robustcv.data.base import DataInfo, DataSpec
from robustcv.arguments import unique_names
from robustcv.errors import UserError
from robustcv.evaluation.samples import Samples, draw_samples
from robustcv.tasks import get_task

TENSORS_NAME = "tensors"  # DataInfo.name of data given as tensors
PROBE_SIZE = 4  # samples the model is tried on before the run


@dataclass(frozen=True)
class EvalData:
    """The samples to attack, what they are, and the dataset spec they came from (None for tensors)."""

    samples: Samples
    info: DataInfo
    spec: DataSpec | None = None


def dataset_samples(spec: DataSpec, n: int, seed: int, classes: Sequence[str] | None = None) -> EvalData:
    """The first ``n`` test samples of a registered dataset after a seeded shuffle (the CLI's draw)."""
    from robustcv.data import as_tensors, get_dataset

    splits = get_dataset(spec)
    info = splits.info
    if classes is not None:
        if len(classes) != info.num_classes:
            raise UserError(f"{len(classes)} class names given, but {spec.name} has {info.num_classes} classes")
        info = _with_classes(info, unique_names(classes))
    return EvalData(draw_samples(*as_tensors(splits.test), n, seed), info, spec)


def tensor_samples(data: Any, task: str, classes: Sequence[str] | None, num_classes: int | None,
                   ignore_index: int | None, n: int | None) -> EvalData:
    """Samples from an ``(x, y)`` pair, a DataLoader or a dataset of such pairs (in the order
    given, the first ``n``)."""
    x, y = _as_pair(data)
    check_images(x)
    if n is not None:
        x, y = x[:n], y[:n]
    if classes is None and num_classes is None:
        raise UserError("give classes=[...] or num_classes=K with tensor data (the labels do not say how many)")
    names = unique_names(classes) if classes is not None else tuple(str(i) for i in range(num_classes))
    if num_classes is not None and num_classes != len(names):
        raise UserError(f"num_classes={num_classes} but {len(names)} class names given")
    definition = get_task(task)
    info = DataInfo(name=TENSORS_NAME, task=definition.name, classes=names, channels=int(x.shape[1]),
                    image_size=(int(x.shape[2]), int(x.shape[3])), mean=(0.5,) * int(x.shape[1]),
                    std=(0.5,) * int(x.shape[1]), ignore_index=definition.ignore_index(ignore_index))
    y = check_labels(y, len(x), info)
    return EvalData(Samples(x.float(), y), info)


def _as_pair(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0].detach().cpu(), data[1].detach().cpu()
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, Iterable):
        data = torch.utils.data.DataLoader(data, batch_size=256)  # a map-style dataset, read in order
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, tuple, list)):
        return _from_batches(data)
    raise UserError(f"data must be a dataset name, an (images, labels) pair of tensors or a DataLoader, "
                    f"not {type(data).__name__}")


def _from_batches(loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for batch in loader:
        if not (isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[0], torch.Tensor)):
            raise UserError("each DataLoader batch must be (images, labels) tensors")
        xs.append(batch[0].detach().cpu())
        ys.append(torch.as_tensor(batch[1]).detach().cpu())
    if not xs:
        raise UserError("the DataLoader yielded no batch")
    return torch.cat(xs), torch.cat(ys)


def check_images(x: torch.Tensor) -> None:
    """``UserError`` unless ``x`` is a non-empty float batch ``[N, C, H, W]`` in [0, 1]."""
    if x.ndim != 4 or len(x) == 0:
        raise UserError(f"images must be a non-empty [N, C, H, W] batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UserError(f"images must be float in [0, 1], got {x.dtype} (divide uint8 pixels by 255)")
    low, high = float(x.min()), float(x.max())
    if not (low >= 0.0 and high <= 1.0):  # also catches NaN
        raise UserError(f"images must lie in [0, 1] (the model normalizes inside, see with_normalization); "
                        f"got values in [{low:.3g}, {high:.3g}]")


def check_labels(y: torch.Tensor, n: int, info: DataInfo) -> torch.Tensor:
    """The labels as int64, or a ``UserError`` saying how they do not fit the task and classes."""
    k = info.num_classes
    if len(y) != n:
        raise UserError(f"{n} images but {len(y)} labels")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise UserError("labels must be integers (class indices, 0/1 label sets or masks)")
    y = y.long()
    task = get_task(info.task)
    if task.class_count is not None and k != task.class_count:
        raise UserError(f"{info.task} data has {task.class_count} classes, got {k}: {', '.join(info.classes)}")
    problem = task.label_problem(y, k, info.ignore_index)
    if problem is not None:
        raise UserError(problem)
    return y


def check_model_ready(model: Any) -> None:
    """A module whose weights hold numbers: not on the meta device, no lazy (uninitialized)
    parameter; otherwise one line saying what to do."""
    from torch.nn.parameter import UninitializedTensorMixin

    if not isinstance(model, nn.Module):
        raise UserError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    tensors = [*model.parameters(), *model.buffers()]
    if any(isinstance(t, UninitializedTensorMixin) for t in tensors):
        raise UserError("the model has uninitialized (lazy) parameters; run one batch through it first so "
                        "they take their shapes")
    if any(t.is_meta for t in tensors):
        raise UserError("the model's weights are on the meta device (no values); load them, e.g. with "
                        "load_state_dict(..., assign=True), before evaluating")


def check_model_output(model: nn.Module, samples: Samples, info: DataInfo, device: torch.device) -> None:
    """Try the model on a few samples and on one (two batch sizes: an export fixed to one fails):
    ``UserError`` unless it returns finite logits of the task's shape, one channel per class."""
    for size in dict.fromkeys((min(PROBE_SIZE, len(samples.y)), 1)):
        _check_output(model, samples.x[:size].to(device), info)


def _check_output(model: nn.Module, x: torch.Tensor, info: DataInfo) -> None:
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # the user's model failing on the user's data: one line, not a traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"the model failed on images of shape {tuple(x.shape)}: {first}") from None
    if not isinstance(out, torch.Tensor):  # e.g. torchvision's segmenters return {"out": ...}: wrap them
        raise UserError(f"the model must return one logits tensor, not {type(out).__name__}")
    k = info.num_classes
    task, size = get_task(info.task), (int(x.shape[2]), int(x.shape[3]))
    want = task.logits_shape(len(x), k, size)
    if not task.accepts_logits(tuple(out.shape), len(x), k, size):
        raise UserError(f"the model returns shape {tuple(out.shape)} for {len(x)} images; "
                        f"{info.task} with {k} classes needs {want}")
    if not bool(torch.isfinite(out).all()):
        raise UserError("the model returns non-finite logits (NaN or inf) on the evaluation images")


def _with_classes(info: DataInfo, classes: Sequence[str]) -> DataInfo:
    import dataclasses

    return dataclasses.replace(info, classes=tuple(str(c) for c in classes))
