"""Plain catalogues for the ``attacks`` and ``defenses`` packages: a dict of name → entry.

The packages stand alone (torch only), so they keep a dict filled by their decorators and look
names up here; robustcv turns every catalogue entry into a typed entry of its own registry
(``robustcv.registry``). Names are case-insensitive. A *family* is a name with a placeholder
after a colon (``foolbox:<Name>``): any name with that prefix resolves to it, and the part after
the colon (case kept) is its argument.

Example:
    >>> CATALOGUE = {}
    >>> add(CATALOGUE, "jpeg", build_jpeg)
    >>> lookup(CATALOGUE, "JPEG", "defense")  # -> ("jpeg", build_jpeg, "")
"""
from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TypeVar

T = TypeVar("T")


def add(catalogue: MutableMapping[str, T], name: str, entry: T) -> T:
    """Add ``entry`` under ``name`` (lower-cased).

    Raises:
        ValueError: ``name`` is already in the catalogue.
    """
    key = name.lower()
    if key in catalogue:
        raise ValueError(f"An entry is already registered under the name '{key}'.")
    catalogue[key] = entry
    return entry


def lookup(catalogue: Mapping[str, T], name: str, kind: str) -> tuple[str, T, str]:
    """``(catalogue name, entry, argument)``; the argument follows a family's colon (``""`` else).

    Raises:
        ValueError: an unknown name, in one line listing the known ones, or a family name with
            nothing after the colon.
    """
    key = name.strip().lower()
    if key in catalogue:
        return key, catalogue[key], ""
    prefix, sep, argument = name.strip().partition(":")
    family = next((k for k in catalogue if sep and k.startswith(prefix.lower() + ":<")), None)
    if family is None:
        raise ValueError(f"unknown {kind} '{name}'; known: {', '.join(sorted(catalogue))}")
    if not argument.strip():
        raise ValueError(f"{kind} '{name}' needs something after the colon, e.g. '{family}'")
    return family, catalogue[family], argument
