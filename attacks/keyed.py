"""Random draws keyed by (seed, sample key): a sample's noise does not depend on its batch.

Design rule 8: the same command gives the same numbers whatever the batch size or the number of
processes, because each sample's random start (and each restart's) comes from a counter-based
hash of ``(seed, stream, sample key, element)`` (splitmix64), computed with int64 tensor ops on
the sample's own device. :class:`KeyedGenerator` stands where a ``torch.Generator`` would;
:func:`rand` and :func:`randn` accept either.

Example:
    >>> g = KeyedGenerator(seed=0, keys=torch.arange(100, 164))   # samples 100..163 of the set
    >>> noise = randn((64, 3, 32, 32), g, device=x.device, dtype=x.dtype)
"""
from __future__ import annotations

import math

import torch

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 values (torch's ``>>`` is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finalizer: a bijective scramble of 64-bit integers (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ _shift_right(z, 30)) * _MUL1
    z = (z ^ _shift_right(z, 27)) * _MUL2
    return z ^ _shift_right(z, 31)


class KeyedGenerator:
    """A random source per sample: draws for sample ``keys[b]`` depend on (seed, key) only.

    Successive draws use successive streams (a counter shared with every :meth:`subset`), so a
    restart gets fresh noise, and the same restart of the same sample gets the same noise in
    any batch.

    Args:
        seed: the run's seed.
        keys: int64 ``[B]``, one key per sample of the batch (its index in the evaluated set).
    """

    def __init__(self, seed: int, keys: torch.Tensor, _counter: list[int] | None = None) -> None:
        self.seed = int(seed)
        self.keys = keys.to(torch.int64)
        self._counter = [0] if _counter is None else _counter

    def subset(self, index: torch.Tensor) -> "KeyedGenerator":
        """The generator of the samples ``index`` (the stream counter is shared)."""
        return KeyedGenerator(self.seed, self.keys[index.to(self.keys.device)], self._counter)

    def bits(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Fresh int64 hash values of ``shape`` (first dim = the samples) from the next stream."""
        stream = self._counter[0]
        self._counter[0] += 1
        base = _mix(_mix(torch.full((), _signed(self.seed * 1_000_003 + stream), dtype=torch.int64))
                    + self.keys.to(device))
        per_sample = math.prod(shape[1:])
        element = torch.arange(per_sample, device=device, dtype=torch.int64)
        return _mix(base.view(-1, 1) * 0x3C6EF372 + element.view(1, -1)).view(shape)


def _uniform(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """U[0, 1) from the top 24 bits (exact in float32)."""
    return (_shift_right(bits, 40).to(torch.float64) / float(1 << 24)).to(dtype)


def rand(shape: tuple[int, ...], generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``torch.rand`` from a ``torch.Generator`` (or None), or keyed from a :class:`KeyedGenerator`."""
    if isinstance(generator, KeyedGenerator):
        return _uniform(generator.bits(tuple(shape), device), dtype)
    return torch.rand(shape, generator=generator, device=device, dtype=dtype)


def randn(shape: tuple[int, ...], generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``torch.randn`` likewise (Box–Muller over two keyed uniforms)."""
    if not isinstance(generator, KeyedGenerator):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    u1 = _uniform(generator.bits(tuple(shape), device), torch.float64).clamp_min(1e-12)
    u2 = _uniform(generator.bits(tuple(shape), device), torch.float64)
    return (torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)).to(dtype)


def subset(generator, index: torch.Tensor):
    """The random source of the samples ``index``: a keyed generator follows its samples, a
    ``torch.Generator`` (or None) is shared."""
    return generator.subset(index) if isinstance(generator, KeyedGenerator) else generator
