"""Read what the earlier stages wrote: ``results.json``, each model's ``model.json``, gallery PNGs.

The report reads these files and nothing else (design: every stage reads the previous stage's
files). A missing or corrupt ``results.json`` is the user's mistake (``UserError``, one line); a
missing ``model.json`` or gallery image only removes the parts of the report that need it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from robustcv.errors import UserError
from robustcv.report.validation import ResultsError, is_inside, validate_results
from robustcv.results import RunResults

RESULTS_FILE = "results.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class ModelDoc:
    """One model of a run and its ``model.json`` (``doc`` is None when it could not be read)."""

    name: str
    entry: dict[str, Any]
    path: Path | None
    doc: dict[str, Any] | None
    problem: str = ""


@dataclass
class RunData:
    """One run directory, loaded."""

    name: str
    directory: Path
    results: RunResults
    models: list[ModelDoc] = field(default_factory=list)

    @property
    def headline_eps(self) -> float | None:
        value = self.results.run.get("headline_eps")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def classes(self) -> list[str]:
        info = self.results.run.get("data_info") or {}
        return [str(c) for c in info.get("classes") or []]


def load_runs(run_dirs: Sequence[str | Path]) -> list[RunData]:
    """Load every run directory; names are made unique so curves and tables stay distinguishable."""
    if not run_dirs:
        raise UserError("no run directory given: pass at least one folder holding results.json")
    runs = [load_run(Path(d)) for d in run_dirs]
    seen: dict[str, int] = {}
    for run in runs:
        count = seen.get(run.name, 0) + 1
        seen[run.name] = count
        if count > 1:
            run.name = f"{run.name} #{count}"
    return runs


def load_run(run_dir: Path) -> RunData:
    """Load one run directory (or a path to its ``results.json``)."""
    results_path = run_dir if run_dir.suffix == ".json" else run_dir / RESULTS_FILE
    directory = results_path.parent
    if not results_path.is_file():
        raise UserError(f"no {RESULTS_FILE} in {directory} (run `robustcv attack` first)")
    try:
        with open(results_path, encoding="utf-8") as handle:
            data = json.load(handle)
        validate_results(data)
        results = RunResults.from_dict(data)
    except RecursionError:
        raise UserError(f"cannot read {results_path}: the JSON is nested too deeply") from None
    except (OSError, ValueError, TypeError, KeyError, ResultsError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"cannot read {results_path}: {reason}") from None
    if not isinstance(results.run, dict):
        raise UserError(f"cannot read {results_path}: 'run' is not an object")
    name = str(results.run.get("name") or directory.name)
    models = [_load_model_doc(entry, directory) for entry in results.models if isinstance(entry, dict)]
    return RunData(name=name, directory=directory, results=results, models=models)


def _load_model_doc(entry: dict[str, Any], run_dir: Path) -> ModelDoc:
    name = str(entry.get("name", "?"))
    raw = entry.get("model_json")
    if not raw:
        return ModelDoc(name, entry, None, None, "results.json names no model.json")
    path = run_dir / raw  # validated: relative, named model.json
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ModelDoc(name, entry, path, None, f"model.json not found at {path}")
    except (OSError, ValueError, RecursionError) as exc:
        return ModelDoc(name, entry, path, None, f"model.json at {path} unreadable: {' '.join(str(exc).split())}")
    if not isinstance(doc, dict):
        return ModelDoc(name, entry, path, None, f"model.json at {path} is not an object")
    return ModelDoc(name, entry, path, doc)


def read_png(run: RunData, relative: str) -> bytes | None:
    """The bytes of a gallery PNG, or None when it is missing or not a PNG.

    Only PNG files are accepted, so a stray path in results.json cannot pull an arbitrary file
    into a report that may be shared.
    """
    if not relative or not is_inside(relative):
        return None
    path = run.directory / relative
    if not path.resolve().is_relative_to(run.directory.resolve()):  # a link inside the run pointing out
        return None
    try:
        payload = path.read_bytes()
    except OSError:
        return None
    return payload if payload.startswith(PNG_MAGIC) else None
