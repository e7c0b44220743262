"""Run statuses are an enum; a failed analyzer keeps its worker traceback; an executor that breaks
while loading the model exits MODEL_REFUSED, not INTERNAL_ERROR."""

from __future__ import annotations

import types

import pytest

import diagnostics
from diagnostics import AnalyzerRecord, ExitCode, Report, Status


def _report(*statuses: str) -> Report:
    recs = tuple(AnalyzerRecord(name=f"a{i}", plugin="p", category="model", status=s) for i, s in enumerate(statuses))
    return Report(model={"name": "m"}, data=None, environment={}, plugins=(), analyzers=recs, seed=0, fail_on="error")


def test_statuses_are_an_enum_and_crashed_fails_the_run():
    assert [s.value for s in Status] == ["ok", "skipped", "failed", "timed_out", "crashed"]
    report = _report("ok", "crashed")
    assert report.analyzers[1].status is Status.CRASHED and report.analyzers[1].status == "crashed"
    assert report.compute_exit_code() == ExitCode.ANALYZER_FAILED
    assert _report("ok", "skipped").compute_exit_code() == ExitCode.OK
    assert Report.from_dict(report.to_dict()).analyzers[1].status is Status.CRASHED
    with pytest.raises(ValueError, match="status must be one of"):
        _report("exploded")


class Raises(diagnostics.Analyzer):
    name = "raises"
    description = "raises on purpose"

    def run(self, context):
        raise RuntimeError("gave up")


def test_the_worker_traceback_of_a_failed_analyzer_is_kept_in_the_report(tiny, tmp_path):
    from diagnostics._plugin_manager import PluginHost
    from diagnostics._runner import Progress, run_in_memory

    plugin = types.SimpleNamespace(register_analyzers=diagnostics.hookimpl(lambda register: register(Raises)))
    host = PluginHost(extra=(("raiser", plugin),)).load()
    outcome = run_in_memory(tiny["model"], None, out_dir=tmp_path, seed=0, only=("raises",), skip=(), fail_on="error",
                            options={}, history=None, metadata=None, host=host, progress=Progress(quiet=True))
    rec = Report.load(tmp_path).record("raises")
    assert outcome.exit_code == ExitCode.ANALYZER_FAILED
    assert rec.status is Status.FAILED and rec.reason == "plugin 'raiser': raised RuntimeError: gave up"
    assert rec.traceback.startswith("Traceback (most recent call last):") and 'raise RuntimeError("gave up")' in rec.traceback


def test_an_executor_error_while_loading_the_model_exits_model_refused(tiny, tmp_path):
    from diagnostics._executors import ExecutorError
    from diagnostics._runner import Progress, RunConfig, run_file

    class Broken:
        def load(self, backend, job):
            raise ExecutorError("ImportError: libcudart.so.12: cannot open shared object file")

    outcome = run_file(RunConfig(model_path=str(tiny["keras"]), out_dir=tmp_path / "o", only=("architecture",)),
                       Progress(quiet=True), executor=Broken())
    assert outcome.exit_code == ExitCode.MODEL_REFUSED
    assert outcome.message == ("model refused: the worker could not load it: ImportError: libcudart.so.12: "
                               "cannot open shared object file")


# -- the status lines agree with the exit code ---------------------------------------------------------
def _run(statuses=(), findings=(), plugin_errors=0, fail_on="error", strict=False) -> Report:
    import dataclasses

    from diagnostics import Finding

    recs = [AnalyzerRecord(name=f"a{i}", plugin="p", category="model", status=s, reason="plugin 'p': it broke")
            for i, s in enumerate(statuses)]
    recs.append(AnalyzerRecord(name="weights", plugin="weights", category="health", status="ok",
                               findings=tuple(Finding(f"weights.{s}", s, "seen") for s in findings)))
    plugins = tuple({"name": f"bad{i}", "error": "failed to import bad: ImportError: x"} for i in range(plugin_errors))
    report = Report(model={"name": "m"}, data=None, environment={}, plugins=plugins, analyzers=tuple(recs), seed=0,
                    fail_on=fail_on)
    code = ExitCode.PLUGIN_ERROR if strict else report.compute_exit_code()
    return dataclasses.replace(report, exit_code=int(code))


