"""Throwaway plugins installed for real: a module plus a .dist-info with an entry point, on PYTHONPATH."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest


def install_plugin(root: Path, name: str, source: str, version: str = "0.1") -> dict:
    """Write plugin module ``name`` and its distribution metadata under ``root``; return env vars that make it visible."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.py").write_text(textwrap.dedent(source))
    dist = root / f"{name}-{version}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[diagnostics]\n{name} = {name}\n")
    paths = [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


@pytest.fixture
def plugin_dir(tmp_path):
    return tmp_path / "site"


ANALYZER_TEMPLATE = '''
import diagnostics
from diagnostics import Analyzer, Result, Finding, Severity

class Plugged(Analyzer):
    name = "{name}"
    description = "a throwaway analyzer for a test"
    def run(self, context):
{body}

@diagnostics.hookimpl
def register_analyzers(register):
    register(Plugged)
'''


def analyzer_source(name: str, body: str) -> str:
    return ANALYZER_TEMPLATE.format(name=name, body=textwrap.indent(textwrap.dedent(body), " " * 8))
