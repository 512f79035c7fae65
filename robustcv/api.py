"""The Python API: what ``robustcv attack`` and ``robustcv train`` do, on the user's own model.

Example::

    import robustcv
    net = robustcv.with_normalization(my_resnet, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    results = robustcv.evaluate(net, "cifar10", data_root="data", eps=[0, 2/255, 8/255], n=200)
    results.report("reports/my_resnet")

The attack run is the CLI's own (:func:`robustcv.evaluation.orchestrator.attack_model`): the same
samples, seed, attacks and eps give the same records.
"""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from robustcv.errors import UserError

if TYPE_CHECKING:  # torch stays unimported until a function runs
    import torch
    from torch import nn

    from robustcv.data.base import DataInfo, DataSpec
    from robustcv.evaluation.config import EvalConfig
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
        from robustcv.tasks import get_task

        metric = get_task(self.run.get("task", "classification")).robust_metric
        return {r.eps: r.value for r in self.records if r.metric == metric and r.cls is None
                and r.defense == defense and r.attack == attack and not r.adaptive}

    def to_json(self, path: str | Path) -> Path:
        """Write ``results.json`` (atomically) to ``path``; returns it."""
        self.results.save(path)
        return Path(path)

    def report(self, out_dir: str | Path, *, formats: Sequence[str] = ("html", "md"),
               force: bool = False) -> dict[str, Path]:
        """Write the report ``robustcv attack`` writes (``report.html``, ``report.md``) into ``out_dir``."""
        from robustcv.report import render_report

        return render_report([self.run_dir], out_dir, formats=tuple(formats), force=force)


def evaluate(model: "nn.Module", data: Any = "digits", *, eps: Sequence[float | str] | None = None,
             headline_eps: float | None = None, attacks: Sequence[str] | None = None,
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
    from robustcv.evaluation.inputs import check_model_output

    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    picked = _eval_data(data, task, classes, num_classes, ignore_index, n, seed, data_root, image_size)
    with _restored(model):
        model = model.to(device).eval()
        check_model_output(model, picked.samples, picked.info, device)
        return _evaluate_checked(model, picked, device, out=out, force=force, show_progress=show_progress,
                                 name=name, task_settings=task_settings or {}, eps=eps, headline_eps=headline_eps,
                                 attacks=attacks, defenses=defenses, norm=norm, steps=steps, step_size=step_size,
                                 rel_step_size=rel_step_size, restarts=restarts, apgd_steps=apgd_steps,
                                 attack_loss=attack_loss, targeted=targeted, eot_samples=eot_samples,
                                 natural=natural, batch_size=batch_size, seed=seed)


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


def _evaluate_checked(model: "nn.Module", picked: Any, device: "torch.device", *, out: str | Path | None,
                      force: bool, show_progress: bool, name: str, task_settings: dict[str, Any],
                      **settings: Any) -> EvalResults:
    from robustcv.evaluation.model_card import ModelCard

    config = build_config(picked.info, n=len(picked.samples.y), task_settings=task_settings, **settings)
    card = ModelCard(name=name, info=picked.info, data=picked.spec.to_dict() if picked.spec else None,
                     task_settings=dict(task_settings))
    return run_evaluation(model, card, picked.samples, config, device=device, out=out, force=force,
                          show_progress=show_progress)


def run_evaluation(model: "nn.Module", card: Any, samples: Any, config: "EvalConfig", *, device: "torch.device",
                   out: str | Path | None, force: bool = False, show_progress: bool = False,
                   command: str = "") -> EvalResults:
    """Run the attack stage into ``out`` (claimed as the CLI claims it) or a temporary folder."""
    from robustcv.evaluation.orchestrator import attack_model
    from robustcv.outputs import OutputKind, claim_output

    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="robustcv-run-")
        run_dir = Path(tmp.name) / card.name
        run_dir.mkdir()
        results = attack_model(model, card, samples, config, run_dir, device=device, command=command,
                               show_progress=show_progress, name=card.name)
        return EvalResults(results, run_dir, tmp)
    run_dir = Path(out)
    with contextlib.ExitStack() as stack:
        claimed = stack.enter_context(claim_output(run_dir, OutputKind.RUN, force=force, option="out"))
        with claimed.staging() as staging:
            results = attack_model(model, card, samples, config, staging, device=device, command=command,
                                   show_progress=show_progress, name=run_dir.name)
    return EvalResults(results, run_dir)


