"""The package layout holds: layers, one home per name, the API page, module sizes.

Read from the source (ast), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import gemma_pref as gp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gemma_pref"

#: Bottom to top. A module may import its own unit and the units of lower layers only
#: (``_base`` is the estimator base below every family of estimators).
LAYERS: list[set[str]] = [
    {"_version", "exceptions", "_atomic", "_ownership", "_compat"},
    {"_versioning"},
    {"data"},
    {"backend", "testing"},
    {"_base"},
    {"text"},
    {"embedding"},
    {"evaluation"},
    {"models"},
    {"pipeline"},
    {"persistence", "distributed"},
    {"cli", "__init__"},
    {"__main__"},
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}

#: The subpackages and their public names (their __all__): each name has one home.
SUBPACKAGES = [
    "data",
    "text",
    "backend",
    "embedding",
    "models",
    "pipeline",
    "evaluation",
    "persistence",
    "distributed",
    "exceptions",
]

#: No module is longer than this (lines).
MAX_LINES = 500


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, parts


def _from_module(node: ast.ImportFrom, package: list[str]) -> list[str] | None:
    """The module a ``from ... import`` inside gemma_pref reads, as parts below gemma_pref
    (``[]``: the package itself), or ``None`` for another library's."""
    if node.level:
        base = package[: len(package) - (node.level - 1)]
        return base + (node.module.split(".") if node.module else [])
    if node.module and node.module.split(".")[0] == "gemma_pref":
        return node.module.split(".")[1:]
    return None


def _imported_units(path: Path, parts: tuple[str, ...]):
    """(unit, line) of every gemma_pref import in a module, lazy ones included."""
    package = list(parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[list[str]] = []
        if isinstance(node, ast.ImportFrom):
            module = _from_module(node, package)
            if module is not None:
                targets += [module] if module else [[a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            targets += [
                a.name.split(".")[1:] for a in node.names if a.name.startswith("gemma_pref.")
            ]
        for target in targets:
            yield target[0], node.lineno


def test_every_module_imports_its_own_layer_or_below():
    upward = []
    for path, parts in _modules():
        unit = parts[0]
        assert unit in LAYER_OF, f"{unit} has no layer in tests/test_layout.py"
        for target, line in _imported_units(path, parts):
            if target == unit or target not in LAYER_OF:  # e.g. `from .. import __version__`
                continue
            if LAYER_OF[target] > LAYER_OF[unit]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({unit} imports {target})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_module_imports_another_modules_private_names():
    # shared private pieces live in underscore modules meant for them (``from ..backend
    # import _compute``); a module's own underscore names stay in that module
    found = []
    for path, parts in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = _from_module(node, list(parts[:-1]))
            if module is None:
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                name = ".".join(["gemma_pref", *module, alias.name])
                if private and importlib.util.find_spec(name) is None:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}")
    assert not found, "private names imported from another module:\n" + "\n".join(found)


def test_each_public_name_has_one_home_and_the_top_level_is_small():
    homes: dict[str, str] = {}
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"gemma_pref.{sub}")
        for name in module.__all__:
            assert name not in homes, f"{name} is public in {homes.get(name)} and {sub}"
            homes[name] = sub
            assert hasattr(module, name), f"gemma_pref.{sub}.{name} is listed but missing"
    top = [n for n in gp.__all__ if n != "__version__"]
    assert 15 <= len(top) <= 25, len(top)
    for name in top:
        # the same object as at its home, not a second definition
        home = importlib.import_module(f"gemma_pref.{homes[name]}")
        assert getattr(gp, name) is getattr(home, name), name


def test_module_all_lists_only_what_the_module_defines():
    """A module's __all__ names what it defines; a subpackage's __init__ collects them."""
    offenders = []
    for path, parts in _modules():
        if parts[-1] == "__init__":
            continue
        tree = ast.parse(path.read_text())
        defined = set()
        listed: list[str] = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        defined.add(target.id)
                        if target.id == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                            listed = [
                                e.value for e in node.value.elts if isinstance(e, ast.Constant)
                            ]
        foreign = [n for n in listed if n not in defined]
        if foreign:
            offenders.append(f"{path.relative_to(ROOT)}: {foreign}")
    assert not offenders, "re-exported in a module's __all__:\n" + "\n".join(offenders)


def test_api_page_documents_every_public_name_once_at_its_home():
    page = (ROOT / "docs" / "api.md").read_text()
    documented = re.findall(r"^::: (gemma_pref[\w.]*)$", page, flags=re.M)
    assert len(documented) == len(set(documented))
    for target in documented:
        module_name, _, name = target.rpartition(".")
        assert hasattr(importlib.import_module(module_name), name), target
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"gemma_pref.{sub}")
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, (str, tuple, list, dict, frozenset)):
                assert f"`{name}`" in page, f"constant gemma_pref.{sub}.{name} not on docs/api.md"
            elif type(value).__name__ != "module":
                assert f"gemma_pref.{sub}.{name}" in documented, f"gemma_pref.{sub}.{name}"
    for name in gp.__all__:
        assert f"`gp.{name}`" in page or name == "__version__", name


@pytest.mark.parametrize(
    "path", [p for p, _ in _modules()], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_is_over_the_size_a_reader_takes_in(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"
