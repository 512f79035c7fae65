"""Name -> builder registry (typed entries of :class:`robustcv.registry.Registry`), in the style
of torchvision's ``models/_api.py``. A family's ``name(key=value)`` and its short form name the
same model (``deeplabv3plus(encoder=resnet50)`` is ``deeplabv3plus:resnet50``).

A builder takes keyword-only arguments ``in_channels, num_classes, hidden, dropout, batch_norm,
input_size`` and returns a ``ClassifierNet`` (``backbone`` + ``head``); weights are loaded
afterwards through ``net.backbone.load_weights``.

A *catalog* answers names nobody registered one by one (all of torchvision's classifiers): it
lists its names and makes an entry on demand, so ``list_models()`` stays the curated set that
every test builds, while ``resolve_model`` accepts any catalog name.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, TypeVar

from torch import nn

from robustcv.errors import UserError
from robustcv.registry import Entry, Registry
from robustcv.tasks import get_task, tasks_with_head

DUAL_PREFIX = "dual:"
DUAL_PATTERN = "dual:A+B"
ENSEMBLE_PREFIX = "ensemble:"
ENSEMBLE_PATTERN = "ensemble:A+B+..."


Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)


ModelEntry = Entry
"""A registered builder and the tasks its networks can do: ``ModelEntry(name, builder, tasks)``."""

MODELS: Registry[Builder] = Registry("model", error=UserError)


@dataclass(frozen=True)
class Catalog:
    """Names resolved lazily: ``names()`` lists them, ``entry(name)`` builds one (``None``: not ours)."""

    label: str
    names: Callable[[], Iterable[str]]
    entry: Callable[[str], Optional[ModelEntry]]


CATALOGS: dict[str, Catalog] = {}


def register_catalog(label: str, names: Callable[[], Iterable[str]],
                     entry: Callable[[str], Optional[ModelEntry]]) -> None:
    """Add a catalog consulted for names the registry does not hold; refuses a duplicate label."""
    if label in CATALOGS:
        raise ValueError(f"A model catalog is already registered under the label '{label}'.")
    CATALOGS[label] = Catalog(label, names, entry)


def register_model(name: str | None = None, *, head: str = "image") -> Callable[[B], B]:
    """Register a builder under ``name`` (default: the function's name); refuses duplicates.

    ``head`` is what its networks end in: ``image`` (one logit vector per image) or ``pixel``
    (logits per pixel); the entry serves every task whose models end that way.

    Example:
        >>> @register_model("tiny")
        ... def tiny(*, in_channels, num_classes, **_): ...
    """

    def wrapper(fn: B) -> B:
        key = name if name is not None else fn.__name__
        if key.startswith((DUAL_PREFIX, ENSEMBLE_PREFIX)) or "+" in key:
            raise ValueError(f"'{key}': 'dual:', 'ensemble:' and '+' are reserved for dual models and ensembles")
        summary = (fn.__doc__ or "").strip().partition("\n")[0]
        params = (key.partition(":<")[2].rstrip(">"),) if ":<" in key else ()
        return MODELS.register(key, fn, tasks=tasks_with_head(head), params=params, summary=summary)

    return wrapper


def list_models(*, patterns: bool = True, task: str | None = None) -> list[str]:
    """Registered model names, sorted; with ``patterns`` the ``dual:A+B`` (classification) and
    ``ensemble:A+B+...`` forms are appended. ``task`` keeps only the models that offer it."""
    names = MODELS.names(task)
    if not patterns:
        return names
    dual_fits = task is None or get_task(task).head == "image"
    return names + ([DUAL_PATTERN] if dual_fits else []) + [ENSEMBLE_PATTERN]


def get_entry(name: str) -> ModelEntry:
    """The entry for ``name`` (registered or from a catalog); unknown: ``UserError``, close matches."""
    return resolve_model(name)[0]


def resolve_model(name: str) -> tuple[ModelEntry, str]:
    """``(entry, argument)``; the argument is a family's part after the colon (``""`` otherwise).

    Raises:
        UserError: an unknown name, in one line with the closest known names.
    """
    key = MODELS.canonical(name) if "(" in name and ":" not in name.partition("(")[0] else name.strip()
    if key.lower() in MODELS or ":" in key:
        return MODELS.lookup(key)
    for catalog in CATALOGS.values():
        found = catalog.entry(key.lower())
        if found is not None:
            return found, ""
    raise UserError(unknown_model_message(key))


def unknown_model_message(name: str) -> str:
    """``unknown model 'X'; did you mean A, B?`` over registered and catalog names."""
    known = MODELS.names() + [n for c in CATALOGS.values() for n in c.names()]
    close = difflib.get_close_matches(name.lower(), known, n=4, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "no close match"
    return f"unknown model '{name}'; {hint} (`robustcv list` shows them all)"
