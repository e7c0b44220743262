"""What CI systems and trackers read: --junit-xml (checked with a real JUnit consumer), --summary-md and
$GITHUB_STEP_SUMMARY, and --mlflow into a real on-disk tracking store read back with MLflow's own client.

One real `diagnose` run on a zoo twin feeds every test here (module-scoped): the planted vanishing
gradients are a failure, a throwaway plugin that raises is an error with its traceback, the GAN
analyzer is skipped for a tabular model, `weights` passes, and a throwaway health analyzer that no writer
names (tests/history_probe.py, its accuracy-gap thresholds tightened by --option so that the twin's gap
of 0.0009 is an error) is in JUnit and MLflow through its measure sections alone.
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
from diagnostics._junit import to_junit_xml
from diagnostics._summary import to_markdown

from ..conftest import ZOO_DIR, run_diagnose
from ..history_probe import SOURCE as PROBE
from .conftest import analyzer_source, install_plugin

TWIN = ZOO_DIR / "mlp_vanishing.keras"
RUN_URL = "https://ci.example/acme/models/actions/runs/42"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("ci")
    env = install_plugin(d / "site", "raiser", analyzer_source("raiser", 'raise RuntimeError("boom")'))
    install_plugin(d / "site", "history_probe", PROBE)
    (d / "step-summary.md").write_text("earlier step\n")
    env.update({
        "GITHUB_STEP_SUMMARY": str(d / "step-summary.md"), "GITHUB_SERVER_URL": "https://ci.example",
        "GITHUB_REPOSITORY": "acme/models", "GITHUB_RUN_ID": "42",
        "MLFLOW_TRACKING_URI": f"sqlite:///{d / 'mlflow.db'}", "MLFLOW_EXPERIMENT_NAME": "model-checks",
    })
    # Relative paths, as a CI job writes them; the sqlite store keeps its artifacts in mlartifacts/ beside the database.
    proc = run_diagnose(TWIN, "--only", "health.gradients,health.gan", "--only", "weights,raiser,probe.history",
                        "--option", "probe.history.accuracy_gap_warning=0.0002",
                        "--option", "probe.history.accuracy_gap_error=0.0005", "-o", "out",
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
    report = ci_run["report"]
    # one case per analyzer, then one per measure it judged (a neutral measure is shown, never judged: no case)
    judged = [(r.name, m) for r in report.analyzers for m in r.measures if m.direction.value != "neutral"]
    assert ("probe.history", "probe.history.accuracy_gap") in [(n, m.code) for n, m in judged]
    assert [c.name for c in suite] == [n for r in report.analyzers
                                       for n in (r.name, *(m.code for a, m in judged if a == r.name))]
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5 + len(judged), 2, 1, 1)
    cases = {c.name: c for c in suite}
    assert "probe.history.loss" not in cases and "probe.history.kernel_norm" not in cases
    for name in ("health.gan", "health.gradients", "raiser", "weights", "probe.history"):
        assert cases[name].classname == report.record(name).category
        assert cases[name].time == pytest.approx(report.record(name).duration_s, abs=1e-3)
    for name, m in judged:
        assert cases[m.code].classname == name

    # a measure's failing values are a failure of the measure's case, not of its analyzer's (counted once)
    assert cases["health.gradients"].is_passed and cases["probe.history"].is_passed
    [failure] = cases["probe.history.accuracy_gap"].result
    [finding] = report.record("probe.history").findings
    assert isinstance(failure, junitparser.Failure) and failure.type == "probe.history.accuracy_gap"
    assert failure.message == f"probe.history.accuracy_gap: {finding.message}"
    assert finding.message == ("Train \u2212 validation accuracy 0.001 fraction, at or above the error threshold 0.0005 "
                               "(a test threshold) \u2014 stop earlier")
    assert failure.text == f"ERROR probe.history.accuracy_gap: {finding.message}"
    gap = report.record("probe.history").measure("accuracy_gap").values[0].value
    assert cases["probe.history.accuracy_gap"].system_out.splitlines() == [
        "Train \u2212 validation accuracy: 1 value(s), 0 passed; thresholds: warning 0.0002, error 0.0005",
        f"FAILED: {gap:.4g}"]
    assert cases["probe.history.loss_gap"].is_passed
    assert cases["probe.history.loss_gap"].system_out == "Validation \u2212 train loss: 1 value(s), 1 passed; thresholds: warning 0.5, error 1"
    [failure] = cases["health.gradients.first_last_ratio"].result
    [finding] = report.record("health.gradients").findings
    assert (failure.type, failure.message) == (finding.code, f"{finding.code}: {finding.message}")
    assert failure.text.startswith("ERROR health.gradients.first_last_ratio [dense1]: ")

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
    assert len(root.findall("testsuite/testcase")) > 5, "the measure cases are in the schema's shape too"
    assert props["exit_reason"] == "1 analyzer failed", "the XML says why the code is 3 as the verdict line does"


def test_summary_markdown_and_github_step_summary(ci_run):
    md = (ci_run["dir"] / "summary.md").read_text()
    lines = md.splitlines()
    assert lines[0] == "### diagnose `mlp_vanishing.keras`: FAILED"
    assert "Verdict: **error** (fail on error), and 1 analyzer failed → exit code 3" in lines
    table = lines.index("| analyzer | status | worst finding | findings | time |")
    assert lines[table + 1] == "|---|---|---|---:|---:|"
    rows = [line for line in lines[table + 2:table + 7]]
    assert [r.split(" | ")[:4] for r in rows] == [
        ["| health.gan", "skipped", "-", "0"], ["| health.gradients", "ok", "error", "1"],
        ["| probe.history", "ok", "error", "1"], ["| raiser", "failed", "-", "0"], ["| weights", "ok", "-", "0"]]
    assert "- `raiser` failed: plugin 'raiser': raised RuntimeError: boom" in lines
    assert any(line.startswith("| error | `health.gradients.first_last_ratio` | dense1 | ") for line in lines)
    # the health measures that did not pass, one row each, read from the sections (no writer names probe.history)
    health = lines.index("| health measure | not passed | worst | threshold |")
    report = ci_run["report"]
    ratio = report.record("health.gradients").measure("first_last_ratio").value("dense1")
    gap = report.record("probe.history").measure("accuracy_gap").value()
    assert ratio < 1e-5 and 0.0005 <= gap < 0.1  # the planted fault, and the gap the tightened thresholds catch
    assert lines[health + 2:health + 4] == [
        f"| health.gradients: First ÷ last layer kernel-gradient norm | error | {ratio:.1e} at dense1 | \\< 1e-05 |",
        f"| probe.history: Train − validation accuracy (fraction) | error | {gap:.3f} | ≥ 0.0005 |"]  # its format
    assert lines[-1] == f"Full report: `out/report.html` · [the run's artifacts]({RUN_URL})"
    step = (ci_run["dir"] / "step-summary.md").read_text()
    assert step == "earlier step\n" + md + "\n", "appended to $GITHUB_STEP_SUMMARY, not overwritten"


def test_mlflow_run_read_back_with_mlflow_client(ci_run):
    from mlflow.tracking import MlflowClient

    from diagnostics.mlflow import logged_metrics

    client = MlflowClient(tracking_uri=ci_run["uri"])
    experiment = client.get_experiment_by_name("model-checks")  # MLFLOW_EXPERIMENT_NAME was honoured
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "diagnose mlp_vanishing.keras" and run.info.status == "FINISHED"
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("diagnostics.")}
    assert tags == {"diagnostics.verdict": "error", "diagnostics.exit_code": "3", "diagnostics.fail_on": "error",
                    "diagnostics.model": "mlp_vanishing.keras", "diagnostics.version": "0.1.0",
                    "diagnostics.exit_reason": "1 analyzer failed"}
    report = ci_run["report"]
    logged = logged_metrics(report)
    latest = {k: v for k, v, _ in sorted(logged, key=lambda m: m[2])}  # a metric's value is its last step's
    assert run.data.metrics == latest
    # every measured value by its code: <code> model-wide, <code>/<where> per layer, <code>/<series> per epoch
    probe = report.record("probe.history")
    assert latest["probe.history.accuracy_gap"] == probe.measure("accuracy_gap").values[0].value
    assert {k.split("/")[1]: v for k, v in latest.items() if k.startswith("probe.history.kernel_norm/")} == {
        v.where: v.value for v in probe.measure("kernel_norm").values}
    history = TWIN.with_suffix(".meta.json")
    import json

    train = json.loads(history.read_text())["history"]["loss"]
    steps = client.get_metric_history(run.info.run_id, "probe.history.loss/train")
    assert sorted((m.step, m.value) for m in steps) == list(enumerate(train, 1))  # the epoch is MLflow's step
    assert latest["health.gradients.first_last_ratio"] == report.record("health.gradients").measure("first_last_ratio").values[0].value
    assert "weights.nonfinite_total" in latest  # the free-form metrics beside them, as before
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


def test_mlflow_keys_of_measured_values_are_valid_distinct_and_say_where():
    from mlflow.utils.validation import _validate_metric_name

    from diagnostics import HealthAnalyzer, Measure, Measurements, Scope, Value
    from diagnostics._measures import judge
    from diagnostics.mlflow import measure_metrics

    class Odd(HealthAnalyzer):
        name = "odd"
        description = "places with names MLflow cannot take as they are"
        measures = (Measure("norm", "Norm", scope=Scope.LAYER), Measure("gap", "Gap"),
                    Measure("loss", "Loss", scope=Scope.EPOCH), Measure("long", "Long", scope=Scope.CLASS))

    values = [Value("norm", 1.0, where="conv/1:0"), Value("norm", 2.0, where="conv_1_0"), Value("norm", 3.0, where=".."),
              Value("norm", 4.0, where="dense[0]"), Value("norm", None, where="nan"),
              Value("gap", 0.5, where="dense"), Value("gap", 0.25, series="validation"),
              Value("loss", 2.0, where="1", series="train"), Value("loss", 1.0, where="2", series="train"),
              Value("long", 1.0, where="x" * 300)]
    record = AnalyzerRecord(name="odd", plugin="odd", category="health", status="ok",
                            measures=judge(Odd, Measurements(values=values), {}).measures)
    report = Report(model={"name": "m.keras"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
                    fail_on="error")
    got = measure_metrics(report)
    assert got == [("odd.norm/conv_1_0", 1.0, 0), ("odd.norm/conv_1_0_2", 2.0, 0), ("odd.norm/__", 3.0, 0),
                   ("odd.norm/dense_0_", 4.0, 0),  # None (not measurable) is not a metric
                   ("odd.gap", 0.5, 0), ("odd.gap/validation", 0.25, 0),  # model-wide: where it is worst is no key
                   ("odd.loss/train", 2.0, 1), ("odd.loss/train", 1.0, 2),  # per epoch: the epoch is the step
                   ("odd.long/" + "x" * (250 - len("odd.long/")), 1.0, 0)]  # MLflow takes 250 characters
    for key, _, _ in got:
        _validate_metric_name(key)  # MLflow's own check (raises on a key it refuses)


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
    # 20 features: with 5 the rank correlations of IG's maps before and after randomising the weights
    # spread so widely that 40 samples leave the randomisation check undecided
    model = keras_tf.Sequential([keras_tf.Input((20,)), keras_tf.layers.Dense(3)])
    x = np.random.default_rng(1).normal(size=(80, 20)).astype(np.float32)
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
    assert finding.message.startswith("noise failed: maps barely change when the weights are randomised (rank "
                                      "correlation 1.00 [1.00, 1.00], 4 samples)")
    assert explained.exit_code == ExitCode.OK


def test_a_trusted_method_is_one_cell_in_the_terminal_table(explained):
    from diagnostics._table import verdict_table

    lines = verdict_table(explained).splitlines()
    assert "explain.trust:integrated_gradients  trusted  -" in lines
    assert [line.split(" [")[0] for line in lines if line.startswith(("INFO", "WARNING", "ERROR"))] == [
        "WARNING explain.trust.noise.failed"]
    assert lines[-1] == "verdict: warning (fail on error) -> exit 0"


def test_a_trusted_method_is_one_row_in_the_summary_and_nothing_in_junit(explained):
    lines = to_markdown(explained).splitlines()
    assert lines[0] == "### diagnose `linear.keras`: passed with warnings"
    assert "| explain.trust: integrated\\_gradients | trusted | - |" in lines
    noise = next(line for line in lines if line.startswith("| explain.trust: noise | failed | "))
    assert noise.count(" samples: ") == 3 and "randomisation 1 \\[1.00, 1.00\\], 4 samples: failed against 0.3, lower wanted" in noise
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
