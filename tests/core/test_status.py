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
    from diagnostics.plugin_manager import PluginHost
    from diagnostics.runner import Progress, run_in_memory

    plugin = types.SimpleNamespace(register_analyzers=diagnostics.hookimpl(lambda register: register(Raises)))
    host = PluginHost(extra=(("raiser", plugin),)).load()
    outcome = run_in_memory(tiny["model"], None, out_dir=tmp_path, seed=0, only=("raises",), skip=(), fail_on="error",
                            options={}, history=None, metadata=None, host=host, progress=Progress(quiet=True))
    rec = Report.load(tmp_path).record("raises")
    assert outcome.exit_code == ExitCode.ANALYZER_FAILED
    assert rec.status is Status.FAILED and rec.reason == "plugin 'raiser': raised RuntimeError: gave up"
    assert rec.traceback.startswith("Traceback (most recent call last):") and 'raise RuntimeError("gave up")' in rec.traceback


def test_an_executor_error_while_loading_the_model_exits_model_refused(tiny, tmp_path):
    from diagnostics.executors import ExecutorError
    from diagnostics.runner import Progress, RunConfig, run_file

    class Broken:
        def load(self, backend, job):
            raise ExecutorError("ImportError: libcudart.so.12: cannot open shared object file")

    outcome = run_file(RunConfig(model_path=str(tiny["keras"]), out_dir=tmp_path / "o", only=("architecture",)),
                       Progress(quiet=True), executor=Broken())
    assert outcome.exit_code == ExitCode.MODEL_REFUSED
    assert outcome.message == ("model refused: the worker could not load it: ImportError: libcudart.so.12: "
                               "cannot open shared object file")
