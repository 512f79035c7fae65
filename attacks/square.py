"""Square: a gradient-free random search over localized square perturbations (L∞)."""
from __future__ import annotations

import math

import torch
from torch import nn

from attacks import keyed
from attacks.base import Attack
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective
from attacks.registry import register_attack


@register_attack("square")
class Square(Attack):
    r"""Square Attack, a score-based black-box attack that never reads a gradient.

    Paper: Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
    adversarial attack via random search", ECCV 2020, https://arxiv.org/abs/1912.00049.

    Distance: L∞ only. Starts from vertical stripes of ±eps; each query proposes a random
    square window set to ±eps per channel and keeps it where the objective's loss rises. The
    window's side shrinks on the paper's schedule of the fraction ``p`` of pixels changed.
    Used by the evaluation as a gradient-masking indicator: a black-box attack must not fool
    samples that the white-box attacks missed.

    Arguments:
        queries (int): loss evaluations per sample after the start. Default: ``300``.
        p_init (float): initial fraction of pixels in the square. Default: ``0.05``.
        objective (Objective | str | callable): loss to raise; ``"margin"`` as in the paper.
            Default: ``"margin"``.
        early_stop (bool): stop querying a sample once it is fooled. Default: ``True``.
        seed (int | None): seeds the search; ``None`` uses the global RNG. Default: ``None``.

    Shape:
        - x: [B, C, H, W] floating point in [0, 1]; y: what the objective takes.
        - output: like ``x``, within eps (L∞) and in [0, 1].

    Example:
        >>> x_adv = Square(queries=500, seed=0)(model, x, y, eps=8 / 255)
    """

    run_settings = ("seed",)  # black-box, untargeted, L-inf only

    def __init__(self, queries: int = 300, p_init: float = 0.05, objective: Objective | str | LossFn = "margin",
                 early_stop: bool = True, seed: int | None = None, norm: Norm | str = "linf") -> None:
        super().__init__(norm=norm, objective=objective, targeted=False, seed=seed)
        if self.norm is not Norm.LINF:
            raise ValueError("square is implemented for the L∞ norm only")
        if int(queries) < 1 or not 0 < float(p_init) <= 1:
            raise ValueError(f"queries must be >= 1 and p_init in (0, 1], got {queries}, {p_init}")
        self.queries, self.p_init, self.early_stop = int(queries), float(p_init), bool(early_stop)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        with torch.no_grad():
            stripes = keyed.rand((x.shape[0], x.shape[1], 1, x.shape[3]), generator, x.device, x.dtype)
            best = (x + eps * torch.where(stripes < 0.5, -1.0, 1.0)).clamp(0, 1)
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
        return best

    def _score(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return self.objective.loss(logits, labels), self.objective.success(logits, labels, False)

    def _propose(self, x: torch.Tensor, current: torch.Tensor, eps: float, step: int, generator) -> torch.Tensor:
        """``current`` with one random square window per sample set to ±eps around ``x``."""
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
        """The paper's piecewise-constant schedule of ``p`` (rescaled to 10 000 queries)."""
        scaled = int(step / self.queries * 10000)
        halvings = sum(scaled > t for t in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
        return self.p_init / 2 ** halvings

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "queries": self.queries, "p_init": self.p_init, "seed": self.seed}
