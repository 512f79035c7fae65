"""Option sets shared by ``train`` and ``attack``, and their conversion into specs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click
from click.core import ParameterSource

from robustcv.arguments import SEED_MAX
from robustcv.data.base import DataSpec
from robustcv.device import DEVICE_CHOICES
from robustcv.request import parse_fraction
from robustcv.tasks import get_task, list_tasks
from robustcv.training.recipe import (ADV_TRAIN, AUGMENT_POLICIES, CLASS_WEIGHTS, ENSEMBLE_MODES, LOSSES, MONITORS,
                                      OPTIMIZERS, SCHEDULES, Recipe)

_RECIPE_DEFAULTS = Recipe()


def given(name: str) -> bool:
    """Whether the option ``name`` was given on the command line (or in the environment)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                                  ParameterSource.ENVIRONMENT)


class FractionType(click.ParamType):
    """A click type accepting ``0.03`` or ``8/255``."""

    name = "fraction"

    def convert(self, value: Any, param, ctx) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_fraction(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


FRACTION = FractionType()


class ConfigCommand(click.Command):
    """A command whose ``--config FILE`` (JSON) supplies defaults: defaults < config < flags."""

    def make_context(self, info_name, args, parent=None, **extra):
        config_path = _peek_option(args, "--config")
        if config_path is not None:
            extra["default_map"] = self._config_defaults(config_path)
        return super().make_context(info_name, args, parent=parent, **extra)

    def _config_defaults(self, path: str) -> dict[str, Any]:
        """The file's keys mapped to parameter names; a key no option takes is an error.

        A key may be spelled like the long flag (``eps``, ``eval-batch-size``) or like the
        parameter (``eps_text``); click would silently ignore a ``default_map`` key it does not
        know, so a typo or a flag spelling (``--eps`` is ``eps_text`` inside) would be dropped.
        """
        names: dict[str, str] = {}
        for param in self.params:
            if not isinstance(param, click.Option) or not param.expose_value:
                continue
            names[param.name] = param.name
            for flag in param.opts:
                if flag.startswith("--"):
                    names[flag[2:].replace("-", "_")] = param.name
        mapped, unknown = {}, []
        for key, value in _read_config(path).items():
            if key in names:
                # ``"eps": [0, 0.1]`` reads naturally in JSON; the options take comma-separated text
                mapped[names[key]] = ",".join(str(v) for v in value) if isinstance(value, list) else value
            else:
                unknown.append(key)
        if unknown:
            raise click.BadParameter(f"config file {path} has unknown keys {sorted(unknown)}; keys are long "
                                     "option names without the dashes, e.g. \"n\" or \"eval-batch-size\"",
                                     param_hint="--config")
        return mapped


def _peek_option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _read_config(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.BadParameter(f"config file {path} not found", param_hint="--config") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"config file {path} is not valid JSON: {exc}", param_hint="--config") from None
    except OSError as exc:
        raise click.BadParameter(f"cannot read config file {path}: {exc.strerror}", param_hint="--config") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"config file {path} must hold a JSON object", param_hint="--config")
    return {k.replace("-", "_"): v for k, v in data.items()}


def config_option(f: Callable) -> Callable:
    return click.option("--config", type=click.Path(dir_okay=False), default=None, expose_value=False,
                        is_eager=True, help="JSON file of option defaults (flags still win).")(f)


def _stack(*decorators: Callable) -> Callable:
    def apply(f: Callable) -> Callable:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def _choice(values: tuple[str, ...]) -> click.Choice:
    return click.Choice(list(values), case_sensitive=False)


data_options = _stack(
    click.option("--task", type=_choice(tuple(list_tasks())), default="classification", show_default=True,
                 help="What the model predicts (see `robustcv list`): a class, a mask, a set of labels..."),
    click.option("--dataset", default=None, help="Dataset name (see `robustcv list`), or imagefolder:PATH "
                                                 "[default: the task's, digits for classification]."),
    click.option("--data-root", default="./data", show_default=True, help="Where on-disk datasets live."),
    click.option("--val-fraction", type=float, default=0.1, show_default=True),
    click.option("--test-fraction", type=float, default=0.2, show_default=True),
    click.option("--image-size", type=int, default=None, help="Resize images (imagefolder) to this size."),
)

model_options = _stack(
    click.option("--model", "model_name", default=None,
                 help="Model name (see `robustcv list`) [default: the task's, small_cnn for "
                      "classification]."),
    click.option("--weights", default=None, help="Pretrained weights: 'imagenet' or a local file."),
    click.option("--hidden", type=int, default=0, show_default=True, help="Hidden units in the new head (0: none)."),
    click.option("--dropout", type=float, default=0.0, show_default=True),
    click.option("--input-size", type=int, default=None,
                 help="Resize inputs to this size inside the model (default: the model's own, e.g. 224 for "
                      "ViT, 299 for inception_v3; else small images are upscaled to its minimum)."),
)

