"""Checkpoints: a directory with ``model.safetensors`` (weights) and ``model.json`` (metadata).

Loading never unpickles: weights come from safetensors, metadata from JSON, and the model is
rebuilt from its spec. A corrupt or foreign file is refused with a ``UserError``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from robustcv.data.base import DataInfo, DataSpec
from robustcv.data.drift import class_fingerprint
from robustcv.errors import UserError
from robustcv.models.spec import ModelSpec
from robustcv.outputs import OutputKind, claim_output, safetensors_os_error
from robustcv.results import current_umask

MODEL_SCHEMA = "robustcv.model/1"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


@dataclasses.dataclass
class ModelMetadata:
    """What ``model.json`` holds, typed: the one way the code base reads a checkpoint's metadata.

    Attributes:
        name: the checkpoint's directory name; spec_hash: the train-if-absent key.
        data, data_info, model: the dataset spec, what the dataset is, the network spec.
        recipe: the training recipe as a dict (``Recipe.from_dict`` reads it in training).
        history: one dict per epoch; best_epoch: the epoch kept (1-based).
        test_metrics: the task's metrics on the test split.
        class_fingerprint: digest of the class-to-index mapping trained on (``data_info.classes``),
            checked against the dataset before an attack (data drift).
        task_settings: per-task decisions made in training (e.g. multi-label thresholds).
        versions, created, seconds, device: provenance.
    """

    name: str
    data: DataSpec
    data_info: DataInfo
    model: ModelSpec
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)
    spec_hash: str | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_epoch: int | None = None
    test_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    task_settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    created: str = ""
    seconds: float = 0.0
    device: str = ""
    class_fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.class_fingerprint:
            self.class_fingerprint = class_fingerprint(self.data_info.classes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``schema`` added on save)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(data=self.data.to_dict(), data_info=self.data_info.to_dict(), model=self.model.to_dict())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelMetadata":
        """Parse the JSON form; ``KeyError``/``TypeError``/``ValueError`` when incomplete."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        fields.update(data=DataSpec.from_dict(data["data"]), data_info=DataInfo.from_dict(data["data_info"]),
                      model=ModelSpec.from_dict(data["model"]))
        return cls(**fields)


def save_checkpoint(directory: Path, model: torch.nn.Module, metadata: ModelMetadata, force: bool = False) -> Path:
    """Write weights and metadata into ``directory`` atomically (staged beside it, then swapped in).

    An existing checkpoint is replaced only with ``force``, and only if it is robustcv's;
    otherwise ``UserError``.
    """
    directory = Path(directory)
    with claim_output(directory, OutputKind.CHECKPOINT, force=force, option="--models-dir") as output:
        with output.staging() as staging:
            write_checkpoint_files(staging, model, metadata)
    return directory


def write_checkpoint_files(directory: Path, model: torch.nn.Module, metadata: ModelMetadata) -> None:
    """Write ``model.safetensors`` and ``model.json`` into an existing (staging) folder.

    Raises:
        OSError: a write fault (a full disk included, which safetensors reports otherwise).
    """
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = directory / WEIGHTS_FILE
    try:
        save_file(state, str(weights))
    except SafetensorError as exc:  # a full disk is a SafetensorError, not an OSError: give the OSError back
        fault = safetensors_os_error(exc, weights)
        if fault is None:
            raise
        raise fault from None
    os.chmod(weights, 0o666 & ~current_umask())  # safetensors creates it 0o600; every other file is 0o644
    meta = dict(metadata.to_dict(), schema=MODEL_SCHEMA)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def read_metadata(directory: str | Path) -> ModelMetadata:
    """Parse and validate ``model.json``; ``UserError`` when absent, not ours or incomplete."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise UserError(f"no checkpoint at {directory} ({META_FILE} missing)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"corrupt checkpoint metadata {path}: {exc}") from None
    except RecursionError:
        raise UserError(f"corrupt checkpoint metadata {path}: nested too deeply to be a model.json") from None
    if not isinstance(meta, dict) or meta.get("schema") != MODEL_SCHEMA:
        raise UserError(f"{path} is not a robustcv model file (schema {MODEL_SCHEMA} expected)")
    try:
        return ModelMetadata.from_dict(meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"checkpoint {directory} has incomplete metadata: {exc}") from None


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """Load the safetensors weights; anything else (a pickle, garbage) is refused unread."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise UserError(f"no weights at {path}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"corrupt or unsafe weights file {path} (not safetensors): {exc}") from None


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelMetadata]:
    """Rebuild the model from ``model.json`` and load ``model.safetensors`` strictly.

    Returns:
        ``(model, metadata)`` with the model in eval mode on ``device``.
    """
    from robustcv.models import build_model
    from robustcv.models.weights import versioned

    meta = read_metadata(directory)
    state = read_weights(directory)
    model = build_model(dataclasses.replace(meta.model, weights=None), meta.data_info)
    try:
        model.load_state_dict(versioned(state, model), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"weights in {directory} do not fit the model in its model.json: {first}") from None
    return model.to(device).eval(), meta
