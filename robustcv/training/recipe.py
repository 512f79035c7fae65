"""Recipe: everything about training as one JSON-serializable, stably hashed dataclass."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from robustcv.arguments import SEED_MAX
from robustcv.training.kinds import ADVERSARIAL_TRAINING, OPTIMIZERS as OPTIMIZER_KINDS, SCHEDULES as SCHEDULE_KINDS
from robustcv.training.kinds import TRAINING_LOSSES

AUGMENT_POLICIES = ("none", "basic", "standard", "strong")
OPTIMIZERS = tuple(OPTIMIZER_KINDS.names())  # the choice lists come from the registries
SCHEDULES = tuple(SCHEDULE_KINDS.names())
LOSSES = tuple(TRAINING_LOSSES.names())
CLASS_WEIGHTS = ("none", "balanced")
ADV_TRAIN = tuple(ADVERSARIAL_TRAINING.names())
MONITORS = ("val_accuracy", "val_loss", "val_robust_accuracy")
DEFAULT_THRESHOLD = "0.5"
ENSEMBLE_MODES = ("seeds", "bagging")
TUNED = "tuned"


@dataclass(frozen=True)
class Recipe:
    """How a model is trained.

    Attributes:
        augment: augmentation policy (none / basic / standard / strong).
        mixup: MixUp alpha (0 disables); cutmix: CutMix alpha (0 disables).
        optimizer, lr, momentum, nesterov, weight_decay: the optimizer.
        schedule, warmup_epochs, step_size, gamma: the learning-rate schedule.
        epochs, batch_size: the loop.
        loss, label_smoothing, focal_gamma, class_weights: the objective.
        freeze, backbone_lr_scale: transfer-learning plan (see ``FreezePlan``).
        early_stopping: patience in epochs on ``monitor`` (0 disables); the best epoch is kept.
        adv_train, train_eps, train_steps, trades_beta: the training-time defense;
            distill_temperature: T of defensive distillation (``adv_train="distillation"``).
        threshold: multi-label decision threshold: a probability in (0, 1), or ``tuned`` (per
            class, the best F1 on the validation split); stored in ``model.json``.
        ensemble_mode: how the members of an ``ensemble:`` model differ: ``seeds`` (each member
            its own seed on the whole training split, the deep-ensembles default) or ``bagging``
            (its own seed and a bootstrap resample of the training split); ignored otherwise.
        seed: seeds initialization, shuffling and augmentation.
    """

    augment: str = "basic"
    mixup: float = 0.0
    cutmix: float = 0.0
    optimizer: str = "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    step_size: int = 10
    gamma: float = 0.1
    epochs: int = 15
    batch_size: int = 64
    loss: str = "ce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    class_weights: str = "none"
    freeze: str = "full"
    backbone_lr_scale: float = 0.1
    early_stopping: int = 0
    monitor: str = "val_accuracy"
    adv_train: str = "none"
    train_eps: float = 0.0
    train_steps: int = 7
    trades_beta: float = 6.0
    distill_temperature: float = 100.0
    threshold: str = DEFAULT_THRESHOLD
    ensemble_mode: str = ENSEMBLE_MODES[0]
    seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        _check_choice("augment", self.augment, AUGMENT_POLICIES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        _check_choice("adv_train", self.adv_train, ADV_TRAIN)
        _check_choice("monitor", self.monitor, MONITORS)
        _check_choice("ensemble_mode", self.ensemble_mode, ENSEMBLE_MODES)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        _check_ranges(self)
        if self.adversarial and self.train_eps <= 0:
            raise ValueError(f"--adv-train {self.adv_train} needs --train-eps > 0")
        if not self.distill_temperature > 0:
            raise ValueError(f"distill_temperature must be > 0, got {self.distill_temperature}")
        _check_threshold(self.threshold)
        if self.monitor == "val_robust_accuracy" and not self.adversarial:
            raise ValueError("--monitor val_robust_accuracy needs --adv-train (robust validation "
                             "accuracy is measured at --train-eps during adversarial training only)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hashed_dict(self) -> dict[str, Any]:
        """The fields that change what is trained: a setting of a defense not in use is left
        out, so adding one does not rename every earlier checkpoint."""
        data = self.to_dict()
        if self.adv_train != "distillation":
            data.pop("distill_temperature")
        else:
            data["distill_lr"] = "lr * sqrt(T)"  # the stages' rate since it changed: older checkpoints are stale
        if self.threshold == DEFAULT_THRESHOLD:
            data.pop("threshold")
        if self.ensemble_mode == ENSEMBLE_MODES[0]:
            data.pop("ensemble_mode")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown recipe keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    @property
    def adversarial(self) -> bool:
        """Whether training attacks its batches (distillation is a defense, but not adversarial)."""
        return self.adv_train not in ("none", "distillation")


# Lower bounds of the numeric settings (inclusive unless marked open); nan and inf are refused
# everywhere. No upper bound on the learning rate: a loss that turns non-finite stops training.
_MINIMUMS: dict[str, tuple[float, bool]] = {
    "lr": (0.0, True), "momentum": (0.0, False), "weight_decay": (0.0, False), "mixup": (0.0, False),
    "cutmix": (0.0, False), "label_smoothing": (0.0, False), "focal_gamma": (0.0, False),
    "backbone_lr_scale": (0.0, False), "gamma": (0.0, True), "train_eps": (0.0, False),
    "trades_beta": (0.0, False), "warmup_epochs": (0.0, False), "early_stopping": (0.0, False),
    "step_size": (1.0, False), "train_steps": (1.0, False), "seed": (0.0, False),
}
_MAXIMUMS = {"momentum": 1.0, "label_smoothing": 1.0, "seed": float(SEED_MAX)}
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
_TYPE_WORDS = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "True or False"}


def _check_types(recipe: "Recipe") -> None:
    """``ValueError`` naming the first setting of the wrong type (``epochs=2.5``, ``lr="0.1"``)."""
    for f in dataclasses.fields(recipe):
        value = getattr(recipe, f.name)
        wanted = _TYPES.get(str(f.type))
        if wanted and (not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted)):
            raise ValueError(f"{f.name} must be {_TYPE_WORDS[str(f.type)]}, got {value!r}")


def _check_ranges(recipe: "Recipe") -> None:
    """``ValueError`` naming the first numeric setting that is not finite or out of its range."""
    for f in dataclasses.fields(recipe):
        value = getattr(recipe, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = "--" + f.name.replace("_", "-")
        if not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number, got {value}")
        low, open_ = _MINIMUMS.get(f.name, (-math.inf, False))
        if value < low or (open_ and value == low):
            raise ValueError(f"{flag} must be {'>' if open_ else '>='} {low:g}, got {value:g}")
        if value > _MAXIMUMS.get(f.name, math.inf):
            raise ValueError(f"{flag} must be <= {_MAXIMUMS[f.name]:g}, got {value:g}")


def _check_choice(field_name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{field_name} must be one of {', '.join(choices)}; got {value!r}")


def _check_threshold(value: str) -> None:
    if value == TUNED:
        return
    try:
        probability = float(value)
    except ValueError:
        probability = float("nan")
    if not 0.0 < probability < 1.0:
        raise ValueError(f"threshold must be a probability in (0, 1) or '{TUNED}'; got {value!r}")


def spec_hash(*parts: dict[str, Any]) -> str:
    """A stable SHA-256 over canonical JSON of the given spec dicts (key order irrelevant)."""
    canonical = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
