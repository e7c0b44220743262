"""What CI systems and trackers read: --junit-xml (checked with a real JUnit consumer), --summary-md and
$GITHUB_STEP_SUMMARY, and --mlflow into a real on-disk tracking store read back with MLflow's own client.

One real `diagnose` run on a zoo twin feeds every test here (module-scoped): the planted vanishing
gradients are a failure, a throwaway plugin that raises is an error with its traceback, the GAN
analyzer is skipped for a tabular model, and `weights` passes.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import numpy as np
import pytest

from diagnostics import AnalyzerRecord, Context, Data, ExitCode, Explainer, ExplanationAnalyzer, Finding, Report
from diagnostics.junit import to_junit_xml
from diagnostics.summary import to_markdown

from ..conftest import ZOO_DIR, run_diagnose
from .conftest import analyzer_source, install_plugin

TWIN = ZOO_DIR / "mlp_vanishing.keras"
RUN_URL = "https://ci.example/acme/models/actions/runs/42"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("ci")
    env = install_plugin(d / "site", "raiser", analyzer_source("raiser", 'raise RuntimeError("boom")'))
    (d / "step-summary.md").write_text("earlier step\n")
    env.update({
        "GITHUB_STEP_SUMMARY": str(d / "step-summary.md"), "GITHUB_SERVER_URL": "https://ci.example",
        "GITHUB_REPOSITORY": "acme/models", "GITHUB_RUN_ID": "42",
        "MLFLOW_TRACKING_URI": f"sqlite:///{d / 'mlflow.db'}", "MLFLOW_EXPERIMENT_NAME": "model-checks",
    })
    # Relative paths, as a CI job writes them; the sqlite store keeps its artifacts in mlartifacts/ beside the database.
    proc = run_diagnose(TWIN, "--only", "health.gradients,health.gan", "--only", "weights,raiser", "-o", "out",
                        "--junit-xml", "results/diagnose.xml", "--summary-md", "summary.md", "--mlflow", "-q",
                        env=env, cwd=d)
    return {"dir": d, "proc": proc, "uri": env["MLFLOW_TRACKING_URI"], "report": Report.load(d / "out")}


def test_exit_code_and_outputs_written(ci_run):
    proc = ci_run["proc"]
    assert proc.returncode == ExitCode.ANALYZER_FAILED, proc.stdout + proc.stderr
    assert re.search(r"^mlflow: logged to run [0-9a-f]{32}$", proc.stderr, re.M), proc.stderr


def test_junit_xml_read_by_a_junit_consumer(ci_run):
    xml = junitparser.JUnitXml.fromfile(str(ci_run["dir"] / "results" / "diagnose.xml"))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert suite.name == "diagnose mlp_vanishing.keras"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 1, 1)
    cases = {c.name: c for c in suite}
    assert sorted(cases) == ["health.gan", "health.gradients", "raiser", "weights"]
    report = ci_run["report"]
    for name, case in cases.items():
        assert case.classname == report.record(name).category
        assert case.time == pytest.approx(report.record(name).duration_s, abs=1e-3)

    [failure] = cases["health.gradients"].result
    assert isinstance(failure, junitparser.Failure)
    assert failure.type == "gradients.vanishing"
    assert failure.message.startswith("gradients.vanishing: the first layer's kernel gradient (dense1: ")
    assert failure.text.startswith("ERROR gradients.vanishing [dense1]: ")

    [error] = cases["raiser"].result
    assert isinstance(error, junitparser.Error)
    assert error.type == "failed" and error.message == "plugin 'raiser': raised RuntimeError: boom"
    assert error.text.startswith("Traceback (most recent call last):") and error.text.rstrip().endswith("RuntimeError: boom")

    [skipped] = cases["health.gan"].result
    assert isinstance(skipped, junitparser.Skipped)
    assert skipped.message == "applies to generator models; this is a tabular model"
    assert cases["weights"].is_passed


_CHILDREN = {"testsuites": {"testsuite"}, "testsuite": {"properties", "testcase", "system-out", "system-err"},
             "properties": {"property"}, "testcase": {"failure", "error", "skipped", "system-out", "system-err"}}
_REQUIRED = {"testsuite": {"name", "tests", "failures", "errors"}, "testcase": {"name", "classname"},
             "property": {"name", "value"}}
_TIME = re.compile(r"^\d+(\.\d{1,3})?$")  # the common (Surefire/Jenkins) schema's time: at most 3 decimals


def _check_structure(el: ET.Element) -> None:
    assert _REQUIRED.get(el.tag, set()) <= set(el.attrib), (el.tag, el.attrib)
    if "time" in el.attrib:
        assert _TIME.match(el.attrib["time"]), el.attrib["time"]
    for child in el:
        assert child.tag in _CHILDREN.get(el.tag, set()), f"<{child.tag}> inside <{el.tag}>"
        _check_structure(child)
    if el.tag == "testsuite":  # the counts say what the cases hold
        results = [r.tag for c in el.iter("testcase") for r in c if r.tag in ("failure", "error", "skipped")]
        assert int(el.attrib["tests"]) == len(el.findall("testcase"))
        for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
            assert int(el.attrib[attr]) == results.count(tag)


def test_junit_xml_follows_the_common_schema(ci_run):
    root = ET.parse(ci_run["dir"] / "results" / "diagnose.xml").getroot()
    assert root.tag == "testsuites"
    _check_structure(root)
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["exit_code"] == "3" and props["verdict"] == "error" and props["fail_on"] == "error"
    assert props["exit_reason"] == "1 analyzer failed", "the XML says why the code is 3 as the verdict line does"


def test_summary_markdown_and_github_step_summary(ci_run):
    md = (ci_run["dir"] / "summary.md").read_text()
    lines = md.splitlines()
    assert lines[0] == "### diagnose `mlp_vanishing.keras`: FAILED"
    assert "Verdict: **error** (fail on error), and 1 analyzer failed → exit code 3" in lines
    table = lines.index("| analyzer | status | worst finding | findings | time |")
    assert lines[table + 1] == "|---|---|---|---:|---:|"
    rows = [line for line in lines[table + 2:table + 6]]
    assert [r.split(" | ")[:4] for r in rows] == [
        ["| health.gan", "skipped", "-", "0"], ["| health.gradients", "ok", "error", "1"],
        ["| raiser", "failed", "-", "0"], ["| weights", "ok", "-", "0"]]
    assert "- `raiser` failed: plugin 'raiser': raised RuntimeError: boom" in lines
    assert any(line.startswith("| error | `gradients.vanishing` | dense1 | the first layer") for line in lines)
    assert lines[-1] == f"Full report: `out/report.html` · [the run's artifacts]({RUN_URL})"
    step = (ci_run["dir"] / "step-summary.md").read_text()
    assert step == "earlier step\n" + md + "\n", "appended to $GITHUB_STEP_SUMMARY, not overwritten"


def test_mlflow_run_read_back_with_mlflow_client(ci_run):
    from mlflow.tracking import MlflowClient

    from diagnostics.mlflow import numeric_metrics

    client = MlflowClient(tracking_uri=ci_run["uri"])
    experiment = client.get_experiment_by_name("model-checks")  # MLFLOW_EXPERIMENT_NAME was honoured
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "diagnose mlp_vanishing.keras" and run.info.status == "FINISHED"
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("diagnostics.")}
    assert tags == {"diagnostics.verdict": "error", "diagnostics.exit_code": "3", "diagnostics.fail_on": "error",
                    "diagnostics.model": "mlp_vanishing.keras", "diagnostics.version": "0.1.0",
                    "diagnostics.exit_reason": "1 analyzer failed"}
    report = ci_run["report"]
    expected = numeric_metrics(report)
    assert run.data.metrics == expected
    assert expected["health.gradients.first_last_ratio"] == report.record("health.gradients").metrics["first_last_ratio"]
    assert "weights.nonfinite_total" in expected
    artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "diagnostics"))
    assert artifacts == ["diagnostics/report.html", "diagnostics/report.json"]
    local = client.download_artifacts(run.info.run_id, "diagnostics/report.json", str(ci_run["dir"] / "dl"))
    assert Path(local).read_bytes() == (ci_run["dir"] / "out" / "report.json").read_bytes()


def test_log_report_into_the_active_run_and_a_given_run(ci_run, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from diagnostics.mlflow import log_report

    monkeypatch.setenv("MLFLOW_TRACKING_URI", ci_run["uri"])
    monkeypatch.chdir(ci_run["dir"])
    with mlflow.start_run(run_name="training") as active:
        assert log_report(ci_run["dir"] / "out") == active.info.run_id
    client = MlflowClient()
    run = client.get_run(active.info.run_id)
    assert run.data.tags["diagnostics.verdict"] == "error" and run.data.tags["mlflow.runName"] == "training"
    given = client.create_run(run.info.experiment_id).info.run_id
    assert log_report(ci_run["report"], run_id=given) == given
    after = client.get_run(given)
    assert after.info.status == "RUNNING", "a run it did not start is left open"
    assert after.data.metrics == run.data.metrics


# -- the writers on constructed reports (no model) ------------------------------------------------------
def _report(fail_on="error", **extra) -> Report:
    records = (
        AnalyzerRecord(name="slow", plugin="slow", category="explain", status="timed_out", duration_s=3.0004,
                       reason="plugin 'slow': exceeded its 3 s budget and was stopped"),
        AnalyzerRecord(name="weights", plugin="weights", category="health", status="ok", duration_s=0.25, findings=(
            Finding("weights.odd", "warning", "a \x1b[31mcoloured\x1b[0m <message> & | pipe [link](x)"),
            Finding("weights.note", "info", "fine"))),
    )
    return Report(model={"name": "m.keras"}, data=None, environment={}, analyzers=records, seed=0, fail_on=fail_on,
                  exit_code=3, plugins=({"name": "broken", "error": "failed to import broken: ImportError: x"},), **extra)


@pytest.mark.parametrize("fail_on, failures", [("warning", 1), ("error", 0), ("never", 0)])
def test_junit_writer_timeouts_plugin_errors_fail_on_and_unprintable_text(fail_on, failures):
    text = to_junit_xml(_report(fail_on))
    suite = next(iter(junitparser.JUnitXml.fromstring(text)))  # control characters would make this raise
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, failures, 2, 0)
    cases = {c.name: c for c in suite}
    [timeout] = cases["slow"].result
    assert isinstance(timeout, junitparser.Error) and timeout.type == "timed_out"
    assert timeout.message == "plugin 'slow': exceeded its 3 s budget and was stopped" and cases["slow"].time == 3.0
    [plugin] = cases["broken"].result
    assert cases["broken"].classname == "plugin" and plugin.message == "plugin 'broken': failed to import broken: ImportError: x"
    assert "\x1b" not in text and "&lt;message&gt; &amp;" in text
    if failures:
        [failure] = cases["weights"].result
        assert failure.type == "weights.odd" and failure.text.startswith("WARNING weights.odd: a \\x1b[31mcoloured\\x1b[0m")
        assert "INFO" not in failure.text, "only findings at or above --fail-on fail"
    else:
        assert cases["weights"].is_passed
    assert "INFO weights.note: fine" in cases["weights"].system_out


def test_a_crashed_analyzer_is_a_junit_error_as_its_exit_code_3_says():
    crashed = AnalyzerRecord(name="explain.gradients", plugin="explain_gradients", category="explanation",
                             status="crashed", duration_s=4.0,
                             reason="plugin 'explain_gradients': crashed: the worker process was killed by SIGKILL")
    report = Report(model={"name": "m.keras"}, data=None, environment={}, plugins=(), analyzers=(crashed,), seed=0,
                    fail_on="error", exit_code=3)
    text = to_junit_xml(report)
    suite = next(iter(junitparser.JUnitXml.fromstring(text)))
    assert (suite.tests, suite.failures, suite.errors) == (1, 0, 1)
    [error] = next(iter(suite)).result
    assert isinstance(error, junitparser.Error) and error.type == "crashed" and error.message == crashed.reason
    props = {p.get("name"): p.get("value") for p in ET.fromstring(text).iter("property")}
    assert (props["verdict"], props["exit_code"], props["exit_reason"]) == ("clean", "3", "1 analyzer crashed")


def test_markdown_escapes_analyzer_text():
    md = to_markdown(_report("warning"), html_path="r/report.html")
    row = next(line for line in md.splitlines() if "weights.odd" in line)
    assert row.count(" | ") == 3, "a pipe in a message must not open a new cell"
    assert r"\<message\> & \| pipe \[link\](x)" in row


def test_the_summary_s_worst_findings_are_warnings_and_errors_and_the_infos_are_counted():
    lines = to_markdown(_report("warning")).splitlines()
    table = lines.index("| severity | code | where | message |")
    assert [line.split(" | ")[1] for line in lines[table + 2:] if line.startswith("| ")] == ["`weights.odd`"]
    assert "1 info finding(s) in the full report." in lines and "weights.note" not in "\n".join(lines)


# -- explanation methods: a passing method is one row of a table, not a finding ---------------------------
class _Noise(Explainer):
    """A method that ignores the model (seeded noise): the pipeline must fail it."""

    name = "noise"
    sampling = True

    def attribute(self, view, x, targets, seed):
        return np.random.default_rng(seed).normal(size=np.shape(x))


@pytest.fixture(scope="module")
def explained(keras_tf, tmp_path_factory):
    """The real trust pipeline on a linear model (3 outputs, 5 features): Integrated Gradients is exact
    there (trusted), the noise is failed. Returns the report a run would write around it."""
    import time

    from diagnostics_plugins.explain_gradients import IntegratedGradients

    from diagnostics.modelinfo import inspect_model

    class Trust(ExplanationAnalyzer):
        name = "explain.trust"
        description = "a trusted and a failed method"
        explainers = (IntegratedGradients, _Noise)
        defaults = {"samples": 12}

    keras_tf.utils.set_random_seed(3)
    model = keras_tf.Sequential([keras_tf.Input((5,)), keras_tf.layers.Dense(3)])
    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    ctx = Context(model=model, info=inspect_model(model), data=Data(x_val=x), history=None, metadata={}, seed=0,
                  artifact_dir=tmp_path_factory.mktemp("explained"), budget_s=600, backend="tensorflow", options={},
                  _deadline=time.monotonic() + 600)
    result = Trust().run(ctx)
    record = AnalyzerRecord(name="explain.trust", plugin="trust", category="explanation", status="ok", duration_s=1.0,
                            findings=result.findings, explanations=result.explanations)
    report = Report(model={"name": "linear.keras"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
                    fail_on="error")
    return dataclasses.replace(report, exit_code=int(report.compute_exit_code()))


def test_a_trusted_method_has_no_finding_and_a_failed_one_is_a_warning(explained):
    record = explained.record("explain.trust")
    assert [(e.method, e.verdict.value) for e in record.explanations] == [("integrated_gradients", "trusted"),
                                                                         ("noise", "failed")]
    [finding] = record.findings
    assert (finding.code, finding.severity.value, finding.where) == ("explain.trust.noise.failed", "warning", "noise")
    assert finding.message.startswith("noise explanations cannot be trusted: maps barely change when the weights are "
                                      "randomised (rank correlation 1.00); ")
    assert explained.exit_code == ExitCode.OK


def test_a_trusted_method_is_one_cell_in_the_terminal_table(explained):
    from diagnostics.table import verdict_table

    lines = verdict_table(explained).splitlines()
    assert "explain.trust:integrated_gradients  trusted  -" in lines
    assert [line.split(" [")[0] for line in lines if line.startswith(("INFO", "WARNING", "ERROR"))] == [
        "WARNING explain.trust.noise.failed"]
    assert lines[-1] == "verdict: warning (fail on error) -> exit 0"


def test_a_trusted_method_is_one_row_in_the_summary_and_nothing_in_junit(explained):
    lines = to_markdown(explained).splitlines()
    assert lines[0] == "### diagnose `linear.keras`: passed with warnings"
    assert "| explain.trust: integrated\\_gradients | trusted | - |" in lines
    assert next(line for line in lines if line.startswith("| explain.trust: noise | failed | ")).count("wanted") == 3
    assert [line.split(" | ")[1] for line in lines if line.startswith("| warning |") or line.startswith("| info |")] == [
        "`explain.trust.noise.failed`"]
    text = to_junit_xml(explained)
    assert 'name="exit_reason"' not in text, "the findings explain exit 0: no reason property"
    suite = next(iter(junitparser.JUnitXml.fromstring(text)))
    [case] = list(suite)
    assert case.is_passed and case.system_out.splitlines() == [
        "WARNING explain.trust.noise.failed [noise]: " + explained.record("explain.trust").findings[0].message]


def test_refused_model_still_gives_ci_a_red_test(tmp_path):
    bad = tmp_path / "not_a_model.keras"
    bad.write_bytes(b"this is not a zip archive")
    proc = run_diagnose(bad, "-o", tmp_path / "o", "--junit-xml", tmp_path / "j.xml", "--summary-md", tmp_path / "s.md")
    assert proc.returncode == ExitCode.MODEL_REFUSED, proc.stderr
    [case] = list(next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "j.xml")))))
    [error] = case.result
    assert isinstance(error, junitparser.Error) and error.type == "exit_4"
    assert error.message.startswith("model refused: ")
    assert (tmp_path / "s.md").read_text().startswith("### diagnose `not_a_model.keras`: FAILED\n\nNo report (exit code 4): model refused")
