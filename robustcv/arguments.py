"""Checks of single values as a user hands them in (the Python API's arguments, names read from
files): whole numbers that are not floats or bools, finite reals, seeds numpy and torch accept,
names that are unique. Each refusal is one :class:`~robustcv.errors.UserError` naming the argument.

The module imports nothing of robustcv but its errors, so every front door can use it.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from robustcv.errors import UserError

SEED_MAX = 2 ** 32 - 1  # numpy's SeedSequence and torch's generators take seeds in [0, 2**32 - 1] alike


def whole_number(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; a bool, a float (2.5, and 2.0 too) or text is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be a whole number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise UserError(f"{name} must be {bounds}, got {value}")
    return value


def real_number(value: Any, name: str, low: float | None = None, *, open_low: bool = False) -> float:
    """``value`` as a finite float at least ``low`` (above it when ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise UserError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (number < low or (open_low and number == low)):
        raise UserError(f"{name} must be {'above' if open_low else 'at least'} {low:g}, got {number:g}")
    return number


def seed_number(value: Any, name: str = "seed") -> int:
    """A seed numpy and torch both accept: a whole number in ``[0, 2**32 - 1]``."""
    return whole_number(value, name, 0, SEED_MAX)


def text_value(value: Any, name: str) -> str:
    """``value`` when it is a string."""
    if not isinstance(value, str):
        raise UserError(f"{name} must be a string, got {value!r}")
    return value


def text_values(values: Iterable[Any], name: str) -> tuple[str, ...]:
    """Every item a string (a lone string is the caller's to split, never split into characters)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise UserError(f"{name} must be a list of strings, got {values!r}")
    items = tuple(values)
    for item in items:
        text_value(item, f"{name} entry")
    return items


def unique_names(names: Iterable[Any], what: str = "class names") -> tuple[str, ...]:
    """The names as strings, refused when one repeats (a per-class table would show one figure twice)."""
    seen: set[str] = set()
    result = tuple(str(n) for n in names)
    for item in result:
        if item in seen:
            raise UserError(f"{what}: {item!r} is given twice; every name must be unique")
        seen.add(item)
    return result
