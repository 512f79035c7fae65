"""The ``robustcv`` command line end to end: what the user sees, what lands in results.json.

One digits model is trained once per module (through ``robustcv train``) and attacked with
``--checkpoint``; every run writes into pytest's ``tmp_path``, never into the repository.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robustcv.cli import main
from robustcv.tasks.classification import DEFAULT_ATTACKS

MASKING_CHECKS = ("random restarts do not lower robust accuracy", "a black-box attack does not beat the white-box ones",
                  "margin and DLR losses do not beat the evaluation")
from robustcv.results import RunResults

PER_SAMPLE_METRICS = ("attack_success_rate", "true_class_confidence", "linf", "l2", "psnr")
SMALL = ["--n", "40", "--eps", "0,0.1", "--natural", "none", "--quiet"]  # a cheap valid attack run


# ---------------------------------------------------------------------------------------------
# helpers and fixtures


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code: int, err: str, *words: str) -> str:
    """Exit status 2 and exactly one ``Error: ...`` line on stderr, no traceback."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    return lines[0]


def records(results: RunResults, **where) -> list:
    return [r for r in results.records if all(getattr(r, k) == v for k, v in where.items())]


def curve(results: RunResults, **where) -> dict[float, float]:
    rows = records(results, metric="robust_accuracy", cls=None, **where)
    out = {r.eps: r.value for r in rows}
    assert len(out) == len(rows), f"duplicate records for {where}"
    return out


def subprocess_env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")  # see ``_one_thread``


def folded_accuracy(results: RunResults, defense: str, grid: list[float], adaptive: bool | None = None,
                    attacks: tuple[str, ...] = ("fgsm", "pgd")) -> dict[float, float]:
    """Per-sample worst case over ``attacks`` (in one mode, or all), from the per-sample min eps."""
    rows = [m for m in results.min_eps if m.defense == defense and m.attack in attacks
            and (adaptive is None or m.adaptive == adaptive)]
    assert rows, (defense, adaptive)
    n = len(rows[0].values)
    return {eps: sum(all(r.values[i] is None or r.values[i] > eps for r in rows) for i in range(n)) / n
            for eps in grid}


