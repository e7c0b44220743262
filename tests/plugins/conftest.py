"""Fixtures for the third-party plugin tests: the example plugin built and installed from its own
package, and throwaway plugins installed through real entry points (diagnostics.testing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diagnostics.testing.pytest_plugin import register_plugin  # noqa: F401  (the kit's fixture, used by these tests)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diagnostics-robustness"


def pip_offline_args() -> list[str]:
    """Build with the venv's own setuptools and no index when it has one (fast, offline); otherwise
    (a Python 3.12+ venv has no setuptools) let pip fetch it into an isolated build environment."""
    import importlib.util

    common = ["--quiet", "--no-deps", "--disable-pip-version-check"]
    if importlib.util.find_spec("setuptools") is not None:
        return [*common, "--no-build-isolation", "--no-index"]
    return common


@pytest.fixture(scope="session")
def robustness_site(tmp_path_factory):
    """examples/diagnostics-robustness built as a wheel by pip and installed into a private site dir.

    A real install (pip reads its pyproject.toml and writes its dist-info with the entry point), but
    into a directory of this session rather than the shared venv, so that other tests and other
    people's runs do not suddenly gain an analyzer. Returns the directory; put it on PYTHONPATH
    (subprocesses) or sys.path (this process) to have the plugin "installed".
    """
    work = tmp_path_factory.mktemp("robustness-build")
    src = work / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", *pip_offline_args(), "--target", str(site), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip could not install the example plugin:\n{proc.stdout}\n{proc.stderr}"
    return site


@pytest.fixture
def with_robustness(robustness_site, monkeypatch):
    """The example plugin installed for this test: on sys.path and PYTHONPATH."""
    monkeypatch.syspath_prepend(str(robustness_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(robustness_site), os.environ.get("PYTHONPATH")])))
    return robustness_site
