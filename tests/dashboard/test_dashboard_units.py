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
from diagnostics._measures import Direction, Judged, MeasureSection, Scope
from diagnostics.report import AnalyzerRecord, Report
from diagnostics.safety import HDF5_SIGNATURE
from diagnostics._verdicts import Outcome
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
                            f"versions 2, 3, 4; the report predates the typed explanation verdicts: re-run diagnose to "
                            f"regenerate the report")


def test_start_path_prefers_script_arguments_then_the_environment():
    assert reports.start_path(["/x/dashboard/app.py", "runs/one"], {}) == Path("runs/one")
    assert reports.start_path(["pytest", "-q"], {reports.REPORT_ENV: "/r"}) == Path("/r")
    assert reports.start_path(["pytest"], {}) == Path("reports")


def test_scalars_and_metric_rows_flatten_the_free_form_metrics():
    metrics = {"layers": [{"layer": "d1", "grad_norm": 1e-3}], "gap": {"train": 1.0, "val": 0.9, "ci95": [0.01, 0.2]},
               "ratio": 1.23456e-7, "flag": True, "loss": "mse"}
    assert reports.scalars(metrics) == {"gap.train": 1.0, "gap.val": 0.9, "ratio": 1.23456e-7, "flag": True, "loss": "mse"}
    rec = AnalyzerRecord(name="x", plugin="p", category="health", status="ok", metrics=metrics)
    assert reports.metric_rows(rec) == [{"metric": "gap.train", "value": "1"}, {"metric": "gap.val", "value": "0.9"},
                                        {"metric": "ratio", "value": "1.235e-07"}, {"metric": "flag", "value": "True"},
                                        {"metric": "loss", "value": "mse"}]


def _section(direction, thresholds, *values, scope=Scope.LAYER, **kw):
    return MeasureSection(measure="m", code="a.m", title="M", scope=scope, direction=direction, thresholds=thresholds,
                          values=values, **kw)


def test_value_rows_leave_out_the_columns_no_value_fills():
    s = _section(Direction.HIGHER_IS_WORSE, {"warning": 0.1},
                 Judged(0.05, where="d1"), Judged(0.3, where="d2", outcome=Outcome.DOUBTFUL, threshold=0.1),
                 Judged(None, where="d3"))
    assert reports.value_rows(s) == [
        {"layer": "d1", "value": 0.05, "outcome": "passed", "crossed": ""},
        {"layer": "d2", "value": 0.3, "outcome": "warning", "crossed": "≥ 0.1"},
        {"layer": "d3", "value": None, "outcome": "passed", "crossed": ""}]
    s = _section(Direction.NEUTRAL, {}, Judged(0.6, interval=(0.5, 0.7), n=200, note="on val", series="train"),
                 scope=Scope.MODEL)
    assert reports.value_rows(s) == [{"where": "model", "series": "train", "value": 0.6, "95% interval": "0.5–0.7",
                                      "n": 200, "note": "on val"}]  # neutral: shown, never judged, no outcome
    fraction = MeasureSection(measure="f", code="a.f", title="F", unit="fraction")
    share = MeasureSection(measure="s", code="a.s", title="S", unit="fraction", format=".0%")
    assert reports.with_unit(fraction, 0.25) == "0.25 fraction" and reports.with_unit(fraction, None) == "n/a"
    assert reports.with_unit(share, 0.6) == "60%"  # the measure's declared format, as its findings print it


def test_health_records_are_chosen_by_sections_then_by_category():
    section = _section(Direction.NEUTRAL, {}, Judged(1.0, where="x"))
    recs = [AnalyzerRecord(name=n, plugin="p", category=c, status="ok", measures=m) for n, c, m in (
        ("architecture", "model", (section,)), ("health.gradients", "health", ()), ("explain.gradients", "explanation", ()),
        ("weights", "model", ()), ("acme.whatever", "explanation", (section,)))]
    assert [r.name for r in reports.health_records(_report(*recs))] == ["architecture", "health.gradients", "acme.whatever"]
    summary = reports.measure_summary(reports.health_records(_report(*recs)))
    assert [(r["analyzer"], r["code"], r["values"], r["worst"]) for r in summary] == [
        ("architecture", "a.m", "passed", "not judged"), ("acme.whatever", "a.m", "passed", "not judged")]


