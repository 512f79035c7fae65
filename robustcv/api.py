"""The Python API: what ``robustcv attack`` and ``robustcv train`` do, on the user's own model.

Example::

    import robustcv
    net = robustcv.with_normalization(my_resnet, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    results = robustcv.evaluate(net, "cifar10", data_root="data", eps=[0, 2/255, 8/255], n=200)
    results.report("reports/my_resnet")

The API builds the same :class:`~robustcv.request.Request` the CLI builds from its flags; one
resolver (:mod:`robustcv.plan`) fills in its defaults and one service (:mod:`robustcv.service`)
runs it: the same samples, seed, attacks and eps give the same records.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from robustcv.arguments import real_number, text_value, text_values, unique_names, whole_number
from robustcv.errors import UserError
from robustcv.request import Request, parse_eps_text, parse_fraction, split_names

if TYPE_CHECKING:  # torch stays unimported until a function runs
    import torch
    from torch import nn

    from robustcv.results import Record, RunResults
    from robustcv.training.trainer import TrainResult



def with_normalization(model: "nn.Module", mean: Sequence[float], std: Sequence[float]) -> "nn.Module":
    """Wrap a model that expects normalized input so that it takes ``[0, 1]`` images.

    Args:
        model: the network, fed ``(x - mean) / std``.
        mean, std: the per-channel constants it was trained with.

    Returns:
        ``Normalize -> model`` as one module (attacks and eps then live in pixel space).
    """
    from robustcv.models.wrapper import RobustModel

    if len(mean) != len(std) or not len(mean) or any(s <= 0 for s in std):
        raise UserError("mean and std need one value per channel, std positive")
    return RobustModel(model, mean, std)


@dataclasses.dataclass
class EvalResults:
    """The results of :func:`evaluate`: ``results`` (the ``RunResults`` the CLI writes to
    ``results.json``) and the run directory holding them and the gallery."""

    results: "RunResults"
    run_dir: Path
    _tmp: Any = dataclasses.field(default=None, repr=False)  # keeps a temporary run directory alive

    @property
    def records(self) -> list["Record"]:
        """The tidy records (model, defense, attack, adaptive, eps, metric, value, n, ...)."""
        return self.results.records

    @property
    def run(self) -> dict[str, Any]:
        """The ``run`` block: seed, eps grid, headline eps, task, versions, ..."""
        return self.results.run

    def robust_accuracy(self, defense: str = "none", attack: str = "worst-case") -> dict[float, float]:
        """Robust accuracy by eps for one defense and attack (default: the worst case over attacks;
        a segmenter's curve is its robust mIoU)."""
        from robustcv.tasks import DEFAULT_TASK, get_task

        metric = get_task(self.run.get("task", DEFAULT_TASK)).robust_metric
        return {r.eps: r.value for r in self.records if r.metric == metric and r.cls is None
                and r.defense == defense and r.attack == attack and not r.adaptive}

    def to_json(self, path: str | Path, *, force: bool = False) -> Path:
        """Write ``results.json`` (atomically) to ``path``; returns it.

        An existing file is replaced only with ``force`` and only when it is a robustcv
        ``results.json``: a user's own file is never overwritten (``UserError``, one line), nor is a
        write fault (a full disk, a read-only folder) a traceback.
        """
        from robustcv.outputs import one_line_faults

        target = Path(path)
        if target.is_dir() or target.is_symlink() or (target.exists() and not (force and _is_results_file(target))):
            why = "use force=True to replace it" if _is_results_file(target) else "it is not a robustcv results.json"
            raise UserError(f"{target} already exists; {why} (or choose another path)")
        with one_line_faults():
            self.results.save(target)
        return target

    def report(self, out_dir: str | Path, *, formats: Sequence[str] = ("html", "md"),
               force: bool = False) -> dict[str, Path]:
        """Write the report ``robustcv attack`` writes (``report.html``, ``report.md``) into ``out_dir``.

        The folder is claimed as ``robustcv report --out`` claims it: built in staging and swapped in
        whole; a folder holding files robustcv did not write, the working directory, its parents and
        the home folder are refused (``UserError``) even with ``force``, which replaces only an
        earlier robustcv report.
        """
        from robustcv.report import render_report

        return render_report([self.run_dir], out_dir, formats=tuple(formats), force=force, option="out_dir")


def evaluate(model: "nn.Module", data: Any = "digits", *, eps: Sequence[float | str] | None = None,
             headline_eps: float | None = None, attacks: Sequence[str] | None = None, protocol: str | None = None,
             defenses: Sequence[str] = ("none",), task: str | None = None, classes: Sequence[str] | None = None,
             num_classes: int | None = None, ignore_index: int | None = None, name: str = "model",
             n: int | None = None, seed: int = 0, norm: str = "linf", steps: int = 20,
             step_size: float | None = None, rel_step_size: float = 0.25, restarts: int = 1, apgd_steps: int = 50,
             attack_loss: str | None = None, targeted: str = "none", eot_samples: int = 8,
             natural: Sequence[str] | None = None, batch_size: int = 250, data_root: str = "./data",
             image_size: int | None = None, task_settings: dict[str, Any] | None = None,
             device: "str | torch.device" = "cpu", out: str | Path | None = None, force: bool = False,
             show_progress: bool = False) -> EvalResults:
    """Attack ``model`` across an eps grid, as ``robustcv attack`` does, and return the results.

    Args:
        model: any ``nn.Module`` taking images in ``[0, 1]`` and returning logits (``[B, K]``;
            segmenters ``[B, K, H, W]``). Wrap one that expects normalized input with
            :func:`with_normalization`.
        data: a dataset name (``digits``, ``shapes``, ``cifar10``, ``imagefolder:PATH``, ...) or
            ``DataSpec``, whose test split is drawn like the CLI's; an ``(images, labels)`` pair
            of tensors; or a DataLoader (or dataset) yielding such pairs.
        eps: ascending budgets in ``[0, 1]`` pixel units (``"8/255"`` accepted; 0 is added);
            default: the dataset's grid. headline_eps: the eps the summary quotes.
        attacks: attack names as ``--attack`` takes them (default: the task's).
        protocol: a published protocol instead of ``attacks``, as ``--protocol`` takes it
            (``autoattack``, ``autoattack:plus``, ``autoattack:rand``, ``sea``).
        defenses: input-transform defenses (``none``, ``jpeg:75``, ...; ``none`` always runs).
        task: ``classification``, ``multilabel`` or ``segmentation`` (default: the dataset's, or
            classification for tensors).
        classes, num_classes: class names or count (tensor data needs one of them).
        ignore_index: the mask value segmentation metrics skip (255 for tensor masks).
        name: the model's name in the records. n: samples (default 500, segmenters 100; tensors: all).
        natural: natural-transformation sweeps (default: all five, as the CLI; ``[]`` for none).
        seed, norm, steps, step_size, rel_step_size, restarts, apgd_steps, attack_loss, targeted,
            eot_samples, batch_size: as the CLI flags of the same names.
        data_root, image_size: where on-disk datasets live; resize for folder datasets.
        task_settings: per-task settings, e.g. ``{"thresholds": [...]}`` for a multi-label model.
        device: where to run (the model is moved there; its mode and ``requires_grad`` flags
            are given back as they came). out: run directory to write (default: a temporary one);
            force: replace an existing run there. show_progress: a progress bar.

    Returns:
        EvalResults: ``.records``, ``.to_json(path)``, ``.report(dir)``.

    Raises:
        UserError: bad data, labels, model outputs or settings (one line).
    """
    import torch

    from robustcv.device import resolve_device
    from robustcv.evaluation.inputs import check_model_output, check_model_ready
    from robustcv.plan import check_request

    request = Request(task=task, attacks=_attack_names(attacks), protocol=protocol, defenses=_run_defenses(defenses),
                      natural=_sweeps(natural), eps=_eps_values(eps), headline_eps=_headline(headline_eps), norm=norm,
                      targeted=targeted, n=n, steps=steps, step_size=step_size, rel_step_size=rel_step_size,
                      restarts=restarts, apgd_steps=apgd_steps, attack_loss=attack_loss, eot_samples=eot_samples,
                      batch_size=batch_size, seed=seed)
    check_request(request)
    _check_run_arguments(name=name, task_settings=task_settings, data_root=data_root, image_size=image_size,
                         out=out, force=force, show_progress=show_progress)
    check_model_ready(model)
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    picked = _eval_data(data, request, _class_names(classes), _optional_whole(num_classes, "num_classes", 1),
                        _optional_whole(ignore_index, "ignore_index"), str(data_root), image_size)
    with _restored(model):
        model = model.to(device).eval()
        check_model_output(model, picked.samples, picked.info, device)
        return _evaluate_checked(model, picked, request, device, out=out, force=force, show_progress=show_progress,
                                 name=name, task_settings=task_settings or {})


def _check_run_arguments(*, name: Any, task_settings: Any, data_root: Any, image_size: Any, out: Any, force: Any,
                         show_progress: Any) -> None:
    """The arguments of :func:`evaluate` the request does not hold: right type and range, or one line."""
    if not text_value(name, "name").strip():
        raise UserError("name must not be empty")
    if task_settings is not None and not isinstance(task_settings, dict):
        raise UserError(f"task_settings must be a dict, got {task_settings!r}")
    for value, label in ((data_root, "data_root"), (out, "out")):
        if value is not None and not isinstance(value, (str, Path)):
            raise UserError(f"{label} must be a path, got {value!r}")
    _optional_whole(image_size, "image_size", 1)
    for value, label in ((force, "force"), (show_progress, "show_progress")):
        if not isinstance(value, bool):
            raise UserError(f"{label} must be True or False, got {value!r}")


def _as_list(values: Any, name: str) -> list[Any]:
    if not isinstance(values, Iterable):
        raise UserError(f"{name} must be a list, got {values!r}")
    return list(values)


def _headline(value: Any) -> Any:
    """``headline_eps`` as a number (``"8/255"`` accepted, as ``--headline-eps``)."""
    if not isinstance(value, str):
        return value
    try:
        return parse_fraction(value)
    except ValueError as exc:
        raise UserError(f"headline_eps: {exc}") from None


def _optional_whole(value: Any, name: str, low: int | None = None) -> int | None:
    return None if value is None else whole_number(value, name, low)


def _class_names(classes: Any) -> tuple[str, ...] | None:
    """``classes`` as ``--classes`` takes them (``"cat,dog"`` or a list), each name once."""
    if classes is None:
        return None
    names = split_names(classes) if isinstance(classes, str) else text_values(classes, "classes")
    if not names:
        raise UserError("classes names no class; e.g. ['cat', 'dog']")
    return unique_names(names)


def _attack_names(attacks: Any) -> tuple[str, ...] | None:
    """``attacks`` as ``--attack`` takes them: ``"fgsm,pgd"`` or a list of names."""
    from attacks.specs import split_attack_list

    if attacks is None:
        return None
    return tuple(split_attack_list(attacks)) if isinstance(attacks, str) else text_values(attacks, "attacks")


def _run_defenses(defenses: Any) -> tuple[str, ...]:
    """``defenses`` as ``--defense`` takes them (``"jpeg:75,bit-depth:4"`` or a list), ``none`` first."""
    names = split_names(defenses) if isinstance(defenses, str) else text_values(defenses, "defenses")
    return tuple(dict.fromkeys(["none", *names]))  # none first, whatever the order given


def _sweeps(natural: Any) -> tuple[str, ...] | None:
    """``natural`` as ``--natural`` takes it (``"blur,noise"``, ``"none"``, or a list)."""
    if natural is None:
        return None
    if isinstance(natural, str):
        return () if natural.strip() == "none" else tuple(split_names(natural))
    return text_values(natural, "natural")


@contextlib.contextmanager
def _restored(model: "nn.Module"):
    """Give the user's model back as it came: train/eval mode and which parameters need grad
    (the run sets eval mode and freezes them)."""
    training = {m: m.training for m in model.modules()}
    grads = {p: p.requires_grad for p in model.parameters()}
    try:
        yield
    finally:
        for module, mode in training.items():
            module.training = mode
        for param, flag in grads.items():
            param.requires_grad_(flag)


def _evaluate_checked(model: "nn.Module", picked: Any, request: Request, device: "torch.device", *,
                      out: str | Path | None, force: bool, show_progress: bool, name: str,
                      task_settings: dict[str, Any]) -> EvalResults:
    """Resolve the request for the picked samples (all of them are attacked) and run it."""
    from robustcv.evaluation.model_card import ModelCard
    from robustcv.plan import resolve
    from robustcv.service import run_in_memory

    config = resolve(dataclasses.replace(request, n=len(picked.samples.y)), picked.info, task_settings)
    card = ModelCard(name=name, info=picked.info, data=picked.spec.to_dict() if picked.spec else None,
                     task_settings=dict(task_settings))
    results, run_dir, keeper = run_in_memory(model, card, picked.samples, config, device=device, out=out,
                                             force=force, show_progress=show_progress)
    return EvalResults(results, run_dir, keeper)


def _eval_data(data: Any, request: Request, classes: Sequence[str] | None, num_classes: int | None,
               ignore_index: int | None, data_root: str, image_size: int | None):
    """The samples to attack: a dataset's test samples drawn as the CLI draws them, or the given tensors."""
    from robustcv.data.base import DataSpec
    from robustcv.evaluation.inputs import dataset_samples, tensor_samples
    from robustcv.plan import sample_count

    task = _task_name(request.task)
    if isinstance(data, (str, DataSpec)):
        spec = data if isinstance(data, DataSpec) else DataSpec(name=data, root=str(data_root), seed=request.seed,
                                                                 task=task, image_size=image_size)
        return dataset_samples(spec, sample_count(request, spec.task), request.seed, classes)
    if request.n is not None:
        sample_count(request, task)  # refuses a count below 1
    return tensor_samples(data, task, classes, num_classes, ignore_index, request.n)


def _task_name(task: str | None) -> str:
    """The registered name of ``task`` (default: classification); an unknown one is one line listing the tasks."""
    from robustcv.tasks import DEFAULT_TASK, get_task

    return get_task(task or DEFAULT_TASK).name


def _eps_values(eps: Any) -> tuple[float, ...] | None:
    """The budgets as floats: ``"0,8/255"`` as ``--eps`` reads it, or a list of numbers and
    fractions (``"8/255"``); the resolver checks their range."""
    if eps is None:
        return None
    if isinstance(eps, (int, float)) and not isinstance(eps, bool):
        return (float(eps),)
    try:
        if isinstance(eps, str):
            return parse_eps_text(eps)
        return tuple(parse_fraction(e) if isinstance(e, str) else real_number(e, "eps") for e in _as_list(eps, "eps"))
    except ValueError as exc:
        raise UserError(f"eps: {exc}") from None


def train(dataset: str = "digits", model: str = "small_cnn", *, task: str = "classification",
          data_root: str = "./data", weights: str | None = None, models_dir: str | Path = "./models",
          device: "str | torch.device" = "cpu", force: bool = False, show_progress: bool = False,
          image_size: int | None = None, **recipe: Any) -> tuple["nn.Module", "TrainResult"]:
    """Train a registered model on a registered dataset unless its checkpoint exists (``robustcv train``).

    Args:
        dataset, model, task, data_root, weights, image_size: as the CLI's data and model flags.
        models_dir: where checkpoints live (train-if-absent is keyed by the specs' hash).
        force: retrain even if the checkpoint exists.
        **recipe: ``Recipe`` fields (``epochs``, ``lr``, ``batch_size``, ``adv_train``, ``seed``, ...).

    Returns:
        ``(model, result)``: the trained model in eval mode (``[0, 1]`` in, logits out) and the
        ``TrainResult`` (``checkpoint`` path, ``metadata``, ``trained``).
    """
    from robustcv.checkpoint import load_model
    from robustcv.data.base import DataSpec
    from robustcv.models.spec import ModelSpec
    from robustcv.service import train_if_absent
    from robustcv.training import Recipe

    for value, label in ((dataset, "dataset"), (model, "model"), (task, "task"), (data_root, "data_root")):
        text_value(str(value) if isinstance(value, Path) else value, label)
    _check_run_arguments(name="train", task_settings=None, data_root=data_root, image_size=image_size,
                         out=models_dir, force=force, show_progress=show_progress)
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise UserError(f"unknown training setting {unknown[0]!r}; Recipe has {', '.join(sorted(known))}")
    try:
        spec = Recipe(**recipe)
    except (TypeError, ValueError) as exc:
        raise UserError(f"training setting: {exc}") from None
    data = DataSpec(name=dataset, root=str(data_root), seed=spec.seed, task=_task_name(task), image_size=image_size)
    result = train_if_absent(data, ModelSpec(name=model, weights=weights), spec, models_dir=models_dir,
                            device=device, force=force, show_progress=show_progress)
    net, _ = load_model(result.checkpoint, device=device)
    return net, result


def _is_results_file(path: Path) -> bool:
    """Whether ``path`` is a file robustcv wrote as results.json (its schema says so)."""
    import json

    from robustcv.results import SCHEMA as RESULTS_SCHEMA

    try:
        return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("schema") == RESULTS_SCHEMA
    except (OSError, ValueError, AttributeError):
        return False
