"""The spec language: ``NAME`` or ``NAME(key=value, ...)``, comma-separated lists of them.

One syntax for attacks, defenses, datasets and models (robustcv's registries parse with it too).

Example:
    >>> split_attack_list("fgsm,pgd(steps=40, restarts=2)")
    ['fgsm', 'pgd(steps=40, restarts=2)']
    >>> parse_attack_spec("pgd(steps=40, loss=margin)")
    ('pgd', {'steps': 40, 'loss': 'margin'})
"""
from __future__ import annotations

import ast
import re
from typing import Any

_SPEC = re.compile(r"\s*([^()\s]+)\s*(?:\((.*)\))?\s*")


def split_attack_list(text: str) -> list[str]:
    """Split at the commas outside parentheses (those inside belong to an attack's arguments)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [part.strip() for part in parts + [current] if part.strip()]


def parse_spec(spec: str, kind: str = "spec") -> tuple[str, dict[str, Any]]:
    """Name and keyword arguments of one spec; values are Python literals, anything else a string.

    Args:
        spec: ``NAME`` or ``NAME(key=value, ...)``.
        kind: what the spec names, for messages (``"attack"``, ``"defense"``...).

    Raises:
        ValueError: a malformed spec or an argument that is not ``key=value``.
    """
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"{kind} {spec!r}: expected NAME or NAME(key=value, ...)")
    kwargs: dict[str, Any] = {}
    for item in split_attack_list(match.group(2) or ""):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key.isidentifier():
            raise ValueError(f"{kind} {spec!r}: argument {item!r} is not key=value")
        kwargs[key] = literal(value)
    return match.group(1), kwargs


def literal(value: str) -> Any:
    """``value`` as a Python literal (``75`` → int, ``False`` → bool), else the string itself."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def parse_attack_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """:func:`parse_spec` for an attack (messages say "attack")."""
    return parse_spec(spec, "attack")
