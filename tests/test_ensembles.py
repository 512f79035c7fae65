"""``ensemble:A+B+...``: one module averaging its members' logits, attacked white-box through all.

Fast tests build random-initialized ensembles; the slow ones train a small digits ensemble once
(through ``robustcv attack``) and check the saved checkpoint, the member runs and the report.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from robustcv import load_model
from robustcv.checkpoint import read_metadata
from robustcv.cli import main
from robustcv.data import DataSpec, as_tensors, get_dataset
from robustcv.models import ModelSpec, build_model
from robustcv.models.ensemble import EnsembleNet, member_dirs, member_specs, parse_ensemble
from robustcv.models.wrapper import RobustModel
from robustcv.results import RunResults
from robustcv.training.ensemble import bootstrap, member_seed, member_splits
from robustcv.training.recipe import Recipe
from robustcv.training.trainer import model_spec_hash

MIXED = "ensemble:small_cnn+deep_cnn+small_cnn"


@pytest.fixture(scope="module")
def digits():
    return get_dataset(DataSpec("digits"))


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def member_models(ensemble: RobustModel, info) -> list[RobustModel]:
    """Each member of a built ensemble as a stand-alone pixel-space model (same weights)."""
    return [RobustModel(net, info.mean, info.std).eval() for net in ensemble.net.members]


# ---------------------------------------------------------------------------------------------
# the model


def test_forward_is_the_mean_of_member_logits(digits):
    model = build_model(ModelSpec(MIXED), digits.info).eval()
    x = as_tensors(digits.test)[0][:16]
    expected = torch.stack([m(x) for m in member_models(model, digits.info)]).mean(0)
    torch.testing.assert_close(model(x), expected)
    assert [type(m.net.backbone).__name__ for m in member_models(model, digits.info)] == ["ConvBackbone"] * 3


def test_input_gradient_is_the_mean_of_member_gradients(digits):
    """White-box through all: d(loss of averaged logits)/dx = mean of d(member logits . w)/dx, with
    every member's gradient non-zero and different (so no member is skipped)."""
    model = build_model(ModelSpec(MIXED), digits.info).eval()
    x, y = (t[:8] for t in as_tensors(digits.test))
    weights = torch.softmax(model(x), 1).detach() - F.one_hot(y, 10).float()  # dCE/dlogits of the ensemble

    def grad(net) -> torch.Tensor:
        x_in = x.clone().requires_grad_(True)
        (net(x_in) * weights).sum().backward()
        return x_in.grad

    x_in = x.clone().requires_grad_(True)
    F.cross_entropy(model(x_in), y, reduction="sum").backward()
    members = [grad(m) for m in member_models(model, digits.info)]
    torch.testing.assert_close(x_in.grad, torch.stack(members).mean(0), rtol=1e-4, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in members)
    assert not torch.allclose(members[0], members[1])


def test_every_member_parameter_gets_a_gradient(digits):
    model = build_model(ModelSpec("ensemble:small_cnn+small_cnn"), digits.info).eval()
    x, y = (t[:8] for t in as_tensors(digits.test))
    F.cross_entropy(model(x), y).backward()
    for i, member in enumerate(model.net.members):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in member.parameters()), i


@pytest.mark.parametrize("name, members", [
    ("ensemble:small_cnn+small_cnn", ["small_cnn", "small_cnn"]),
    ("ensemble:small_cnn+deep_cnn+resnet18", ["small_cnn", "deep_cnn", "resnet18"]),
])
def test_parse_ensemble(name, members):
    assert parse_ensemble(name) == members
    assert [s.name for s in member_specs(ModelSpec(name, hidden=7))] == members
    assert {s.hidden for s in member_specs(ModelSpec(name, hidden=7))} == {7}


