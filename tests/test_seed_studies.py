"""Seed studies (``--seeds``): seed lists, the spread (sample std), and the study's outputs."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from robustcv.cli import main
from robustcv.results import Record, RunResults
from robustcv.studies import Spread, parse_seeds, run_curve, study_spreads


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("text, seeds", [
    ("0-4", [0, 1, 2, 3, 4]), ("0,3,5", [0, 3, 5]), ("0-2,7", [0, 1, 2, 7]), (" 4 - 5 ", [4, 5]), ("9,1", [9, 1]),
])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, words", [
    ("5-2", "descending"), ("x", "not a seed"), ("", "not a seed"), ("1,,2", "not a seed"), ("3", "at least two"),
    ("0-2,2", "twice"), ("1.5,2", "not a seed"), ("-1,2", "not a seed"), ("0-1000", "at most 1000"),
    ("0-99999999999999999999", "4294967295"), ("0,99999999999999999999", "4294967295"), ("4294967295-4294967296", "4294967295"),
])
def test_bad_seed_lists(text, words):
    with pytest.raises(ValueError, match=words):
        parse_seeds(text)


def test_a_huge_seed_range_is_refused_at_once():
    """``0-100000000`` once grew to gigabytes: the count is checked before any list is built."""
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match="at most 1000"):
        parse_seeds("0-100000000")
    with pytest.raises(ValueError, match="at most 1000"):
        parse_seeds(",".join(str(i) for i in range(2000)))
    assert time.perf_counter() - start < 0.5


def test_the_largest_study_and_the_largest_seed_are_taken():
    assert parse_seeds("0-999") == list(range(1000))
    assert parse_seeds("4294967294-4294967295") == [4294967294, 4294967295]


@pytest.mark.parametrize("argv, words", [
    (["attack", "--seeds", "5-2"], "--seeds"),
    (["attack", "--seeds", "x"], "--seeds"),
    (["train", "--seeds", "x"], "--seeds"),
    (["attack", "--seeds", "0-1", "--seed", "3"], "--seed"),
    (["train", "--seeds", "0,1", "--seed", "3"], "--seed"),
    (["attack", "--seeds", "0,1", "--model-file", "model.pt2"], "--model-file"),
    (["attack", "--seeds", "0-100000000"], "--seeds"),
    (["train", "--seeds", "0-100000000"], "--seeds"),
    (["attack", "--seed", "99999999999999999999"], "--seed"),
    (["train", "--seed", "99999999999999999999"], "--seed"),
    (["train", "--seed", "-1"], "--seed"),
])
def test_bad_seeds_on_the_command_line_is_one_line_exit_2(capsys, tmp_path, argv, words):
    code, _, err = run_cli(capsys, *argv, "--models-dir", tmp_path, "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], err


@pytest.mark.parametrize("values", [[0.9, 0.8, 0.85], [0.5, 0.5], list(np.random.default_rng(0).random(7))])
def test_spread_is_the_mean_and_sample_std(values):
    spread = Spread.of(values)
    assert spread.mean == pytest.approx(np.mean(values))
    assert spread.std == pytest.approx(np.std(values, ddof=1)) and spread.std == pytest.approx(statistics.stdev(values))


def _results(name: str, clean: float, curves: dict[str, dict[float, float]]) -> RunResults:
    records = [Record(name, "none", "none", False, 0.0, "clean_accuracy", clean, 10)]
    records += [Record(name, "none", attack, False, eps, "robust_accuracy", v, 10)
                for attack, points in curves.items() for eps, v in points.items()]
    records.append(Record(name, "none", "fgsm", False, 0.1, "robust_accuracy", 0.0, 10, cls="3"))  # per class: not it
    return RunResults(run={"name": name}, models=[{"name": name}], records=records)


def test_run_curve_takes_the_worst_case_else_the_weakest_point():
    with_worst = _results("a", 0.9, {"fgsm": {0.0: 0.9, 0.1: 0.6}, "worst-case": {0.0: 0.9, 0.1: 0.4}})
    curve = run_curve(with_worst)
    assert (curve.clean, curve.robust) == (0.9, {0.1: 0.4})
    single = run_curve(_results("b", 0.8, {"fgsm": {0.1: 0.6, 0.2: 0.3}, "pgd": {0.1: 0.5, 0.2: 0.35}}))
    assert single.robust == {0.1: 0.5, 0.2: 0.3}


def test_study_spreads_over_runs():
    curves = [run_curve(_results(f"s{i}", c, {"worst-case": {0.1: r}})) for i, (c, r) in
              enumerate([(0.9, 0.5), (0.95, 0.4), (0.92, 0.45)])]
    clean, robust = study_spreads(curves)
    assert clean.values == (0.9, 0.95, 0.92) and clean.std == pytest.approx(np.std([0.9, 0.95, 0.92], ddof=1))
    assert robust[0.1].mean == pytest.approx(0.45)


# ---------------------------------------------------------------------------------------------
# end to end (slow): five seeds on digits

SEEDS = [0, 1, 2, 3, 4]
SMALL = ["--epochs", "1", "--n", "40", "--attack", "fgsm,pgd", "--eps", "0,0.05,0.1", "--natural", "none", "--quiet"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    argv = ["attack", "--seeds", "0-4", *SMALL, "--models-dir", root / "models", "--out", root / "run",
            "--report-dir", root / "report"]
    assert main([str(a) for a in argv]) == 0
    return root


def _robust_from_json(path: Path) -> tuple[float, dict[float, float]]:
    """Straight from results.json: the clean accuracy and the worst-case curve (no robustcv code)."""
    records = json.loads(path.read_text())["records"]
    clean = next(r["value"] for r in records if r["metric"] == "clean_accuracy")
    worst = {r["eps"]: r["value"] for r in records if r["attack"] == "worst-case" and r["metric"] == "robust_accuracy"
             and r["cls"] is None and r["defense"] == "none" and r["eps"] > 0}
    return clean, worst


@pytest.mark.slow
def test_five_seed_study_reports_mean_and_sample_std_of_every_run(study):
    summary = json.loads((study / "run" / "study.json").read_text())
    runs = [_robust_from_json(study / "run" / f"seed-{s}" / "results.json") for s in SEEDS]
    assert [r["seed"] for r in summary["runs"]] == SEEDS
    cleans = [c for c, _ in runs]
    assert summary["clean"]["mean"] == pytest.approx(np.mean(cleans))
    assert summary["clean"]["std"] == pytest.approx(np.std(cleans, ddof=1))
    for row in summary["robust"]:
        values = [curve[row["eps"]] for _, curve in runs]
        assert row["mean"] == pytest.approx(np.mean(values)) and row["std"] == pytest.approx(np.std(values, ddof=1))
    assert [row["eps"] for row in summary["robust"]] == [0.05, 0.1]
    assert len({c for c in cleans}) > 1 or len({tuple(c.values()) for _, c in runs}) > 1  # seeds do differ
    text = (study / "report" / "report.md").read_text()
    assert "Seed study: 5 seeds" in text and all(f"seed-{s}" in text for s in SEEDS)
    assert f"{np.mean(cleans):.3f} ± {np.std(cleans, ddof=1):.3f}" in text
    assert len(list((study / "models").iterdir())) == 5  # one checkpoint per seed


@pytest.mark.slow
def test_a_study_run_equals_the_single_run_of_its_seed(study, capsys):
    """Seed K's run in the study is the run ``--seed K`` (its checkpoint reused, train-if-absent)."""
    code, out, _ = run_cli(capsys, "attack", "--seed", "3", *SMALL, "--models-dir", study / "models",
                           "--out", study / "single", "--no-report")
    assert code == 0 and "trained" not in out
    assert _robust_from_json(study / "single" / "results.json") == _robust_from_json(study / "run" / "seed-3" /
                                                                                     "results.json")
    assert len(list((study / "models").iterdir())) == 5


@pytest.mark.slow
def test_train_seeds_trains_each_seed_once(tmp_path, capsys):
    argv = ["train", "--seeds", "0,1", "--epochs", "1", "--models-dir", tmp_path, "--quiet"]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "seed 0" in out and "seed 1" in out and "mean ± std" in out
    assert len(list(tmp_path.iterdir())) == 2
    mtimes = sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("model.safetensors"))
    assert run_cli(capsys, *argv)[0] == 0
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("model.safetensors")) == mtimes
