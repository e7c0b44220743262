"""The public edge (issue 24): docs/plugins.md's table "What a plugin may import" is the one list of
what a plugin may take from ``diagnostics``; every built-in plugin keeps to it (read from its source
with ``ast``: imports, and attributes of imported modules), every listed name exists, and the core
imports none of the libraries its plugins wrap."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import diagnostics

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "plugins.md"
PLUGINS = sorted((REPO / "plugins").glob("*.py"))
#: Libraries a plugin wraps; the core never imports them (docs/plugins.md, the house style).
WRAPPED = ("captum", "shap", "lime", "streamlit")


def public_edge(text: str | None = None) -> dict[str, set[str]]:
    """``{module: names}`` from the table after ``<!-- public-edge -->`` (rows for tests only left out)."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    m = re.search(r"<!-- public-edge -->\n(.*?)\n\n", text, re.S)
    assert m, "docs/plugins.md has no table after <!-- public-edge -->"
    edge = {}
    for row in m.group(1).splitlines()[2:]:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        module = cells[0].strip("`")
        if cells[1].startswith("(tests only)"):
            continue
        edge[module] = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[1]))
    return edge


def violations(source: str, filename: str, edge: dict[str, set[str]]) -> list[str]:
    """``file:line: name (why)`` for each import or use of ``diagnostics`` outside ``edge``, and each
    import of another plugin."""
    tree = ast.parse(source, filename)
    out: list[str] = []
    modules: dict[str, str] = {}  # local name -> the diagnostics module it is bound to

    def bad(node, name, why="not in docs/plugins.md's public edge"):
        out.append(f"{filename}:{node.lineno}: {name} ({why})")

    def is_ours(module: str) -> bool:
        return module == "diagnostics" or module.startswith("diagnostics.")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or module.split(".")[0] in ("diagnostics_plugins", "plugins"):
                bad(node, f"{'.' * node.level}{module}", "a plugin imports no other plugin")
                continue
            if not is_ours(module):
                continue
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if full in edge:
                    modules[alias.asname or alias.name] = full
                elif alias.name not in edge.get(module, set()):
                    bad(node, full)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in ("diagnostics_plugins", "plugins"):
                    bad(node, alias.name, "a plugin imports no other plugin")
                elif is_ours(alias.name):
                    if alias.name != "diagnostics" and alias.name not in edge:
                        bad(node, alias.name)
                    modules[alias.asname or root] = alias.name if alias.asname else "diagnostics"
    seen = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in modules:
            continue
        path = modules[base.id].split(".") + chain
        # the longest listed module the path goes through; the name after it must be listed there
        for i in range(len(path), 0, -1):
            prefix = ".".join(path[:i])
            if prefix in edge or prefix == "diagnostics":
                if i < len(path) and path[i] not in edge.get(prefix, set()):
                    name = f"{prefix}.{path[i]}"
                    if (node.lineno, name) not in seen:
                        seen.add((node.lineno, name))
                        bad(node, name)
                break
    return sorted(set(out), key=lambda v: (int(v.split(":")[1]), v))


EDGE = public_edge()


@pytest.mark.parametrize("path", PLUGINS, ids=[p.name for p in PLUGINS])
def test_every_builtin_plugin_imports_only_the_public_edge(path):
    found = violations(path.read_text(encoding="utf-8"), path.name, EDGE)
    assert not found, (f"{path.name} reaches past the public edge (docs/plugins.md, 'What a plugin may import'); "
                       f"use a listed name, move the helper into the plugin, or list it with a reason:\n  "
                       + "\n  ".join(found))


def test_the_checker_catches_each_way_past_the_edge():
    source = (
        "import diagnostics\n"
        "from diagnostics import Analyzer, Finding\n"
        "from diagnostics import explain as E\n"
        "from diagnostics.health import thresholds, eigenvalues\n"
        "import diagnostics._runner\n"
        "from diagnostics_plugins.weights import Weights\n"
        "from . import zoo\n"
        "from diagnostics import _worker\n"
        "def run():\n"
        "    E.feature_groups(1, 2)\n"
        "    E.edge_map(1)\n"
        "    diagnostics.hookimpl\n"
        "    diagnostics.health.forward(1)\n"
        "    diagnostics.health.load_history('x')\n"
        "    diagnostics.report.Report\n"
    )
    assert violations(source, "p.py", EDGE) == [
        "p.py:4: diagnostics.health.eigenvalues (not in docs/plugins.md's public edge)",
        "p.py:5: diagnostics._runner (not in docs/plugins.md's public edge)",
        "p.py:6: diagnostics_plugins.weights (a plugin imports no other plugin)",
        "p.py:7: . (a plugin imports no other plugin)",
        "p.py:8: diagnostics._worker (not in docs/plugins.md's public edge)",
        "p.py:11: diagnostics.explain.edge_map (not in docs/plugins.md's public edge)",
        "p.py:14: diagnostics.health.load_history (not in docs/plugins.md's public edge)",
        "p.py:15: diagnostics.report (not in docs/plugins.md's public edge)",
    ]


