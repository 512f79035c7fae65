"""Protocols: AutoAttack's versions as cascades (``attacks.autoattack``) and ``--protocol`` end to end.

The configuration of every version and norm is read from the authors' own ``pyautoattack`` after
``set_version``; the cascade is checked with stand-in parts; the versions whose parts other
modules build (FAB, FAB-T, Square with AutoAttack's settings, APGD-L1) are skipped until the
catalogue has them.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from attack_helpers import trained_digits
from attacks import get_attack
from attacks.autoattack import (VERSIONS, StackedDraws, EOTObjective, cascade, min_classes, part_seed,
                                version_parts)
from attacks.base import Attack
from attacks.objectives import Classification
from robustcv.cli import main
from robustcv.errors import UserError
from robustcv.protocols import choose_protocol

NORMS = ("linf", "l2", "l1")
PYAA_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}


def buildable(name: str, norm: str = "linf") -> bool:
    """Whether every part of ``name`` exists in this tree yet (helpers build them in parallel)."""
    try:
        get_attack(name, norm=norm, seed=0)
    except ValueError:
        return False
    return True


def needs(name: str, norm: str = "linf"):
    return pytest.mark.skipif(not buildable(name, norm), reason=f"{name} ({norm}): a part is not in the catalogue yet")


# ------------------------------------------------------------------ the cascade, with stand-ins


class Readout(nn.Module):
    """Logits = 10 x the first K pixels: the class is the brightest of them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return 10 * x.flatten(1)[:, :4]


class StandIn(Attack):
    """Fools the samples whose key is in ``fools`` (moves their brightness to the next class) and
    records the keys it was asked to attack."""

    def __init__(self, fools: set[int]) -> None:
        super().__init__(seed=0)
        self.fools, self.seen = fools, []

    def run(self, model, x, labels, eps, generator):  # noqa: D102
        keys = generator.keys.tolist()
        self.seen += keys
        out = x.clone()
        for row, key in enumerate(keys):
            if key in self.fools:
                out[row, 0, 0, labels[row]] = 0.0
                out[row, 0, 0, (labels[row] + 1) % 4] = 1.0
        return out


def readout_batch() -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    x = torch.zeros(6, 1, 1, 4)
    x[torch.arange(6), 0, 0, y] = 1.0
    x[5, 0, 0, 1], x[5, 0, 0, 2] = 0.0, 1.0  # sample 5 is wrong on the clean input
    return x, y


def test_cascade_attacks_only_what_earlier_parts_left_robust():
    x, y = readout_batch()
    first, second, third = StandIn({0, 2}), StandIn({1, 2, 3}), StandIn({4})
    steps = [(first, 1), (second, 1), (third, 1)]
    adv, fooled_by = cascade(Readout(), steps, x, y, 1.0, Classification(), keys=torch.arange(6))
    assert first.seen == [0, 1, 2, 3, 4]  # not sample 5, wrong on the clean input
    assert second.seen == [1, 3, 4]  # not 0 and 2, fooled by the first part
    assert third.seen == [4]
    assert fooled_by.tolist() == [0, 1, 0, 1, 2, -1]  # the union of the parts' successes
    assert torch.equal(adv[5], x[5])  # wrong on the clean input: returned as it is
    assert (Readout()(adv).argmax(1) != y)[:5].all()


def test_cascade_keeps_the_clean_input_where_every_part_fails():
    x, y = readout_batch()
    adv, fooled_by = cascade(Readout(), [(StandIn(set()), 1)], x, y, 1.0, Classification(), keys=torch.arange(6))
    assert torch.equal(adv, x) and (fooled_by == -1).all()


# ---------------------------------------------------- the configuration, against pyautoattack


