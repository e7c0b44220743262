"""pytest fixtures of the testing kit. Make them available from a ``conftest.py``::

    from diagnostics.testing.pytest_plugin import register_plugin  # noqa: F401

or, in the top-level conftest only, ``pytest_plugins = ["diagnostics.testing.pytest_plugin"]``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from .fixtures import installed_plugin


@pytest.fixture
def register_plugin():
    """``register_plugin(plugin, name=None, version="0.0.0", source=None) -> name``.

    Installs ``plugin`` through a real entry point (see :func:`diagnostics.testing.installed_plugin`)
    for this test only; everything registered is removed in ``finally`` when the test ends.
    """
    with contextlib.ExitStack() as stack:
        def register(plugin: Any, name: str | None = None, version: str = "0.0.0", source: str | None = None) -> str:
            return stack.enter_context(installed_plugin(plugin, name, version=version, source=source))
        yield register
