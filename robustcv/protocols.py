"""The field's evaluation protocols by name: what ``--protocol NAME`` runs instead of ``--attack``.

A protocol is a named composite attack reproducing a published evaluation exactly:
``autoattack`` (versions ``standard``, ``plus``, ``rand``; ``autoattack:plus`` or
``autoattack(version=plus)``) runs AutoAttack as ``pyautoattack`` 0.2.0 configures it for the
run's norm; ``sea`` runs SEA on segmenters. The run's records carry the composite's attack name
(``autoattack-standard``) and its config the protocol's label, which the report quotes.

Example:
    >>> choose_protocol("autoattack:rand", info, "linf").label
    'AutoAttack (rand, L∞)'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attacks.sea import member_specs
from robustcv.errors import UserError
from robustcv.registry import Entry, Registry
from robustcv.tasks import get_task

PROTOCOLS: Registry = Registry("protocol", error=UserError)
NORM_LABELS = {"linf": "L∞", "l2": "L2", "l1": "L1"}


@dataclass(frozen=True)
class ProtocolChoice:
    """A resolved ``--protocol``: the attacks that run it and how the report names it.

    Attributes:
        spec: the protocol as canonical text (``autoattack:standard``).
        attacks: the attack specs the run gets: one registered composite (``autoattack-standard``),
            or SEA's three single-loss runs, whose per-image worst case the segmentation task folds
            greedily for the dataset's mIoU (SEA as published; one attack sees a batch only).
        label: the protocol, version and norm in words (``AutoAttack (standard, L∞)``).
    """

    spec: str
    attacks: tuple[str, ...]
    label: str


def _autoattack_classes(version: str) -> int:
    from attacks.autoattack import min_classes

    return min_classes(version)


def _autoattack_versions() -> tuple[str, ...]:
    from attacks.autoattack import VERSIONS

    return VERSIONS


# An entry's builder: the specs of the attacks that run it ({version}: the chosen version).
PROTOCOLS.register("autoattack", ("autoattack-{version}",), tasks=("classification",), params=("version",),
                   summary="AutoAttack (Croce & Hein 2020) as pyautoattack 0.2.0 runs it: standard, plus, rand",
                   title="AutoAttack", versions=_autoattack_versions(), default_version="standard",
                   min_classes=_autoattack_classes)
PROTOCOLS.register("sea", tuple(member_specs()), tasks=("segmentation",),
                   summary="SEA (Croce, Singh & Hein 2024): the worst case of three APGD losses per image",
                   title="SEA", versions=(), default_version="", min_classes=lambda version: 2)


def protocol_entry(spec: str) -> tuple[Entry, str]:
    """The registry entry and the version of ``spec`` (``NAME``, ``NAME:VERSION``, ``NAME(version=V)``).

    Raises:
        UserError: an unknown protocol, version or argument (one line).
    """
    entry, kwargs = PROTOCOLS.parse(spec)
    versions = entry.meta["versions"]
    version = str(kwargs.pop("version", entry.meta["default_version"]))
    if kwargs:
        raise UserError(f"protocol {spec!r}: unknown argument {sorted(kwargs)[0]!r}; {_usage(entry)}")
    if version not in versions and (versions or version):
        raise UserError(f"protocol {spec!r}: unknown version {version!r}; {_usage(entry)}")
    return entry, version


def _usage(entry: Entry) -> str:
    versions = entry.meta["versions"]
    if not versions:
        return f"'{entry.name}' takes no version"
    return "choose " + ", ".join(f"{entry.name}:{v}" for v in versions)


def check_protocol_task(spec: str, task: str) -> None:
    """Refuse ``spec`` for a task it does not serve, naming what the task offers instead."""
    entry, _ = protocol_entry(spec)
    if not entry.serves(task):
        served = ", ".join(str(t) for t in entry.tasks)
        raise UserError(f"protocol '{entry.name}' is for {served} models, not {task}; "
                        f"{_offered(task, 1 << 30)}")


def choose_protocol(spec: str, info: Any, norm: str) -> ProtocolChoice:
    """What ``--protocol spec`` runs for the model ``info`` describes, in the run's ``norm``.

    Raises:
        UserError: unknown protocol or version, a task it does not serve, or a model with too few
            classes (one line naming what is offered instead).
    """
    entry, version = protocol_entry(spec)
    check_protocol_task(spec, info.task)
    needed = entry.meta["min_classes"](version)
    if info.num_classes < needed:
        fits = [f"{entry.name}:{v}" for v in entry.meta["versions"] if entry.meta["min_classes"](v) <= info.num_classes]
        instead = f"use --protocol {' or '.join(fits)}" if fits else _offered(info.task, info.num_classes, entry.name)
        raise UserError(f"protocol '{entry.name}{':' + version if version else ''}' needs a model with at least "
                        f"{needed} classes (its DLR losses), this one has {info.num_classes}; {instead}")
    canonical = f"{entry.name}:{version}" if version else entry.name
    title = entry.meta["title"]
    words = ", ".join(filter(None, (version, NORM_LABELS.get(norm, norm))))
    return ProtocolChoice(canonical, tuple(spec.format(version=version) for spec in entry.builder),
                          f"{title} ({words})")


def _offered(task: str, num_classes: int, besides: str = "") -> str:
    """What a run on ``task`` offers instead of a refused protocol: its other protocols, else its attacks."""
    protocols = [e.name for e in PROTOCOLS.entries(task) if e.name != besides]
    if protocols:
        return f"for {task} use --protocol {' or '.join(protocols)}"
    attacks = ", ".join(get_task(task).default_attacks(max(num_classes, 2)))
    return f"use --attack instead (default for {task}: {attacks})"