@pytest.mark.parametrize("model, words", [
    ("ensemble:", ["ensemble:A+B"]),
    ("ensemble:small_cnn", ["at least two"]),
    ("ensemble:small_cnn+", ["at least two"]),
    ("ensemble:small_cnn+nonexistent", ["nonexistent"]),
    ("ensemble:small_cnn+dual:small_cnn", ["single model"]),
])
def test_bad_ensemble_is_one_line_exit_2(capsys, tmp_path, model, words):
    code, err = run_cli(capsys, "train", "--model", model, "--models-dir", tmp_path, "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), err
    assert all(w.lower() in lines[0].lower() for w in words), lines[0]


def test_ensemble_mode_needs_an_ensemble(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "--ensemble-mode", "bagging", "--models-dir", tmp_path, "--quiet")
    assert code == 2 and "ensemble" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# members' training data and seeds


def test_bootstrap_draws_with_replacement_per_member(digits):
    recipe = Recipe(ensemble_mode="bagging", seed=3)
    train = [member_splits(digits, recipe, i).train for i in range(2)]
    n = len(digits.train)
    base = digits.train.indices if hasattr(digits.train, "indices") else list(range(n))
    for subset in train:
        assert len(subset) == n
        assert set(subset.indices) <= set(base)
        assert len(set(subset.indices)) < n  # with replacement: about 63 % unique
    assert train[0].indices != train[1].indices
    again = bootstrap(digits.train, member_seed(3, 0))
    assert again.indices == train[0].indices  # keyed by (seed, member), reproducible
    x0, _ = as_tensors(train[0])
    x_all, _ = as_tensors(digits.train)
    assert torch.equal(x0[0], x_all[base.index(train[0].indices[0])])


def test_seeds_mode_keeps_the_whole_training_split(digits):
    assert member_splits(digits, Recipe(ensemble_mode="seeds"), 1) is digits


def test_member_seeds_differ_and_do_not_overlap_neighbouring_ensembles():
    seeds = {member_seed(s, i) for s in range(5) for i in range(5)}
    assert len(seeds) == 25


def test_ensemble_mode_keys_the_checkpoint_but_not_other_models():
    data, ens = DataSpec("digits"), ModelSpec("ensemble:small_cnn+small_cnn")
    assert model_spec_hash(data, ens, Recipe(ensemble_mode="bagging")) != model_spec_hash(data, ens, Recipe())
    assert "ensemble_mode" not in Recipe().hashed_dict()  # earlier checkpoints keep their names


# ---------------------------------------------------------------------------------------------
# trained end to end (slow): checkpoint, member runs, report, independent re-evaluation

ENSEMBLE = "ensemble:small_cnn+small_cnn+small_cnn"
EPS = (0.0, 0.05, 0.1, 0.2)


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    argv = ["attack", "--model", ENSEMBLE, "--epochs", "2", "--n", "60", "--attack", "fgsm,pgd",
            "--eps", ",".join(map(str, EPS)), "--natural", "none", "--quiet", "--models-dir", root / "models",
            "--out", root / "run", "--report-dir", root / "report"]
    assert main([str(a) for a in argv]) == 0
    return root


@pytest.mark.slow
def test_checkpoint_is_safetensors_and_json_and_loads_whole(attacked):
    (checkpoint,) = (attacked / "models").iterdir()
    model, meta = load_model(checkpoint)
    assert meta.model.name == ENSEMBLE and isinstance(model.net, EnsembleNet)
    files = {p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file()}
    assert {p.rsplit(".", 1)[-1] for p in files} <= {"safetensors", "json", "png"}
    members = [load_model(d)[0] for d in member_dirs(checkpoint, meta.model)]
    x = as_tensors(get_dataset(meta.data).test)[0][:32]
    torch.testing.assert_close(model(x), torch.stack([m(x) for m in members]).mean(0))
    assert read_metadata(member_dirs(checkpoint, meta.model)[0]).recipe["seed"] == member_seed(0, 0)


@pytest.mark.slow
def test_report_lists_the_ensemble_and_each_member(attacked):
    run = RunResults.load(attacked / "run" / "results.json")
    members = sorted(p.name for p in (attacked / "run" / "members").iterdir())
    assert members == [f"member-{i}-small_cnn" for i in range(3)]
    text = (attacked / "report" / "report.md").read_text().replace("\\_", "_")  # markdown escapes "_"
    for name in members + [run.models[0]["name"]]:
        assert name in text
    assert "Ensemble and its members" in text


def _fgsm(model, x, y, eps):
    x_in = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(x_in), y, reduction="sum"), x_in)
    return (x + eps * grad.sign()).clamp(0, 1)


@pytest.mark.slow
def test_recorded_robust_accuracy_equals_an_independent_fgsm_on_the_saved_ensemble(attacked):
    """Re-evaluate the saved ensemble with a hand-written FGSM on the run's samples: a sample is
    robust at eps when it is correct clean and at every grid eps up to it (design rule 4)."""
    from robustcv.evaluation.samples import select_samples

    results = RunResults.load(attacked / "run" / "results.json")
    model, meta = load_model(results.models[0]["checkpoint"])
    model.requires_grad_(False)
    samples, _ = select_samples(meta, results.run["n"], results.run["seed"])
    robust = model(samples.x).argmax(1) == samples.y
    for eps in EPS[1:]:
        robust &= model(_fgsm(model, samples.x, samples.y, eps)).argmax(1) == samples.y
        recorded = [r.value for r in results.records
                    if r.attack == "fgsm" and r.metric == "robust_accuracy" and r.cls is None and r.eps == eps]
        assert recorded == [pytest.approx(robust.float().mean().item(), abs=1e-6)], eps


@pytest.mark.slow
def test_attacking_one_member_transfers_worse_than_attacking_the_ensemble(attacked):
    from attacks import PGD

    results = RunResults.load(attacked / "run" / "results.json")
    model, meta = load_model(results.models[0]["checkpoint"])
    member, _ = load_model(member_dirs(results.models[0]["checkpoint"], meta.model)[0])
    model.requires_grad_(False), member.requires_grad_(False)
    x, y = (t[:200] for t in as_tensors(get_dataset(meta.data).test))
    pgd = PGD(steps=20, seed=0)
    accuracy = {name: (model(pgd(source, x, y, 0.1)).argmax(1) == y).float().mean().item()
                for name, source in (("white-box", model), ("transfer", member))}
    clean = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy["white-box"] < accuracy["transfer"] < clean, accuracy
