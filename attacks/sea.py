"""SEA: the Segmentation Ensemble Attack (APGD with several per-pixel losses, worst case per image)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from attacks import norms
from attacks.apgd import MOMENTUM, checkpoints
from attacks.base import Attack
from attacks.norms import Norm
from attacks.objectives import Objective, Segmentation, as_segmentation
from attacks.registry import register_attack

DEFAULT_LOSSES = ("mce-bal", "mce", "js")  # the published SEA; "mask-sph" is the optional fourth
RADII = (2.0, 1.5, 1.0)  # each stage's radius in units of eps: a warm start from a larger ball
SHARES = (0.3, 0.3)  # the first stages' shares of the steps (rounded down); the last takes the rest
TRACK_LOSS = "ce"  # what the step-size checkpoints and the restart point follow, whatever the loss
RHO = 0.75


def stage_steps(steps: int) -> list[int]:
    """The steps of each stage: ``int(0.3 n)``, ``int(0.3 n)`` and the rest (90/90/120 of 300)."""
    first = [int(share * steps) for share in SHARES]
    return first + [steps - sum(first)]


def member_specs(losses: str | Sequence[str] = DEFAULT_LOSSES, steps: int | None = None) -> list[str]:
    """The single-loss attack specs whose per-image worst case, chosen greedily for the dataset's
    mIoU, is SEA as published: ``["sea(losses=mce-bal)", "sea(losses=mce)", "sea(losses=js)"]``."""
    extra = "" if steps is None else f", steps={int(steps)}"
    return [f"sea(losses={name}{extra})" for name in parse_losses(losses)]


def project(norm: Norm, x0: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """``x`` projected onto the ``norm`` ball of radius ``eps`` around ``x0``, then onto [0, 1]."""
    return (x0 + norms.project(norm, x - x0, eps)).clamp_(0.0, 1.0)


def parse_losses(losses: str | Sequence[str]) -> tuple[str, ...]:
    """Loss names from a sequence or a ``+``-joined string (``"mce-bal+mce+js"``)."""
    names = tuple(losses.split("+")) if isinstance(losses, str) else tuple(losses)
    if not names or not all(names):
        raise ValueError(f"losses must name at least one segmentation loss, got {losses!r}")
    return names


@dataclass
class _Track:
    """Per-image state of one stage's descent."""

    x: torch.Tensor  # current iterate
    previous: torch.Tensor  # the iterate before it (momentum)
    grad: torch.Tensor  # gradient of the attack loss at ``x``
    track: torch.Tensor  # tracked loss (CE) at ``x``
    best_x: torch.Tensor  # highest tracked loss: where a halving restarts
    best_track: torch.Tensor
    best_grad: torch.Tensor
    low_x: torch.Tensor  # fewest right pixels: what the stage returns
    low_hit: torch.Tensor
    step: torch.Tensor
    rises: torch.Tensor
    reduced: torch.Tensor  # halved at the last checkpoint
    checkpoint_best: torch.Tensor


