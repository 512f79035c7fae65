"""Adversarial attacks on PyTorch models in [0, 1] pixel space (depends on torch only).

Native FGSM, PGD, APGD, FAB, Square, SegPGD, CosPGD, SEA and AutoAttack's versions share one contract
(:class:`attacks.base.Attack`):
``attack(model, x, y, eps, target=None) -> x_adv``, clipped to the eps ball and [0, 1], run in eval
mode with frozen parameters. ``get_attack`` also reaches foolbox (``foolbox:<Name>``) and ART
(``art:<Name>``) attacks, imported only then. ``eps_sweep`` attacks an ascending eps grid, survivors
only.
"""
from attacks.apgd import APGD, APGDT
from attacks.autoattack import AutoAttack
from attacks.base import Attack
from attacks.cospgd import CosPGD
from attacks.fab import FAB, FABT
from attacks.fgsm import FGSM
from attacks.frozen import eval_frozen
from attacks.norms import Norm
from attacks.pgd import PGD
from attacks.registry import get_attack, list_attacks, register_attack
from attacks.sea import SEA
from attacks.segpgd import SegPGD
from attacks.square import Square
from attacks.sweep import CountingModel, SweepResult, eps_sweep

__all__ = [
    "APGD", "APGDT", "Attack", "AutoAttack", "CosPGD", "CountingModel", "FAB", "FABT", "FGSM", "Norm", "PGD", "SEA",
    "SegPGD", "Square", "SweepResult", "eps_sweep", "eval_frozen",
    "get_attack", "list_attacks", "register_attack",
]