def robustcv_command() -> list[str]:
    exe = shutil.which("robustcv")
    return [exe] if exe else [sys.executable, "-m", "robustcv"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: these models are tiny, and on a busy 2-core machine two OpenMP threads
    wait on each other (a forward+backward measured 30x slower than with one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The default digits model, trained once through ``robustcv train``; returns its checkpoint."""
    models = tmp_path_factory.mktemp("models")
    assert main(["train", "--models-dir", str(models), "-q"]) == 0
    (checkpoint,) = [p for p in models.iterdir() if not p.name.startswith(".")]
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "model.json").is_file()
    return checkpoint


@pytest.fixture(scope="module")
def default_run(trained, tmp_path_factory) -> tuple[Path, Path, RunResults]:
    """``robustcv attack`` with every default (fgsm+pgd, digits grid, natural sweeps, report)."""
    root = tmp_path_factory.mktemp("default_run")
    out, report = root / "run", root / "report"
    assert main(["attack", "--checkpoint", str(trained), "--out", str(out), "--report-dir", str(report),
                 "--quiet"]) == 0
    return out, report, RunResults.load(out / "results.json")


@pytest.fixture
def small_run(trained, tmp_path, monkeypatch) -> Path:
    """A cheap finished run directory (no report) in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "small"
    assert main(["attack", "--checkpoint", str(trained), "--out", str(out), "--no-report", *SMALL]) == 0
    return out


# ---------------------------------------------------------------------------------------------
# 1. the default attack run on digits


def test_default_attack_eps0_equals_clean(default_run):
    _, _, results = default_run
    assert results.run["eps_grid"] == [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]
    (clean,) = records(results, metric="clean_accuracy", defense="none")
    assert clean.value > 0.9
    for attack in DEFAULT_ATTACKS + ("worst-case",):
        assert curve(results, attack=attack)[0.0] == pytest.approx(clean.value, abs=1e-6), attack


def test_default_attack_pgd_breaks_the_model_and_beats_fgsm(default_run):
    _, _, results = default_run
    pgd, fgsm = curve(results, attack="pgd"), curve(results, attack="fgsm")
    grid = results.run["eps_grid"]
    assert sorted(pgd) == sorted(fgsm) == grid
    assert pgd[0.3] < 0.05, pgd
    for eps in grid:
        assert pgd[eps] <= fgsm[eps] + 1e-9, (eps, pgd[eps], fgsm[eps])


def test_default_attack_worst_case_is_monotone_and_the_minimum(default_run):
    _, _, results = default_run
    worst = curve(results, attack="worst-case")
    grid = results.run["eps_grid"]
    values = [worst[e] for e in grid]
    assert all(b <= a + 1e-9 for a, b in zip(values, values[1:])), values
    for eps in grid:  # per-sample worst case is at most each attack's accuracy
        assert worst[eps] <= min(curve(results, attack=a)[eps] for a in DEFAULT_ATTACKS) + 1e-9
        # the cascade's steps are cumulative: APGD-T's curve is the worst case so far
        assert curve(results, attack="apgd-t")[eps] == pytest.approx(worst[eps], abs=1e-9)
        assert curve(results, attack="apgd-ce")[eps] <= curve(results, attack="pgd")[eps] + 1e-9


def test_default_attack_sanity_checks_all_pass(default_run):
    _, _, results = default_run
    names = {c.name for c in results.sanity_checks}
    assert any("very large eps" in n for n in names)
    assert any("eps 0 equals clean" in n for n in names)
    assert any("PGD at least as strong as FGSM" in n for n in names)
    assert any("more PGD steps" in n for n in names)
    failed = [(c.name, c.detail) for c in results.sanity_checks if not c.passed]
    assert not failed, failed


def test_default_attack_records_carry_every_metric(default_run):
    _, _, results = default_run
    n = results.run["n"]
    for attack in ("fgsm", "pgd"):
        for metric in PER_SAMPLE_METRICS:
            rows = records(results, attack=attack, metric=metric)
            expected = len(results.run["eps_grid"]) - (1 if metric == "psnr" else 0)  # PSNR undefined at eps 0
            assert len(rows) >= expected, (attack, metric, len(rows))
            assert all(r.n == n and r.seconds >= 0 for r in rows)
        linf = {r.eps: r.value for r in records(results, attack=attack, metric="linf")}
        assert all(v <= e + 1e-5 for e, v in linf.items()), linf  # mean L∞ within the budget
        success = {r.eps: r.value for r in records(results, attack=attack, metric="attack_success_rate")}
        assert success[0.0] == 0.0 and success[0.3] > 0.9, success
    # time is recorded (an eps with no survivors left to attack may take none)
    assert sum(r.seconds for r in records(results, attack="pgd", metric="robust_accuracy")) > 0


def test_default_attack_min_eps_and_gallery_match_records(default_run):
    out, _, results = default_run
    n = results.run["n"]
    by_attack = {(m.defense, m.attack): m for m in results.min_eps}
    assert {("none", "fgsm"), ("none", "pgd"), ("none", "worst-case")} <= set(by_attack)
    grid = results.run["eps_grid"]
    for (defense, attack), row in by_attack.items():
        assert len(row.values) == len(row.labels) == n
        assert all(v is None or v in grid for v in row.values)
        # the fraction never fooled up to eps (min eps > eps or None) is the robust accuracy there
        acc = curve(results, defense=defense, attack=attack)
        for eps in grid:
            robust = sum(1 for v in row.values if v is None or v > eps) / n
            assert robust == pytest.approx(acc[eps], abs=1e-5), (attack, eps)
    assert results.gallery, "no gallery examples"
    for item in results.gallery:
        assert item.eps in grid and item.attack in DEFAULT_ATTACKS
        for rel in (item.clean_path, item.perturbation_path, item.adversarial_path):
            path = out / rel
            assert rel.startswith("examples/") and path.is_file() and path.read_bytes().startswith(b"\x89PNG"), rel
            assert path.resolve().is_relative_to(out.resolve())
        assert item.clean_pred == item.label  # examples come from originally-correct samples
    fooled = [g for g in results.gallery if g.adv_pred != g.label]
    assert fooled, "the headline attack fooled none of the gallery samples"


def test_default_attack_writes_report_and_config(default_run):
    out, report, results = default_run
    html = report / "report.html"
    assert html.is_file() and html.stat().st_size > 1000
    assert "<html" in html.read_text(encoding="utf-8").lower()
    assert (report / "report.md").is_file()
    markdown = (report / "report.md").read_text(encoding="utf-8")
    assert "Cascade steps (apgd-ce, apgd-t)" in markdown and "fgsm → pgd → apgd-ce → apgd-t fools" in markdown
    config = json.loads((out / "config.json").read_text())
    assert config["attacks"] == list(DEFAULT_ATTACKS) and config["eps"] == results.run["eps_grid"]
    natural = {r.attack for r in results.records if r.attack.startswith("natural:")}
    assert natural  # default natural sweeps ran


def test_no_report_skips_the_report_and_defaults_go_to_cwd(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "attack", "--checkpoint", trained, "--no-report", *SMALL)
    assert code == 0, err
    run_dir = tmp_path / "runs" / trained.name
    assert (run_dir / "results.json").is_file()
    assert not (tmp_path / "reports").exists()
    assert "report:" not in out and "results:" in out


# ---------------------------------------------------------------------------------------------
# 2. user mistakes: exit 2, one line, no traceback, nothing lost


@pytest.mark.parametrize("eps, words", [
    ("0.1,abc", ["--eps", "abc"]),
    ("0,-0.1", ["--eps", "negative"]),
    ("0.3,0.1", ["ascending"]),
    ("0,0.1,0.1", ["distinct"]),
    ("0,2", ["pixel range"]),
])
def test_bad_eps_is_one_line(trained, tmp_path, monkeypatch, capsys, eps, words):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--eps", eps, "--no-report", "--quiet")
    assert_user_error(code, err, *words)
    assert not list(tmp_path.glob("runs/*/results.json"))


@pytest.mark.parametrize("argv, words", [
    (["--model", "nonsense"], ["nonsense"]),
    (["--dataset", "nonsense"], ["nonsense"]),
])
def test_unknown_model_or_dataset(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    for command in ("train", "attack"):
        code, _, err = run_cli(capsys, command, *argv, "--models-dir", tmp_path / "models", "--quiet")
        assert_user_error(code, err, *words)
    assert not list(tmp_path.glob("models/*/model.safetensors"))


def test_missing_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "attack", "--checkpoint", "/does/not/exist", "--quiet")
    assert_user_error(code, err, "/does/not/exist")


def test_corrupt_checkpoint_weights(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage, not safetensors" * 10)
    code, _, err = run_cli(capsys, "attack", "--checkpoint", broken, *SMALL)
    assert_user_error(code, err)


class _Payload:
    """Unpickling this creates a marker file: proof that the loader ran a pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_checkpoint_is_never_unpickled(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil"
    shutil.copytree(trained, evil)
    marker = tmp_path / "PWNED"
    (evil / "model.safetensors").write_bytes(pickle.dumps({"weight": _Payload(str(marker))}))
    # torch.save's zip format too: the payload inside ``data.pkl``
    import torch
    evil_zip = tmp_path / "evil_zip"
    shutil.copytree(trained, evil_zip)
    torch.save({"weight": _Payload(str(marker))}, evil_zip / "model.safetensors")
    for checkpoint in (evil, evil_zip):
        code, _, err = run_cli(capsys, "attack", "--checkpoint", checkpoint, *SMALL)
        assert_user_error(code, err)
        assert not marker.exists(), "the checkpoint loader unpickled a payload"


def test_bad_defense_and_attack(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--defense", "bogus:3", *SMALL)
    assert_user_error(code, err, "bogus")
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--defense", "jpeg:abc", *SMALL)
    assert_user_error(code, err, "jpeg")
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--attack", "fgsm,nosuchattack", *SMALL)
    assert_user_error(code, err, "nosuchattack")
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--attack", ",", *SMALL)
    assert_user_error(code, err, "--attack")
    assert not list(tmp_path.glob("runs/*/results.json"))


def test_existing_run_is_not_overwritten(trained, small_run, capsys):
    results = small_run / "results.json"
    before = results.read_bytes()
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--out", small_run, "--no-report", *SMALL)
    assert_user_error(code, err, "--force")
    assert results.read_bytes() == before


@pytest.mark.parametrize("mistake", [["--attack", "nosuchattack"], ["--eps", "0.3,0.1"], ["--defense", "bogus"]])
def test_force_with_a_mistake_keeps_the_old_run(trained, small_run, capsys, mistake):
    """``--force`` replaces a run only once the new one is known to be valid."""
    results = small_run / "results.json"
    before = results.read_bytes()
    argv = ["attack", "--checkpoint", trained, "--out", small_run, "--no-report", "--force", *SMALL, *mistake]
    code, _, err = run_cli(capsys, *argv)
    assert_user_error(code, err)
    assert results.read_bytes() == before


def test_existing_report_dir_is_not_overwritten(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "rep"
    report.mkdir()
    (report / "report.html").write_text("mine")
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--report-dir", report, *SMALL)
    assert_user_error(code, err, "--force")
    assert (report / "report.html").read_text() == "mine"
    assert not (tmp_path / "runs").exists()


def test_train_epochs_zero(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", "--epochs", "0", "--quiet")
    assert_user_error(code, err, "--epochs")
    assert not (tmp_path / "models").exists()


def test_report_of_a_missing_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "report", "/not/a/run")
    assert_user_error(code, err, "/not/a/run")
    assert not (tmp_path / "reports").exists()


def test_report_renders_an_existing_run(small_run, tmp_path, capsys):
    code, out, err = run_cli(capsys, "report", small_run, "--out", tmp_path / "rep", "--format", "md")
    assert code == 0, err
    assert (tmp_path / "rep" / "report.md").is_file() and not (tmp_path / "rep" / "report.html").exists()
    code, _, err = run_cli(capsys, "report", small_run, "--out", tmp_path / "rep", "--format", "pdf")
    assert_user_error(code, err, "pdf")


def test_console_script_end_to_end(trained, tmp_path):
    """The installed ``robustcv`` script: exit codes, one-line errors and a real run."""
    cmd = robustcv_command()
    bad = subprocess.run(cmd + ["attack", "--checkpoint", str(trained), "--eps", "0.1,abc"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert_user_error(bad.returncode, bad.stderr, "abc")
    ok = subprocess.run(cmd + ["attack", "--checkpoint", str(trained), "--no-report", *SMALL], cwd=tmp_path,
                        capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert ok.returncode == 0, ok.stderr
    results = RunResults.load(tmp_path / "runs" / trained.name / "results.json")
    assert results.run["command"].startswith("robustcv attack --checkpoint")
    assert "robust accuracy" in ok.stdout
    version = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=120,
                             env=subprocess_env())
    assert version.returncode == 0 and "robustcv" in version.stdout


# ---------------------------------------------------------------------------------------------
# 3. adapter attacks land in results.json like native ones


def test_foolbox_and_art_attacks_through_the_cli(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    pytest.importorskip("foolbox")
    pytest.importorskip("art")
    attacks = ["fgsm", "foolbox:LinfPGD", "art:ProjectedGradientDescent"]
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--attack", ",".join(attacks), "--n", "100",
                           "--eps", "0,0.1,0.3", "--natural", "none", "--no-report", "--quiet", "--out", "run")
    assert code == 0, err
    results = RunResults.load(tmp_path / "run" / "results.json")
    (clean,) = records(results, metric="clean_accuracy")
    for attack in attacks:
        acc = curve(results, attack=attack)
        assert sorted(acc) == [0.0, 0.1, 0.3], attack
        assert acc[0.0] == pytest.approx(clean.value, abs=1e-6), attack
        rows = records(results, attack=attack)
        assert {r.metric for r in rows} >= {"robust_accuracy", *PER_SAMPLE_METRICS}, attack
        assert all(r.n == 100 and r.seconds >= 0 and r.adaptive is False for r in rows)
        assert any(m.attack == attack for m in results.min_eps), attack
    for attack in attacks[1:]:  # iterative attacks are at least as strong as FGSM, and break the model
        assert curve(results, attack=attack)[0.3] < 0.05, attack
    # The adapters' plumbing checks pass; the masking probes rightly find these PGD-10 peers
    # weaker than restarts and Square (the default evaluation adds APGD for that).
    plumbing = [c for c in results.sanity_checks if c.name not in MASKING_CHECKS]
    failed = [(c.name, c.detail) for c in plumbing if not c.passed]
    assert not failed, failed


# ---------------------------------------------------------------------------------------------
# 4. defenses: naive and adaptive


@pytest.mark.slow
def test_defenses_naive_and_adaptive(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    defenses = ["none", "jpeg:75", "bitdepth:4", "randpad:0.8"]
    grid = [0.0, 0.05, 0.1, 0.2]
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--defense", ",".join(defenses),
                           "--attack", "fgsm,pgd", "--n", "100", "--eps", "0,0.05,0.1,0.2", "--natural", "none",
                           "--no-report", "--quiet", "--out", "run")
    assert code == 0, err
    results = RunResults.load(tmp_path / "run" / "results.json")
    for defense in defenses:
        (clean,) = records(results, metric="clean_accuracy", defense=defense)
        assert clean.value > 0.5, (defense, clean.value)
        modes = {r.adaptive for r in records(results, defense=defense, metric="robust_accuracy")
                 if r.attack != "worst-case"}
        assert modes == ({False} if defense == "none" else {False, True}), (defense, modes)
        for adaptive in modes:
            for attack in ("fgsm", "pgd"):
                acc = curve(results, defense=defense, attack=attack, adaptive=adaptive)
                assert sorted(acc) == grid, (defense, attack, adaptive)
                assert acc[0.0] == pytest.approx(clean.value, abs=1e-6), (defense, attack, adaptive, acc)
        # the reported worst case folds every attack in every mode, sample by sample
        (worst_adaptive,) = {r.adaptive for r in records(results, defense=defense, attack="worst-case")}
        worst = curve(results, defense=defense, attack="worst-case", adaptive=worst_adaptive)
        assert worst == pytest.approx(folded_accuracy(results, defense, grid)), defense
    for defense, tol in (("jpeg:75", 0.01), ("bitdepth:4", 0.01), ("randpad:0.8", 0.05)):
        adaptive = folded_accuracy(results, defense, grid, adaptive=True)
        naive = folded_accuracy(results, defense, grid, adaptive=False)
        for eps in grid:
            assert adaptive[eps] <= naive[eps] + tol, (defense, eps, adaptive, naive)
    failed = [(c.defense, c.name, c.detail) for c in results.sanity_checks if not c.passed]
    assert not failed, failed
    assert {c.defense for c in results.sanity_checks} >= set(defenses)


# ---------------------------------------------------------------------------------------------
# 5. train: skip when present; denoiser


def test_train_twice_trains_once(trained, capsys):
    weights = trained / "model.safetensors"
    before = weights.stat().st_mtime_ns
    code, out, err = run_cli(capsys, "train", "--models-dir", trained.parent, "--quiet")
    assert code == 0, err
    assert "nothing to do" in out and "accuracy" in out
    assert weights.stat().st_mtime_ns == before


@pytest.mark.slow  # 20 s; the denoiser's training and its defense are unit-tested in test_defenses_*
def test_denoiser_train_then_attack(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train", "--denoiser-for", trained, "--epochs", "1", "--models-dir",
                             tmp_path / "models", "--quiet")
    assert code == 0, err
    (denoiser,) = (tmp_path / "models").iterdir()
    assert (denoiser / "denoiser.safetensors").is_file()
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--defense", f"none,denoiser:{denoiser}",
                           "--n", "50", "--eps", "0,0.1", "--natural", "none", "--no-report", "--quiet",
                           "--out", "run")
    assert code == 0, err
    results = RunResults.load(tmp_path / "run" / "results.json")
    defense = f"denoiser:{denoiser}"
    assert records(results, defense=defense, metric="clean_accuracy")
    assert {r.adaptive for r in records(results, defense=defense, metric="robust_accuracy")} == {False, True}
    # a second run of the same command finds the denoiser and does nothing
    code, out, _ = run_cli(capsys, "train", "--denoiser-for", trained, "--epochs", "1", "--models-dir",
                           tmp_path / "models", "--quiet")
    assert code == 0 and "nothing to do" in out


# ---------------------------------------------------------------------------------------------
# 6. list; 7. --config


def test_list_shows_every_catalog(capsys):
    code, out, err = run_cli(capsys, "list")
    assert code == 0, err
    for kind in ("datasets", "models", "optimizers", "augmentation", "attacks", "defenses"):
        assert kind in out, kind
    for name in ("digits", "shapes", "small_cnn", "fgsm", "pgd", "jpeg", "bitdepth", "randpad", "sgd"):
        assert name in out, name


def test_config_file_supplies_defaults(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "attack.json"
    config.write_text(json.dumps({"checkpoint": str(trained), "n": 30, "eps": "0,0.05", "attack": "fgsm",
                                  "natural": "none", "report": False, "quiet": True, "out": "cfgrun"}))
    code, _, err = run_cli(capsys, "attack", "--config", config)
    assert code == 0, err
    results = RunResults.load(tmp_path / "cfgrun" / "results.json")
    assert results.run["n"] == 30 and results.run["eps_grid"] == [0.0, 0.05]
    assert {r.attack for r in results.records if r.metric == "robust_accuracy"} == {"fgsm", "worst-case"}
    # flags win over the file
    code, _, err = run_cli(capsys, "attack", "--config", config, "--out", "cfgrun2", "--eps", "0,0.1")
    assert code == 0, err
    assert RunResults.load(tmp_path / "cfgrun2" / "results.json").run["eps_grid"] == [0.0, 0.1]
    # JSON lists and dashed flag names are accepted
    config.write_text(json.dumps({"checkpoint": str(trained), "n": 30, "eps": [0, "1/20"], "attack": ["fgsm"],
                                  "natural": "none", "report": False, "eval-batch-size": 7, "quiet": True,
                                  "out": "cfgrun3"}))
    code, _, err = run_cli(capsys, "attack", "--config", config)
    assert code == 0, err
    results = RunResults.load(tmp_path / "cfgrun3" / "results.json")
    assert results.run["eps_grid"] == [0.0, 0.05] and results.run["config"]["batch_size"] == 7


@pytest.mark.parametrize("content, words", [
    ({"n": 30, "no_such_option": 1}, ["no_such_option"]),
    ("[1, 2]", ["object"]),
    ("{not json", ["json"]),
])
def test_bad_config_file(trained, tmp_path, monkeypatch, capsys, content, words):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "bad.json"
    config.write_text(content if isinstance(content, str) else json.dumps(content))
    code, _, err = run_cli(capsys, "attack", "--config", config, "--checkpoint", trained, *SMALL)
    assert_user_error(code, err, *words)
    assert not (tmp_path / "runs").exists()


def test_missing_config_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", "--config", "nope.json")
    assert_user_error(code, err, "nope.json")


# --------------------------------------------------------------------------- targeted runs


def test_targeted_run_counts_target_hits_and_passes_its_checks(trained, tmp_path, capsys):
    out = tmp_path / "targeted"
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--out", out, "--no-report", "--quiet",
                           "--targeted", "random", "--n", "100", "--natural", "none", "--eps", "0,0.1,0.3")
    assert code == 0, err
    results = RunResults.load(out / "results.json")
    assert all(check.passed for check in results.sanity_checks), [c.detail for c in results.sanity_checks]
    assert any("targeted" in check.name for check in results.sanity_checks)
    hits = {attack: {r.eps: r.value for r in records(results, metric="attack_success_rate", attack=attack)}
            for attack in ("fgsm", "pgd", "worst-case")}
    assert hits["pgd"][0.3] >= 0.8  # PGD reaches random targets at a large budget
    assert all(hits["pgd"][e] >= hits["fgsm"][e] for e in (0.1, 0.3))
    assert all(hits["worst-case"][e] >= max(hits["pgd"][e], hits["fgsm"][e]) for e in (0.0, 0.1, 0.3))


@pytest.mark.parametrize("extra", [["--targeted", "foo"], ["--targeted", "12"], ["--attack", "fgsm(targeted=True)"]])
def test_bad_targeting_is_one_line_and_leaves_no_run_directory(trained, tmp_path, capsys, extra):
    out = tmp_path / "never"
    code, _, err = run_cli(capsys, "attack", "--checkpoint", trained, "--out", out, "--no-report", "--quiet", *extra)
    assert_user_error(code, err, "target")
    assert not out.exists()


def test_report_refuses_runs_of_different_norms(trained, tmp_path, capsys):
    runs = []
    for norm, eps in (("linf", "0,0.1"), ("l2", "0,1")):
        runs.append(tmp_path / norm)
        assert main(["attack", "--checkpoint", str(trained), "--out", str(runs[-1]), "--no-report", "--quiet",
                     "--norm", norm, "--eps", eps, "--n", "30", "--natural", "none", "--attack", "fgsm"]) == 0
    capsys.readouterr()
    code, _, err = run_cli(capsys, "report", *runs, "--out", tmp_path / "report")
    assert_user_error(code, err, "norm")
    assert not (tmp_path / "report" / "report.html").exists()


def test_attack_options_not_built_for_a_task_are_one_line_before_training(tmp_path, capsys):
    code, _, err = run_cli(capsys, "attack", "--task", "multilabel", "--targeted", "random",
                           "--models-dir", tmp_path / "models", "--out", tmp_path / "run")
    assert_user_error(code, err, "--targeted", "multilabel")
    assert not (tmp_path / "run").exists() and not (tmp_path / "models").exists()


def test_first_line_says_what_the_run_will_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["--models-dir", "models", "--epochs", "1"]
    code, _, err = run_cli(capsys, "train", *base)
    assert code == 0, err
    assert err.splitlines()[0].startswith("no checkpoint for this spec yet: training small_cnn on digits into ")
    code, _, err = run_cli(capsys, "attack", *base, "--n", "8", "--eps", "0,0.1", "--attack", "fgsm",
                           "--natural", "none", "--no-report", "--out", "run")
    assert code == 0, err
    first = err.splitlines()[0]
    assert first.startswith("attacking models/digits-small_cnn-") and "on up to 8 test samples with fgsm" in first, first
    code, _, err = run_cli(capsys, "train", *base, "--force")
    assert code == 0 and err.splitlines()[0].startswith("--force: retraining small_cnn"), err