class _Stage:
    """APGD at one radius from a given start, as SEA runs it: the attack loss gives the gradient,
    the CE over valid pixels drives the checkpoints, and the iterate with the lowest pixel
    accuracy is returned."""

    def __init__(self, model: nn.Module, norm: Norm, objective: Segmentation, track: Segmentation,
                 early_stop: bool) -> None:
        self.model, self.norm, self.objective, self.tracked = model, norm, objective, track
        self.early_stop = early_stop

    def run(self, x0: torch.Tensor, y: torch.Tensor, start: torch.Tensor, eps: float,
            steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image: the lowest-accuracy iterate of ``steps`` steps from ``start`` and its share
        of right valid pixels."""
        grad, track, hit = self._evaluate(start, y)
        s = _Track(start, start, grad, track, start.clone(), track.clone(), grad.clone(), start.clone(),
                   hit.clone(), torch.full_like(track, 2.0 * eps), torch.zeros_like(track),
                   torch.ones_like(track, dtype=torch.bool), track.clone())
        marks, last_mark = set(checkpoints(steps)), 0
        for k in range(1, steps + 1):
            if self.early_stop and bool((s.low_hit == 0).all()):
                break  # every pixel of every image is wrong: nothing is left to gain
            self._advance(s, x0, y, eps, first=k == 1, last=k == steps)
            if k in marks and k < steps:
                self._checkpoint(s, k - last_mark)
                last_mark = k
        return s.low_x, s.low_hit

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, with_grad: bool = True):
        """The attack loss's gradient (None without ``with_grad``), the tracked loss ``[B]`` and
        the share of right valid pixels ``[B]`` at ``x``."""
        with torch.enable_grad():  # also when the caller runs under torch.no_grad()
            x = x.detach().requires_grad_(with_grad)
            logits = self.model(x)
            grad = torch.autograd.grad(self.objective.loss(logits, y).sum(), x)[0] if with_grad else None
        logits = logits.detach()
        return grad, self.tracked.loss(logits, y), self.objective.hit_fraction(logits, y)

    def _advance(self, s: _Track, x0: torch.Tensor, y: torch.Tensor, eps: float, first: bool, last: bool) -> None:
        shape = (-1,) + (1,) * (x0.dim() - 1)
        z = project(self.norm, x0, s.x + s.step.view(shape) * norms.normalize(self.norm, s.grad), eps)
        if not first:
            z = project(self.norm, x0, s.x + MOMENTUM * (z - s.x) + (1 - MOMENTUM) * (s.x - s.previous), eps)
        grad, track, hit = self._evaluate(z, y, with_grad=not last)
        # Ties go to the later iterate, as in the authors' code, except at 0 (nothing left to
        # gain): an image stays at its first all-wrong point, whatever else its batch holds.
        lower = (hit < s.low_hit) | ((hit == s.low_hit) & (s.low_hit > 0))
        s.low_x[lower], s.low_hit = z[lower], torch.minimum(s.low_hit, hit)
        s.rises += (track > s.track).to(s.rises.dtype)
        better = track > s.best_track
        s.best_x[better], s.best_track[better] = z[better], track[better]
        if grad is not None:
            s.best_grad[better] = grad[better]
        s.previous, s.x, s.track = s.x, z, track
        s.grad = grad if grad is not None else s.grad

    def _checkpoint(self, s: _Track, span: int) -> None:
        """Halve the step where at most ``RHO`` of the steps since the last checkpoint raised the
        tracked loss, or where the last checkpoint did not halve and its best did not improve;
        those images go back to their best point."""
        halve = (s.rises <= RHO * span) | (~s.reduced & (s.checkpoint_best >= s.best_track))
        s.reduced, s.checkpoint_best = halve, s.best_track.clone()
        s.step[halve] /= 2
        s.x[halve], s.grad[halve] = s.best_x[halve], s.best_grad[halve]
        s.rises.zero_()


@register_attack("sea")
class SEA(Attack):
    r"""SEA, the Segmentation Ensemble Attack: APGD with each of several per-pixel losses, the
    worst result per image kept.

    Paper: Croce, Singh & Hein, "Towards Reliable Evaluation and Fast Training of Robust Semantic
    Segmentation Models", ECCV 2024, https://arxiv.org/abs/2306.12941.

    For each loss (default: the class-balanced masked CE, the masked CE and the Jensen–Shannon
    divergence, see :mod:`attacks.losses`), APGD runs ``steps`` iterations split over three
    radii, 2·eps, 1.5·eps and eps (30 %, 30 % and the rest of the steps): the first stage starts
    at a random point of the 2·eps ball, each later one from the previous stage's result
    projected onto its smaller ball, with the step reset to twice its radius. Every loss starts
    from the same random point (the authors draw one per loss), so ``sea`` equals, per image, the
    best of its single-loss runs ``sea(losses=NAME)`` under the same seed. Within a stage the
    loss gives the gradient, while the checkpoints that halve the step (and the point a halving
    restarts from) follow the CE over the valid pixels, as the authors' code does; the stage
    returns its iterate with the fewest right pixels. Per image, the loss whose final point
    leaves the fewest right pixels wins (ties: the earlier loss). The paper picks each image's
    loss greedily to lower the dataset's mIoU, which needs every image at once: evaluate each
    loss as its own attack (``sea(losses=mce)``, ...) and the segmentation task folds them with
    that rule.

    Distance: L∞ (the paper's) or L2 (``norm``), through the hooks of :mod:`attacks.norms`.

    Cost: ``steps`` forward+backward passes per image and loss (one fewer backward per stage:
    a stage's last iterate is only judged). A batch stops early only when every pixel of every
    image is already wrong.

    Arguments:
        norm (Norm | str): ``"linf"`` or ``"l2"``. Default: ``"linf"``.
        steps (int): iterations per loss over the three stages. Default: ``300``.
        losses (str | Sequence[str]): segmentation loss names, a sequence or ``+``-joined
            (``"mce-bal+mce+js+mask-sph"`` adds the paper's optional fourth). Default:
            ``("mce-bal", "mce", "js")``.
        objective (Segmentation | None): whose ``ignore_index`` and ``threshold`` to use; its
            loss is replaced by each of ``losses``. Default: ``Segmentation()``.
        early_stop (bool): stop a stage when every pixel is wrong. Default: ``True``.
        seed (int | None): seeds the random starts, per sample with keys. Default: ``None``.
        start (int): which draw of the seeded generator is the random start (``start=1``: the
            second, a restart from another point under the same seed). Default: ``0``.

    Shape:
        - model: images in [0, 1] -> logits [B, K, H, W].
        - x: [B, C, H, W] floating point in [0, 1].
        - y: [B, H, W] long masks (``ignore_index`` where void).
        - eps: float >= 0 in pixel units.
        - output: like ``x``, within eps of it and in [0, 1].

    Example:
        >>> attack = SEA(steps=300, seed=0)
        >>> x_adv = attack(segmenter, x, masks, eps=8 / 255)
    """

    run_settings = ("norm", "objective", "seed", "early_stop")
    norms = ("linf", "l2")  # its stages step as APGD does in L-inf and L2; APGD-L1 has its own sparse step
    untargeted_reason = "is untargeted by design (SEA lowers the right pixels)"

    def __init__(self, norm: Norm | str = "linf", steps: int = 300, losses: str | Sequence[str] = DEFAULT_LOSSES,
                 objective: Objective | None = None, early_stop: bool = True, seed: int | None = None,
                 start: int = 0) -> None:
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if int(start) < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        base = as_segmentation(objective, TRACK_LOSS, "sea")
        super().__init__(norm=norm, objective=base, seed=seed)
        if self.norm not in (Norm.LINF, Norm.L2):
            raise ValueError(f"sea runs in linf or l2 (the authors' APGD steps), got {self.norm.value}")
        self.steps, self.early_stop, self.start = int(steps), bool(early_stop), int(start)
        self.losses = parse_losses(losses)
        self.parts = [as_segmentation(base, name, "sea") for name in self.losses]  # refuses unknown names

    def run(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, generator) -> torch.Tensor:
        for _ in range(self.start + 1):  # the start-th draw: another point, the same seed
            start = x + norms.random_start(self.norm, x, RADII[0] * eps, generator)  # one for every loss
        best, best_hit = x.clone(), torch.full((len(x),), float("inf"), device=x.device)
        for part in self.parts:
            x_adv, hit = self.run_loss(model, x, labels, eps, start, part)
            lower = hit < best_hit
            best[lower], best_hit[lower] = x_adv[lower], hit[lower]
        return best

    def run_loss(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float, start: torch.Tensor,
                 objective: Segmentation) -> tuple[torch.Tensor, torch.Tensor]:
        """One loss's three stages from ``start`` (a point of the 2·eps ball): its final point per
        image and the share of right valid pixels there."""
        stage = _Stage(model, self.norm, objective, self.objective, self.early_stop)
        point = start
        hit = torch.ones(len(x), device=x.device)
        for radius, steps in zip(RADII, stage_steps(self.steps)):
            point = project(self.norm, x, point, radius * eps)  # the warm start, in the smaller ball
            if steps:  # the last stage always has steps: its radius is eps
                point, hit = stage.run(x, labels, point, radius * eps, steps)
        return point, hit

    def _repr_args(self) -> dict:
        return {**super()._repr_args(), "steps": self.steps, "losses": "+".join(self.losses),
                "early_stop": self.early_stop, "seed": self.seed,
                **({"start": self.start} if self.start else {})}
