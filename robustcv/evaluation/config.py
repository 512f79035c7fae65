"""EvalConfig: what an attack run does, resolved from flags and written beside its results."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from robustcv.catalogues import NATURAL, cascade_steps
from robustcv.data.base import DataInfo
from robustcv.errors import UserError

if TYPE_CHECKING:
    import torch

NATURAL_KINDS = tuple(NATURAL.in_order())  # the default --natural: every registered sweep, in its order

# Default eps grids by image scale: digits/MNIST-like (dark backgrounds, 0..0.3 is the usual range)
# and natural-image data (CIFAR-like, 0..16/255).
_GRIDS = {
    ("mnist-like", "linf"): ([0.0, 0.02, 0.05, 0.1, 0.2, 0.3], 0.1),
    ("mnist-like", "l2"): ([0.0, 0.25, 0.5, 1.0, 1.5, 2.0], 1.0),
    ("natural", "linf"): ([0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255], 8 / 255),
    ("natural", "l2"): ([0.0, 0.125, 0.25, 0.5, 1.0, 2.0], 0.5),
    # L1: digits (8x8) go from ~0.97 to ~0.1 robust accuracy by eps 2 (APGD-L1, 64 samples); on
    # CIFAR-10 (32x32x3) AutoAttack's usual L1 budget is 12.
    ("mnist-like", "l1"): ([0.0, 0.5, 1.0, 2.0, 4.0], 1.0),
    ("natural", "l1"): ([0.0, 3.0, 6.0, 12.0, 24.0], 12.0),
}
NORMS = ("linf", "l2", "l1")  # the threat models a run can measure (--norm)
MNIST_LIKE_SCALE = _GRIDS[("mnist-like", "linf")][1]  # a dataset registered with this eps_scale gets that grid
SANITY_EPS = {"linf": 1.0, "l2": 100.0}  # large enough to turn any image into any other (L1: see sanity_eps)


def sanity_eps(norm: str, x: torch.Tensor) -> float:
    """An eps that turns any image into any other: L∞ 1, L2 100, L1 the image's dimension (the
    largest L1 distance within [0, 1] pixels)."""
    return SANITY_EPS[norm] if norm in SANITY_EPS else float(x[0].numel())


def default_eps_grid(info: DataInfo, norm: str) -> tuple[list[float], float]:
    """The default eps grid and headline eps for a dataset and norm: the digits' grid for a dataset
    registered with their eps scale (``register_dataset(..., eps_scale=0.1)``), else natural images'."""
    from robustcv.data.registry import dataset_eps_scale

    family = "mnist-like" if dataset_eps_scale(info.name) == MNIST_LIKE_SCALE else "natural"
    grid, headline = _GRIDS[(family, norm)]
    return list(grid), headline


