"""The one registry shape: typed entries, one-line errors with a suggestion, one spec syntax, and
attacks that receive exactly the run settings they declare."""
from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from click.testing import CliRunner

from robustcv.errors import UserError
from robustcv.registry import Entry, Registry


def test_duplicates_are_refused_also_through_an_alias():
    registry: Registry[int] = Registry("widget")
    registry.register("alpha", 1, aliases=("a",), summary="the first")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("ALPHA", 2)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 3)
    assert registry.entry("A") == Entry("alpha", 1, summary="the first")


def test_unknown_names_give_one_line_with_a_suggestion():
    registry: Registry[int] = Registry("widget", error=UserError)
    for name in ("alpha", "beta", "gamma"):
        registry.register(name, len(name))
    with pytest.raises(UserError) as caught:
        registry.get("gamme")
    message = str(caught.value)
    assert "\n" not in message
    assert message == "unknown widget 'gamme'; known: alpha, beta, gamma; did you mean 'gamma'?"


def test_entries_carry_their_metadata_and_filter_by_task():
    registry: Registry[str] = Registry("dataset")
    registry.register("digits", "d", tasks=("classification",), eps_scale=0.1)
    registry.register("shapes", "s", tasks=("classification", "segmentation"))
    assert registry.names("segmentation") == ["shapes"]
    assert registry.entry("digits").eps_scale == 0.1 and registry.entry("digits").serves("classification")


@pytest.mark.parametrize("registry_path, name", [
    ("robustcv.data.registry:DATASETS", "digits"), ("robustcv.models.registry:MODELS", "small_cnn"),
    ("robustcv.catalogues:ATTACKS", "pgd"), ("robustcv.catalogues:DEFENSES", "jpeg"),
    ("robustcv.catalogues:NATURAL", "noise"), ("robustcv.catalogues:ATTACK_LOSSES", "dlr"),
    ("robustcv.training.kinds:TRAINING_LOSSES", "focal"), ("robustcv.training.kinds:OPTIMIZERS", "sgd"),
    ("robustcv.training.kinds:SCHEDULES", "cosine"), ("robustcv.training.kinds:ADVERSARIAL_TRAINING", "pgd-at"),
    ("robustcv.tasks:TASKS", "segmentation"),
])
def test_every_kind_lists_from_its_registry(registry_path, name):
    import importlib

    import robustcv.data  # noqa: F401  (registers the datasets)
    import robustcv.models  # noqa: F401  (registers the models)

    module, _, attribute = registry_path.partition(":")
    registry = getattr(importlib.import_module(module), attribute)
    assert isinstance(registry, Registry) and name in registry.names()
    assert all(isinstance(entry, Entry) for entry in registry.entries())


def test_recipe_choices_come_from_the_registries():
    from robustcv.training import kinds, recipe

    assert recipe.OPTIMIZERS == tuple(kinds.OPTIMIZERS.names())
    assert recipe.ADV_TRAIN == tuple(kinds.ADVERSARIAL_TRAINING.names())
    assert recipe.LOSSES == tuple(kinds.TRAINING_LOSSES.names())


@pytest.mark.parametrize("registry_path, short, spelled", [
    ("robustcv.data.registry:DATASETS", "imagefolder:./my images", "imagefolder(path=./my images)"),
    ("robustcv.models.registry:MODELS", "deeplabv3plus:resnet18", "deeplabv3plus(encoder=resnet18)"),
    ("robustcv.models.registry:MODELS", "unet:resnet18", "unet(encoder=resnet18)"),
    ("robustcv.catalogues:DEFENSES", "jpeg:75", "jpeg(quality=75)"),
    ("robustcv.catalogues:DEFENSES", "blur:1.5,5", "blur(sigma=1.5, kernel=5)"),
    ("robustcv.catalogues:ATTACKS", "foolbox:LinfPGD(steps=3)", "foolbox(name=LinfPGD, steps=3)"),
])
def test_short_forms_are_aliases_of_the_spec_syntax(registry_path, short, spelled):
    import importlib

    import robustcv.data  # noqa: F401
    import robustcv.models  # noqa: F401

    module, _, attribute = registry_path.partition(":")
    registry = getattr(importlib.import_module(module), attribute)
    entry, kwargs = registry.parse(short)
    assert registry.parse(spelled) == (entry, kwargs) and kwargs
    if entry.family and set(kwargs) == set(entry.params[:1]):
        assert registry.canonical(spelled) == short


def test_spelled_specs_build_what_the_short_forms_build():
    from defenses import parse_defense
    from robustcv.models.registry import resolve_model

    assert repr(parse_defense("jpeg(quality=75)")) == repr(parse_defense("jpeg:75"))
    assert resolve_model("unet(encoder=resnet18)") == resolve_model("unet:resnet18")