def reference_parts(version: str, norm: str) -> list[tuple[str, dict]]:
    """Each attack ``pyautoattack`` runs after ``set_version``, with the settings it runs it with."""
    pyaa = pytest.importorskip("pyautoattack")
    aa = pyaa.AutoAttack(nn.Linear(1, 10), norm=PYAA_NORMS[norm], eps=0.1, version=version, seed=0)
    apgd = lambda a: {"steps": a.n_iter, "rho": a.thr_decr, "restarts": a.n_restarts,  # noqa: E731
                      "large_reps": a.use_largereps, "eot": a.eot_iter}
    fab = {"steps": aa.fab.n_iter, "alpha_max": aa.fab.alpha_max, "eta": aa.fab.eta, "beta": aa.fab.beta}
    settings = {
        "apgd-ce": apgd(aa.apgd), "apgd-dlr": apgd(aa.apgd),
        "apgd-t": {**apgd(aa.apgd_targeted), "n_target_classes": aa.apgd_targeted.n_target_classes},
        "fab": {**fab, "restarts": aa.fab.n_restarts},
        "fab-t": {**fab, "restarts": 1, "n_target_classes": aa.fab.n_target_classes},  # run_standard_evaluation sets 1
        "square": {"queries": aa.square.n_queries, "p_init": aa.square.p_init, "restarts": aa.square.n_restarts,
                   "rescale_schedule": aa.square.rescale_schedule},
    }
    return [(name, settings[name]) for name in aa.attacks_to_run]


def our_parts(version: str, norm: str) -> list[tuple[str, dict]]:
    out = []
    for part in version_parts(version, norm):
        settings = dict(part.settings)
        if part.name.startswith("apgd"):
            settings = {"large_reps": False, **settings, "eot": part.eot}
        out.append((part.name, settings))
    return out


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("version", VERSIONS)
def test_each_version_is_configured_as_pyautoattack_sets_it(version, norm):
    assert our_parts(version, norm) == reference_parts(version, norm)


def test_an_unknown_version_is_refused():
    with pytest.raises(ValueError, match="unknown AutoAttack version 'fast'"):
        version_parts("fast", "linf")


def test_version_needs_three_or_four_classes():
    assert min_classes("standard") == min_classes("plus") == 4  # the targeted DLR loss
    assert min_classes("rand") == 3


# ----------------------------------------------------------------------- EOT for the rand version


class Noisy(nn.Module):
    """A randomized model: a fixed linear readout of the input plus fresh noise at every call."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.linear((x + 0.3 * torch.randn_like(x)).flatten(1))


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_eot_gradient_is_the_mean_of_the_draws_gradients(loss):
    """AutoAttack's EOT: the gradient averaged over 20 draws, each of the loss at its own draw."""
    model, base = Noisy(), Classification(loss)
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([0, 2, 4])
    torch.manual_seed(1)
    xg = x.clone().requires_grad_(True)
    eot = EOTObjective(base).loss(StackedDraws(model, 20)(xg), y)
    ours, = torch.autograd.grad(eot.sum(), xg)
    torch.manual_seed(1)
    grads = []
    for _ in range(20):
        xg = x.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(base.loss(model(xg), y).sum(), xg)[0])
    assert torch.allclose(ours, torch.stack(grads).mean(0), atol=1e-6)


def test_eot_objective_judges_the_last_draw_and_keeps_its_loss_names():
    eot = EOTObjective(Classification("dlr"))
    logits = torch.tensor([[[5.0, 0, 0], [0, 5.0, 0]]])  # draw 0 says class 0, the last draw class 1
    assert eot.correct(logits, torch.tensor([1])).tolist() == [True]
    assert "dlr" in eot.LOSSES and eot.with_loss("ce").base.loss_name == "ce"


# ---------------------------------------------------------------- the composites on a digits model


@pytest.fixture(scope="module")
def digits():
    data = trained_digits()
    return SimpleNamespace(model=data.model, x=data.x[:32], y=data.y[:32], keys=torch.arange(32))


