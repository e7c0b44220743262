"""Finding codes and their aliases (diagnostics/codes.py): an old code, or a glob written with old
codes, matches what replaced it; a current code matches only itself. Known answers from the table."""

from __future__ import annotations

import pytest

from diagnostics import codes


def test_canonical_maps_an_old_code_and_keeps_a_current_one():
    assert codes.canonical("gradients.vanishing") == ("health.gradients.first_last_ratio",)
    assert codes.canonical("gan.mode_collapse") == ("health.gan.coverage", "health.gan.top2_share")
    assert codes.canonical("health.gradients.first_last_ratio") == ("health.gradients.first_last_ratio",)
    assert codes.canonical("weights.nonfinite") == ("weights.nonfinite",)  # never renamed
    assert codes.is_alias("units.dead") and not codes.is_alias("health.units.dead_fraction")


def test_expand_adds_the_replacements_of_every_old_code_a_glob_matches():
    assert codes.expand("units.*") == ("units.*", "health.units.dead_fraction", "health.units.saturated_fraction",
                                       "health.units.gate_saturation")
    # both old through-time codes became one measure: it is listed once
    assert codes.expand("gradients.*_through_time") == ("gradients.*_through_time", "health.temporal.early_late_ratio")
    assert codes.expand("health.gradients.*") == ("health.gradients.*",)


@pytest.mark.parametrize("code, pattern, expected", [
    ("health.gradients.first_last_ratio", "gradients.vanishing", True),  # a sidecar's old code
    ("health.gradients.first_last_ratio", "gradients.*", True),  # an old glob
    ("health.gradients.first_last_ratio", "health.gradients.*", True),
    ("gradients.vanishing", "health.gradients.first_last_ratio", True),  # an old report, a new pattern
    ("health.gradients.grad_norm", "gradients.vanishing", False),
    ("health.units.dead_fraction", "units.saturated", False),
    ("health.gan.coverage", "gan.mode_collapse", True),
    ("health.gan.top2_share", "gan.mode_collapse", True),
    ("explain.shortcut.constant_in_train", "data.constant_in_train", True),
    ("explain.shortcut.region", "explain.shortcut", True),
    ("explain.captum.baseline_not_neutral", "explain.baseline_not_neutral", True),  # any explanation analyzer
    ("explain.gradients.saliency.failed", "explain.gradients.saliency", False),  # a glob matches whole codes
    ("explain.gradients.saliency.failed", "explain.gradients.saliency.*", True),
    ("Health.units.dead_fraction", "health.units.*", False),  # case-sensitive, as fnmatchcase
])
def test_matches(code, pattern, expected):
    assert codes.matches(code, pattern) is expected


def test_matching_keeps_order():
    found = ["weights.nonfinite", "health.gan.top2_share", "health.gan.coverage", "health.gan.diversity"]
    assert codes.matching(found, "gan.mode_collapse") == ["health.gan.top2_share", "health.gan.coverage"]


@pytest.mark.parametrize("pattern, new", [
    ("units.*", ("health.units.dead_fraction", "health.units.saturated_fraction", "health.units.gate_saturation")),
    ("explain.shortcut", ("explain.shortcut.region", "explain.shortcut.feature")),
    ("*", ()), ("explain.*", ()), ("health.*", ()), ("explain.gradients.saliency.*", ()),
])
def test_renamed_names_what_an_old_style_pattern_stands_for(pattern, new):
    assert codes.renamed(pattern) == new


def _compare(tmp_path, before: dict, after: dict):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "zoo_verdicts.py"
    (tmp_path / "before.json").write_text(json.dumps(before))
    (tmp_path / "after.json").write_text(json.dumps(after))
    return subprocess.run([sys.executable, str(script), "--compare", str(tmp_path / "before.json"),
                           str(tmp_path / "after.json")], capture_output=True, text=True, timeout=120)


def test_zoo_verdicts_compare_reads_old_codes_in_the_before_file_as_their_replacements(tmp_path):
    """Keys of benchmarks/zoo_verdicts_all.json (before the rename) against the same findings renamed."""
    before = {"lstm_exploding": {"exit": 1, "status:health.gradients": "ok",
                                 "finding:gradients.exploding@lstm1": "error",
                                 "finding:gradients.exploding_through_time@lstm1, steps 0-4": "error",
                                 "finding:explain.baseline_not_neutral@baseline": "info",
                                 "finding:spectra.insufficient@probs": "info"},
              "cnn_dead_relu": {"finding:units.dead@conv1": "error", "finding:units.dead@conv2": "error"}}
    after = {"lstm_exploding": {"exit": 1, "status:health.gradients": "ok",
                                "finding:health.gradients.grad_norm@lstm1": "error",
                                "finding:health.temporal.early_late_ratio@lstm1, steps 0-4": "error",
                                # one old key stood for every explanation analyzer's finding
                                "finding:explain.gradients.baseline_not_neutral@baseline": "info",
                                "finding:explain.captum.baseline_not_neutral@baseline": "info",
                                "finding:spectra.insufficient@probs": "info"},  # not renamed yet: compared as is
             "cnn_dead_relu": {"finding:health.units.dead_fraction@conv1": "error",
                               "finding:health.units.dead_fraction@conv2": "error"}}
    proc = _compare(tmp_path, before, after)
    assert (proc.returncode, proc.stdout.splitlines()) == (0, [
        f"5 key(s) of {tmp_path / 'before.json'} mapped from old finding codes to their replacements (diagnostics.codes)",
        "no differences"]), proc.stderr


def test_zoo_verdicts_compare_still_shows_a_moved_severity_a_moved_where_and_a_lost_finding(tmp_path):
    before = {"gan_collapsed": {"finding:gan.mode_collapse@": "error", "finding:gan.low_diversity@": "warning"},
              "cnn_dead_relu": {"finding:units.dead@conv1": "error", "finding:units.dead@conv3": "error"}}
    after = {"gan_collapsed": {"finding:health.gan.coverage@": "warning", "finding:health.gan.top2_share@": "error"},
             "cnn_dead_relu": {"finding:health.units.dead_fraction@conv1": "error",
                               "finding:health.units.dead_fraction@conv2": "error"}}
    proc = _compare(tmp_path, before, after)
    assert (proc.returncode, proc.stdout.splitlines()) == (1, [
        f"2 key(s) of {tmp_path / 'before.json'} mapped from old finding codes to their replacements (diagnostics.codes)",
        "cnn_dead_relu: finding:health.units.dead_fraction@conv2: - -> error",
        "cnn_dead_relu: finding:units.dead@conv3: error -> -",
        "gan_collapsed: finding:gan.low_diversity@: warning -> -",
        "gan_collapsed: finding:health.gan.coverage@: error -> warning"]), proc.stderr
