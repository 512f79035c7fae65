"""Validate a parsed ``results.json`` before anything reads it: types, required keys, ranges.

A file edited by hand, written by another tool or truncated would otherwise surface as a
traceback deep in the report, or worse as a figure like "robust accuracy 7.5". Each problem is
one ``ResultsError`` naming the field (``records[3].value``).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Any, Callable

from robustcv.errors import UserError
from robustcv.results import SCHEMA, GalleryItem, MinEps, Record, SanityCheck

# Shares of samples or pixels: finite and in [0, 1]. Other shares may be nan where undefined (the
# true-class confidence of a model with nan outputs), else also in [0, 1].
SCORE_METRICS = frozenset({"miou", "clean_miou", "class_iou"})
SCORE_SUFFIXES = ("accuracy",)
UNIT_METRICS = frozenset({"attack_success_rate", "true_class_confidence", "target_pixel_share"})
NATURAL_PREFIX = "natural:"


class ResultsError(UserError):
    """A results.json that does not hold what robustcv writes."""


Check = Callable[[Any], bool]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


TYPES: dict[str, tuple[Check, str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "number": (_is_number, "a number"),
    "count": (_is_count, "a whole number >= 0"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "dict": (lambda v: isinstance(v, dict), "an object"),
}


def _kind(annotation: str) -> tuple[str | None, bool]:
    """The TYPES key (None: not checked) and whether None is allowed, from a field's annotation text
    (``float``, ``str | None``, ``list[float | None]``...)."""
    optional = annotation.replace(" ", "").endswith("|None")
    base = annotation.rsplit("|", 1)[0].strip() if optional else annotation.strip()
    if base.startswith(("list", "dict")):
        return base[:4], optional
    return {"str": "str", "bool": "bool", "int": "count", "float": "number"}.get(base), optional


def validate_results(data: Any) -> None:
    """Raise ``ResultsError`` (message: ``field: problem``) unless ``data`` is a valid results document."""
    if not isinstance(data, dict):
        raise ResultsError("the file must hold a JSON object")
    if data.get("schema") != SCHEMA:
        raise ResultsError(f"schema: expected {SCHEMA!r}, got {data.get('schema')!r}")
    if not isinstance(data.get("run"), dict):
        raise ResultsError("run: missing or not an object")
    _check_run(data["run"])
    for key, cls in (("records", Record), ("min_eps", MinEps), ("sanity_checks", SanityCheck),
                     ("gallery", GalleryItem)):
        items = data.get(key, [])
        _require(isinstance(items, list), key, "a list", items)
        for i, item in enumerate(items):
            _check_fields(item, cls, f"{key}[{i}]")
    for i, record in enumerate(data.get("records", [])):
        _check_record(record, f"records[{i}]")
    for i, item in enumerate(data.get("gallery", [])):
        _check_gallery_paths(item, f"gallery[{i}]")
    models = data.get("models", [])
    _require(isinstance(models, list) and all(isinstance(m, dict) for m in models), "models", "a list of objects",
             models)
    for i, model in enumerate(models):
        _check_keys(model, MODEL_FIELDS, f"models[{i}]")
        _check_model_json(model.get("model_json"), f"models[{i}].model_json")


# The run block's keys robustcv writes and reads back, by kind (each may be null or absent).
RUN_FIELDS = {"name": "str", "command": "str", "created": "str", "seed": "count", "device": "str", "versions": "dict",
              "task": "str", "norm": "str", "eps_grid": "list", "headline_eps": "number", "n": "count",
              "dataset": "dict", "data_info": "dict", "config": "dict", "study": "dict", "targeted": "str"}
DATA_INFO_FIELDS = {"name": "str", "task": "str", "classes": "list", "channels": "count", "image_size": "list",
                    "mean": "list", "std": "list", "hflip_ok": "bool", "ignore_index": "count"}
STUDY_FIELDS = {"name": "str", "seeds": "list", "seed": "count"}
MODEL_FIELDS = {"name": "str", "checkpoint": "str", "spec_hash": "str", "model_json": "str", "model_file": "str"}
MODEL_JSON = "model.json"


def _check_run(run: dict) -> None:
    """The run block: each known key of its kind, the eps grid and headline finite and >= 0,
    class names strings."""
    _check_keys(run, RUN_FIELDS, "run")
    for i, eps in enumerate(run.get("eps_grid") or []):
        _require(_is_finite(eps) and eps >= 0, f"run.eps_grid[{i}]", "a finite number >= 0", eps)
    if run.get("headline_eps") is not None:
        _require(_is_finite(run["headline_eps"]) and run["headline_eps"] >= 0, "run.headline_eps",
                 "a finite number >= 0", run["headline_eps"])
    info = run.get("data_info") or {}
    _check_keys(info, DATA_INFO_FIELDS, "run.data_info")
    for i, name in enumerate(info.get("classes") or []):
        _require(isinstance(name, str), f"run.data_info.classes[{i}]", "a string", name)
    study = run.get("study") or {}
    _check_keys(study, STUDY_FIELDS, "run.study")
    for i, seed in enumerate(study.get("seeds") or []):
        _require(_is_count(seed), f"run.study.seeds[{i}]", TYPES["count"][1], seed)


def _check_keys(block: dict, kinds: dict[str, str], where: str) -> None:
    """Each key of ``kinds`` present in ``block`` and not null is of its kind; other keys are free."""
    for key, kind in kinds.items():
        value = block.get(key)
        if value is not None:
            check, shown = TYPES[kind]
            _require(check(value), f"{where}.{key}", shown, value)


def _check_gallery_paths(item: dict, where: str) -> None:
    """Every image path relative and inside the run folder: a crafted path must not pull another
    file into a report that may be shared."""
    for key, value in item.items():
        if key.endswith("_path") and value is not None:
            _require(is_inside(value), f"{where}.{key}", "a path inside the run folder", value)


def _check_model_json(value: Any, where: str) -> None:
    """A relative path to a checkpoint's ``model.json`` (robustcv writes it relative to the run
    folder, e.g. ``../../models/<name>/model.json``): no absolute path, no other file."""
    if value is None:
        return
    path = PurePath(value)
    _require(not _is_absolute(value) and path.name == MODEL_JSON, where, f"a relative path to a {MODEL_JSON}", value)


def is_inside(relative: str) -> bool:
    """Whether ``relative`` stays inside the folder it is relative to (no absolute path, no ``..``)."""
    return bool(relative) and not _is_absolute(relative) and ".." not in PurePath(relative.replace("\\", "/")).parts


def _is_absolute(value: str) -> bool:
    return PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or value.startswith("\\")


def _check_fields(item: Any, cls: type, where: str) -> None:
    """Every field of the dataclass ``cls`` present (unless it has a default) and of its type."""
    _require(isinstance(item, dict), where, "an object", item)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(item) - set(fields))
    if unknown:
        raise ResultsError(f"{where}: unknown field {unknown[0]!r}")
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in item:
            if required:
                raise ResultsError(f"{where}.{name}: missing")
            continue
        kind, optional = _kind(str(f.type))
        value = item[name]
        if kind is not None and not (optional and value is None):
            check, shown = TYPES[kind]
            _require(check(value), f"{where}.{name}", shown + (" or null" if optional else ""), value)


def _check_record(record: dict, where: str) -> None:
    """Ranges: eps >= 0 for attacks, proportions and their intervals in [0, 1], n >= 0."""
    _require(_is_finite(record["eps"]), f"{where}.eps", "a finite number", record["eps"])
    if not record["attack"].startswith(NATURAL_PREFIX):
        _require(record["eps"] >= 0, f"{where}.eps", "a number >= 0", record["eps"])
    metric, value = record["metric"], record["value"]
    if metric in SCORE_METRICS or metric.endswith(SCORE_SUFFIXES) or (metric in UNIT_METRICS and not math.isnan(value)):
        _require(0.0 <= value <= 1.0, f"{where}.value", f"a number in [0, 1] for metric {metric}", value)
    for bound in ("ci_low", "ci_high"):
        value = record.get(bound)
        if value is not None:
            _require(0.0 <= value <= 1.0, f"{where}.{bound}", "in [0, 1]", value)
    low, high = record.get("ci_low"), record.get("ci_high")
    if low is not None and high is not None:
        _require(low <= record["value"] <= high, f"{where}.value", f"inside its interval [{low}, {high}]",
                 record["value"])
    _require(record.get("seconds", 0.0) >= 0, f"{where}.seconds", "a number >= 0", record.get("seconds"))


def _require(ok: bool, field: str, expected: str, got: Any) -> None:
    if not ok:
        shown = repr(got)
        raise ResultsError(f"{field}: expected {expected}, got {shown[:60] + '...' if len(shown) > 60 else shown}")
