"""Every phase timed: ``Context.timed``, the report's ``phases`` and ``workers``, ``diagnose -v``, the
HTML timings, the torch worker reading a ``.keras`` copy of a legacy ``.h5`` instead of importing TensorFlow, and
workers side by side sharing the cores."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from diagnostics import Context, ExitCode, Report
from diagnostics.analyzer import ModelInfo
from diagnostics._executors import threads_per_worker
from diagnostics.report import AnalyzerRecord, strip_timings
from diagnostics._table import slowest_phases

from ..conftest import run_diagnose
from .conftest import install_plugin


def _context() -> Context:
    info = ModelInfo(name="m", kind="tabular", input_shapes=[[None, 4]], input_dtypes=["float32"],
                     output_shapes=[[None, 3]], output_activation="softmax", n_params=1, n_layers=1)
    return Context(model=None, info=info, data=None, history=None, metadata={}, seed=0, artifact_dir=Path("."),
                   budget_s=10, backend="tensorflow")


class _Clock:
    """``time.perf_counter`` that moves only when the test says: a phase's seconds are then known exactly,
    where slept ones are stretched by whatever else the machine runs."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_timed_sums_each_phase_and_refuses_a_nameless_one(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(time, "perf_counter", clock)
    ctx = _context()
    with ctx.timed("randomisation"):
        clock.now += 5.0
    clock.now += 100.0  # outside every phase: counted in none
    with ctx.timed("faithfulness"):
        clock.now += 0.25
    with ctx.timed("randomisation"):
        clock.now += 2.5
    phases = ctx.phases
    assert sorted(phases) == ["faithfulness", "randomisation"]
    assert phases == {"randomisation": pytest.approx(7.5), "faithfulness": pytest.approx(0.25)}
    phases["randomisation"] = 0.0  # a copy: the context keeps its own
    assert ctx.phases["randomisation"] == pytest.approx(7.5)
    with pytest.raises(ValueError, match="a phase name must be a non-empty string, got ''"):
        ctx.timed("")


def test_a_phase_that_raises_is_still_timed():
    ctx = _context()
    with pytest.raises(KeyError):
        with ctx.timed("method"):
            time.sleep(0.02)
            raise KeyError("x")
    assert ctx.phases["method"] >= 0.02  # the real clock: a sleep is never shorter, however loaded the machine


def _report(**kw) -> Report:
    records = (
        AnalyzerRecord(name="explain.x", plugin="p", category="explanation", status="ok", duration_s=10.0,
                       phases={"method": 2.0, "randomisation": 5.0}),
        AnalyzerRecord(name="weights", plugin="core", category="model", status="ok", duration_s=1.5),
        AnalyzerRecord(name="skipped.one", plugin="p", category="model", status="skipped", reason="no data"),
    )
    workers = {"tensorflow": {"spawn_s": 0.5, "import_s": 6.0, "plugins_s": 0.1, "load_s": 0.7, "processes": 1,
                              "peak_rss_mib": 812.4},
               "torch": {"spawn_s": 0.6, "import_s": 4.0, "load_s": 0.2, "processes": 1, "peak_rss_mib": 640.0}}
    defaults = dict(model={"name": "m"}, data=None, environment={}, plugins=(), analyzers=records, seed=0,
                    fail_on="error", timings={"total_s": 20.0, "prescan_s": 0.25, "report_s": 0.3}, workers=workers)
    defaults.update(kw)
    return Report(**defaults)


def test_phase_breakdown_lists_run_workers_and_analyzers_slowest_first():
    assert _report().phase_breakdown() == [
        ("tensorflow worker: import", 6.0), ("explain.x: randomisation", 5.0), ("torch worker: import", 4.0),
        ("explain.x: other", 3.0), ("explain.x: method", 2.0), ("weights", 1.5), ("tensorflow worker: model load", 0.7),
        ("torch worker: start", 0.6), ("tensorflow worker: start", 0.5), ("run: report", 0.3), ("run: prescan", 0.25),
        ("torch worker: model load", 0.2), ("tensorflow worker: plugins", 0.1)]


def test_phases_and_workers_round_trip_and_old_reports_still_load():
    report = _report()
    again = Report.from_dict(report.to_dict())
    assert again == report
    assert again.record("explain.x").phases == {"method": 2.0, "randomisation": 5.0}
    assert again.workers["tensorflow"]["peak_rss_mib"] == 812.4
    d = report.to_dict()
    assert "phases" not in d["analyzers"][1]  # omitted when empty, as traceback is
    old = {k: v for k, v in d.items() if k != "workers"}
    for r in old["analyzers"]:
        r.pop("phases", None)
    loaded = Report.from_dict(old)
    assert loaded.workers == {} and loaded.record("explain.x").phases == {}
    assert "workers" not in loaded.to_dict()
    # timings vary from run to run: comparisons of two reports ignore them
    stripped = strip_timings(d)
    assert "workers" not in stripped and all("phases" not in r for r in stripped["analyzers"])


