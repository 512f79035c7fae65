"""Validate a parsed ``results.json`` before anything reads it: types, required keys, ranges.

A file edited by hand, written by another tool or truncated would otherwise surface as a
traceback deep in the report, or worse as a figure like "robust accuracy 7.5". Each problem is
one ``ResultsError`` naming the field (``records[3].value``).
"""
from __future__ import annotations

import dataclasses
import math
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
    if "headline_eps" in data["run"] and data["run"]["headline_eps"] is not None:
        _require(_is_finite(data["run"]["headline_eps"]) and data["run"]["headline_eps"] >= 0,
                 "run.headline_eps", "a finite number >= 0", data["run"]["headline_eps"])
    for key, cls in (("records", Record), ("min_eps", MinEps), ("sanity_checks", SanityCheck),
                     ("gallery", GalleryItem)):
        items = data.get(key, [])
        _require(isinstance(items, list), key, "a list", items)
        for i, item in enumerate(items):
            _check_fields(item, cls, f"{key}[{i}]")
    for i, record in enumerate(data.get("records", [])):
        _check_record(record, f"records[{i}]")
    models = data.get("models", [])
    _require(isinstance(models, list) and all(isinstance(m, dict) for m in models), "models", "a list of objects",
             models)


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
