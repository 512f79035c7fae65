"""One front door: the CLI and the Python API build the same ``Request``, one resolver
(``robustcv.plan``) fills its defaults in, one service runs it, so the records agree.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import robustcv
from robustcv.cli import main
from robustcv.data.base import DataInfo
from robustcv.evaluation.config import NATURAL_KINDS, default_eps_grid
from robustcv.plan import PlanError, check_task_targeting, resolve, sample_count
from robustcv.request import HEADLINE, Request
from robustcv.results import RunResults
from robustcv.tasks import Task, get_task


def info_for(task: str, name: str = "shapes", classes: int = 4) -> DataInfo:
    """A dataset description for the resolver (no data loaded)."""
    return DataInfo(name=name, task=Task(task), classes=tuple(f"c{i}" for i in range(classes)), channels=3,
                    image_size=(32, 32), mean=(0.5,) * 3, std=(0.25,) * 3,
                    ignore_index=255 if task == "segmentation" else None)


def measured(results: RunResults) -> list[dict]:
    """Every record's measured fields (values, n, intervals), not how long it took."""
    return [{k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"} for r in results.records]


# --------------------------------------------------------------------------- the same records


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    _, result = robustcv.train("digits", "small_cnn", epochs=1, models_dir=tmp_path_factory.mktemp("models"))
    return result.checkpoint


def test_the_cli_and_the_api_give_the_same_records(checkpoint, tmp_path, capsys):
    """Defaults left to the resolver on both sides (attacks, eps grid, headline), the rest the same."""
    code = main(["attack", "--checkpoint", str(checkpoint), "--n", "20", "--natural", "noise", "--seed", "3",
                 "--quiet", "--no-report", "--out", str(tmp_path / "cli")])
    assert code == 0, capsys.readouterr().err
    cli = RunResults.load(tmp_path / "cli" / "results.json")
    model, meta = robustcv.load_model(checkpoint)
    api = robustcv.evaluate(model, meta.data, natural=["noise"], n=20, seed=3, name=checkpoint.name)  # its split
    assert measured(api.results) == measured(cli)
    assert all(r.n == 20 for r in cli.records if r.cls is None and r.metric == "robust_accuracy")
    assert any(r.ci_low is not None for r in cli.records), "no interval recorded"
    assert api.run["eps_grid"] == cli.run["eps_grid"] and api.run["headline_eps"] == cli.run["headline_eps"]
    defaults = get_task("classification").default_attacks(10)
    assert api.run["config"]["attacks"] == cli.run["config"]["attacks"] == defaults


# --------------------------------------------------------------------------- the resolver's defaults


@pytest.mark.parametrize("task", ["classification", "segmentation", "multilabel"])
def test_every_default_comes_from_the_task_and_the_dataset(task):
    info = info_for(task)
    config = resolve(Request(), info)
    grid, headline = default_eps_grid(info, "linf")
    definition = get_task(task)
    assert config.eps == grid and config.headline_eps == headline
    assert config.attacks == definition.default_attacks(info.num_classes, "none")
    assert config.n == definition.default_samples
    assert config.defenses == ["none"] and config.natural == list(NATURAL_KINDS)
    assert config.save_adversarials is None


@pytest.mark.parametrize("norm, targeted, last", [("linf", "none", "sea(losses=mce-bal,steps=100,start=1)"),
                                                  ("l2", "none", "sea(losses=mce-bal,steps=100,start=1)"),
                                                  ("linf", "0", "apgd(loss=js)")])
def test_segmentation_defaults_follow_the_runs_norm_and_targeting(norm, targeted, last):
    """SEA runs untargeted L∞/L2 only: the plan hands the task the run's norm and targeting."""
    config = resolve(Request(norm=norm, targeted=targeted, eps=[0.0, 1.0]), info_for("segmentation"))
    assert config.attacks[-1] == last


def test_sample_defaults_per_task():
    assert sample_count(Request(), "classification") == 500
    assert sample_count(Request(), "multilabel") == 500
    assert sample_count(Request(), "segmentation") == 100
    assert sample_count(Request(n=7), "segmentation") == 7


def test_given_settings_win_and_are_put_in_order():
    info = info_for("classification", name="digits", classes=10)
    config = resolve(Request(eps=(0.1, 0.2), attacks=("fgsm",), defenses=("jpeg:75", "none", "jpeg:75"),
                             natural=(), save_adversarials=HEADLINE, n=12), info)
    assert config.eps == [0.0, 0.1, 0.2] and config.headline_eps == 0.1  # 0 first; the middle by default
    assert config.attacks == ["fgsm"] and config.defenses == ["jpeg:75", "none"]
    assert config.natural == [] and config.save_adversarials == 0.1 and config.n == 12
    assert resolve(Request(defenses=("jpeg:75",)), info).defenses == ["none", "jpeg:75"]


def test_targeted_defaults_drop_the_targeted_cascade_step():
    info = info_for("classification", name="digits", classes=10)
    assert "apgd-t" in resolve(Request(), info).attacks
    assert "apgd-t" not in resolve(Request(targeted="random"), info).attacks


# --------------------------------------------------------------------------- one-line errors


@pytest.mark.parametrize("request_, option", [
    (Request(eps=(0.1, 0.2), headline_eps=0.15), "--headline-eps"),
    (Request(natural=("wobble",)), "--natural"),
    (Request(defenses=("bogus:3",)), "--defense"),
    (Request(targeted="12"), "--targeted"),
    (Request(n=0), "--n"),
], ids=["headline off the grid", "unknown sweep", "unknown defense", "class out of range", "no samples"])
def test_a_refused_setting_is_one_line_naming_its_flag(request_, option):
    with pytest.raises(PlanError) as info:
        resolve(request_, info_for("classification", name="digits", classes=10))
    assert info.value.option == option
    for text in (str(info.value), info.value.detail):
        assert text and "\n" not in text


def test_a_targeting_the_task_never_runs_is_refused_before_training():
    check_task_targeting("classification", "random")
    with pytest.raises(PlanError, match="--task multilabel"):
        check_task_targeting("multilabel", "random")


def test_an_unknown_attack_is_refused_by_the_resolver():
    with pytest.raises(robustcv.errors.UserError):
        resolve(Request(attacks=("nosuchattack",)), info_for("classification", name="digits", classes=10))


# --------------------------------------------------------------------------- the L1 threat model


def test_l1_defaults_run_apgd_with_l1_grids():
    digits, natural = info_for("classification", name="digits", classes=10), info_for("classification", classes=10)
    config = resolve(Request(norm="l1"), digits)
    assert config.norm == "l1" and config.attacks == ["apgd-ce", "apgd-t"]  # FGSM and PGD have no L1 step
    assert config.eps == [0.0, 0.5, 1.0, 2.0, 4.0] and config.headline_eps == 1.0
    assert resolve(Request(norm="l1"), natural).eps == [0.0, 3.0, 6.0, 12.0, 24.0]
    seg = resolve(Request(norm="l1"), info_for("segmentation"))
    assert seg.attacks and all(a.startswith("apgd") for a in seg.attacks)


@pytest.mark.parametrize("request_, words", [(Request(norm="l1", attacks=("pgd",)), "pgd has no L1 step"),
                                             (Request(norm="l1", attacks=("fgsm",)), "fgsm has no L1 step"),
                                             (Request(norm="l3"), "l3.* unknown|unknown norm")])
def test_l1_refusals_are_one_line(request_, words):
    with pytest.raises(robustcv.errors.UserError, match=words) as info:
        resolve(request_, info_for("classification", name="digits", classes=10))
    assert "\n" not in str(info.value)


def test_attack_norm_l1_end_to_end(checkpoint, tmp_path, capsys):
    out = tmp_path / "l1"
    assert main(["attack", "--checkpoint", str(checkpoint), "--norm", "l1", "--eps", "0,2", "--n", "32",
                 "--natural", "none", "--apgd-steps", "10", "--out", str(out), "--report-dir",
                 str(tmp_path / "report")]) == 0
    captured = capsys.readouterr()
    assert "with apgd-ce, apgd-t (L1, eps 0, 2;" in captured.out + captured.err
    results = RunResults.load(out / "results.json")
    assert results.run["norm"] == "l1"
    worst = [r.value for r in results.records if r.metric == "robust_accuracy" and r.eps == 2.0]
    assert worst and min(worst) < 0.5  # it attacked
    assert "L1 eps 2" in (tmp_path / "report" / "report.html").read_text()
