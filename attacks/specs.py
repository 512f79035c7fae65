"""The attack-spec language: ``NAME`` or ``NAME(key=value, ...)``, comma-separated lists of them.

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


def parse_attack_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Name and keyword arguments of one spec; values are Python literals, anything else a string.

    Raises:
        ValueError: a malformed spec or an argument that is not ``key=value``.
    """
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"attack {spec!r}: expected NAME or NAME(key=value, ...)")
    kwargs: dict[str, Any] = {}
    for item in split_attack_list(match.group(2) or ""):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key.isidentifier():
            raise ValueError(f"attack {spec!r}: argument {item!r} is not key=value")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return match.group(1), kwargs