def test_slowest_phases_text():
    assert slowest_phases(_report()) == (
        "slowest phases (of 20.0s in all; workers run side by side):\n"
        "  tensorflow worker: import     6.0s\n"
        "  explain.x: randomisation      5.0s\n"
        "  torch worker: import          4.0s\n"
        "peak worker memory: tensorflow 812 MiB, torch 640 MiB")
    empty = _report(analyzers=(), workers={}, timings={})
    assert slowest_phases(empty) == ""


def test_html_report_has_the_timings_table():
    from diagnostics._html import render_html

    html = render_html(_report(), Path("."))
    assert "<h2>Timings</h2>" in html
    assert "<td>explain.x: randomisation</td><td>5.00</td>" in html
    assert "Peak worker memory: tensorflow 812 MiB, torch 640 MiB" in html


_TIMED = '''
import sys
import numpy as np
import diagnostics
from diagnostics import Analyzer, Result


class TimedTF(Analyzer):
    name = "timed_tf"
    description = "times two phases and reports its predictions"
    backends = ("tensorflow",)
    data = "x"

    def run(self, context):
        with context.timed("predict"):
            p = np.asarray(context.model.predict(np.asarray(context.data.x), verbose=0))
        with context.timed("nap"):
            import time
            time.sleep(0.2)
        return Result(metrics={"prediction_sum": float(p.sum())})


class OnTorch(Analyzer):
    name = "on_torch"
    description = "reports whether its worker imported TensorFlow, and its predictions"
    backends = ("torch",)
    data = "x"

    def run(self, context):
        from diagnostics.explainers import ModelView

        p = np.asarray(context.model.predict(np.asarray(context.data.x), verbose=0))
        # what the randomisation check does: seed, then clone with fresh weights (Keras serialises each
        # layer's config, which looks TensorFlow up whenever it is installed)
        clone = ModelView(context.model, "tabular").randomised_copy(context.seed).model
        moved = any(not np.allclose(a, b) for a, b in zip(clone.get_weights(), context.model.get_weights()) if a.size > 1)
        return Result(metrics={"tensorflow_imported": "tensorflow" in sys.modules, "prediction_sum": float(p.sum()),
                               "clone_reinitialised": moved})


@diagnostics.hookimpl
def register_analyzers(register):
    register(TimedTF)
    register(OnTorch)
'''


@pytest.mark.slow
def test_a_run_times_every_phase_and_the_torch_worker_reads_h5_without_tensorflow(tiny, tmp_path, plugin_dir):
    env = install_plugin(plugin_dir, "timed_plugin", _TIMED)
    out = tmp_path / "o"
    proc = run_diagnose(tiny["h5"], "--data", tiny["data"], "--only", "timed_tf,on_torch", "--out", out, "-v", env=env)
    assert proc.returncode == ExitCode.OK, proc.stderr
    report = Report.load(out)
    timed, torch_rec = report.record("timed_tf"), report.record("on_torch")
    assert (timed.status, torch_rec.status) == ("ok", "ok"), (timed.reason, torch_rec.reason)
    assert sorted(timed.phases) == ["nap", "predict"] and timed.phases["nap"] >= 0.2
    assert sum(timed.phases.values()) <= timed.duration_s + 0.01
    for backend in ("tensorflow", "torch"):
        w = report.workers[backend]
        assert w["processes"] == 1 and w["loads"] == 1
        assert w["import_s"] > 0 and w["load_s"] > 0 and w["spawn_s"] > 0, w
        assert 100 < w["peak_rss_mib"] < 8000, w
    for key in ("prescan_s", "data_s", "report_s", "total_s"):
        assert report.timings[key] >= 0
    # the torch worker loaded the TensorFlow worker's .keras copy: same model, and no TensorFlow import,
    # not even for the randomised clone
    assert torch_rec.metrics["tensorflow_imported"] is False and torch_rec.metrics["clone_reinitialised"] is True
    # two workers side by side share the cores
    assert report.workers["tensorflow"]["threads"] == report.workers["torch"]["threads"] == threads_per_worker(2)
    assert torch_rec.metrics["prediction_sum"] == pytest.approx(timed.metrics["prediction_sum"], rel=1e-5)
    assert "slowest phases (of " in proc.stdout and "peak worker memory: tensorflow " in proc.stdout
    assert proc.stdout.count("\n  ") >= 3
    assert "<h2>Timings</h2>" in (out / "report.html").read_text()
    assert not list(out.glob("*.keras")) and not list(out.glob(".staging-*"))  # the copy went with the staging


def test_workers_side_by_side_share_the_cores(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert threads_per_worker(1) is None  # alone: the framework's default, every core
    assert threads_per_worker(2) == 4 and threads_per_worker(3) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert threads_per_worker(2) == 1  # never fewer than one
