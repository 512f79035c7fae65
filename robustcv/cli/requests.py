"""``robustcv attack``'s flags turned into a :class:`~robustcv.request.Request`, and flags that
cannot go together refused (the resolver, :mod:`robustcv.plan`, does every other check)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import click

from robustcv.cli.options import RECIPE_KEYS, given
from robustcv.plan import (PlanError, check_attack_offered, check_protocol_request, check_task_protocol,
                           check_task_targeting, resolve)
from robustcv.request import HEADLINE, Request, parse_eps_text, parse_fraction, split_names
from robustcv.tasks import DEFAULT_TASK, get_task

DEFAULT_ATTACKS = ",".join(get_task(DEFAULT_TASK).default_attacks(10))  # --help shows them

# With --checkpoint the checkpoint's model.json fixes these; given on the command line, they
# would be ignored without a word. (--seed stays: it seeds the attacks too; --task is checked
# against the checkpoint's task once its model.json is read.)
CHECKPOINT_FIXES = ("dataset", "data_root", "val_fraction", "test_fraction", "image_size", "model_name",
                    "weights", "hidden", "dropout", "input_size") + tuple(k for k in RECIPE_KEYS if k != "seed")

# With --model-file the file is the model: model and training flags would be ignored.
MODEL_FILE_FIXES = ("checkpoint", "model_name", "weights", "hidden", "dropout", "input_size") + tuple(
    k for k in RECIPE_KEYS if k != "seed")


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return split_names(text)


def parse_eps_list(text: str) -> list[float]:
    """``"0,1/255,2/255"`` → floats; ``click.BadParameter`` on a bad or empty entry (``","``, ``"0,,1"``)."""
    try:
        return list(parse_eps_text(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--eps") from None


def request_from(params: dict[str, Any]) -> Request:
    """The attack flags as a request (a flag left at its default: ``None``, the resolver's default)."""
    natural = params["natural_text"].strip()
    return Request(
        task=params["task"] if given("task") else None, attacks=_attacks(params["attack_names"]),
        protocol=params["protocol"],
        defenses=tuple(split_list(params["defense_text"])) or None,
        natural=() if natural == "none" else tuple(split_list(natural)),
        eps=tuple(parse_eps_list(params["eps_text"])) if params["eps_text"] else None,
        headline_eps=params["headline_eps"], norm=params["norm"], targeted=params["targeted"],
        n=params["n"] if _n_given() else None, steps=params["steps"], step_size=params["step_size"],
        rel_step_size=params["rel_step_size"], restarts=params["restarts"], apgd_steps=params["apgd_steps"],
        attack_loss=params["attack_loss"], eot_samples=params["eot_samples"], batch_size=params["eval_batch_size"],
        seed=params["seed"], save_adversarials=_save_eps(params["save_adversarials"]))


def plan_from(params: dict[str, Any], meta: Any):
    """The run's ``EvalConfig`` for the flags and the model's metadata; a refused setting is
    ``click.BadParameter`` on its flag."""
    with on_flag():
        check_task_targeting(meta.data_info.task, params["targeted"])  # --checkpoint: the model's own task
        return resolve(request_from(params), meta.data_info, meta.task_settings)


def check_task_flags(params: dict[str, Any]) -> None:
    """``--targeted``, an ``--attack`` or a ``--protocol`` the ``--task`` never runs, or ``--protocol``
    beside ``--attack``: one line, before any training. With ``--checkpoint`` or ``--model-file``
    the model's own task decides, once it is read."""
    with on_flag():
        if params["protocol"] is not None:
            check_protocol_request(params["protocol"], _attacks(params["attack_names"]), params["targeted"])
    if params["checkpoint"] or params["model_file"]:
        return
    with on_flag():
        check_task_targeting(params["task"], params["targeted"])
        if params["protocol"] is not None:
            check_task_protocol(params["task"], params["protocol"])
        for spec in _attacks(params["attack_names"]) or ():
            check_attack_offered(spec, get_task(params["task"]))


@contextlib.contextmanager
def on_flag() -> Iterator[None]:
    """Turn a :class:`~robustcv.plan.PlanError` into ``click.BadParameter`` on its flag."""
    try:
        yield
    except PlanError as error:
        raise click.BadParameter(error.detail, param_hint=error.option) from None


def refuse_ignored_flags(params: dict[str, Any]) -> None:
    """``click.UsageError`` for model, data or training flags given beside ``--checkpoint``
    (model and training flags beside ``--model-file``)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return
    if params["classes_text"] is not None and not params["model_file"]:
        raise click.UsageError("--classes applies to --model-file only (a checkpoint's model.json names its classes)")
    if params["model_file"]:
        flags = [p.opts[0] for p in ctx.command.params if p.name in MODEL_FILE_FIXES and given(p.name)]
        if flags:
            raise click.UsageError(f"{', '.join(flags)} cannot go with --model-file (the file is the model, "
                                   "already trained); drop the flag or the --model-file")
        return
    if not params["checkpoint"]:
        return
    flags = [p.opts[0] for p in ctx.command.params if p.name in CHECKPOINT_FIXES and given(p.name)]
    if flags:
        raise click.UsageError(f"{', '.join(flags)} would be ignored with --checkpoint (its model.json fixes the "
                               "model, the data and the training); drop the flag or the --checkpoint")


def _attacks(text: str) -> tuple[str, ...] | None:
    """``--attack``; its default (the classification list --help shows) stands for the task's."""
    from attacks.specs import split_attack_list

    if text == DEFAULT_ATTACKS:
        return None
    attacks = split_attack_list(text)
    if not attacks:
        raise click.BadParameter(f"{text!r} names no attack; e.g. fgsm,pgd", param_hint="--attack")
    return tuple(attacks)


def _n_given() -> bool:
    """``--n`` set anywhere but its default (a config file counts): otherwise the task's count."""
    ctx = click.get_current_context(silent=True)
    return ctx is None or ctx.get_parameter_source("n") is not click.core.ParameterSource.DEFAULT


def _save_eps(text: str | None) -> float | str | None:
    """``--save-adversarials``: None (off), the headline eps (flag alone) or a fraction."""
    if text is None or text == HEADLINE:
        return text
    try:
        return parse_fraction(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--save-adversarials") from None
