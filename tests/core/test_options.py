"""Strict --option checking: exit 2 with the exact message, before the model is even read."""

from __future__ import annotations

import json

import pytest

from diagnostics import Option
from tests.conftest import run_diagnose


@pytest.mark.parametrize("option, message", [
    ("health.spectra.bogus_key=1",
     "diagnose: --option health.spectra.bogus_key=1: health.spectra has no option 'bogus_key'; valid: alpha_high, "
     "alpha_low, health_thresholds, min_eigenvalues"),
    ("no_such_analyzer.key=1",
     "diagnose: --option no_such_analyzer.key=1: unknown analyzer 'no_such_analyzer'; installed: architecture, "
     "data.drift, data.leakage, explain.captum, explain.gradients, explain.lime, explain.shap, explain.shortcut, "
     "health.gan, health.gradients, health.overfitting, health.spectra, health.temporal, health.units, "
     "predictions.quality, weights"),
    # A typo gets the name it was meant to be, as --only does, not the whole list.
    ("health.spectrum.alpha_low=1",
     "diagnose: --option health.spectrum.alpha_low=1: unknown analyzer 'health.spectrum'; did you mean "
     "health.spectra? (16 installed)"),
    ("explain.gradients.samples=four",
     "diagnose: --option explain.gradients.samples=\"four\": option 'samples' takes an integer, got 'four'"),
    ("explain.shap.explainer=deep",
     "diagnose: --option explain.shap.explainer=\"deep\": option 'explainer' must be one of auto, gradient, permutation, "
     "kernel, partition, got 'deep'"),
])
def test_an_option_no_analyzer_takes_is_a_usage_error_before_loading(option, message, tmp_path):
    missing = tmp_path / "never-read.keras"  # the check comes first: the model file is not even opened
    proc = run_diagnose(missing, "--option", option, "--out", tmp_path / "out", "-q", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == message
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_global_option_must_be_taken_by_some_analyzer(tmp_path):
    proc = run_diagnose(tmp_path / "m.keras", "--option", "smaples=4", "--out", tmp_path / "out", "-q", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("diagnose: --option smaples=4: no analyzer takes an option 'smaples'; "
                                  "options of the installed analyzers: accuracy_margin, accuracy_samples, additivity_fail, ")


def test_plugins_json_lists_every_declared_option_with_type_default_and_help():
    proc = run_diagnose("plugins", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    analyzers = json.loads(proc.stdout)["analyzers"]
    assert analyzers["architecture"]["options"] == []
    steps = next(o for o in analyzers["explain.gradients"]["options"] if o["name"] == "steps")
    assert steps == {"name": "steps", "type": "int", "default": 32, "help": "Gauss-Legendre steps to start from"}
    assert {"stability_min", "randomisation_fail"} <= {o["name"] for o in analyzers["explain.lime"]["options"]}
    assert {o["name"] for o in analyzers["health.spectra"]["options"]} == {"alpha_low", "alpha_high", "min_eigenvalues",
                                                                          "health_thresholds"}


def test_option_values_are_type_checked():
    assert Option("n", int, 1).parse(3) == 3
    assert Option("x", float, 1.0).parse(2) == 2.0 and isinstance(Option("x", float, 1.0).parse(2), float)
    with pytest.raises(ValueError, match="option 'n' takes an integer, got True"):
        Option("n", int, 1).parse(True)
    with pytest.raises(ValueError, match="option 'flag' takes true or false, got 'yes'"):
        Option("flag", bool, True).parse("yes")
