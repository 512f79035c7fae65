"""``robustcv attack --save-adversarials``: the saved worst-case adversarials are real.

Checked independently of the evaluation code: the clean images come from a fresh load of the
test split at the saved ``index``; the model is reloaded from its checkpoint; the robust
accuracy recomputed from the saved tensors must equal the worst-case figure in results.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from robustcv.checkpoint import load_model
from robustcv.cli import main
from robustcv.data import as_tensors, get_dataset
from robustcv.results import RunResults

ATTACK = ["--natural", "none", "--no-report", "-q", "--n", "60"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    models = tmp_path_factory.mktemp("models")
    assert main(["train", "--epochs", "3", "--models-dir", str(models), "-q"]) == 0  # small_cnn on digits
    (path,) = [p for p in models.iterdir() if not p.name.startswith(".")]
    return path


def _attack(checkpoint: Path, out: Path, *argv: str) -> RunResults:
    assert main(["attack", "--checkpoint", str(checkpoint), "--out", str(out), *ATTACK, *argv]) == 0
    return RunResults.load(out / "results.json")


def _worst_case(results: RunResults, eps: float) -> float:
    (value,) = [r.value for r in results.records if r.defense == "none" and r.attack == "worst-case"
                and r.metric == "robust_accuracy" and r.cls is None and r.eps == eps]
    return value


def _check_saved(checkpoint: Path, run: Path, eps: float, norm: str) -> dict[str, torch.Tensor]:
    saved = load_file(str(run / "adversarials" / "none.safetensors"))
    model, meta = load_model(checkpoint)
    clean, labels = as_tensors(get_dataset(meta.data).test)
    x_adv, index = saved["x_adv"], saved["index"]
    x = clean[index].float()
    assert x_adv.shape == x.shape and len(index.unique()) == len(index) == 60
    assert torch.equal(saved["label"], labels[index])
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    distance = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (distance <= eps * (1 + 1e-5) + 1e-6).all(), distance.max()
    torch.testing.assert_close(saved["distance"], distance)
    with torch.no_grad():
        wrong = model(x_adv).argmax(1) != saved["label"]
    assert torch.equal(wrong, saved["fooled"])
    results = RunResults.load(run / "results.json")
    assert 1 - wrong.float().mean().item() == pytest.approx(_worst_case(results, eps), abs=1e-6)
    return saved


def test_linf_adversarials_at_a_chosen_eps_with_a_cascade(checkpoint, tmp_path):
    run = tmp_path / "run"
    _attack(checkpoint, run, "--eps", "0,0.05,0.1,0.2", "--attack", "fgsm,pgd,apgd-ce", "--save-adversarials", "1/10")
    saved = _check_saved(checkpoint, run, 0.1, "linf")
    assert 0 < saved["fooled"].float().mean() < 1  # some robust, some fooled: both branches are checked
    with safe_open(str(run / "adversarials" / "none.safetensors"), "pt") as handle:
        meta = handle.metadata()
    assert float(meta["eps"]) == 0.1 and meta["norm"] == "linf" and len(json.loads(meta["attacks"])) == 3
    assert set(saved["attack"][saved["fooled"]].tolist()) <= {0, 1, 2}
    assert not list(run.glob("adversarials/.*"))  # no temporary files left behind


def test_l2_adversarials_at_the_headline_eps_and_one_file_per_defense(checkpoint, tmp_path):
    run = tmp_path / "run"
    results = _attack(checkpoint, run, "--norm", "l2", "--eps", "0,0.5,1,2", "--headline-eps", "1",
                      "--attack", "fgsm,pgd", "--defense", "bitdepth:3", "--save-adversarials")
    assert results.run["headline_eps"] == 1.0
    _check_saved(checkpoint, run, 1.0, "l2")
    assert (run / "adversarials" / "bitdepth-3.safetensors").is_file()


def test_save_eps_off_the_grid_is_one_line(checkpoint, tmp_path, capsys):
    code = main(["attack", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "run"), *ATTACK,
                 "--eps", "0,0.1", "--save-adversarials", "0.3"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--save-adversarials" in lines[0], lines
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# per-sample minimal norms from a minimization attack (foolbox's FMN)


def test_minimal_norms_of_a_minimization_attack(checkpoint, tmp_path):
    import foolbox as fb

    run = tmp_path / "run"
    attack = "foolbox:L2FMNAttack(steps=20)"
    results = _attack(checkpoint, run, "--norm", "l2", "--eps", "0,0.5,1,2", "--attack", f"pgd,{attack}",
                      "--save-adversarials", "--n", "30", "--report", "--report-dir", str(tmp_path / "report"))
    (row,) = [m for m in results.min_eps if m.exact]
    (grid,) = [m for m in results.min_eps if m.attack == attack and not m.exact]
    assert row.attack == attack and len(row.values) == 30
    # foolbox itself, unbounded, on the same clean images (order from the saved adversarials' index)
    model, meta = load_model(checkpoint)
    clean, labels = as_tensors(get_dataset(meta.data).test)
    index = load_file(str(run / "adversarials" / "none.safetensors"))["index"]
    x, y = clean[index].float(), labels[index]
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0))
    raw, _, _ = fb.attacks.L2FMNAttack(steps=20)(fmodel, x, y, epsilons=None)
    with torch.no_grad():
        clean_wrong = model(x).argmax(1) != y
        fooled = model(raw).argmax(1) != y
    theirs = (raw - x).flatten(1).norm(dim=1)
    for i, value in enumerate(row.values):
        if clean_wrong[i]:
            assert value == 0.0
        elif fooled[i]:  # ours is foolbox's, or smaller where the budgeted grid run found smaller
            assert value is not None and value <= theirs[i] + 1e-5, (i, value, float(theirs[i]))
            budgeted = grid.values[i] if grid.values[i] is not None else float("inf")
            assert value == pytest.approx(float(theirs[i]), abs=1e-5) or value <= budgeted + 1e-6
        else:
            assert value is None or grid.values[i] is not None
        if grid.values[i] is not None:  # never above the grid eps that fooled it
            assert value is not None and value <= grid.values[i] + 1e-6
    assert int((fooled & ~clean_wrong).sum()) >= 10  # the foolbox branch above is exercised
    found = [v for v in row.values if v is not None]
    (median,) = [r.value for r in results.records if r.metric == "minimal_norm_median" and r.attack == attack]
    assert median == pytest.approx(float(torch.tensor(found).median()), abs=1e-6) and 0 < median < 10
    assert "Each sample's smallest perturbation" in (tmp_path / "report" / "report.md").read_text()


def test_only_minimization_attacks_offer_minimal():
    from attacks import get_attack

    assert get_attack("foolbox:DDNAttack").minimizes and not get_attack("foolbox:LinfPGD").minimizes
    with pytest.raises(TypeError, match="not a minimization attack"):
        get_attack("pgd").minimal(torch.nn.Flatten(), torch.rand(1, 1, 2, 2), torch.zeros(1, dtype=torch.long))
