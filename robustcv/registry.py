"""The one registry shape of robustcv: name → typed entry, for every kind robustcv knows.

Modelled on torchvision's ``models/_api.py``: ``register`` refuses a duplicate name, ``get``
answers an unknown name with one line listing the known ones and the closest match, ``names``
lists them. Names are case-insensitive. Each entry carries its metadata (the tasks it serves, its
parameters, a dataset's eps scale, a one-line summary), so listing, validation and suggestions
come from the registry alone.

A *family* is registered with a placeholder after a colon (``imagefolder:<path>``,
``foolbox:<Name>``): any name with that prefix resolves to it, the part after the colon (case
kept) is its argument. One spec syntax is accepted everywhere, ``name(key=value, ...)``; the short
forms stay as aliases: ``jpeg:75`` is ``jpeg(quality=75)`` (positional values fill the entry's
``params`` in order) and ``imagefolder:PATH`` is ``imagefolder(path=PATH)``.

Example:
    >>> DEFENSES = Registry("defense")
    >>> DEFENSES.register("jpeg", build_jpeg, params=("quality",))
    >>> DEFENSES.parse("jpeg:75") == DEFENSES.parse("jpeg(quality=75)")
    True
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from attacks.specs import literal, parse_spec

T = TypeVar("T")
PLACEHOLDER = ":<"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing and what robustcv needs to know about it.

    Attributes:
        name: the registered name (lower case; a family keeps its ``prefix:<placeholder>``).
        builder: what the name builds (a class, a function, a ready object).
        tasks: the tasks it serves (empty: not task-specific).
        params: its parameter names, in the order the short form ``name:a,b`` fills them.
        eps_scale: a dataset's usual eps scale (``None``: not a dataset, or no default).
        summary: one line for ``robustcv list``.
        meta: anything else the kind declares (an attack's run settings, ...).
    """

    name: str
    builder: T
    tasks: tuple[Any, ...] = ()
    params: tuple[str, ...] = ()
    eps_scale: float | None = None
    summary: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> bool:
        """Whether the name is a family (``prefix:<placeholder>``)."""
        return PLACEHOLDER in self.name

    @property
    def prefix(self) -> str:
        """The name before a family's colon (the whole name otherwise)."""
        return self.name.partition(":")[0]

    def serves(self, task: Any) -> bool:
        """Whether the entry serves ``task`` (an entry without tasks serves every task)."""
        return not self.tasks or str(getattr(task, "value", task)) in {str(getattr(t, "value", t)) for t in self.tasks}