def robust_count(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


@pytest.mark.slow  # 4-14 s; the cascade tests with stand-in parts show the same rule quickly
def test_rand_version_is_at_least_as_strong_as_its_first_part(digits):
    """APGD-CE with EOT on a deterministic model is APGD-CE; the cascade adds APGD-DLR on what it left."""
    eps = 0.1
    attack = get_attack("autoattack-rand", seed=0)
    adv = attack(digits.model, digits.x, digits.y, eps, keys=digits.keys)
    first = get_attack("apgd-ce", steps=100, seed=part_seed(0, 0))(digits.model, digits.x, digits.y, eps,
                                                                    keys=digits.keys)
    assert (adv - digits.x).abs().amax() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert robust_count(digits.model, adv, digits.y) <= robust_count(digits.model, first, digits.y) + 1
    assert robust_count(digits.model, adv, digits.y) < robust_count(digits.model, digits.x, digits.y)


def test_a_composite_gives_the_same_result_in_any_batch(digits):
    attack = get_attack("autoattack-rand", seed=3)
    for part in attack.attacks:
        part.steps = 10  # keeps the test fast; the keyed draws are what is checked
    x, y, keys = digits.x[:12], digits.y[:12], digits.keys[:12]
    whole = attack(digits.model, x, y, 0.1, keys=keys)
    halves = torch.cat([attack(digits.model, x[s], y[s], 0.1, keys=keys[s]) for s in (slice(0, 5), slice(5, 12))])
    assert torch.allclose(whole, halves, atol=1e-6)


def test_a_composite_refuses_too_few_classes():
    x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="at least 3 classes"):
        get_attack("autoattack-rand", seed=0)(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), x, y, 0.1)
    three = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    assert get_attack("autoattack-rand", seed=0)(three, x, y, 0.1).shape == x.shape  # 3 classes: DLR runs


# ------------------------------------------------------------------------- --protocol, end to end


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    assert main(["train", "--models-dir", str(models), "--epochs", "2", "-q"]) == 0
    (found,) = [p for p in models.iterdir() if not p.name.startswith(".")]
    return found


@pytest.mark.parametrize("spec, words", [
    ("sea", ("protocol 'sea' is for segmentation", "use --protocol autoattack")),
    ("autoattack:fast", ("unknown version 'fast'", "autoattack:rand")),
    ("autoattack(version=plus, steps=3)", ("unknown argument 'steps'",)),
    ("autoatack", ("unknown protocol", "did you mean 'autoattack'")),
])
def test_a_protocol_the_run_cannot_take_is_one_line_before_any_training(spec, words, tmp_path, capsys):
    code, _, err = run_cli(capsys, "attack", "--protocol", spec, "--models-dir", tmp_path / "m", "--out",
                           tmp_path / "run", "--no-report")
    one_line_error(code, err, *words)
    assert not (tmp_path / "m").exists()  # refused from the flags: nothing trained


def test_binary_task_is_refused_naming_its_attacks(tmp_path, capsys):
    code, _, err = run_cli(capsys, "attack", "--task", "binary", "--dataset", "digits_binary", "--protocol",
                           "autoattack", "--models-dir", tmp_path / "m", "--out", tmp_path / "run")
    one_line_error(code, err, "for classification models, not binary", "use --attack")
    assert not (tmp_path / "m").exists()


def test_protocol_beside_attack_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "attack", "--protocol", "autoattack", "--attack", "pgd", "--models-dir",
                           tmp_path / "m", "--out", tmp_path / "run")
    one_line_error(code, err, "runs its own attacks", "drop --attack pgd")


def test_too_few_classes_is_refused_naming_what_fits():
    three = SimpleNamespace(task="classification", num_classes=3)
    with pytest.raises(UserError, match="at least 4 classes.*this one has 3; use --protocol autoattack:rand"):
        choose_protocol("autoattack", three, "linf")
    with pytest.raises(UserError, match="at least 3 classes.*this one has 2; use --attack"):
        choose_protocol("autoattack:rand", SimpleNamespace(task="classification", num_classes=2), "linf")


