"""`diagnose plugin new NAME` writes a package that pip installs, `diagnose plugins` lists, and whose own
test (the analyzer contract) passes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from diagnostics import ExitCode

from ..conftest import run_diagnose
from .conftest import pip_offline_args


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    parent = tmp_path_factory.mktemp("scaffold")
    proc = run_diagnose("plugin", "new", "my_check", "--dir", parent)
    return proc, parent / "diagnostics-my-check"


def test_plugin_new_writes_the_package(scaffolded):
    proc, root = scaffolded
    assert proc.returncode == 0, proc.stderr
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "src/diagnostics_my_check/__init__.py", "tests/test_my_check.py"]
    assert proc.stdout.splitlines()[-1] == f"next: pip install -e {root} && diagnose plugins && pytest {root}"
    assert 'my_check = "diagnostics_my_check"' in (root / "pyproject.toml").read_text()


def test_plugin_new_refuses_bad_names_and_existing_directories(scaffolded, tmp_path):
    proc = run_diagnose("plugin", "new", "My-Check", "--dir", tmp_path)
    assert proc.returncode == ExitCode.USAGE
    assert "plugin name must be lower-case letters, digits and underscores" in proc.stderr
    _, root = scaffolded
    proc = run_diagnose("plugin", "new", "my_check", "--dir", root.parent)
    assert proc.returncode == ExitCode.USAGE
    assert f"{root} already exists; choose another name or remove it" in proc.stderr


def test_the_package_installs_lists_and_passes_its_own_test(scaffolded, tmp_path, monkeypatch, keras_tf):
    _, root = scaffolded
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", *pip_offline_args(), "--target", str(site), str(root)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    listing = run_diagnose("plugins", env={"PYTHONPATH": str(site)})
    assert listing.returncode == 0, listing.stdout
    row = next(line for line in listing.stdout.splitlines() if line.startswith("my_check "))
    assert row.split() == ["my_check", "0.1.0", "analyzers", "my_check", "ok"]
    monkeypatch.syspath_prepend(str(site))
    spec = importlib.util.spec_from_file_location("generated_test", root / "tests" / "test_my_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_contract()  # raises ContractError if the generated analyzer breaks the contract
    assert module.MyCheck.name == "my_check"