class Case(NamedTuple):
    spec: str
    expected: dict[str, Any]  # the run settings the attack must receive (objective: any)


RUN = dict(steps=13, apgd_steps=30, restarts=2, seed=5, rel_step_size=0.3)
PGD_SETTINGS = {"norm": "linf", "targeted": False, "steps": 13, "step_size": None, "rel_step_size": 0.3,
                "restarts": 2, "seed": 5}
APGD_SETTINGS = {"norm": "linf", "targeted": False, "steps": 30, "seed": 5}
CASES = [
    Case("fgsm", {"norm": "linf", "targeted": False}),
    Case("pgd", PGD_SETTINGS),
    Case("segpgd", PGD_SETTINGS),
    Case("cospgd", PGD_SETTINGS),
    Case("apgd", APGD_SETTINGS),
    Case("apgd-ce", APGD_SETTINGS),
    Case("apgd-dlr", APGD_SETTINGS),
    Case("apgd-t", {"norm": "linf", "steps": 15, "seed": 5}),  # its targets share the budget
    Case("square", {"norm": "linf", "seed": 5}),
]


@pytest.mark.parametrize("case", CASES, ids=[case.spec for case in CASES])
def test_each_attack_receives_exactly_its_declared_settings(case, monkeypatch):
    import attacks
    from attacks.objectives import Segmentation
    from robustcv.evaluation.attacking import build_attack
    from robustcv.evaluation.config import EvalConfig

    received = {}
    real = attacks.get_attack

    def spy(name, **kwargs):
        received.update(kwargs)
        return real(name, **kwargs)

    monkeypatch.setattr(attacks, "get_attack", spy)
    objective = Segmentation() if case.spec in ("segpgd", "cospgd") else None
    build_attack(case.spec, EvalConfig(eps=[0.0, 0.1], headline_eps=0.1, **RUN), objective)
    objective_expected = case.spec != "square"
    assert ("objective" in received) == objective_expected
    received.pop("objective", None)
    assert received == case.expected


@pytest.mark.parametrize("spec, loss", [("apgd-ce", "ce"), ("apgd-dlr", "dlr"), ("pgd", "ce"), ("apgd-t", "ce")])
def test_a_name_that_carries_its_loss_keeps_it(spec, loss):
    from robustcv.evaluation.attacking import build_attack
    from robustcv.evaluation.config import EvalConfig

    assert build_attack(spec, EvalConfig(eps=[0.0, 0.1], headline_eps=0.1)).objective.loss_name == loss


def test_segmentation_attacks_take_their_own_loss_and_early_stop_only_where_declared():
    from attacks.objectives import Segmentation
    from robustcv.evaluation.attacking import EARLY_STOPPING, build_attack
    from robustcv.evaluation.config import EvalConfig

    config = EvalConfig(eps=[0.0, 0.1], headline_eps=0.1)
    assert build_attack("cospgd", config, Segmentation()).objective.loss_name == "cospgd"
    assert set(EARLY_STOPPING) == {"pgd", "segpgd", "cospgd", "apgd", "apgd-ce", "apgd-dlr", "apgd-t", "sea"}
    assert build_attack("pgd", config, early_stop=False).early_stop is False
    build_attack("fgsm", config, early_stop=False)  # not declared: not passed


def test_an_untargeted_attack_refuses_a_targeted_run():
    from robustcv.evaluation.attacking import build_attack
    from robustcv.evaluation.config import EvalConfig

    with pytest.raises(UserError, match="apgd-t aims at every other class in turn"):
        build_attack("apgd-t", EvalConfig(eps=[0.0, 0.1], headline_eps=0.1, targeted="random"))


def test_unknown_attack_suggests_the_closest():
    from robustcv.evaluation.attacking import build_attack
    from robustcv.evaluation.config import EvalConfig

    with pytest.raises(UserError, match="did you mean 'apgd-ce'"):
        build_attack("apgd-cd", EvalConfig(eps=[0.0, 0.1], headline_eps=0.1))


def test_robustcv_list_shows_every_kind_from_the_registries():
    from robustcv.catalogues import ATTACKS, DEFENSES, NATURAL
    from robustcv.cli import cli
    from robustcv.tasks import list_tasks
    from robustcv.training import kinds

    result = CliRunner().invoke(cli, ["list"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    kinds_shown = ("tasks", "datasets", "models", "optimizers", "schedules", "losses", "adversarial training",
                   "attacks", "natural sweeps", "defenses")
    assert all(kind in result.output for kind in kinds_shown)
    names = [*list_tasks(), *ATTACKS.names(), *NATURAL.names(), *DEFENSES.names(),
             *kinds.OPTIMIZERS.names(), *kinds.ADVERSARIAL_TRAINING.names()]
    assert all(name in result.output for name in names)