def test_protocol_spellings_agree():
    ten = SimpleNamespace(task="classification", num_classes=10)
    plus = choose_protocol("autoattack:plus", ten, "l2")
    assert plus == choose_protocol("autoattack(version=plus)", ten, "l2")
    assert plus == choose_protocol("AutoAttack:plus", ten, "l2")
    assert (plus.attacks, plus.label) == (("autoattack-plus",), "AutoAttack (plus, L2)")
    assert choose_protocol("autoattack", ten, "linf").attacks == ("autoattack-standard",)


@pytest.mark.parametrize("spec, attack, label", [
    pytest.param("autoattack", "autoattack-standard", "AutoAttack (standard, L∞)",
                 marks=needs("autoattack-standard")),
    ("autoattack:rand", "autoattack-rand", "AutoAttack (rand, L∞)"),
])
def test_protocol_runs_end_to_end_and_the_report_names_it(spec, attack, label, checkpoint, tmp_path, capsys):
    # At eps 0.3 the first part fools every sample: cheap, and the plumbing is what is checked here.
    code, out, err = run_cli(capsys, "attack", "--checkpoint", checkpoint, "--protocol", spec, "--n", "8", "--eps",
                             "0,0.3", "--natural", "none", "--quiet", "--out", tmp_path / "run", "--report-dir",
                             tmp_path / "report")
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {r["attack"] for r in results["records"] if r["metric"] == "robust_accuracy"} >= {attack}
    assert results["run"]["config"]["protocol"] == label and results["run"]["config"]["attacks"] == [attack]
    assert f"protocol: {label}" in out
    assert f"produced by {label}" in (tmp_path / "report" / "report.md").read_text()


# --------------------------------------------------------- against pyautoattack on the same samples


def reference_robust(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, version: str,
                     norm: str) -> int:
    pyaa = pytest.importorskip("pyautoattack")
    aa = pyaa.AutoAttack(model, norm=PYAA_NORMS[norm], eps=eps, version=version, seed=0)
    aa.verbose = False
    adv, _ = aa.run_standard_evaluation(x, y, batch_size=len(x))
    return robust_count(model, adv, y)


def compare_with_reference(digits, version: str, norm: str, grid: tuple[float, ...]) -> None:
    """Ours within one sample of the reference at every eps (and never weaker by more)."""
    attack = get_attack(f"autoattack-{version}", norm=norm, seed=0)
    for eps in grid:
        ours = robust_count(digits.model, attack(digits.model, digits.x, digits.y, eps, keys=digits.keys), digits.y)
        theirs = reference_robust(digits.model, digits.x, digits.y, eps, version, norm)
        assert abs(ours - theirs) <= 1, (version, norm, eps, ours, theirs)


@pytest.mark.slow
def test_rand_version_matches_pyautoattack_rand(digits):
    compare_with_reference(digits, "rand", "linf", (0.05, 0.1))


@pytest.mark.slow
@pytest.mark.parametrize("version, norm, grid", [
    pytest.param("standard", "linf", (0.05, 0.1, 0.2), marks=needs("autoattack-standard")),
    pytest.param("standard", "l2", (0.5, 1.0), marks=needs("autoattack-standard", "l2")),
    pytest.param("standard", "l1", (2.0, 4.0), marks=needs("autoattack-standard", "l1")),
    pytest.param("plus", "linf", (0.05, 0.1), marks=needs("autoattack-plus")),
])
def test_versions_match_pyautoattack(digits, version, norm, grid):
    compare_with_reference(digits, version, norm, grid)


# -------------------------------------------------------------------------------- the resolver


def data_info(task: str, classes: int):
    from robustcv.data.base import DataInfo
    from robustcv.tasks import Task

    return DataInfo(name="digits", task=Task(task), classes=tuple(f"c{i}" for i in range(classes)), channels=1,
                    image_size=(8, 8), mean=(0.0,), std=(1.0,), ignore_index=255 if task == "segmentation" else None)


