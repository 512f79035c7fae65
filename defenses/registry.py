"""Defense catalogue: ``parse_defense("jpeg(quality=75)")`` or ``parse_defense("jpeg:75")`` -> module.

A builder takes the defense's parameters by name (``quality``, ``kernel``...); the short form
``name:a,b`` fills them in order. robustcv registers every entry as a typed entry of its own
registry; this catalogue serves standalone use.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from attacks.registries import add, lookup
from attacks.specs import parse_spec
from defenses.base import Identity, InputDefense
from defenses.transforms import JPEG, BitDepth, GaussianBlur, MedianFilter, RandomResizePad, TVMinimization

DEFENSES: dict[str, tuple[str, Callable[..., InputDefense]]] = {}
"""Name → (parameter syntax of the short form, builder taking the parameters by name)."""
_BUILTIN: dict[str, tuple[str, Callable[..., InputDefense]]] = {
    "none": ("", lambda: Identity()),
    "jpeg": ("QUALITY (int 1-95)", lambda quality: JPEG(_int(quality))),
    "median": ("KERNEL (odd int)", lambda kernel: MedianFilter(_int(kernel))),
    "blur": ("SIGMA[,KERNEL]",
             lambda sigma, kernel=None: GaussianBlur(_float(sigma), None if kernel is None else _int(kernel))),
    "bitdepth": ("BITS (int 1-8)", lambda bits: BitDepth(_int(bits))),
    "tv": ("WEIGHT[,ITERATIONS]", lambda weight, iterations=30: TVMinimization(_float(weight), _int(iterations))),
    "randpad": ("MIN_SCALE (0-1]", lambda min_scale=0.8: RandomResizePad(_float(min_scale))),
    "denoiser": ("PATH (dir or .safetensors)", lambda path: _load_denoiser(path)),
}


def _int(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"expected an integer, got {v!r}") from None


def _float(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise ValueError(f"expected a number, got {v!r}") from None


def _load_denoiser(path: str) -> InputDefense:
    from defenses.denoiser import load_denoiser

    return load_denoiser(path)


def register_defense(name: str, params: str, builder: Callable[..., InputDefense]) -> None:
    """Add ``name`` whose builder takes its parameters by name (the short form's comma-separated
    strings fill them in order); ``params`` is the short form's syntax. Refuses duplicates."""
    add(DEFENSES, name, (params, builder))


def defense_params(name: str) -> tuple[str, ...]:
    """The parameter names of a registered defense's builder, in order."""
    return tuple(inspect.signature(lookup(DEFENSES, name, "defense")[1][1]).parameters)


def list_defenses() -> list[str]:
    """Registered defense names with their parameter syntax, e.g. ``"jpeg:QUALITY (int 1-95)"``."""
    return [name + (f":{DEFENSES[name][0]}" if DEFENSES[name][0] else "") for name in sorted(DEFENSES)]


def parse_defense(spec: str) -> InputDefense:
    """Build a defense from ``"name(key=value, ...)"`` or the short form ``"name[:p1[,p2]]"``
    (``"jpeg(quality=75)"``, ``"jpeg:75"``, ``"blur:1.0"``, ``"none"``).

    Raises:
        ValueError: unknown name or bad parameter, as one line naming the accepted syntax.
    """
    name, args, kwargs = _split(spec)
    syntax, builder = lookup(DEFENSES, name, "defense")[1]
    try:
        return builder(*args, **kwargs)
    except (TypeError, ValueError, OSError) as e:
        msg = str(e) if not isinstance(e, TypeError) else "wrong number of parameters"
        usage = name + (f":{syntax}" if syntax else "")
        raise ValueError(f"bad defense {spec!r} ({msg}); usage: {usage}") from None


def _split(spec: str) -> tuple[str, list[str], dict[str, Any]]:
    """Name, positional and keyword parameters of either spec form."""
    if "(" in spec and ":" not in spec.partition("(")[0]:  # a short form's path may hold parentheses
        name, kwargs = parse_spec(spec, "defense")
        return name.lower(), [], kwargs
    name, _, arg = spec.strip().partition(":")
    name = name.strip().lower()
    # A path may contain commas; the denoiser takes the whole argument.
    args = [arg] if name == "denoiser" else ([a.strip() for a in arg.split(",")] if arg else [])
    return name, args, {}


for _name, (_syntax, _builder) in _BUILTIN.items():
    register_defense(_name, _syntax, _builder)