def resolve_eps_grid(info: DataInfo, norm: str, eps: list[float] | None,
                     headline: float | None) -> tuple[list[float], float]:
    """The run's eps grid and headline eps: the given budgets (default: the dataset's grid) with
    0 put first, and the given headline (default: the dataset's, or the middle of given budgets)."""
    grid, default_headline = default_eps_grid(info, norm)
    if eps is not None:
        grid = list(eps)
    if grid and grid[0] != 0:
        grid = [0.0] + grid  # the clean point anchors the curve and the eps-0 sanity check
    if headline is None:
        headline = grid[len(grid) // 2] if eps is not None else default_headline
    return grid, headline


@dataclass
class EvalConfig:
    """Everything the evaluation needs besides the model.

    Attributes:
        attacks: attack names (``fgsm``, ``pgd``, ``foolbox:<Name>``, ``art:<Name>``).
        protocol: the named protocol the attacks run, in words (``AutoAttack (standard, L∞)``);
            None: the attacks were chosen one by one.
        cascade: attack names that run as cascade steps (AutoAttack's scheme): only on the
            samples every earlier attack left robust; their curves are cumulative worst cases.
        eps: ascending eps grid in [0, 1] pixel units (0 included for the clean point).
        headline_eps: the eps the summary quotes.
        norm: ``linf``, ``l2`` or ``l1``.
        steps, step_size, restarts: PGD settings; loss: the attack loss (None: the task's default).
        apgd_steps: APGD-CE/-DLR iterations (APGD-T uses half, per target class). 50 and 25 come within
            two samples of pyautoattack standard on the digits models (benchmarks/autoattack_gap.py;
            100 closes that gap at twice the APGD time); raise them for a model that needs it. With step_size None each eps steps by
            ``rel_step_size * eps``: eps/4 for PGD-20 converged where Madry's 2.5·eps/steps
            did not (on digits, 4x the steps still lowered robust accuracy by 6 points).
        targeted: ``none``, ``random``, ``least-likely`` or a class index as text.
        defenses: input-transform specs (``none``, ``jpeg:75``, ...); ``none`` always runs.
        eot_samples: transform draws per gradient for randomized defenses.
        natural: natural-transformation sweeps to run.
        n, batch_size, seed: samples evaluated, batch size, seed.
        gallery: number of examples saved.
        save_adversarials: an eps of the grid whose per-sample worst-case adversarials are saved
            (``adversarials/<defense>.safetensors``, see ``robustcv.evaluation.adversarials``);
            None: none saved.
    """

    attacks: list[str] = field(default_factory=lambda: ["fgsm", "pgd", "apgd-ce", "apgd-t"])
    protocol: str | None = None
    cascade: list[str] = field(default_factory=cascade_steps)
    eps: list[float] = field(default_factory=list)
    headline_eps: float = 0.0
    norm: str = "linf"
    steps: int = 20
    step_size: float | None = None
    rel_step_size: float = 0.25
    restarts: int = 1
    apgd_steps: int = 50
    loss: str | None = None
    targeted: str = "none"
    defenses: list[str] = field(default_factory=lambda: ["none"])
    eot_samples: int = 8
    natural: list[str] = field(default_factory=lambda: list(NATURAL_KINDS))
    n: int = 500
    batch_size: int = 250
    seed: int = 0
    gallery: int = 8
    save_adversarials: float | None = None
    progress_scale: int = dataclasses.field(default=1, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The settings that define the run (not how many processes ran it)."""
        data = dataclasses.asdict(self)
        data.pop("progress_scale")
        return data

    @property
    def headline_index(self) -> int:
        """Where the headline eps sits on the grid (``check_config`` guarantees it is there)."""
        return self.eps.index(self.headline_eps) if self.headline_eps in self.eps else len(self.eps) - 1

    @property
    def save_index(self) -> int | None:
        """Where the ``save_adversarials`` eps sits on the grid (None: nothing saved)."""
        return None if self.save_adversarials is None else self.eps.index(self.save_adversarials)


def check_config(config: EvalConfig) -> None:
    """Refuse configurations that cannot give meaningful numbers, with one line (the one place
    the eps grid and the loop sizes are validated)."""
    if not config.eps or any(not e >= 0 for e in config.eps):
        raise UserError("--eps needs non-negative values, e.g. 0,1/255,2/255,4/255,8/255")
    if config.eps != sorted(config.eps) or len(set(config.eps)) != len(config.eps):
        raise UserError("--eps values must be distinct and ascending")
    if config.norm == "linf" and config.eps[-1] > 1:
        raise UserError(f"--eps {config.eps[-1]} is larger than the whole [0, 1] pixel range")
    if config.headline_eps not in config.eps:
        raise UserError(f"headline eps {config.headline_eps:.4g} is not on the eps grid {config.eps}")
    if config.save_adversarials is not None and config.save_adversarials not in config.eps:
        raise UserError(f"--save-adversarials {config.save_adversarials:.4g} is not on the eps grid {config.eps}")
    if not config.attacks:
        raise UserError("--attack needs at least one attack, e.g. fgsm,pgd")
    if config.n < 1 or config.batch_size < 1 or config.steps < 1:
        raise UserError("--n, --batch-size and --steps must be at least 1")


def pgd_step_size(config: EvalConfig, eps: float) -> float:
    """The PGD step size the run uses at ``eps`` (absolute, or relative to eps)."""
    return config.step_size or config.rel_step_size * eps