def test_the_plan_runs_the_protocol_attack_and_records_its_label():
    from robustcv.plan import resolve
    from robustcv.request import Request

    config = resolve(Request(protocol="autoattack:rand"), data_info("classification", 10))
    assert config.attacks == ["autoattack-rand"] and config.protocol == "AutoAttack (rand, L∞)"
    assert resolve(Request(), data_info("classification", 10)).protocol is None  # the default run is unchanged


def test_sea_runs_its_three_single_loss_attacks_for_the_tasks_greedy_miou_fold():
    """SEA as published picks each image's loss greedily for the dataset's mIoU: the segmentation
    task's worst-case rule over three single-loss runs, which one composite attack (seeing a batch)
    cannot do."""
    from robustcv.plan import resolve
    from robustcv.request import Request
    from robustcv.tasks.segmentation import SEA_ATTACKS

    config = resolve(Request(protocol="sea"), data_info("segmentation", 4))
    assert tuple(config.attacks) == SEA_ATTACKS and config.protocol == "SEA (L∞)"


@pytest.mark.parametrize("request_kw, task, classes, words", [
    ({"protocol": "autoattack:rand", "attacks": ("pgd",)}, "classification", 10, "runs its own attacks"),
    ({"protocol": "autoattack:rand"}, "classification", 2, "at least 3 classes"),
    ({"protocol": "autoattack:rand", "targeted": "random"}, "classification", 10, "is untargeted"),
    ({"protocol": "autoattack"}, "segmentation", 4, "use --protocol sea"),
    ({"protocol": "sea"}, "multilabel", 5, "is for segmentation models, not multilabel"),
])
def test_the_plan_refuses_what_a_protocol_cannot_run(request_kw, task, classes, words):
    from robustcv.plan import PlanError, resolve
    from robustcv.request import Request

    with pytest.raises(PlanError, match=words) as caught:
        resolve(Request(**request_kw), data_info(task, classes))
    assert caught.value.option == "--protocol"


@pytest.mark.slow
def test_standard_apgd_parts_match_pyautoattack_custom(digits):
    """Standard's APGD-CE → APGD-T, as configured, against pyautoattack running just those two
    with the standard settings: checks the cascade on real parts before FAB-T and Square exist."""
    pyaa = pytest.importorskip("pyautoattack")
    parts = [p for p in version_parts("standard", "linf") if p.name.startswith("apgd")]
    attacks = [(get_attack(p.name, norm="linf", seed=part_seed(0, i), **p.settings), 1) for i, p in enumerate(parts)]
    for eps in (0.05, 0.1):
        adv, _ = cascade(digits.model, attacks, digits.x, digits.y, eps, Classification(), digits.keys)
        aa = pyaa.AutoAttack(digits.model, norm="Linf", eps=eps, version="custom", attacks=["apgd-ce", "apgd-t"],
                             seed=0)
        aa.verbose = False
        aa.apgd.n_restarts, aa.apgd_targeted.n_target_classes = 1, 9  # what set_version('standard') sets
        ref, _ = aa.run_standard_evaluation(digits.x, digits.y, batch_size=len(digits.x))
        ours, theirs = robust_count(digits.model, adv, digits.y), robust_count(digits.model, ref, digits.y)
        assert ours <= theirs + 1, (eps, ours, theirs)


def test_the_python_api_takes_a_protocol(digits):
    import robustcv

    result = robustcv.evaluate(digits.model, (digits.x[:8], digits.y[:8]), num_classes=10, eps=[0.3], natural=[],
                               protocol="autoattack:rand")
    attacks = {r.attack for r in result.records if r.metric == "robust_accuracy"}
    assert "autoattack-rand" in attacks and not attacks & {"fgsm", "pgd", "apgd-ce"}
    with pytest.raises(UserError, match="runs its own attacks"):
        robustcv.evaluate(digits.model, (digits.x[:8], digits.y[:8]), num_classes=10, attacks=["pgd"],
                          protocol="autoattack")