@pytest.mark.parametrize("run, line", [
    (dict(), "verdict: clean (fail on error) -> exit 0"),
    (dict(findings=("warning",)), "verdict: warning (fail on error) -> exit 0"),
    (dict(findings=("error",)), "verdict: error (fail on error) -> exit 1"),
    (dict(statuses=("crashed",)), "verdict: clean (fail on error), but 1 analyzer crashed -> exit 3"),
    (dict(statuses=("timed_out", "timed_out"), findings=("warning",)),
     "verdict: warning (fail on error), but 2 analyzers timed out -> exit 3"),
    (dict(statuses=("failed", "crashed", "ok", "timed_out"), findings=("error",)),
     "verdict: error (fail on error), and 3 analyzers did not finish (1 failed, 1 timed out, 1 crashed) -> exit 3"),
    (dict(plugin_errors=2), "verdict: clean (fail on error), but 2 plugins failed to load -> exit 3"),
    (dict(statuses=("failed",), plugin_errors=1, fail_on="never", findings=("error",)),
     "verdict: error (fail on never), but 1 analyzer failed and 1 plugin failed to load -> exit 3"),
    (dict(statuses=("failed", "skipped"), strict=True),
     "verdict: clean (fail on error), but --strict-plugins stopped the run: 1 analyzer failed -> exit 6"),
])
def test_the_verdict_line_says_why_the_exit_code_is_what_it_is(run, line):
    from diagnostics._table import verdict_table

    assert verdict_table(_run(**run)).splitlines()[-1] == line


def test_the_summary_heading_agrees_with_its_verdict_and_mlflow_says_why_too():
    from diagnostics.mlflow import tags
    from diagnostics._summary import to_markdown

    def top(report):
        return to_markdown(report).splitlines()[:3:2]

    assert top(_run()) == ["### diagnose `m`: passed", "Verdict: **clean** (fail on error) → exit code 0"]
    assert top(_run(findings=("warning", "info"))) == [
        "### diagnose `m`: passed with warnings", "Verdict: **warning** (fail on error) → exit code 0"]
    assert top(_run(findings=("info",))) == [
        "### diagnose `m`: passed with info findings", "Verdict: **info** (fail on error) → exit code 0"]
    assert top(_run(findings=("error",), fail_on="never")) == [
        "### diagnose `m`: passed with errors", "Verdict: **error** (fail on never) → exit code 0"]
    assert top(_run(findings=("error",))) == ["### diagnose `m`: FAILED", "Verdict: **error** (fail on error) → exit code 1"]
    crashed = _run(statuses=("crashed",))
    assert top(crashed) == ["### diagnose `m`: FAILED",
                            "Verdict: **clean** (fail on error), but 1 analyzer crashed → exit code 3"]
    assert "- `a0` crashed: plugin 'p': it broke" in to_markdown(crashed).splitlines(), "a crash did not finish either"
    assert tags(crashed)["diagnostics.verdict"] == "clean" and tags(crashed)["diagnostics.exit_code"] == "3"
    assert tags(crashed)["diagnostics.exit_reason"] == "1 analyzer crashed"
    assert "diagnostics.exit_reason" not in tags(_run(findings=("error",))), "the findings say why: no reason tag"


# -- the typed job result: a status set where it happens, one wire form, one reader of the replies ----
def _full_result():
    from diagnostics import Finding
    from diagnostics._jobresult import JobResult
    from diagnostics._measures import Judged, MeasureSection
    from diagnostics._verdicts import Check, MethodExplanation, Outcome, Verdict

    check = Check("stability", 0.4, 0.5, Outcome.DOUBTFUL, reason="maps move between halves")
    return JobResult(
        Status.OK, "", 1.25, findings=(Finding("a.b", "warning", "seen", "dense"),), metrics={"n": 3},
        artifacts={"map": "map.npy"},
        explanations=(MethodExplanation("saliency", Verdict.DOUBTFUL, ("x",), (check,), (0, 1), artifacts={"map": "s.npy"}),),
        measures=(MeasureSection("norm", "a.norm", "Norm", values=(Judged(2.0, "dense", outcome=Outcome.FAILED, threshold=1.0),),
                                 chart="norm.png"),),
        phases={"predict": 0.5}, traceback="", peak_memory_mb=812.5, resource_notes=("batches of 8 instead of 64",))


