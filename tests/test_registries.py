"""One registry shape: duplicates refused, case-insensitive names, one-line errors, families."""
from __future__ import annotations

import pytest

from robustcv.registry import Registry


def test_register_get_names_and_duplicates():
    registry: Registry[int] = Registry("widget")
    registry.register("Alpha", 1)

    @registry.register("beta")
    def beta():
        return 2

    assert registry.get("ALPHA") == 1 and registry.get("beta") is beta
    assert registry.names() == ["alpha", "beta"] and "Beta" in registry
    with pytest.raises(ValueError, match="already registered"):
        registry.register("alpha", 3)
    with pytest.raises(ValueError, match=r"unknown widget 'gamma'; known: alpha, beta"):
        registry.get("gamma")


def test_families_keep_their_argument_case():
    registry: Registry[str] = Registry("dataset", error=KeyError)
    registry.register("folder:<path>", "folder builder")
    assert registry.resolve("Folder:./My Images") == ("folder:<path>", "folder builder", "./My Images")
    with pytest.raises(KeyError, match="needs something after the colon"):
        registry.get("folder:")
    with pytest.raises(KeyError, match="unknown dataset"):
        registry.get("nothing:here")


def test_every_registry_of_the_code_base_has_the_shape():
    from robustcv.catalogues import ATTACKS, DEFENSES, NATURAL
    from robustcv.data.registry import DATASETS
    from robustcv.errors import UserError
    from robustcv.models.registry import MODELS
    from robustcv.tasks import TASKS

    for registry in (NATURAL, DEFENSES, ATTACKS, DATASETS, MODELS, TASKS):
        assert isinstance(registry, Registry) and registry.names() == sorted(registry.names())
        with pytest.raises((ValueError, UserError), match=f"unknown {registry.kind} 'nope'; known: "):
            registry.get("nope")
    assert {"foolbox:<name>", "art:<name>", "torchattacks:<name>"} <= set(ATTACKS.names())
    assert "imagefolder:<path>" in DATASETS