class Registry(Generic[T]):
    """Name → :class:`Entry`.

    Args:
        kind: what the entries are, for messages (``"dataset"``, ``"attack"``...).
        error: the exception type of an unknown name (robustcv passes its one-line ``UserError``).
    """

    def __init__(self, kind: str, error: Callable[[str], Exception] = ValueError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, builder: T | None = None, *, tasks: Iterable[Any] = (),
                 params: Iterable[str] = (), eps_scale: float | None = None, summary: str = "",
                 aliases: Iterable[str] = (), **meta: Any):
        """Add ``builder`` under ``name`` with its metadata; without ``builder``, a decorator.

        Returns:
            ``builder`` (so the decorator leaves what it wraps unchanged).

        Raises:
            ValueError: ``name`` or an alias is already registered.
        """
        if builder is None:
            return lambda wrapped: self.register(name, wrapped, tasks=tasks, params=params, eps_scale=eps_scale,
                                                 summary=summary, aliases=aliases, **meta)
        self.add(Entry(name.lower(), builder, tuple(tasks), tuple(params), eps_scale, summary, dict(meta)))
        for alias in aliases:
            self._claim(alias)
            self._aliases[alias.lower()] = name.lower()
        return builder

    def add(self, entry: Entry[T]) -> Entry[T]:
        """Add a ready entry; refuses a name already taken."""
        self._claim(entry.name)
        self._entries[entry.name] = entry
        return entry

    def _claim(self, name: str) -> None:
        key = name.lower()
        if key in self._entries or key in self._aliases:
            raise ValueError(f"An entry is already registered under the name '{key}'.")

    def names(self, task: Any = None) -> list[str]:
        """The registered names, sorted (families with their placeholder); ``task``: those serving it."""
        return sorted(n for n, e in self._entries.items() if task is None or e.serves(task))

    def in_order(self, task: Any = None) -> list[str]:
        """The registered names in the order they were registered; ``task``: those serving it."""
        return [n for n, e in self._entries.items() if task is None or e.serves(task)]

    def entries(self, task: Any = None) -> list[Entry[T]]:
        """The entries, sorted by name; ``task``: those serving it."""
        return [self._entries[name] for name in self.names(task)]

    def __contains__(self, name: str) -> bool:
        key = name.strip().lower()
        return key in self._entries or key in self._aliases

    def entry(self, name: str) -> Entry[T]:
        """The entry registered under ``name`` (a family's entry for ``prefix:argument``)."""
        return self.lookup(name)[0]

    def get(self, name: str) -> T:
        """What is registered under ``name`` (a family's builder for ``prefix:argument``)."""
        return self.lookup(name)[0].builder

    def resolve(self, name: str) -> tuple[str, T, str]:
        """``(registered name, builder, argument)``: the argument is what follows a family's
        colon (``""`` for a plain name)."""
        entry, argument = self.lookup(name)
        return entry.name, entry.builder, argument

    def lookup(self, name: str) -> tuple[Entry[T], str]:
        """``(entry, family argument)`` of a plain name, an alias or ``prefix:argument``.

        Raises:
            the registry's error: an unknown name (one line, the known names and the closest
            one) or a family name with nothing after the colon.
        """
        key = name.strip().lower()
        key = self._aliases.get(key, key)
        if key in self._entries:
            return self._entries[key], ""
        prefix, sep, argument = name.strip().partition(":")
        family = self._family(prefix.lower()) if sep else None
        if family is None:
            raise self.unknown(name)
        if not argument.strip():
            raise self.error(f"{self.kind} '{name}' needs something after the colon, e.g. '{family.name}'")
        return family, argument

    def _family(self, prefix: str) -> Entry[T] | None:
        return next((e for e in self._entries.values() if e.family and e.prefix == prefix), None)

    def unknown(self, name: str, extra: Iterable[str] = ()) -> Exception:
        """The one-line error for an unknown ``name``: the known names and the closest match
        (``extra``: more names to suggest from, e.g. a catalogue's)."""
        known = self.names()
        close = suggest(name, [*known, *self._aliases, *extra])
        hint = f"; did you mean '{close}'?" if close else ""
        return self.error(f"unknown {self.kind} '{name}'; known: {', '.join(known)}{hint}")

    def parse(self, spec: str) -> tuple[Entry[T], dict[str, Any]]:
        """The entry and keyword arguments of ``name(key=value, ...)`` or of a short form.

        ``name:a,b`` fills the entry's ``params`` in order (``jpeg:75`` → ``quality=75``); a
        family's argument (``imagefolder:PATH``) is its first parameter, whole (commas kept).

        Raises:
            the registry's error: unknown name, malformed spec, too many positional values.
        """
        try:  # a name without parentheses is taken whole (a path may hold spaces or commas)
            name, kwargs = parse_spec(spec, self.kind) if "(" in spec else (spec.strip(), {})
        except ValueError as exc:
            raise self.error(str(exc)) from None
        entry, argument = self._split_short(name)
        if argument:
            kwargs = {**self._positional(entry, spec, argument), **kwargs}
        return self._family_by_keyword(entry, kwargs), kwargs

    def _split_short(self, name: str) -> tuple[Entry[T], str]:
        """The entry and short-form argument of a spec's name (``jpeg:75``, ``imagefolder:X``)."""
        if ":" in name and name not in self:
            head, _, rest = name.partition(":")
            if head in self and self._family(head.strip().lower()) is None:  # a plain entry's short form: jpeg:75
                return self.entry(head), rest
            return self.lookup(name)
        family = None if name in self else self._family(name.strip().lower())
        return (family, "") if family is not None else (self.entry(name), "")

    def _family_by_keyword(self, entry: Entry[T], kwargs: dict[str, Any]) -> Entry[T]:
        """A family named by its keyword (``unet(encoder=X)`` beside a plain ``unet``), checked
        to have its argument."""
        family = entry if entry.family else self._family(entry.name)
        if family is None or (not entry.family and family.params[0] not in kwargs):
            return entry
        if family.params[0] not in kwargs:
            raise self.error(f"{self.kind} '{family.prefix}' needs {family.params[0]}=..., e.g. '{family.name}'")
        return family

    def _positional(self, entry: Entry[T], spec: str, argument: str) -> dict[str, Any]:
        values = [argument] if entry.family else [literal(a.strip()) for a in argument.split(",")]
        if len(values) > len(entry.params):
            usage = f"{entry.prefix}({', '.join(p + '=...' for p in entry.params)})"
            raise self.error(f"{self.kind} '{spec}': too many values; usage: {usage}")
        return dict(zip(entry.params, values))

    def canonical(self, spec: str) -> str:
        """The short form of ``spec``: ``imagefolder(path=X)`` → ``imagefolder:X`` for a family
        (whose builder reads the part after the colon); other names are returned as given."""
        if "(" not in spec:
            return spec
        entry, kwargs = self.parse(spec)
        if not entry.family or set(kwargs) != set(entry.params[:1]):
            return spec.strip()
        return f"{entry.prefix}:{kwargs[entry.params[0]]}"


def suggest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (difflib), or ``None`` when nothing is close."""
    close = difflib.get_close_matches(name.strip().lower(), list(known), n=1, cutoff=0.6)
    return close[0] if close else None