def _eval_data(data: Any, task: str | None, classes: Sequence[str] | None, num_classes: int | None,
               ignore_index: int | None, n: int | None, seed: int, data_root: str, image_size: int | None):
    from robustcv.data.base import DataSpec
    from robustcv.evaluation.inputs import dataset_samples, tensor_samples
    from robustcv.tasks import get_task

    task_value = _task(task)
    if isinstance(data, (str, DataSpec)):
        spec = data if isinstance(data, DataSpec) else DataSpec(name=data, root=str(data_root), seed=seed,
                                                                 task=task_value.value, image_size=image_size)
        count = n if n is not None else get_task(spec.task).default_samples
        _check_count(count)
        return dataset_samples(spec, count, seed, classes)
    if n is not None:
        _check_count(n)
    return tensor_samples(data, task_value, classes, num_classes, ignore_index, n)


def _task(task: str | None):
    from robustcv.tasks import Task, get_task

    return Task(get_task(task or "classification").name)  # an unknown name: one line listing the tasks


def _check_count(n: int) -> None:
    if n < 1:
        raise UserError(f"n must be at least 1, got {n}")


def _eps_grid(info: "DataInfo", eps: Sequence[float | str] | None, headline_eps: float | None,
              norm: str) -> tuple[list[float], float]:
    """The eps grid (0 always on it; default: the dataset's) and the headline eps (default: the
    grid's middle when eps are given), as the CLI resolves them."""
    from robustcv.evaluation.config import resolve_eps_grid

    given = None
    if eps is not None:
        try:
            given = [float(Fraction(e)) if isinstance(e, str) else float(e) for e in eps]
        except (TypeError, ValueError, ZeroDivisionError):
            raise UserError(f"eps {list(eps)!r}: give numbers or fractions like 8/255") from None
    return resolve_eps_grid(info, norm, given, None if headline_eps is None else float(headline_eps))


def _defense_list(defenses: Sequence[str]) -> list[str]:
    """``none`` first, then each defense once, each one parsed (``UserError`` if it does not)."""
    from defenses import parse_defense

    specs = list(dict.fromkeys(["none", *defenses]))
    for spec in specs:
        try:
            parse_defense(spec)
        except ValueError as exc:
            raise UserError(f"defense {spec!r}: {exc}") from None
    return specs


def _natural_list(natural: Sequence[str] | None) -> list[str]:
    from robustcv.evaluation.config import NATURAL_KINDS

    kinds = list(NATURAL_KINDS) if natural is None else list(natural)
    unknown = set(kinds) - set(NATURAL_KINDS)
    if unknown:
        raise UserError(f"unknown natural sweep {sorted(unknown)}; choose from {', '.join(NATURAL_KINDS)}")
    return kinds


def build_config(info: "DataInfo", *, eps: Sequence[float | str] | None, headline_eps: float | None,
                 attacks: Sequence[str] | None, defenses: Sequence[str], natural: Sequence[str] | None,
                 targeted: str, n: int, task_settings: dict[str, Any], **settings: Any) -> "EvalConfig":
    """The run's ``EvalConfig`` with the CLI's defaults (eps grid, headline, the task's attacks,
    ``none`` among the defenses), checked: ``UserError`` for a setting that cannot run."""
    from robustcv.evaluation.attacking import build_attack
    from robustcv.evaluation.config import EvalConfig, check_config
    from robustcv.tasks import get_task

    grid, headline = _eps_grid(info, eps, headline_eps, settings["norm"])
    _check_targeted(targeted, info)
    attack_list = list(attacks) if attacks is not None else get_task(info.task).default_attacks(info.num_classes,
                                                                              targeted)
    config = EvalConfig(attacks=attack_list, eps=grid, headline_eps=headline, natural=_natural_list(natural),
                        defenses=_defense_list(defenses), targeted=targeted, n=n,
                        loss=settings.pop("attack_loss"), **settings)
    check_config(config)
    objective = get_task(info.task).objective(info, **task_settings)
    for name in config.attacks:
        build_attack(name, config, objective)
    return config


def _check_targeted(targeted: str, info: "DataInfo") -> None:
    from robustcv.tasks import get_task

    problem = get_task(info.task).targeted_problem(targeted, info.num_classes)
    if problem:
        raise UserError(f"targeted={problem}" if problem.startswith("'") else problem)


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
    from robustcv.training import Recipe, ensure_trained

    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise UserError(f"unknown training setting {unknown[0]!r}; Recipe has {', '.join(sorted(known))}")
    spec = Recipe(**recipe)
    data = DataSpec(name=dataset, root=str(data_root), seed=spec.seed, task=_task(task).value, image_size=image_size)
    result = ensure_trained(data, ModelSpec(name=model, weights=weights), spec, models_dir=models_dir,
                            device=device, force=force, show_progress=show_progress)
    net, _ = load_model(result.checkpoint, device=device)
    return net, result
