"""What the user asked for an attack run, before any default is filled in.

A :class:`Request` is built by the two front doors alike: the CLI from its flags, the Python API
from its arguments. ``None`` means "the default": :func:`robustcv.plan.resolve` fills each one in
from the task and the dataset, so the same request gives the same run whichever door it came in by.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

HEADLINE = "headline"  # save_adversarials: at the run's headline eps


def parse_fraction(text: str) -> float:
    """``"8/255"`` or ``"0.1"`` → float; ``ValueError`` with a readable message otherwise."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ValueError(f"{text!r} is not a number or fraction like 8/255") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def parse_eps_text(text: str) -> tuple[float, ...]:
    """``"0,1/255,2/255"`` → floats, as ``--eps`` reads them; ``ValueError`` on a bad or empty entry."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts) or not all(parts):
        raise ValueError(f"{text!r} has an empty entry; give comma-separated budgets like 0,1/255,8/255")
    return tuple(parse_fraction(part) for part in parts)


def split_names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (``--defense``, ``--natural``, ``--classes``)."""
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Request:
    """The settings of an attack run as asked (``None``: the default).

    Attributes:
        task: the task name (``None``: the dataset's, or the checkpoint's).
        attacks: attack specs as ``--attack`` takes them (``None``: the task's defaults).
        protocol: a named protocol (``autoattack``, ``autoattack:plus``, ``sea``) that runs instead
            of ``attacks`` (``None``: none; see :mod:`robustcv.protocols`).
        defenses: input-transform specs in order (``None``: only ``none``; ``none`` always runs).
        natural: natural-transformation sweeps (``None``: all of them; ``()`` for none).
        eps: the budgets in ``[0, 1]`` pixel units (``None``: the dataset's grid; 0 is added).
        headline_eps: the eps the summary quotes (``None``: the dataset's, or the middle of ``eps``).
        norm: ``linf``, ``l2`` or ``l1``.
        targeted: ``none``, ``random``, ``least-likely``, a class index, or ``SOURCE:TARGET``.
        n: samples to attack (``None``: the task's default count).
        steps, step_size, rel_step_size, restarts, apgd_steps, attack_loss, eot_samples,
            batch_size, seed: as the CLI flags of the same names.
        save_adversarials: an eps of the grid whose worst-case adversarials are saved, or
            ``"headline"`` for the headline eps (``None``: none saved).
    """

    task: str | None = None
    attacks: tuple[str, ...] | None = None
    protocol: str | None = None
    defenses: tuple[str, ...] | None = None
    natural: tuple[str, ...] | None = None
    eps: tuple[float, ...] | None = None
    headline_eps: float | None = None
    norm: str = "linf"
    targeted: str = "none"
    n: int | None = None
    steps: int = 20
    step_size: float | None = None
    rel_step_size: float = 0.25
    restarts: int = 1
    apgd_steps: int = 50
    attack_loss: str | None = None
    eot_samples: int = 8
    batch_size: int = 250
    seed: int = 0
    save_adversarials: float | str | None = None
