"""One registry shape for datasets, models, attacks, defenses and natural transforms.

Modelled on torchvision's ``models/_api.py``: ``register`` refuses a duplicate name, ``get``
answers an unknown name with one line listing the known ones, ``names`` lists them. Names are
case-insensitive. A *family* is registered with a placeholder after a colon
(``imagefolder:<path>``, ``foolbox:<Name>``, ``deeplabv3plus:<encoder>``): any name with that
prefix resolves to it, and the part after the colon (case kept) is its argument.

Example:
    >>> DEFENSES = Registry("defense")
    >>> DEFENSES.register("jpeg", build_jpeg)
    >>> DEFENSES.get("JPEG")
    >>> DEFENSES.resolve("imagefolder:./Leaves")  # -> ("imagefolder:<path>", entry, "./Leaves")
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → entry.

    Args:
        kind: what the entries are, for messages (``"dataset"``, ``"attack"``...).
        error: the exception type of an unknown name (``ValueError`` in ``attacks`` and
            ``defenses``; ``robustcv`` passes its one-line ``UserError``).
    """

    def __init__(self, kind: str, error: Callable[[str], Exception] = ValueError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None):
        """Add ``entry`` under ``name``; without ``entry``, a decorator that adds what it wraps.

        Raises:
            ValueError: ``name`` is already registered.
        """
        if entry is None:
            return lambda wrapped: self.register(name, wrapped)
        key = name.lower()
        if key in self._entries:
            raise ValueError(f"An entry is already registered under the name '{key}'.")
        self._entries[key] = entry
        return entry

    def names(self) -> list[str]:
        """The registered names, sorted (families with their placeholder)."""
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._entries

    def get(self, name: str) -> T:
        """The entry registered under ``name`` (a family's entry for ``prefix:argument``)."""
        return self.resolve(name)[1]

    def resolve(self, name: str) -> tuple[str, T, str]:
        """``(registered key, entry, argument)``: the argument is what follows a family's colon
        (``""`` for a plain name)."""
        key = name.strip().lower()
        if key in self._entries:
            return key, self._entries[key], ""
        prefix, sep, argument = name.strip().partition(":")
        family = self._family(prefix.lower()) if sep else None
        if family is None:
            raise self.error(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}")
        if not argument.strip():
            raise self.error(f"{self.kind} '{name}' needs something after the colon, e.g. '{family}'")
        return family, self._entries[family], argument

    def _family(self, prefix: str) -> str | None:
        return next((k for k in self._entries if k.startswith(prefix + ":") and "<" in k), None)
