"""Explanations on the zoo models, end to end: typed verdicts, ground truth, and captum agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics import explain as E
from tests.conftest import run_diagnose


def _record(out_dir, name):
    report = json.loads((out_dir / "report.json").read_text())
    rec = next(a for a in report["analyzers"] if a["name"] == name)
    assert rec["status"] == "ok", rec
    return rec


def _sections(rec):
    return {e["method"]: e for e in rec["explanations"]}


def _check(section, name):
    return next(c for c in section["checks"] if c["name"] == name)


@pytest.fixture(scope="module")
def cnn_run(zoo_path, tmp_path_factory):
    """One diagnose run on the zoo CNN with both the gradient family (TF) and captum (torch), on the
    same samples (prefixes of one seeded order: at least 16, more while a check is undecided); captum
    runs only its IG here (the reference)."""
    out = tmp_path_factory.mktemp("cnn-explain")
    proc = run_diagnose(zoo_path("cnn"), "--only", "explain.gradients", "--only", "explain.captum",
                        "--option", "samples=16", "--option", "explain.captum.methods=integrated_gradients",
                        "--option", "explain.captum.steps=64", "--out", out, "-q")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return out


def test_gradient_family_on_the_zoo_cnn_gives_every_method_a_typed_verdict_and_maps(cnn_run):
    rec = _record(cnn_run, "explain.gradients")
    sections = _sections(rec)
    assert set(sections) == {"integrated_gradients", "saliency", "smoothgrad", "input_x_gradient", "expected_gradients"}
    codes = {f["code"] for f in rec["findings"]}
    for method, s in sections.items():
        assert s["verdict"] in ("trusted", "undecided", "doubtful", "failed")
        # a method that passed is a cell of the method table, not a finding; one that did not says why
        assert (f"explain.gradients.{method}.{s['verdict']}" in codes) == (s["verdict"] != "trusted")
        n = len(s["sample_indices"])  # a prefix of what the analyzer explained: at least the 16 asked for
        assert n >= 16 and s["sample_indices"] == rec["metrics"]["sample_indices"][:n] and len(s["targets"]) == n
        failing = [c["reason"] for c in s["checks"] if c["outcome"] != "passed"]
        assert failing == s["reasons"] or sorted(failing) == sorted(s["reasons"])
    ig = sections["integrated_gradients"]
    assert _check(ig, "completeness")["value"] == 1.0 and _check(ig, "completeness")["detail"]["max_relative_gap"] < 0.01
    assert _check(ig, "randomisation")["outcome"] == "passed"
    faith = _check(ig, "faithfulness")["detail"]
    assert faith["deletion_margin"] > 0 and faith["insertion_margin"] > 0
    assert ig["verdict"] == "trusted"
    assert _check(sections["expected_gradients"], "additivity")["value"] >= 0.9
    a = np.load(cnn_run / ig["artifacts"]["attributions"])
    assert a.shape == (len(ig["sample_indices"]), 28, 28, 1) and np.isfinite(a).all()
    inputs = np.load(cnn_run / ig["artifacts"]["inputs"])
    assert inputs.shape == (len(rec["metrics"]["sample_indices"]), 28, 28, 1)
    assert (cnn_run / rec["artifacts"]["overlays"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_our_ig_agrees_with_captum_ig_on_the_zoo_cnn(cnn_run):
    ours = _record(cnn_run, "explain.gradients")
    theirs = _record(cnn_run, "explain.captum")
    assert theirs["backend"] == "torch" and ours["backend"] == "tensorflow"
    a_ig, b_ig = _sections(ours)["integrated_gradients"], _sections(theirs)["integrated_gradients"]
    n = min(len(a_ig["sample_indices"]), len(b_ig["sample_indices"]))  # both explain prefixes of one order
    assert n >= 16 and a_ig["sample_indices"][:n] == b_ig["sample_indices"][:n] and a_ig["targets"][:n] == b_ig["targets"][:n]
    a = np.load(cnn_run / a_ig["artifacts"]["attributions"])[:n].reshape(n, -1)
    b = np.load(cnn_run / b_ig["artifacts"]["attributions"])[:n].reshape(n, -1)
    corr = E.pearson(a, b)
    assert corr.min() >= 0.99, corr


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_ig_finds_the_planted_positions(name, zoo_path, tmp_path):
    proc = run_diagnose(zoo_path(name), "--only", "explain.gradients", "--option", "methods=integrated_gradients",
                        "--option", "samples=32", "--out", tmp_path, "-q")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    rec = _record(tmp_path, "explain.gradients")
    ig = _sections(rec)["integrated_gradients"]
    gt = _check(ig, "ground_truth")
    # decided on its interval, from the first look on: top-k precision clearly above 0.5
    assert gt["outcome"] == "passed" and gt["interval"][0] > 0.5 and gt["samples"] >= 2, gt
    assert gt["value"] >= 0.8 and gt["threshold"] == 0.5, gt
    assert gt["detail"]["mass_share"] > 3 * gt["detail"]["planted_fraction"], gt
    assert np.load(tmp_path / ig["artifacts"]["mask"]).shape == np.load(tmp_path / ig["artifacts"]["map"]).shape
    assert (tmp_path / rec["artifacts"]["heat strips"]).is_file()
