"""Square: a gradient-free random search over localized square perturbations (L∞, L2, L1)."""
from __future__ import annotations

import math

import torch
from torch import nn

from attacks import keyed, square_lp
from attacks.base import Attack
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective
from attacks.registry import register_attack

AUTOATTACK_SETTINGS = {"queries": 5000, "p_init": 0.8, "rescale_schedule": False, "restarts": 1}
"""Square as AutoAttack runs it (``autoattack.py``: SquareAttack(p_init=.8, n_queries=5000,
n_restarts=1, resc_schedule=False)), in each of its versions and norms."""


@register_attack("square")
class Square(Attack):
    r"""Square Attack, a score-based black-box attack that never reads a gradient.

    Paper: Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
    adversarial attack via random search", ECCV 2020, https://arxiv.org/abs/1912.00049.

    Distance: L∞, L2 or L1. L∞ starts from vertical stripes of ±eps; each query proposes a
    random square window set to ±eps per channel and keeps it where the objective's loss rises.
    L2 and L1 move the perturbation's mass between two random windows (:mod:`attacks.square_lp`;
    L1 is the variant AutoAttack runs for ``norm='L1'``). The window shrinks on the paper's
    schedule of the fraction ``p`` of pixels changed. With its defaults the evaluation uses it as
    a gradient-masking indicator (a black-box attack must not fool samples that the white-box
    attacks missed); AutoAttack's settings are :data:`AUTOATTACK_SETTINGS`.

    Arguments:
        queries (int): loss evaluations per sample and restart after the start. Default: ``300``.
        p_init (float): initial fraction of pixels in the square. Default: ``0.05``.
        objective (Objective | str | callable): loss to raise; ``"margin"`` as in the paper.
            Default: ``"margin"``.
        early_stop (bool): stop querying a sample once it is fooled. Default: ``True``.
        seed (int | None): seeds the search; ``None`` uses the global RNG. Default: ``None``.
        norm (Norm | str): ``"linf"``, ``"l2"`` or ``"l1"``. Default: ``"linf"``.
        restarts (int): searches from a fresh start for the samples still not fooled; the one
            with the highest loss is kept. Default: ``1``.
        rescale_schedule (bool): stretch the schedule of ``p`` (set for 10 000 queries) over
            ``queries``; AutoAttack runs it unstretched. Default: ``True``.

    Shape:
        - x: [B, C, H, W] floating point in [0, 1]; y: what the objective takes.
        - output: like ``x``, within eps and in [0, 1].

    Example:
        >>> x_adv = Square(queries=5000, p_init=0.8, rescale_schedule=False, seed=0)(model, x, y, eps=8 / 255)
    """

    run_settings = ("norm", "seed")  # black-box, untargeted

    def __init__(self, queries: int = 300, p_init: float = 0.05, objective: Objective | str | LossFn = "margin",
                 early_stop: bool = True, seed: int | None = None, norm: Norm | str = "linf", restarts: int = 1,
                 rescale_schedule: bool = True) -> None:
        super().__init__(norm=norm, objective=objective, targeted=False, seed=seed)
        if int(queries) < 1 or not 0 < float(p_init) <= 1 or int(restarts) < 1:
            raise ValueError(f"queries and restarts must be >= 1 and p_init in (0, 1], got {queries}, "
                             f"{restarts}, {p_init}")
        self.queries, self.p_init, self.early_stop = int(queries), float(p_init), bool(early_stop)
        self.restarts, self.rescale_schedule = int(restarts), bool(rescale_schedule)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        with torch.no_grad():
            best, best_loss, done = self._search(model, x, labels, eps, generator)
            for _ in range(1, self.restarts):
                todo = (~done).nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                found, loss, won = self._search(model, x[todo], labels[todo], eps, keyed.subset(generator, todo))
                better = loss > best_loss[todo]
                best[todo[better]], best_loss[todo[better]] = found[better], loss[better]
                done[todo[won]] = True
        return best

    def _search(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
                generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One random search: the best point per sample, its loss and whether it fools."""
        best = self._start(x, eps, generator)
        best_loss, done = self._score(model, best, labels)
        for step in range(self.queries):
            active = (~done).nonzero().squeeze(1) if self.early_stop else torch.arange(len(x), device=x.device)
            if active.numel() == 0:
                break
            proposal = self._propose(x[active], best[active], eps, step, keyed.subset(generator, active))
            loss, won = self._score(model, proposal, labels[active])
            better = loss > best_loss[active]
            best[active[better]] = proposal[better]
            best_loss[active[better]] = loss[better]
            done[active[better & won]] = True
        return best, best_loss, done

    def _start(self, x: torch.Tensor, eps: float, generator) -> torch.Tensor:
        if self.norm is not Norm.LINF:
            return square_lp.start(self.norm, x, eps, generator)
        stripes = keyed.rand((x.shape[0], x.shape[1], 1, x.shape[3]), generator, x.device, x.dtype)
        return (x + eps * torch.where(stripes < 0.5, -1.0, 1.0)).clamp(0, 1)

    def _score(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return self.objective.loss(logits, labels), self.objective.success(logits, labels, False)

    def _propose(self, x: torch.Tensor, current: torch.Tensor, eps: float, step: int, generator) -> torch.Tensor:
        """``current`` with one random square window per sample set to ±eps around ``x`` (L∞),
        or with two windows' mass moved (L2, L1)."""
        if self.norm is not Norm.LINF:
            return square_lp.propose(self.norm, x, current, eps, self._fraction(step), generator)
        b, c, h, w = x.shape
        side = max(1, min(h - 1, round(math.sqrt(self._fraction(step) * h * w))))
        corner = keyed.rand((b, 2), generator, x.device, torch.float32)
        top = (corner[:, 0] * (h - side + 1)).long().view(b, 1, 1)
        left = (corner[:, 1] * (w - side + 1)).long().view(b, 1, 1)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        window = ((rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)).unsqueeze(1)
        signs = torch.where(keyed.rand((b, c, 1, 1), generator, x.device, x.dtype) < 0.5, -1.0, 1.0)
        return torch.where(window, (x + eps * signs).clamp(0, 1), current)

    def _fraction(self, step: int) -> float:
        """The paper's piecewise-constant schedule of ``p`` (set for 10 000 queries; stretched
        over ``queries`` with ``rescale_schedule``)."""
        scaled = int(step / self.queries * 10000) if self.rescale_schedule else step
        halvings = sum(scaled > t for t in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
        return self.p_init / 2 ** halvings

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "queries": self.queries, "p_init": self.p_init, "seed": self.seed,
                "restarts": self.restarts, "rescale_schedule": self.rescale_schedule}
