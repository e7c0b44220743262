"""docs/plugins.md documents every hook and every public field a plugin sees, and nothing that does
not exist; its tutorial module is the one `diagnose plugin new` writes, and it keeps the contract."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

import diagnostics
import diagnostics.testing
from diagnostics import analyzer, _hookspecs as hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
CLASSES = {"Analyzer": analyzer.Analyzer, "Context": analyzer.Context, "Result": analyzer.Result,
           "Finding": analyzer.Finding, "Severity": analyzer.Severity, "Data": analyzer.Data,
           "ModelInfo": analyzer.ModelInfo, "Option": analyzer.Option, "Explainer": diagnostics.Explainer,
           "ModelView": diagnostics.ModelView, "ExplanationAnalyzer": diagnostics.ExplanationAnalyzer,
           "MethodExplanation": diagnostics.MethodExplanation, "Check": diagnostics.Check,
           "Verdict": diagnostics.Verdict, "Outcome": diagnostics.Outcome, "Status": diagnostics.Status,
           "HealthAnalyzer": diagnostics.HealthAnalyzer, "Measure": diagnostics.Measure, "Value": diagnostics.Value,
           "Measurements": diagnostics.Measurements, "MeasureSection": diagnostics.MeasureSection,
           "Scope": diagnostics.Scope, "Direction": diagnostics.Direction}
#: Members an ExplanationAnalyzer inherits from Analyzer are documented there, not again.
INHERITED = {"ExplanationAnalyzer": set(vars(analyzer.Analyzer)) | {"run", "category", "data", "model_kinds",
                                                                     "declared_options"}}


def sections(text: str) -> dict[str, str]:
    """``### heading`` -> its body (up to the next ``##``/``###`` heading)."""
    out = {}
    for m in re.finditer(r"^### (.+?)\n(.*?)(?=^##[# ]|\Z)", text, re.S | re.M):
        out[m.group(1).strip().strip("`")] = m.group(2)
    return out


def documented_members(body: str) -> set[str]:
    """The names in the first column of the section's table rows: | `name` | or | `name(args)` |."""
    return {m.group(1) for m in re.finditer(r"^\| `([A-Za-z_][A-Za-z0-9_.]*)[`(]", body, re.M)}


def public_members(cls) -> set[str]:
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    if issubclass(cls, enum.Enum):
        names |= set(cls.__members__)
    for name, value in list(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, (property, classmethod, staticmethod)) or inspect.isfunction(value) or name in getattr(cls, "__annotations__", {}):
            names.add(name)
    return {n for n in names if not n.startswith("_")}


def hook_specs() -> dict[str, list[str]]:
    return {name: list(inspect.signature(fn).parameters) for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec")}


TEXT = DOC.read_text(encoding="utf-8")
SECTIONS = sections(TEXT)


def test_every_hook_spec_is_documented_with_its_arguments():
    specs = hook_specs()
    assert {"register_analyzers", "register_custom_objects", "register_datasets"} <= set(specs)
    documented = {m.group(1): m.group(2).split(", ") for m in re.finditer(r"^#### `(\w+)\(([^)]*)\)`$", TEXT, re.M)}
    assert documented == specs, "docs/plugins.md's '#### `hook(args)`' headings must match diagnostics/_hookspecs.py"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_public_member_is_documented(name):
    assert name in SECTIONS, f"docs/plugins.md has no '### `{name}`' section"
    documented = documented_members(SECTIONS[name])
    actual = public_members(CLASSES[name]) - INHERITED.get(name, set())
    if name == "Explainer":
        actual |= {"opts", "notes", "stage"}  # instance attributes set in __init__
    if name == "ModelView":
        actual |= {"model", "kind", "batch_size", "tokens", "head", "embedding_layer", "baseline", "background_raw",
                   "train", "randomised", "time_left"}
    assert not actual - documented, f"{name}: undocumented in docs/plugins.md: {sorted(actual - documented)}"
    assert not documented - actual, f"{name}: documented but not in the code (stale docs): {sorted(documented - actual)}"


def test_every_name_in_the_public_api_is_documented():
    """diagnostics.__all__ and docs/plugins.md in step: each public name has a section or a helper row."""
    helpers = {n.rsplit(".", 1)[-1] for n in documented_members(SECTIONS["Other public helpers"])}
    documented = set(SECTIONS) | helpers
    undocumented = {n for n in diagnostics.__all__ if n not in documented} - {
        "AnalyzerRecord", "Report", "DiagnosisError", "ExitCode", "diagnose"}  # the host side (README), not a plugin API
    assert not undocumented, f"public names missing from docs/plugins.md: {sorted(undocumented)}"
    for name in helpers & set(diagnostics.__all__):
        assert getattr(diagnostics, name) is not None


def test_the_testing_kit_is_documented():
    documented = documented_members(SECTIONS["diagnostics.testing"])
    assert documented == set(diagnostics.testing.__all__)


def test_other_documented_helpers_exist():
    for name in documented_members(SECTIONS["Other public helpers"]):
        module, _, attr = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), name
    assert documented_members(SECTIONS["Module attributes a plugin may declare"]) == {"DIAGNOSTICS_API_VERSION"}
    assert f"the hook API version this diagnostics provides ({diagnostics.HOOK_API_VERSION})" in TEXT


def test_the_documented_failure_messages_are_the_hosts():
    """Spot checks that the misbehaviour table quotes the host's words (tests/plugins/test_broken_plugins.py
    and tests/core assert the same strings against real runs)."""
    for quoted in ("returned a malformed result: metrics['score'] is not a finite number",
                   "declares hook API version 2, but this diagnostics provides version 1",
                   "exceeded its N s budget and was stopped", "returned a malformed result: run() returned dict"):
        assert quoted in TEXT


def tutorial_module() -> str:
    m = re.search(r"<!-- tutorial-module -->\n```python\n(.*?)```", TEXT, re.S)
    assert m, "the tutorial's module block (after <!-- tutorial-module -->) is missing"
    return m.group(1)


def test_the_tutorial_module_is_what_plugin_new_writes():
    from diagnostics.testing.scaffold import module_source

    assert tutorial_module() == module_source("confidence")


def test_the_tutorial_analyzer_keeps_the_contract(register_plugin, keras_tf):
    from diagnostics._plugin_manager import PluginHost
    from diagnostics.testing import assert_analyzer_contract, run_analyzer

    register_plugin("tutorial_confidence", source=tutorial_module(), version="0.1.0")
    entry = PluginHost().load().analyzer("confidence")
    report = assert_analyzer_contract(entry.cls, options={"samples": 32})
    assert [(o.kind, o.status) for o in report.outcomes] == [
        ("image", "ok"), ("sequence", "ok"), ("token", "ok"), ("tabular", "ok")]
    # A known answer: a model that outputs the same 50/50 probabilities for everything is unsure of all of it.
    import numpy as np

    from diagnostics import Data

    model = keras_tf.Sequential([keras_tf.Input((3,)), keras_tf.layers.Dense(2, activation="softmax")])
    model.set_weights([np.zeros((3, 2), "float32"), np.zeros(2, "float32")])
    result, _ = run_analyzer(entry.cls, "tabular", model=model, data=Data(x_val=np.ones((10, 3), "float32")))
    assert result.metrics == {"samples": 10, "mean_confidence": 0.5, "low_fraction": 1.0}
    assert [f.code for f in result.findings] == ["confidence.low"]
