"""Register a plugin for one test, through a real ``diagnostics`` entry point, and remove it after.

:func:`installed_plugin` writes a minimal ``*.dist-info`` (METADATA and ``entry_points.txt``) into
a temporary directory and puts that directory on ``sys.path`` and ``PYTHONPATH``. The plugin is
then found exactly as a pip-installed one would be — by ``PluginHost().load()`` in this process,
by the worker processes a run spawns, and by ``diagnose`` subprocesses — and it disappears in
``finally``, whatever the test did.

The pytest fixture ``register_plugin`` (in :mod:`diagnostics.testing.pytest_plugin`) wraps it; in a
``conftest.py``::

    from diagnostics.testing.pytest_plugin import register_plugin  # noqa: F401  (makes the fixture available)

    def test_mine(register_plugin, tmp_path):
        register_plugin("my_package.my_plugin")          # or a module object, or an Analyzer subclass
        report = diagnostics.diagnose(model, data, only=("mine",))
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Iterator

from ..analyzer import Analyzer
from .._plugin_manager import ENTRY_POINT_GROUP


@contextlib.contextmanager
def installed_plugin(plugin: Any, name: str | None = None, *, version: str = "0.0.0", source: str | None = None,
                     directory: str | os.PathLike | None = None) -> Iterator[str]:
    """Install ``plugin`` as an entry point for the duration of the block; yields the plugin's name.

    ``plugin`` is an import path (``"package.module"`` or ``"package.module:attr"``), a module, or
    an :class:`~diagnostics.Analyzer` subclass (a one-line plugin module registering it is
    generated). Whatever it names must be importable by that path in other processes too: the
    directory its top-level package lives in is added to ``PYTHONPATH``. With ``source``, the
    module ``plugin`` (a plain module name) is first written with that text: a throwaway plugin.
    """
    own_dir = directory is None
    root = Path(tempfile.mkdtemp(prefix="diagnostics-plugin-") if own_dir else directory)
    root.mkdir(parents=True, exist_ok=True)
    extra_paths = [str(root)]
    if source is not None:
        if not isinstance(plugin, str) or not plugin.isidentifier():
            raise ValueError(f"with source=, plugin must be the plain module name to write, got {plugin!r}")
        import textwrap

        (root / f"{plugin}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    if isinstance(plugin, type) and issubclass(plugin, Analyzer):
        cls = plugin
        name = name or cls.name.replace(".", "_")
        extra_paths += _import_roots(cls.__module__)
        module_name = f"_diagnostics_test_plugin_{_ident(name)}"
        (root / f"{module_name}.py").write_text(
            "import diagnostics\n"
            f"from {cls.__module__} import {cls.__qualname__.split('.')[0]} as _root\n\n"
            f"_cls = _root{''.join('.' + p for p in cls.__qualname__.split('.')[1:])}\n\n\n"
            "@diagnostics.hookimpl\n"
            "def register_analyzers(register):\n"
            "    register(_cls)\n", encoding="utf-8")
        target = module_name
    elif isinstance(plugin, types.ModuleType):
        target = plugin.__name__
        name = name or target.rsplit(".", 1)[-1]
        extra_paths += _import_roots(target)
    elif isinstance(plugin, str):
        target = plugin
        name = name or plugin.partition(":")[0].rsplit(".", 1)[-1]
    else:
        raise TypeError(f"installed_plugin() takes an import path, a module or an Analyzer subclass, got {plugin!r}")
    dist = f"diagnostics_test_{_ident(name)}"
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n", encoding="utf-8")
    old_path = list(sys.path)
    old_env = os.environ.get("PYTHONPATH")
    added = [p for p in dict.fromkeys(extra_paths)]
    sys.path[:0] = added
    os.environ["PYTHONPATH"] = os.pathsep.join(added + ([old_env] if old_env else []))
    importlib.invalidate_caches()
    try:
        yield name
    finally:
        sys.path[:] = old_path
        if old_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_env
        importlib.invalidate_caches()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
        else:
            shutil.rmtree(info, ignore_errors=True)


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _import_roots(module_name: str) -> list[str]:
    """The sys.path entry a module was imported from (so subprocesses can import it too)."""
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        return []
    root = Path(file).resolve().parent
    for _ in range(module_name.count(".")):
        root = root.parent
    return [str(root)]
