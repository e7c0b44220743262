"""The notebook API on in-memory models, and the report model's round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

import diagnostics
from diagnostics import AnalyzerRecord, DiagnosisError, ExitCode, Finding, Report, Severity
from diagnostics.report import SCHEMA_VERSION


def test_in_memory_model_is_diagnosed_in_process(tiny, tmp_path):
    model = tiny["model"]
    before = [w.copy() for w in model.get_weights()]
    with np.load(tiny["data"]) as z:
        x, y = z["x_val"], z["y_val"]
    report = diagnostics.diagnose(model, data=(x, y), out_dir=tmp_path / "r", only=("architecture", "weights"))
    assert isinstance(report, Report)
    assert report.record("architecture").metrics["n_params"] == model.count_params()
    assert report.model["format"] == "in-memory" and report.model["name"] == "tiny"
    assert report.data["shapes"]["x_val"] == [16, 4]
    assert report.directory == str(tmp_path / "r")
    assert Report.load(tmp_path / "r") == report
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_in_memory_refusals_raise_with_exit_code(tiny):
    with pytest.raises(DiagnosisError) as e:
        diagnostics.diagnose(tiny["model"], data=(np.zeros((3, 5), "float32"), np.zeros(3)), only=("weights",))
    assert e.value.exit_code == ExitCode.DATA_REFUSED
    assert str(e.value) == "data refused: x_val has shape (n, 5); the model expects (None, 4): save x_val with samples of shape (4,)"


def test_file_path_goes_through_safe_loading(tiny, tmp_path):
    report = diagnostics.diagnose(str(tiny["keras"]), data=str(tiny["data"]), out_dir=tmp_path / "f",
                                  only=("architecture",))
    assert report.model["format"] == "keras" and len(report.model["sha256"]) == 64
    assert report.environment["backends"] == ["tensorflow"]


def _report() -> Report:
    rec = AnalyzerRecord(name="a", plugin="p", category="health", status="ok", duration_s=1.5,
                         findings=(Finding("x.y", Severity.WARNING, "something", "layer"),),
                         metrics={"n": 3, "nested": {"v": [1.0, 2.0]}}, artifacts={"plot": "artifacts/a/p.png"})
    return Report(model={"name": "m"}, data=None, environment={}, plugins=({"name": "p", "error": None},),
                  analyzers=(rec,), seed=1, fail_on="warning")


def test_report_round_trip_and_exit_code():
    r = _report()
    again = Report.from_dict(json.loads(r.to_json()))
    assert again == r
    assert r.compute_exit_code() == ExitCode.FINDINGS
    assert json.loads(r.to_json())["schema_version"] == SCHEMA_VERSION


def test_report_rejects_other_schema_versions():
    d = json.loads(_report().to_json())
    d["schema_version"] = 99
    with pytest.raises(ValueError, match="report schema version 99 is not supported: this diagnostics reads version 2; re-run diagnose"):
        Report.from_dict(d)


def test_nan_metric_is_a_malformed_result():
    from diagnostics.analyzer import Result, validate_result

    assert validate_result(Result(metrics={"loss": float("nan"), "ok": [1.0, float("inf")]})) == [
        "metrics['loss'] is not a finite number", "metrics['ok'][1] is not a finite number"]
    assert validate_result(Result(metrics={"arr": np.zeros(3)})) == ["metrics['arr'] (ndarray) is not a JSON value"]