def test_a_job_result_crosses_the_wire_as_json_and_comes_back_equal():
    import json

    from diagnostics._jobresult import JobResult

    result = _full_result()
    wire = json.loads(json.dumps(result.to_wire()))  # what a pipe or Ray carries: plain JSON types
    assert JobResult.from_wire(wire) == result
    assert wire["status"] == "ok" and wire["measures"][0]["chart"] == "norm.png"
    with pytest.raises(TypeError, match=r"JobResult.status must be a diagnostics.report.Status, got 'ok'"):
        JobResult("ok")


def test_the_record_takes_the_status_the_result_was_given_and_never_reads_it_from_the_reason():
    from diagnostics._jobresult import JobResult
    from diagnostics._plugin_manager import AnalyzerEntry
    from diagnostics._runner import _record_from_result

    entry = AnalyzerEntry(Raises, "raiser")
    crashed = _record_from_result(entry, "tensorflow", JobResult.crashed("the worker process died (exit code 9)", 2.0), "raises")
    assert (crashed.status, crashed.reason) == (Status.CRASHED, "plugin 'raiser': crashed: the worker process died (exit code 9)")
    # a failure whose words happen to begin like a crash's is still a failure
    failed = _record_from_result(entry, "tensorflow", JobResult.failed("crashed into a wall"), "raises")
    assert (failed.status, failed.reason) == (Status.FAILED, "plugin 'raiser': crashed into a wall")
    timed = _record_from_result(entry, "torch", JobResult.timed_out(2.96, 5.0), "raises")
    assert (timed.status, timed.reason) == (Status.TIMED_OUT, "plugin 'raiser': exceeded its 3 s budget and was stopped")
    ok = _record_from_result(entry, "tensorflow", _full_result(), "raises")
    assert (ok.status, ok.reason, ok.duration_s, ok.peak_memory_mb) == (Status.OK, "", 1.25, 812.5)
    assert ok.artifacts == {"map": "artifacts/raises/map.npy"}
    assert ok.explanations[0].artifacts == {"map": "artifacts/raises/s.npy"}
    assert ok.measures[0].chart == "artifacts/raises/norm.png" and ok.measure("a.norm").value("dense") == 2.0


def test_a_workers_problem_replies_decode_into_what_they_stand_for():
    from diagnostics._data import DataRefused
    from diagnostics._executors import ExecutorError
    from diagnostics._jobresult import loaded, not_started, problem
    from diagnostics.safety import ModelRefused

    assert problem(ModelRefused("too big")) == ("refused", "too big")
    assert problem(DataRefused("x has 3 columns")) == ("data_refused", "x has 3 columns")
    assert problem(OSError("disk full")) == ("error", "OSError: disk full")
    assert loaded("loaded", {"info": {}}) == {"info": {}}
    for error, kind in ((ModelRefused("too big"), ModelRefused), (DataRefused("bad"), DataRefused),
                        (OSError("disk full"), ExecutorError)):
        with pytest.raises(kind, match=str(error) if kind is not ExecutorError else "OSError: disk full"):
            loaded(*problem(error))
    with pytest.raises(ModelRefused, match="too big"):  # a refused model stops every job, not just this one
        not_started("refused", "too big", 1.0)
    started_not = not_started("data_refused", "x has 3 columns", 1.5)
    assert (started_not.status, started_not.reason, started_not.duration_s) == (
        Status.FAILED, "could not start: x has 3 columns", 1.5)


def test_no_status_string_literal_outside_the_report_writer():
    import pathlib
    import re

    root = pathlib.Path(diagnostics.__file__).parent
    found = [f"{p.relative_to(root.parent)}:{i}" for p in sorted(root.rglob("*.py")) if p.name != "report.py"
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if re.search(r"""["']status["']: ["']""", line)]
    assert found == [], "statuses are diagnostics.report.Status members (a JobResult's), not strings"
