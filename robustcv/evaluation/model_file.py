"""The attack stage for an exported model file (``robustcv attack --model-file``).

The file gives the network (:mod:`robustcv.model_files`), the data flags give the dataset; class
names come from ``--classes``, else from a JSON file beside the model (``PATH.json``:
``{"classes": [...]}``), else from the dataset. The samples are drawn as for a checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from robustcv.data.base import DataInfo, DataSpec
from robustcv.arguments import unique_names
from robustcv.errors import UserError
from robustcv.evaluation.config import EvalConfig
from robustcv.evaluation.inputs import check_model_output
from robustcv.evaluation.model_card import ModelCard
from robustcv.evaluation.orchestrator import attack_model
from robustcv.evaluation.samples import draw_samples
from robustcv.results import RunResults

CLASSES_SUFFIX = ".json"
BATCH_HINT = "; export with a dynamic batch dimension, e.g. dynamic_shapes=({0: torch.export.Dim('batch')},)"


@dataclass
class OpenedModel:
    """An exported model, its card and the dataset's whole test split."""

    model: nn.Module
    card: ModelCard
    test: tuple[torch.Tensor, torch.Tensor]

    @property
    def data_info(self) -> DataInfo:
        return self.card.info

    @property
    def task_settings(self) -> dict[str, Any]:
        return self.card.task_settings


def classes_beside(path: Path) -> list[str] | None:
    """The class names in ``PATH.json`` (``{"classes": [...]}``), or None when there is no such file."""
    side = path.with_name(path.name + CLASSES_SUFFIX)
    if not side.is_file():
        return None
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except RecursionError:
        raise UserError(f"cannot read the class names in {side}: the JSON is nested too deeply") from None
    except (ValueError, OSError) as exc:
        raise UserError(f"cannot read the class names in {side}: {' '.join(str(exc).split())}") from None
    names = doc.get("classes") if isinstance(doc, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise UserError(f'{side} must hold {{"classes": ["name", ...]}}')
    return list(unique_names(names, f"the class names in {side}"))


def open_model_file(path: str | Path, spec: DataSpec, classes: Sequence[str] | None,
                    device: torch.device) -> OpenedModel:
    """Load the model file safely and the dataset it is evaluated on; ``UserError`` when the class
    names do not fit the dataset."""
    from robustcv.data import as_tensors, get_dataset
    from robustcv.model_files import load_model_file

    path = Path(path)
    model = load_model_file(path, device=device)
    names = unique_names(classes) if classes else classes_beside(path)
    splits = get_dataset(spec)
    info = splits.info
    if names is not None:
        if len(names) != info.num_classes:
            raise UserError(f"{len(names)} class names given for {path.name}, but {spec.name} has "
                            f"{info.num_classes} classes")
        info = dataclasses.replace(info, classes=tuple(names))
    card = ModelCard(name=path.stem, info=info, data=spec.to_dict(), source={"model_file": str(path)})
    return OpenedModel(model, card, as_tensors(splits.test))


def check_image_shape(expected: tuple[int | None, ...] | None, image: tuple[int, ...], dataset: str) -> None:
    """``UserError`` when the model was exported for images (channels, height, width) other than the
    data's; ``expected`` is the exported batch shape (None in a dynamic dimension, or None when unknown)."""
    if expected is None:
        return
    wanted = expected[1:]
    if len(wanted) != len(image) or any(w is not None and w != d for w, d in zip(wanted, image)):
        shown = "(" + ", ".join("any" if w is None else str(w) for w in wanted) + ")"
        raise UserError(f"the model expects images of shape {shown} (channels, height, width), but {dataset} "
                        f"gives {image}; evaluate it on data of that shape or export it for this one")


def run_model_file_stage(opened: OpenedModel, config: EvalConfig, out_dir: Path, *, device: torch.device,
                         command: str = "", show_progress: bool = True, name: str | None = None) -> RunResults | None:
    """Draw the samples, check the model's outputs on them, and run the attack stage."""
    samples = draw_samples(*opened.test, config.n, config.seed)
    expected = getattr(opened.model, "input_shape", None)
    check_image_shape(expected, tuple(samples.x.shape[1:]), opened.card.info.name)
    try:
        check_model_output(opened.model, samples, opened.card.info, device)
    except UserError as exc:
        static_batch = expected is not None and expected[0] is not None
        hint = BATCH_HINT if "Guard failed" in str(exc) and (static_batch or expected is None) else ""
        raise UserError(f"{exc}{hint}") from None
    return attack_model(opened.model, opened.card, samples, config, out_dir, device=device, command=command,
                        show_progress=show_progress, name=name)