def test_every_listed_name_exists_and_the_package_s_names_are_listed():
    missing = [f"{module}.{name}" for module, names in EDGE.items() for name in sorted(names)
               if not hasattr(importlib.import_module(module), name)]
    assert not missing, f"docs/plugins.md's public edge lists names that do not exist: {missing}"
    assert set(diagnostics.__all__) <= EDGE["diagnostics"], sorted(set(diagnostics.__all__) - EDGE["diagnostics"])


def test_the_core_imports_none_of_the_libraries_its_plugins_wrap():
    found = []
    for path in sorted((REPO / "diagnostics").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in WRAPPED]
    assert not found, f"the core imports a wrapped library (it belongs in its plugin): {found}"


def edge_modules(text: str | None = None) -> set[str]:
    """Every module the public-edge table lists, the rows for tests only included."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    m = re.search(r"<!-- public-edge -->\n(.*?)\n\n", text, re.S)
    assert m, "docs/plugins.md has no table after <!-- public-edge -->"
    return {row.strip().strip("|").split("|")[0].strip().strip("`") for row in m.group(1).splitlines()[2:]}


def user_modules(text: str | None = None) -> set[str]:
    """The public modules for users (not plugins), listed between ``<!-- user-modules -->`` markers; the
    names in parentheses are what each module is for, not modules."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    m = re.search(r"<!-- user-modules -->(.*?)<!-- /user-modules -->", text, re.S)
    assert m, "docs/plugins.md has no list between <!-- user-modules --> and <!-- /user-modules -->"
    return set(re.findall(r"`(diagnostics\.[a-z_]+)`", re.sub(r"\([^)]*\)", "", m.group(1))))


def unmarked(entries: list[str], listed: set[str]) -> list[str]:
    """``diagnostics/ENTRY`` for each top-level module (``name.py``) or subpackage (``name``) of the
    package that is neither listed as public nor named with a leading ``_``."""
    out = []
    for entry in sorted(entries):
        name = entry.removesuffix(".py")
        if name.startswith("_") or f"diagnostics.{name}" in listed:
            continue
        out.append(f"diagnostics/{entry}")
    return out


def package_entries() -> list[str]:
    root = REPO / "diagnostics"
    return sorted(p.name for p in root.iterdir()
                  if (p.is_file() and p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").is_file()))


def test_every_implementation_module_is_named_private():
    """Issue 24: a reader of diagnostics/ tells the API from the implementation by the file name. A
    module is public only if docs/plugins.md lists it (the edge table or the user modules)."""
    found = unmarked(package_entries(), edge_modules() | user_modules())
    assert not found, ("modules of diagnostics that are neither in docs/plugins.md's lists ('What a plugin may "
                       "import': the public-edge table and the user modules) nor named with a leading '_'; "
                       "rename an implementation module to _NAME.py, or list a public one with what it is for: "
                       + ", ".join(found))


def test_the_private_name_check_catches_an_unmarked_module():
    listed = {"diagnostics.api", "diagnostics.health"}
    entries = ["__init__.py", "_runner.py", "api.py", "health", "runner.py", "_explain_impl", "newthing"]
    assert unmarked(entries, listed) == ["diagnostics/newthing", "diagnostics/runner.py"]
    assert user_modules("x <!-- user-modules -->`diagnostics.api` (`diagnostics.diagnose`), `diagnostics.report`"
                        "<!-- /user-modules -->.") == {"diagnostics.api", "diagnostics.report"}


def test_every_listed_public_module_exists():
    entries = {e.removesuffix(".py") for e in package_entries()}
    listed = edge_modules() | user_modules()
    assert user_modules() >= {"diagnostics.api", "diagnostics.callbacks", "diagnostics.report"}
    missing = sorted(m for m in listed if m != "diagnostics" and m.split(".")[1] not in entries)
    assert not missing, f"docs/plugins.md lists modules of diagnostics that do not exist: {missing}"
