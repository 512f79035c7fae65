"""Attack registry: ``get_attack(name, **kw)`` for native attacks and foolbox/ART adapters."""
from __future__ import annotations

from collections.abc import Callable

from attacks.base import Attack

_REGISTRY: dict[str, type[Attack]] = {}
_PEERS = ("foolbox", "art")


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    """Class decorator adding a native attack under ``name``; a duplicate name is refused."""
    def wrap(cls: type[Attack]) -> type[Attack]:
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"an attack is already registered as {key!r}")
        _REGISTRY[key] = cls
        return cls
    return wrap


def list_attacks() -> list[str]:
    """Native attack names, sorted; peers are reached as ``foolbox:<Name>`` and ``art:<Name>``."""
    return sorted(_REGISTRY)


def get_attack(name: str, **kwargs) -> Attack:
    """Build an attack by name, passing keyword arguments to its constructor.

    ``"pgd"``, ``"fgsm"`` are native; ``"foolbox:<AttackName>"`` and ``"art:<AttackName>"``
    wrap the peer library's attack class (imported only then) behind the same ``__call__``.

    Raises:
        ValueError: unknown name (one line, listing the choices) or bad arguments.
    """
    prefix, sep, peer_name = name.partition(":")
    if sep:
        if prefix.lower() not in _PEERS or not peer_name:
            raise ValueError(f"unknown attack {name!r}; peer attacks are 'foolbox:<Name>' or 'art:<Name>'")
        from attacks import adapters

        return adapters.build(prefix.lower(), peer_name, **kwargs)
    cls = _REGISTRY.get(name.lower())
    if cls is None:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(list_attacks())}, "
                         "'foolbox:<Name>' or 'art:<Name>'")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad arguments for attack {name!r}: {exc}") from None
