"""PGD: projected gradient descent with random start, restarts and per-sample early stopping."""
from __future__ import annotations

import torch
from torch import nn

from attacks import keyed, norms
from attacks.base import Attack
from attacks.norms import Norm
from attacks.objectives import LossFn, Objective
from attacks.registry import register_attack

STEP_FACTOR = 2.5  # default step = 2.5 * eps / steps (Madry et al.; robustness library)


@register_attack("pgd")
class PGD(Attack):
    r"""Projected Gradient Descent.

    Paper: Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018, https://arxiv.org/abs/1706.06083.

    Distance: L∞ or L2 (``norm``); one algorithm through the per-norm hooks in :mod:`attacks.norms`.

    Arguments:
        norm (Norm | str): ``"linf"`` or ``"l2"``. Default: ``"linf"``.
        steps (int): gradient steps per restart. Default: ``10``.
        step_size (float | None): absolute step size in pixel units; ``None`` means
            ``rel_step_size * eps`` when that is given, else ``2.5 * eps / steps``, so ``steps``
            steps can cross the ball and back. Default: ``None``.
        rel_step_size (float | None): step size as a fraction of each call's eps (like foolbox's
            ``rel_stepsize``); it follows eps through a sweep. Default: ``None``.
        random_start (bool): start uniformly inside the eps ball. Default: ``True``.
        start_sigma (float | None): instead, start at ``x + start_sigma * N(0, 1)`` projected to
            the ball (TRADES' near-zero start, 0.001). Default: ``None``.
        restarts (int): independent runs; per sample the best is kept (a success, else the
            highest loss, lowest when targeted, or the objective's ``selection_score``). Samples
            already fooled are not restarted. Default: ``1``.
        objective (Objective | str | callable): the task objective (loss, success test); a string
            names a classification loss: ``"ce"``, ``"margin"`` (CW logit margin), ``"dlr"``.
            Default: ``"ce"``.
        targeted (bool): minimize the loss toward ``target``. Default: ``False``.
        early_stop (bool): freeze a sample at the first iterate that fools the model and spend
            no more forward/backward passes on it (only the active subset is computed). ``False``
            spends exactly ``steps`` forward+backward passes per restart (adversarial training).
            Default: ``True``.
        seed (int | None): seeds the random start per call; ``None`` uses the global RNG. Default: ``None``.

    Shape:
        - model: images in [0, 1] -> logits [B, K] (or [B, K, H, W] for segmentation).
        - x: [B, C, H, W] floating point in [0, 1].
        - y, target: what the objective takes: [B] long, [B, H, W] masks or [B, K] 0/1 vectors.
        - eps: float >= 0 in pixel units.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> attack = PGD(norm="linf", steps=10, seed=0)
        >>> x_adv = attack(model, x, y, eps=8 / 255)
    """

    run_settings = ("norm", "objective", "targeted", "steps", "step_size", "rel_step_size", "restarts", "seed",
                    "early_stop")
    norms = ("linf", "l2")  # a dense L1 step would not be the steepest ascent of the L1 ball

    def __init__(self, norm: Norm | str = "linf", steps: int = 10, step_size: float | None = None,
                 rel_step_size: float | None = None, random_start: bool = True, restarts: int = 1,
                 objective: Objective | str | LossFn = "ce", targeted: bool = False, early_stop: bool = True,
                 seed: int | None = None, start_sigma: float | None = None) -> None:
        super().__init__(norm=norm, objective=objective, targeted=targeted, seed=seed)
        if int(steps) < 1 or int(restarts) < 1:
            raise ValueError(f"steps and restarts must be >= 1, got steps={steps}, restarts={restarts}")
        for name, value in (("step_size", step_size), ("rel_step_size", rel_step_size)):
            if value is not None and not float(value) > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")
        self.steps, self.restarts = int(steps), int(restarts)
        self.step_size = None if step_size is None else float(step_size)
        self.rel_step_size = None if rel_step_size is None else float(rel_step_size)
        self.random_start, self.early_stop = bool(random_start), bool(early_stop)
        self.start_sigma = None if start_sigma is None else float(start_sigma)

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
            generator: torch.Generator | None) -> torch.Tensor:
        if self.restarts == 1:
            return self._descend(model, x, labels, eps, generator)
        best = x.clone()
        best_score = torch.full((x.shape[0],), float("-inf"), device=x.device, dtype=x.dtype)
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            idx = (~fooled).nonzero().squeeze(1) if self.early_stop else torch.arange(x.shape[0], device=x.device)
            if idx.numel() == 0:
                break
            x_r = self._descend(model, x[idx], labels[idx], eps, keyed.subset(generator, idx))
            with torch.no_grad():
                logits = model(x_r)
                won = self.is_success(logits, labels[idx])
                score = self.rank(logits, labels[idx])
            better = (won & ~fooled[idx]) | (~fooled[idx] & (score > best_score[idx]))
            best[idx[better]] = x_r[better]
            best_score[idx[better]] = score[better].to(x.dtype)
            fooled[idx] |= won
        return best

    def _descend(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float,
                 generator: torch.Generator | None) -> torch.Tensor:
        """One PGD run. Works on the compacted active subset; fooled samples are written out."""
        step = self.step_for(eps)
        out, idx, x0, lab = x.clone(), None, x, labels
        xa = self._start(x0, eps, generator)
        # L-inf: the eps ball intersected with [0, 1] is a box, computed once.
        box = ((x0 - eps).clamp_(min=0.0), (x0 + eps).clamp_(max=1.0)) if self.norm is Norm.LINF else None
        for t in range(self.steps):  # t = 0..T-1 is the paper's step t + 1, so progress is (step - 1) / T
            xa = xa.detach().requires_grad_(True)
            logits = model(xa)
            grad, = torch.autograd.grad(self.loss_fn(logits, lab, progress=t / self.steps).sum(), xa)
            xa = xa.detach()
            if self.early_stop:
                done = self.is_success(logits.detach(), lab)
                if done.any():
                    idx = torch.arange(x.shape[0], device=x.device) if idx is None else idx
                    out[idx[done]] = xa[done]
                    keep = ~done
                    idx, xa, x0, lab, grad = idx[keep], xa[keep], x0[keep], lab[keep], grad[keep]
                    box = None if box is None else (box[0][keep], box[1][keep])
                    if idx.numel() == 0:
                        return out
            xa = self._step(xa, x0, grad, eps, step) if box is None else self._box_step(xa, grad, box, step)
        if idx is None:
            return xa
        out[idx] = xa
        return out

    def _start(self, x0: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
        """The first iterate; a fresh tensor either way (stepped in place, never the caller's ``x``)."""
        if self.start_sigma is not None:
            noise = keyed.randn(x0.shape, generator, device=x0.device, dtype=x0.dtype)
            return (x0 + norms.project(self.norm, self.start_sigma * noise, eps)).clamp_(0.0, 1.0)
        if self.random_start:
            return (x0 + norms.random_start(self.norm, x0, eps, generator)).clamp(0.0, 1.0)
        return x0.clone()

    def _step(self, xa: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor, eps: float,
              step: float) -> torch.Tensor:
        """Ascend (descend when targeted) along the normalized gradient, then project."""
        direction = norms.normalize(self.norm, grad)
        xa = xa - step * direction if self.targeted else xa + step * direction
        return (x0 + norms.project(self.norm, xa - x0, eps)).clamp_(0.0, 1.0)

    def step_for(self, eps: float) -> float:
        """The step size used at ``eps``."""
        if self.step_size is not None:
            return self.step_size
        if self.rel_step_size is not None:
            return self.rel_step_size * eps
        return STEP_FACTOR * eps / self.steps

    def _box_step(self, xa: torch.Tensor, grad: torch.Tensor, box: tuple[torch.Tensor, torch.Tensor],
                  step: float) -> torch.Tensor:
        """The L-inf step of ``_step`` in place: sign step, then clip to the precomputed box
        (the same point: clamping to eps around x0 and to [0, 1] is clamping to the box)."""
        xa.add_(grad.sign_(), alpha=-step if self.targeted else step)
        return torch.minimum(torch.maximum(xa, box[0], out=xa), box[1], out=xa)

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "steps": self.steps, "step_size": self.step_size,
                "rel_step_size": self.rel_step_size,
                "random_start": self.random_start, "start_sigma": self.start_sigma, "restarts": self.restarts,
                "early_stop": self.early_stop, "seed": self.seed}
