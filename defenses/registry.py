"""Defense registry: ``parse_defense("jpeg:75")`` -> module, ``list_defenses()``."""
from __future__ import annotations

from typing import Callable

from attacks.registries import Registry
from defenses.base import Identity, InputDefense
from defenses.transforms import JPEG, BitDepth, GaussianBlur, MedianFilter, RandomResizePad, TVMinimization

DEFENSES: Registry[tuple[str, Callable[..., InputDefense]]] = Registry("defense")
_BUILTIN: dict[str, tuple[str, Callable[..., InputDefense]]] = {
    "none": ("", lambda: Identity()),
    "jpeg": ("QUALITY (int 1-95)", lambda q: JPEG(_int(q))),
    "median": ("KERNEL (odd int)", lambda k: MedianFilter(_int(k))),
    "blur": ("SIGMA[,KERNEL]", lambda s, k=None: GaussianBlur(_float(s), None if k is None else _int(k))),
    "bitdepth": ("BITS (int 1-8)", lambda b: BitDepth(_int(b))),
    "tv": ("WEIGHT[,ITERATIONS]", lambda w, n=30: TVMinimization(_float(w), _int(n))),
    "randpad": ("MIN_SCALE (0-1]", lambda s=0.8: RandomResizePad(_float(s))),
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
    """Add ``name`` whose builder takes the comma-separated parameter strings; refuses duplicates."""
    DEFENSES.register(name, (params, builder))


def list_defenses() -> list[str]:
    """Registered defense names with their parameter syntax, e.g. ``"jpeg:QUALITY (int 1-95)"``."""
    return [name + (f":{DEFENSES.get(name)[0]}" if DEFENSES.get(name)[0] else "") for name in DEFENSES.names()]


def parse_defense(spec: str) -> InputDefense:
    """Build a defense from ``"name[:p1[,p2]]"`` (``"jpeg:75"``, ``"blur:1.0"``, ``"none"``).

    Raises:
        ValueError: unknown name or bad parameter, as one line naming the accepted syntax.
    """
    name, _, arg = spec.strip().partition(":")
    name = name.strip().lower()
    syntax, builder = DEFENSES.get(name)
    # A path may contain commas; the denoiser takes the whole argument.
    args = [arg] if name == "denoiser" else ([a.strip() for a in arg.split(",")] if arg else [])
    try:
        return builder(*args)
    except (TypeError, ValueError, OSError) as e:
        msg = str(e) if not isinstance(e, TypeError) else "wrong number of parameters"
        usage = name + (f":{syntax}" if syntax else "")
        raise ValueError(f"bad defense {spec!r} ({msg}); usage: {usage}") from None


for _name, (_syntax, _builder) in _BUILTIN.items():
    register_defense(_name, _syntax, _builder)
