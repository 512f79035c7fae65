"""``build_model``: a ``ModelSpec`` and a ``DataInfo`` in, a pixel-space ``RobustModel`` out."""
from __future__ import annotations

from robustcv.data.base import DataInfo
from robustcv.errors import UserError
from robustcv.models.dual import build_dual
from robustcv.models.ensemble import build_ensemble, is_ensemble
from robustcv.models.registry import DUAL_PREFIX, resolve_model
from robustcv.models.spec import ModelSpec
from robustcv.models.wrapper import RobustModel
from robustcv.tasks import get_task, tasks_with_head


def build_model(spec: ModelSpec, info: DataInfo) -> RobustModel:
    """Build ``Normalize(info.mean, info.std) -> net``, with ``spec.weights`` loaded into the backbone.

    Args:
        spec: which network, head and weights.
        info: the dataset's task, classes, channels and normalization statistics.

    Returns:
        A ``RobustModel`` in train mode taking ``[B, C, H, W]`` images in ``[0, 1]`` and returning
        logits ``[B, num_classes]``; ``model.net.backbone`` / ``model.net.head`` are exposed.

    Raises:
        UserError: unknown model, a task the model cannot do, or unusable weights.
    """
    if is_ensemble(spec.name):
        return build_ensemble(spec, info, build_model)
    outputs = get_task(info.task).outputs(info.num_classes)  # one logit per class, or the task's own count
    kwargs = dict(in_channels=info.channels, num_classes=outputs, hidden=spec.hidden,
                  dropout=spec.dropout, batch_norm=spec.batch_norm, input_size=spec.input_size)
    if spec.name.startswith(DUAL_PREFIX):
        _check_task(spec.name, info.task, tasks_with_head("image"))
        net = build_dual(spec.name, **kwargs)
    else:
        entry, argument = resolve_model(spec.name)  # argument: a family's part after the colon
        _check_task(spec.name, info.task, entry.tasks)
        net = entry.builder(argument, **kwargs) if argument else entry.builder(**kwargs)
    if spec.weights:
        net.backbone.load_weights(spec.weights)
    return RobustModel(net, info.mean, info.std)


def _check_task(name: str, task: str, tasks: tuple[str, ...]) -> None:
    if task not in tasks:
        raise UserError(f"model '{name}' does {', '.join(tasks)}, not {task}")