recipe_options = _stack(
    click.option("--freeze", default=_RECIPE_DEFAULTS.freeze, show_default=True,
                 help="full | head | last:N | staged:EPOCH"),
    click.option("--backbone-lr-scale", type=float, default=_RECIPE_DEFAULTS.backbone_lr_scale, show_default=True),
    click.option("--augment", type=_choice(AUGMENT_POLICIES), default=_RECIPE_DEFAULTS.augment, show_default=True),
    click.option("--mixup", type=float, default=0.0, show_default=True, help="MixUp alpha (0: off)."),
    click.option("--cutmix", type=float, default=0.0, show_default=True, help="CutMix alpha (0: off)."),
    click.option("--optimizer", type=_choice(OPTIMIZERS), default=_RECIPE_DEFAULTS.optimizer, show_default=True),
    click.option("--lr", type=float, default=_RECIPE_DEFAULTS.lr, show_default=True),
    click.option("--momentum", type=float, default=_RECIPE_DEFAULTS.momentum, show_default=True),
    click.option("--nesterov/--no-nesterov", default=False, show_default=True),
    click.option("--weight-decay", type=float, default=_RECIPE_DEFAULTS.weight_decay, show_default=True),
    click.option("--schedule", type=_choice(SCHEDULES), default=_RECIPE_DEFAULTS.schedule, show_default=True),
    click.option("--warmup-epochs", type=int, default=0, show_default=True),
    click.option("--epochs", type=click.IntRange(min=1), default=_RECIPE_DEFAULTS.epochs, show_default=True),
    click.option("--batch-size", type=click.IntRange(min=1), default=_RECIPE_DEFAULTS.batch_size, show_default=True),
    click.option("--loss", type=_choice(LOSSES), default="ce", show_default=True),
    click.option("--label-smoothing", type=click.FloatRange(0, 1), default=0.0, show_default=True),
    click.option("--focal-gamma", type=float, default=_RECIPE_DEFAULTS.focal_gamma, show_default=True),
    click.option("--class-weights", type=_choice(CLASS_WEIGHTS), default="none", show_default=True),
    click.option("--early-stopping", type=int, default=0, show_default=True, help="Patience in epochs (0: off)."),
    click.option("--monitor", type=_choice(MONITORS), default="val_accuracy", show_default=True),
    click.option("--adv-train", type=_choice(ADV_TRAIN), default="none", show_default=True,
                 help="Training-time defense."),
    click.option("--train-eps", type=FRACTION, default=0.0, help="Adversarial-training budget, e.g. 0.1 or 8/255."),
    click.option("--train-steps", type=click.IntRange(min=1), default=_RECIPE_DEFAULTS.train_steps, show_default=True),
    click.option("--trades-beta", type=float, default=_RECIPE_DEFAULTS.trades_beta, show_default=True),
    click.option("--distill-temperature", type=float, default=_RECIPE_DEFAULTS.distill_temperature,
                 show_default=True, help="Temperature of --adv-train distillation."),
    click.option("--threshold", default=_RECIPE_DEFAULTS.threshold, show_default=True,
                 help="Multi-label decision threshold: a probability, or 'tuned' (per class, best F1 on validation)."),
    click.option("--ensemble-mode", type=_choice(ENSEMBLE_MODES), default=ENSEMBLE_MODES[0], show_default=True,
                 help="How the members of --model ensemble:A+B+... differ: their seeds, or seeds and a bootstrap "
                      "resample of the training split (bagging)."),
    click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True),
)

run_options = _stack(
    click.option("--device", type=_choice(DEVICE_CHOICES), default="auto", show_default=True),
    click.option("--models-dir", type=click.Path(file_okay=False), default="./models", show_default=True),
    click.option("--force", is_flag=True, help="Replace existing outputs."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
)

RECIPE_KEYS = ("freeze", "backbone_lr_scale", "augment", "mixup", "cutmix", "optimizer", "lr", "momentum",
                "nesterov", "weight_decay", "schedule", "warmup_epochs", "epochs", "batch_size", "loss",
                "label_smoothing", "focal_gamma", "class_weights", "early_stopping", "monitor", "adv_train",
                "train_eps", "train_steps", "trades_beta", "distill_temperature", "threshold", "ensemble_mode", "seed")


def data_spec_from(params: dict[str, Any]) -> DataSpec:
    return DataSpec(name=params["dataset"] or get_task(params["task"]).default_dataset, root=params["data_root"],
                    val_fraction=params["val_fraction"], test_fraction=params["test_fraction"], seed=params["seed"],
                    task=params["task"], image_size=params["image_size"])


def model_spec_from(params: dict[str, Any]):
    from robustcv.models import ModelSpec

    return ModelSpec(name=params["model_name"] or get_task(params["task"]).default_model, weights=params["weights"],
                     hidden=params["hidden"],
                     dropout=params["dropout"], input_size=params["input_size"])


def recipe_from(params: dict[str, Any]) -> Recipe:
    from robustcv.models.ensemble import is_ensemble

    values = {key: params[key] for key in RECIPE_KEYS}
    if values["ensemble_mode"] != ENSEMBLE_MODES[0] and not is_ensemble(params["model_name"] or ""):
        raise click.UsageError("--ensemble-mode applies to --model ensemble:A+B+... only")
    try:
        return Recipe(**values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def seeds_option(f: Callable) -> Callable:
    """``--seeds``: a seed study (``train`` and ``attack``)."""
    return click.option("--seeds", "seeds_text", default=None,
                        help="A seed study: run the same recipe under each seed (e.g. 0-9 or 0,3,5) and report "
                             "mean ± std with every run listed.")(f)
