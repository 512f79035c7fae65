"""ModelCard: what the attack stage knows about a model besides its weights.

A checkpoint's ``model.json`` gives one (:meth:`ModelCard.from_metadata`); a model handed to
:func:`robustcv.evaluate` or loaded from an exported file gets one from the data it is evaluated on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcv.checkpoint import META_FILE, ModelMetadata
from robustcv.data.base import DataInfo


@dataclass(frozen=True)
class ModelCard:
    """The model's name, the data it is evaluated on, its task settings and where it came from.

    Attributes:
        name: the model's name in the records.
        info: the task, class names (their count), ignore index and dataset name.
        data: the dataset spec as a dict (provenance in ``results.json``), or None for tensors.
        task_settings: per-task decisions made in training (e.g. multi-label thresholds).
        source: where the model came from, e.g. ``{"checkpoint": PATH}`` or ``{"model_file": PATH}``.
        spec_hash: the checkpoint's train-if-absent key, when there is one.
        model_json: the checkpoint's ``model.json`` (the report reads its training history).
    """

    name: str
    info: DataInfo
    data: dict[str, Any] | None = None
    task_settings: dict[str, Any] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    spec_hash: str | None = None
    model_json: Path | None = None

    @classmethod
    def from_metadata(cls, meta: ModelMetadata, checkpoint: str | Path) -> "ModelCard":
        """The card of a robustcv checkpoint."""
        return cls(name=meta.name, info=meta.data_info, data=meta.data.to_dict(),
                   task_settings=dict(meta.task_settings), source={"checkpoint": str(checkpoint)},
                   spec_hash=meta.spec_hash, model_json=Path(checkpoint).resolve() / META_FILE)

    def entry(self, out_dir: Path) -> dict[str, Any]:
        """The ``models`` entry of ``results.json``; model.json relative to the run directory
        (the report resolves it there), so the pair stays portable."""
        entry: dict[str, Any] = {"name": self.name, **self.source, "spec_hash": self.spec_hash}
        if self.model_json is not None:
            entry["model_json"] = os.path.relpath(self.model_json, out_dir.resolve())
        return entry