def test_measure_changes_pair_values_by_code_place_and_series():
    a = AnalyzerRecord(name="h", plugin="p", category="health", status="ok", measures=(
        _section(Direction.HIGHER_IS_WORSE, {"warning": 1.0}, Judged(0.5, where="d1"), Judged(2.0, where="d2",
                 outcome=Outcome.DOUBTFUL, threshold=1.0), Judged(3.0, where="gone")),))
    b = AnalyzerRecord(name="h", plugin="p", category="health", status="ok", measures=(
        _section(Direction.HIGHER_IS_WORSE, {"warning": 1.0}, Judged(0.5, where="d1"), Judged(0.25, where="d2"),
                 Judged(1.5, where="new", outcome=Outcome.DOUBTFUL, threshold=1.0)),))
    assert reports.measure_changes(a, b) == [
        {"analyzer": "h", "measure": "M", "where": "d2", "A": 2.0, "B": 0.25, "B − A": -1.75, "outcome A": "warning",
         "outcome B": "passed"},
        {"analyzer": "h", "measure": "M", "where": "gone", "A": 3.0, "B": None, "B − A": None, "outcome A": "passed",
         "outcome B": "—"},
        {"analyzer": "h", "measure": "M", "where": "new", "A": None, "B": 1.5, "B − A": None, "outcome A": "—",
         "outcome B": "warning"}]


def test_the_measure_chart_is_generic_by_scope_direction_and_scale():
    from diagnostics_dashboard import charts

    bars = charts.measure(_section(Direction.HIGHER_IS_WORSE, {"warning": 10.0, "error": 100.0},
                                   Judged(1.0, where="a", interval=(0.5, 2.0)),
                                   Judged(50.0, where="<b>b</b>", outcome=Outcome.DOUBTFUL, threshold=10.0),
                                   Judged(None, where="c"), scale="log", unit="L2 norm"))
    d = bars.to_plotly_json()
    assert [(t["type"], t["name"], list(t["x"]), list(t["y"])) for t in d["data"] if t["type"] == "bar"] == [
        ("bar", "passed", ["a"], [1.0]), ("bar", "warning", ["&lt;b&gt;b&lt;/b&gt;"], [50.0])]  # None is not drawn
    assert [t["name"] for t in d["data"] if t["type"] == "scatter"] == ["warning at ≥ 10", "error at ≥ 100"]
    assert list(d["data"][0]["error_y"]["array"]) == [1.0] and list(d["data"][0]["error_y"]["arrayminus"]) == [0.5]
    assert d["layout"]["yaxis"]["type"] == "log" and d["layout"]["title"]["text"] == "M (L2 norm)"
    assert d["layout"]["yaxis"]["dtick"] == 1  # 1 to 100: a tick per decade
    assert [s["y0"] for s in d["layout"]["shapes"]] == [10.0, 100.0]
    linear = charts.measure(_section(Direction.HIGHER_IS_WORSE, {}, Judged(0.0, where="a"), Judged(1.0, where="b"),
                                     scale="log")).to_plotly_json()
    assert linear["layout"]["yaxis"].get("type") != "log"  # a zero cannot sit on a log axis
    lines = charts.measure(_section(Direction.NEUTRAL, {}, *[Judged(float(e), where=str(e), series=s)
                                                             for s in ("train", "validation") for e in (1, 2, 3)],
                                    scope=Scope.EPOCH)).to_plotly_json()
    assert [(t["type"], t["name"], list(t["x"])) for t in lines["data"]] == [("scatter", "train", [1.0, 2.0, 3.0]),
                                                                             ("scatter", "validation", [1.0, 2.0, 3.0])]
    assert charts.measure(_section(Direction.NEUTRAL, {}, Judged(None, where="a"))) is None


def test_no_keyword_routing_is_left():
    """Pages are chosen by the report's sections: no list of guessed key names or topic words remains."""
    import re

    hits = [f"{p.relative_to(REPO)}:{i}" for p in DASHBOARD.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"find_key|TOPICS|MARKERS|COVERAGE_KEYS|LAYER_FIELDS|FAMILIES", line)]
    assert hits == []
    assert not hasattr(reports, "about") and not hasattr(reports, "tables")


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
    from diagnostics._verdicts import Check, MethodExplanation

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
    from diagnostics._runner import RunConfig

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
    code = ("import sys\nfrom diagnostics._cli import main\n"
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
