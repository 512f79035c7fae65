"""The results file every evaluation writes and every report reads (``results.json``).

Schema ``robustcv.results/1``::

    {
      "schema": "robustcv.results/1",
      "run": {name, command, created, seed, device, versions{...}, task, norm, eps_grid[...],
              headline_eps, n, dataset{DataSpec}, data_info{DataInfo}},
      "models": [{name, checkpoint, spec_hash, model_json}],   # model_json: path to model.json
      "records": [Record...],              # tidy: one per (model, defense, attack, adaptive, eps, metric)
      "min_eps": [MinEps...],              # per-sample minimal eps on the grid (None = never fooled);
                                           # exact: a minimization attack's per-sample minimal norm
      "sanity_checks": [SanityCheck...],
      "gallery": [GalleryItem...],         # image paths relative to the run directory
    }

Accuracies (``clean_accuracy``, ``robust_accuracy``, ``class_robust_accuracy``,
``worst_case_accuracy``) carry ``n`` and a 95 % Wilson interval ``ci_low``/``ci_high``; other
metrics (mIoU, perturbation sizes) leave both None. Files written before the interval existed
load with None there.

Metric names: ``clean_accuracy``, ``robust_accuracy``, ``attack_success_rate``,
``true_class_confidence``, ``linf``, ``l2``, ``psnr``; per class ``class_robust_accuracy`` with
``cls`` set; segmentation adds ``miou`` and ``pixel_accuracy``; multi-label classifiers add ``map``,
``f1_macro``, ``f1_micro``, ``hamming_loss`` (each also as ``clean_*``) and per class
``class_flip_rate``, their ``robust_accuracy`` being the exact match under attack. Natural-transformation sweeps use
attack names ``natural:<kind>`` with the transform's parameter in ``eps``. Worst case over attacks
uses attack name ``worst-case``. Minimization attacks add ``minimal_norm_median`` (over the samples
they fooled) and ``minimal_norm_fooled`` (that share), at eps 0.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "robustcv.results/1"


@dataclass
class Record:
    """One tidy measurement; ``ci_low``/``ci_high``: the 95 % interval of a proportion (else None)."""

    model: str
    defense: str
    attack: str
    adaptive: bool
    eps: float
    metric: str
    value: float
    n: int
    seconds: float = 0.0
    cls: str | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def interval(self) -> tuple[float, float] | None:
        """``(ci_low, ci_high)``, or None when not recorded."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low, self.ci_high


@dataclass
class MinEps:
    """Per-sample minimal eps on the grid at which the attack succeeded (None: never); with
    ``exact``, the norm of a minimization attack's smallest adversarial instead (not on the grid)."""

    model: str
    defense: str
    attack: str
    adaptive: bool
    labels: list[int]
    values: list[float | None]
    exact: bool = False


@dataclass
class SanityCheck:
    """A check of design rule 7; a failure is printed loudly in the report.

    ``model``/``defense`` empty: the check concerns every model/defense of the run. ``blocking``:
    when it fails, the figures carry no evidence (too few samples, non-finite outputs, a model no
    better than chance) and the report gives no verdict of robustness. ``indicator``: the
    indicator of attack failure it measures (Pintor et al. 2022, see
    ``robustcv.evaluation.indicators``); when such a check fails the verdict is "inconclusive".
    """

    name: str
    passed: bool
    detail: str
    model: str = ""
    defense: str = "none"
    values: dict[str, Any] = field(default_factory=dict)
    blocking: bool = False
    indicator: str = ""


@dataclass
class GalleryItem:
    """One example: clean, amplified perturbation and adversarial image (paths in the run dir)."""

    model: str
    defense: str
    attack: str
    eps: float
    label: str
    clean_pred: str
    clean_conf: float
    adv_pred: str
    adv_conf: float
    clean_path: str
    perturbation_path: str
    adversarial_path: str
    # Segmentation: the masks in the dataset's colours (``clean_conf`` and ``adv_conf`` then hold
    # the image's pixel accuracy); None for classifiers.
    truth_mask_path: str | None = None
    clean_mask_path: str | None = None
    adversarial_mask_path: str | None = None


@dataclass
class RunResults:
    """Everything ``results.json`` holds."""

    run: dict[str, Any]
    models: list[dict[str, Any]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    min_eps: list[MinEps] = field(default_factory=list)
    sanity_checks: list[SanityCheck] = field(default_factory=list)
    gallery: list[GalleryItem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run": self.run,
            "models": self.models,
            "records": [dataclasses.asdict(r) for r in self.records],
            "min_eps": [dataclasses.asdict(m) for m in self.min_eps],
            "sanity_checks": [dataclasses.asdict(c) for c in self.sanity_checks],
            "gallery": [dataclasses.asdict(g) for g in self.gallery],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunResults":
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a robustcv results file (schema {data.get('schema')!r})")
        return cls(
            run=data["run"],
            models=data.get("models", []),
            records=[Record(**r) for r in data.get("records", [])],
            min_eps=[MinEps(**m) for m in data.get("min_eps", [])],
            sanity_checks=[SanityCheck(**c) for c in data.get("sanity_checks", [])],
            gallery=[GalleryItem(**g) for g in data.get("gallery", [])],
        )

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "RunResults":
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def current_umask() -> int:
    """The process umask (read by setting and restoring it): tempfile's mkstemp/mkdtemp create
    0o600 files and 0o700 folders, which atomic writers widen to what ``open()`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_bytes_atomic(path: str | Path, payload: bytes) -> None:
    """Write bytes through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
