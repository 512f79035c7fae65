"""The house's rules that a reader cannot see in one file (design.md, issue 22).

Imports are read from the source with ``ast`` (module-level and function-level alike, since a
function-level import still ties two modules together): no import circle among our modules, no
private name imported across modules, ``attacks`` and ``defenses`` import nothing of ``robustcv``,
and ``robustcv`` takes no registry from ``attacks`` (task-name comparisons: test_task_plugins.py).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("robustcv", "attacks", "defenses")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that an import of ``name`` loads (a name inside it maps to the module)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """``(imported module, names taken from it)`` for every import statement of ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [alias.name for alias in node.names]
            found.append((base, names))
            found += [(f"{base}.{n}", []) for n in names if f"{base}.{n}" in MODULES]
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module in MODULES:
        targets = {_resolve(name) for name, _ in _imports(module)}
        # a package's own __init__ is imported by every submodule: not an edge of a circle
        graph[module] = {t for t in targets if t and t != module and not module.startswith(t + ".")}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    assert _circles(_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_names_imported_across_modules():
    offenders = [f"{module} takes {name} from {source}" for module in MODULES
                 for source, names in _imports(module) if _resolve(source)
                 for name in names if name.startswith("_") and not name.startswith("__")]
    assert offenders == []


@pytest.mark.parametrize("package", ["attacks", "defenses"])
def test_attacks_and_defenses_import_nothing_of_robustcv(package):
    offenders = [module for module in MODULES if module.split(".")[0] == package
                 and any(_resolve(name) and name.split(".")[0] == "robustcv" for name, _ in _imports(module))]
    assert offenders == []


def test_robustcv_takes_no_registry_from_attacks():
    offenders = [module for module in MODULES if module.startswith("robustcv")
                 for source, names in _imports(module)
                 if source.startswith("attacks") and ("Registry" in names or source == "attacks.registries")]
    assert offenders == []
