"""Attack catalogue: ``get_attack(name, **kw)`` for native attacks and the peers' adapters.

Native attacks register their class, which declares the run settings it takes (see
:class:`attacks.base.Attack`); ``foolbox:<Name>``, ``art:<Name>`` and ``torchattacks:<Name>`` are
families whose adapters import the peer library only when built.
"""
from __future__ import annotations

from collections.abc import Callable

from attacks.base import Attack
from attacks.registries import add, lookup

ATTACKS: dict[str, Callable[..., Attack]] = {}
"""Name → attack class (or a peer family's builder); every entry has ``run_settings``."""
PEERS = {"foolbox": ("targeted", "seed"), "art": ("norm", "targeted", "seed"), "torchattacks": ("targeted", "seed")}
"""Each peer library and the run settings its adapters take (ART takes our norm; foolbox and
torchattacks attacks carry their own)."""


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    """Class decorator adding a native attack under ``name``; a duplicate name is refused."""
    def wrap(cls: type[Attack]) -> type[Attack]:
        return add(ATTACKS, name, cls)
    return wrap


def list_attacks() -> list[str]:
    """Native attack names and the peer families (``foolbox:<Name>``...), sorted."""
    return sorted(ATTACKS)


def resolve_attack(name: str) -> tuple[str, Callable[..., Attack], str]:
    """``(catalogue name, class or builder, family argument)`` of an attack name.

    Raises:
        ValueError: unknown name (one line, listing the choices).
    """
    return lookup(ATTACKS, name, "attack")


def get_attack(name: str, **kwargs) -> Attack:
    """Build an attack by name, passing keyword arguments to its constructor.

    ``"pgd"``, ``"apgd-ce"``... are native; ``"foolbox:<AttackName>"``, ``"art:<AttackName>"`` and
    ``"torchattacks:<AttackName>"`` wrap the peer library's attack behind the same ``__call__``.

    Raises:
        ValueError: unknown name (one line, listing the choices) or bad arguments.
    """
    _, builder, argument = resolve_attack(name)
    try:
        return builder(argument, **kwargs) if argument else builder(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for attack {name!r}: {exc}") from None


def _peer(library: str, settings: tuple[str, ...]) -> Callable[..., Attack]:
    def build(peer_name: str, **kwargs) -> Attack:
        from attacks import adapters

        return adapters.build(library, peer_name, **kwargs)
    build.run_settings = settings  # type: ignore[attr-defined]  (the same declaration as a class's)
    build.__doc__ = f"An attack of the {library} library behind our contract (``{library}:<Name>``)."
    return build


for _library, _settings in PEERS.items():
    add(ATTACKS, f"{_library}:<Name>", _peer(_library, _settings))
