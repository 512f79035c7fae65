"""Attack registry: ``get_attack(name, **kw)`` for native attacks and the peers' adapters.

Native attacks register their class; ``foolbox:<Name>``, ``art:<Name>`` and
``torchattacks:<Name>`` are families whose adapters import the peer library only when built.
"""
from __future__ import annotations

from collections.abc import Callable

from attacks.base import Attack
from attacks.registries import Registry

ATTACKS: Registry[Callable[..., Attack]] = Registry("attack")
PEERS = ("foolbox", "art", "torchattacks")


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    """Class decorator adding a native attack under ``name``; a duplicate name is refused."""
    def wrap(cls: type[Attack]) -> type[Attack]:
        ATTACKS.register(name, cls)
        return cls
    return wrap


def list_attacks() -> list[str]:
    """Native attack names and the peer families (``foolbox:<Name>``...), sorted."""
    return ATTACKS.names()


def get_attack(name: str, **kwargs) -> Attack:
    """Build an attack by name, passing keyword arguments to its constructor.

    ``"pgd"``, ``"apgd-ce"``... are native; ``"foolbox:<AttackName>"``, ``"art:<AttackName>"`` and
    ``"torchattacks:<AttackName>"`` wrap the peer library's attack behind the same ``__call__``.

    Raises:
        ValueError: unknown name (one line, listing the choices) or bad arguments.
    """
    key, builder, argument = ATTACKS.resolve(name)
    try:
        return builder(argument, **kwargs) if argument else builder(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for attack {name!r}: {exc}") from None


def _peer(library: str) -> Callable[..., Attack]:
    def build(peer_name: str, **kwargs) -> Attack:
        from attacks import adapters

        return adapters.build(library, peer_name, **kwargs)
    return build


for _library in PEERS:
    ATTACKS.register(f"{_library}:<Name>", _peer(_library))
