"""robustcv's registries of what the ``attacks`` and ``defenses`` packages define.

Those packages stand alone (torch only) and keep plain catalogues; here every catalogue entry
becomes a typed :class:`robustcv.registry.Entry`: an attack with the run settings it declares, a
defense with its parameters, a natural transform with its default grid, an attack loss with the
tasks whose objective offers it.
"""
from __future__ import annotations

from dataclasses import dataclass

from attacks.base import Attack
from attacks.natural import NATURAL as NATURAL_CATALOGUE
from attacks.registry import ATTACKS as ATTACK_CATALOGUE
from defenses.registry import DEFENSES as DEFENSE_CATALOGUE, defense_params
from robustcv.errors import UserError
from robustcv.registry import Registry
from robustcv.tasks import get_task, list_tasks

ATTACKS: Registry = Registry("attack", error=UserError)
DEFENSES: Registry = Registry("defense", error=UserError)
NATURAL: Registry = Registry("natural transform", error=UserError)
ATTACK_LOSSES: Registry = Registry("attack loss", error=UserError)


@dataclass(frozen=True)
class AttackDeclarations:
    """What an attack declares about the run settings it takes (see :class:`attacks.base.Attack`).

    A peer family's builder declares only ``run_settings``; the rest keep the base class's values.
    """

    run_settings: tuple[str, ...]
    step_budget: str = Attack.step_budget
    step_share: int = Attack.step_share
    own_loss: str | None = Attack.own_loss
    untargeted_reason: str = Attack.untargeted_reason
    cascade_step: bool = Attack.cascade_step
    norms: tuple[str, ...] = Attack.norms

    @classmethod
    def of(cls, builder: object) -> "AttackDeclarations":
        """The declarations an attack class or a peer builder carries."""
        names = ("step_budget", "step_share", "own_loss", "untargeted_reason", "cascade_step", "norms")
        return cls(tuple(builder.run_settings), **{n: getattr(builder, n, getattr(Attack, n)) for n in names})


def cascade_steps() -> list[str]:
    """The attacks that declare themselves cascade steps, sorted."""
    return [entry.name for entry in ATTACKS.entries() if entry.meta["declares"].cascade_step]


def _summary(thing: object) -> str:
    return (thing.__doc__ or "").strip().splitlines()[0] if thing.__doc__ else ""


def _register_attacks() -> None:
    for name, builder in ATTACK_CATALOGUE.items():
        family = ":<" in name
        ATTACKS.register(name, builder, params=("name",) if family else (), summary=_summary(builder),
                         declares=AttackDeclarations.of(builder), native=not family)


def _register_defenses() -> None:
    for name, (syntax, builder) in DEFENSE_CATALOGUE.items():
        DEFENSES.register(name, builder, params=defense_params(name), summary=syntax, syntax=syntax)


def _register_natural() -> None:
    for name, transform in NATURAL_CATALOGUE.items():
        NATURAL.register(name, transform, summary=_summary(type(transform)), grid=tuple(transform.default_grid))


def _register_attack_losses() -> None:
    offered = {task: get_task(task).attack_losses() for task in list_tasks()}
    for name in sorted({loss for losses in offered.values() for loss in losses}):
        ATTACK_LOSSES.register(name, name, tasks=tuple(task for task, losses in offered.items() if name in losses))


_register_attacks()
_register_defenses()
_register_natural()
_register_attack_losses()
