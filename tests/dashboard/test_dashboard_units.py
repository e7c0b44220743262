"""The dashboard's plain-Python parts: report discovery and reading, escaping, uploads, config, launch."""

from __future__ import annotations

import json
import os
import stat
import string
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from diagnostics.analyzer import Finding, Severity
from diagnostics.report import AnalyzerRecord, Report
from diagnostics.safety import HDF5_SIGNATURE
from diagnostics_dashboard import jobs, reports

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboard"
DIAGNOSE = str(Path(sys.executable).parent / "diagnose")


def _report(*records: AnalyzerRecord) -> Report:
    return Report(model={"name": "m.keras", "info": {"kind": "image"}}, data=None, environment={}, plugins=(),
                  analyzers=records, seed=0, fail_on="error")


# -- escaping ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "![x](http://e/x.png)", ":red[boom] :material/home:",
                                  "$x^2$ **bold** `code` [a](javascript:alert(1))", "layer_1/kernel:0 (dense)"])
def test_md_escape_backslashes_every_punctuation_mark(text):
    out = reports.md_escape(text)
    i = 0
    for ch in text:  # walk the original: each punctuation mark must come out as backslash + mark
        if ch in string.punctuation:
            assert out[i:i + 2] == "\\" + ch, (text, out, i)
            i += 2
        else:
            assert out[i] == ch
            i += 1
    assert i == len(out)


def test_no_page_renders_html():
    sources = {p: p.read_text() for p in DASHBOARD.rglob("*.py")}
    assert len(sources) >= 12
    for p, src in sources.items():
        for forbidden in ("unsafe_allow_html", "st.html(", "components.html", "components.v1"):
            assert forbidden not in src, f"{p.relative_to(REPO)} uses {forbidden}"


# -- finding and reading reports ------------------------------------------------------------------------
def test_discover_finds_reports_in_a_folder_a_directory_or_a_file(tmp_path):
    for d in ("a", "b/c", "b/d/e", ".hidden/x", "f/g/h/i/j"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "report.json").write_text("{}")
    found = reports.discover(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a", "b/c", "b/d/e"]  # depth 3, no dot-folders
    assert reports.discover(tmp_path / "a") == [tmp_path / "a"]
    assert reports.discover(tmp_path / "a" / "report.json") == [tmp_path / "a"]
    assert reports.discover(tmp_path / "missing") == []


def test_load_explains_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="no report.json in"):
        reports.load(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ValueError, match="schema version 99 is not supported"):
        reports.load(tmp_path)


def test_a_schema_1_report_is_refused_with_one_clear_line(tmp_path):
    """Reports written before the typed explanation sections: the dashboard says what to do, once."""
    (tmp_path / "report.json").write_text(json.dumps({"schema_version": 1, "analyzers": []}))
    with pytest.raises(ValueError) as e:
        reports.load(tmp_path)
    assert str(e.value) == (f"{tmp_path}/report.json: report schema version 1 is not supported: this diagnostics reads "
                            f"versions 2, 3; the report predates the typed explanation verdicts: re-run diagnose to "
                            f"regenerate the report")


def test_start_path_prefers_script_arguments_then_the_environment():
    assert reports.start_path(["/x/dashboard/app.py", "runs/one"], {}) == Path("runs/one")
    assert reports.start_path(["pytest", "-q"], {reports.REPORT_ENV: "/r"}) == Path("/r")
    assert reports.start_path(["pytest"], {}) == Path("reports")


def test_tables_series_scalars_pick_values_out_of_metrics():
    metrics = {"layers": [{"layer": "d1", "grad_norm": 1e-3, "dead_fraction": 0.5, "note": "x"},
                          {"layer": "d2", "grad_norm": 2.0, "dead_fraction": None, "note": "y"}],
               "per_class": {"0": {"count": 3}, "1": {"count": 5}},
               "gap": {"train": 1.0, "val": 0.9, "ci95": [0.01, 0.2]}, "curve": [1, 2, 3], "flag": True}
    t = reports.tables(metrics)
    assert set(t) == {"layers", "per_class"}
    assert reports.label_column(t["layers"]) == "layer"
    assert reports.numeric_columns(t["layers"]) == ["grad_norm", "dead_fraction"]
    assert t["per_class"] == [{"name": "0", "count": 3}, {"name": "1", "count": 5}]
    assert reports.series(metrics) == {"gap.ci95": [0.01, 0.2], "curve": [1.0, 2.0, 3.0]}
    assert reports.scalars(metrics) == {"per_class.0.count": 3, "per_class.1.count": 5, "gap.train": 1.0, "gap.val": 0.9,
                                        "flag": True}


def test_artifact_path_never_leaves_the_report_directory(tmp_path):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "a.npy").write_bytes(b"x")
    (tmp_path.parent / "secret.txt").write_text("s")
    assert reports.artifact_path(tmp_path, "artifacts/a.npy") == tmp_path / "artifacts" / "a.npy"
    assert reports.artifact_path(tmp_path, "../secret.txt") is None
    assert reports.artifact_path(tmp_path, "artifacts/missing.npy") is None


def test_load_array_refuses_pickled_objects(tmp_path):
    np.save(tmp_path / "ok.npy", np.arange(3.0))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert reports.load_array(tmp_path, "ok.npy").tolist() == [0.0, 1.0, 2.0]
    assert reports.load_array(tmp_path, "obj.npy") is None


def test_explanation_methods_read_the_typed_sections():
    from diagnostics.verdicts import Check, MethodExplanation

    fails = Check("randomisation", 0.9, 0.3, "failed", higher_is_better=False, reason="maps barely change")
    sections = (MethodExplanation("integrated_gradients", "trusted", artifacts={"map": "artifacts/e/ig.map.npy"}),
                MethodExplanation("saliency", "failed", ("maps barely change", "low margin"), (fails,)),
                MethodExplanation("gradcam", None, skipped="the model has no 2-D convolution layer"))
    gradients = AnalyzerRecord(
        name="explain.gradients", plugin="p", category="explanation", status="ok", explanations=sections,
        findings=(Finding("explain.gradients.saliency.failed", Severity.WARNING, "saliency is failed", where="saliency"),))
    skipped = AnalyzerRecord(name="explain.shap", plugin="s", category="explanation", status="skipped", reason="no data")
    methods = reports.explanation_methods(_report(gradients, skipped,
                                                  AnalyzerRecord(name="weights", plugin="w", category="health", status="ok")))
    assert [m.name for m in methods] == ["explain.gradients:integrated_gradients", "explain.gradients:saliency",
                                         "explain.gradients:gradcam", "explain.shap"]
    ig, sal, cam, shap = methods
    assert ig.verdict == ("trusted", "") and sal.verdict == ("failed", "maps barely change; low margin")
    assert cam.verdict == (None, "the model has no 2-D convolution layer") and shap.verdict == (None, "no data")
    assert ig.artifacts == {"map": "artifacts/e/ig.map.npy"} and shap.artifacts == {}
    assert [f.code for f in sal.findings().findings] == ["explain.gradients.saliency.failed"]
    assert ig.findings().findings == ()
    assert not hasattr(reports, "verdict_of") and not hasattr(reports, "VERDICT_KEYS")  # no key guessing left


def test_about_routes_analyzers_by_name_first():
    recs = [AnalyzerRecord(name=n, plugin="p", category=c, status="ok", metrics=m) for n, c, m in (
        ("health.gradients", "health", {"layers": [{"layer": "d", "weight_norm": 1.0}]}),
        ("health.spectra", "health", {}), ("weights", "health", {}), ("health.units", "health", {}),
        ("health.overfitting", "health", {}), ("health.gan", "health", {}), ("architecture", "model", {}))]
    rep = _report(*recs)
    assert [r.name for r in reports.about(rep, "gradients")] == ["health.gradients", "health.units"]
    assert [r.name for r in reports.about(rep, "weights")] == ["health.spectra", "weights"]
    assert [r.name for r in reports.about(rep, "training")] == ["health.overfitting"]
    assert [r.name for r in reports.about(rep, "gan")] == ["health.gan"]


# -- uploads -------------------------------------------------------------------------------------------
def test_uploads_are_typed_by_content_not_by_name(tmp_path):
    d = jobs.private_dir("dash-test-")
    try:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        h5 = jobs.save_upload(HDF5_SIGNATURE + b"\0" * 64, "model.keras", d, "model")  # an HDF5 file named .keras
        assert h5.name == "model.h5"
        assert stat.S_IMODE(h5.stat().st_mode) == 0o600
        zipped = jobs.save_upload(b"PK\x03\x04rest", "../../etc/evil name!.h5", d, "model")
        assert zipped.name == "evil_name.keras" and zipped.parent == d
        with pytest.raises(jobs.UploadRefused, match="not a Keras model file.*this file starts with b'#!/bin/s'"):
            jobs.save_upload(b"#!/bin/sh\nrm -rf /\n", "model.h5", d, "model")
        assert jobs.save_upload(b"a,b,label\n1,2,0\n", "x.npz", d, "data").suffix == ".csv"
        assert jobs.save_upload(b"PK\x03\x04", "x.csv", d, "data").suffix == ".npz"
        assert jobs.data_suffix("ab é".encode()[:-1]) == ".csv"  # a character cut at the end of the sample
        with pytest.raises(jobs.UploadRefused, match="not a data file"):
            jobs.save_upload(b"\x89PNG\r\n\x1a\n\0\0", "x.csv", d, "data")
    finally:
        import shutil

        shutil.rmtree(d)


def test_the_browser_cannot_run_a_model_with_trust(tmp_path):
    from diagnostics.runner import RunConfig

    with pytest.raises(ValueError, match="never runs a model with trust=True"):
        jobs.start(RunConfig(model_path="m.keras", out_dir=tmp_path, trust=True), "x", {})


# -- config and launch ----------------------------------------------------------------------------------
def test_shipped_config_is_locked_down():
    cfg = tomllib.loads((DASHBOARD / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["enableXsrfProtection"] is True
    assert 0 < cfg["server"]["maxUploadSize"] <= 200
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["client"]["showErrorDetails"] == "none"


def test_dashboard_command_is_listed_without_importing_streamlit():
    code = ("import sys\nfrom diagnostics.cli import main\n"
            "try:\n    main(['dashboard', '--help'])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('\\nMODULES', code, sorted(m for m in ('streamlit', 'plotly', 'pandas', 'keras', 'diagnostics_dashboard') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "[REPORT_OR_DIRECTORY]" in out.stdout and "--port" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "MODULES 0 []"


def test_dashboard_command_refuses_a_missing_path():
    out = subprocess.run([DIAGNOSE, "dashboard", "/no/such/reports"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert "does not exist" in out.stderr
