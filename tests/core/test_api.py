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
    with pytest.raises(ValueError, match="report schema version 99 is not supported: this diagnostics reads versions 2, 3, 4; re-run diagnose"):
        Report.from_dict(d)


def test_nan_metric_is_a_malformed_result():
    from diagnostics.analyzer import Result, validate_result

    assert validate_result(Result(metrics={"loss": float("nan"), "ok": [1.0, float("inf")]})) == [
        "metrics['loss'] is not a finite number", "metrics['ok'][1] is not a finite number"]
    assert validate_result(Result(metrics={"arr": np.zeros(3)})) == ["metrics['arr'] (ndarray) is not a JSON value"]


# -- temporary output, captured warnings, reasons in the API's words ---------------------------------
@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """This process's temporary folder, empty: what a run leaves there is exactly what a listing shows."""
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _tiny_data(tiny):
    with np.load(tiny["data"]) as z:
        return {k: z[k] for k in z.files}


def test_a_temporary_report_folder_goes_with_the_report(tiny, private_tmp):
    import gc
    from pathlib import Path

    assert list(private_tmp.iterdir()) == []
    report = diagnostics.diagnose(tiny["model"], data=_tiny_data(tiny), only=("architecture", "weights"))
    folder = Path(report.directory)
    assert folder.parent == private_tmp and folder.name.startswith("diagnostics-")
    assert (folder / "report.json").is_file() and (folder / "artifacts" / "weights" / "measure_norm.png").is_file()
    assert "temporary: removed when this report is garbage-collected" in report._repr_html_()
    del report
    gc.collect()
    assert list(private_tmp.iterdir()) == []


def test_keep_and_out_dir_keep_the_folder(tiny, private_tmp, tmp_path):
    import gc
    from pathlib import Path

    kept = diagnostics.diagnose(tiny["model"], only=("architecture",), keep=True)
    mine = diagnostics.diagnose(tiny["model"], only=("architecture",), out_dir=tmp_path / "mine")
    folders = [Path(kept.directory), Path(mine.directory)]
    del kept, mine
    gc.collect()
    assert all((f / "report.json").is_file() for f in folders)
    assert [p.name for p in private_tmp.iterdir()] == [folders[0].name]


def test_a_refused_run_leaves_no_temporary_folder(tiny, private_tmp):
    with pytest.raises(DiagnosisError):
        diagnostics.diagnose(tiny["model"], data=(np.zeros((3, 5), "float32"), np.zeros(3)), only=("weights",))
    with pytest.raises(DiagnosisError):  # a model file with in-memory data: the data's copy goes too
        diagnostics.diagnose(str(tiny["keras"]), data=(np.zeros((3, 5), "float32"), np.zeros(3)), only=("weights",))
    assert list(private_tmp.iterdir()) == []


NOISY = '''
import os
import sys
import warnings

import diagnostics
from diagnostics import Analyzer, Result


class Noisy(Analyzer):
    name = "noisy.nb"
    description = "warns, and writes to stderr from Python and below it"

    def run(self, context):
        warnings.warn("The structure of `inputs` doesn't match\\n the expected structure.", UserWarning)
        print("a line from Python on stderr", file=sys.stderr)
        os.write(2, b"I0000 00:00:1 cpu_feature_guard.cc:227] a line from C++\\n")
        os.write(2, b"I0000 00:00:1 cpu_feature_guard.cc:227] a line from C++\\n")
        return Result()


@diagnostics.hookimpl
def register_analyzers(register):
    register(Noisy)
'''


def test_warnings_and_stderr_are_captured_into_the_report(tiny, tmp_path, monkeypatch, capfd):
    from .conftest import install_plugin

    site = tmp_path / "site"
    install_plugin(site, "noisy_nb", NOISY)
    monkeypatch.syspath_prepend(str(site))
    report = diagnostics.diagnose(tiny["model"], only=("noisy.nb",), out_dir=tmp_path / "r")
    assert report.record("noisy.nb").status == "ok"
    line = next(i for i, text in enumerate(NOISY.splitlines(), 1) if "warnings.warn(" in text)
    assert report.warnings == (
        f"UserWarning: The structure of `inputs` doesn't match the expected structure. ({site / 'noisy_nb.py'}:{line})",
        "I0000 00:00:1 cpu_feature_guard.cc:227] a line from C++ (x2)",
        "a line from Python on stderr",
    )
    err = capfd.readouterr().err
    assert "structure of `inputs`" not in err and "a line from" not in err
    assert Report.load(tmp_path / "r").warnings == report.warnings  # report.json was rewritten with them
    assert "3 warning(s) printed during the run" in report._repr_html_()


def test_reports_without_warnings_keep_the_old_json():
    d = json.loads(_report().to_json())
    assert "warnings" not in d  # older readers see the same keys as before
    assert Report.from_dict(d).warnings == ()


def test_reasons_use_the_api_words(tiny):
    x, y = _tiny_data(tiny)["x_val"], _tiny_data(tiny)["y_val"]
    report = diagnostics.diagnose(tiny["model"], data=(x, y), only=("explain.captum", "explain.shortcut"))
    assert report.record("explain.captum").reason == (
        "runs on the torch backend only, and this in-memory model is a tensorflow model (Keras runs one backend per "
        "process, chosen by KERAS_BACKEND when keras is first imported): set KERAS_BACKEND=torch before importing "
        "keras and build or load the model again, or pass the model's file path, which runs each analyzer in a "
        "worker process of a backend it supports")
    assert report.record("explain.shortcut").reason == (
        "needs training and validation splits with labels (data={'x_train': ..., 'y_train': ..., 'x_val': ..., "
        "'y_val': ...}); the data lacks them")
    # a plugin's own reason, written with the CLI's flags, is reworded too
    bare = diagnostics.diagnose(tiny["model"], only=("health.overfitting",))
    assert bare.record("health.overfitting").reason == (
        "needs training and validation splits with labels (data={'x_train': ..., 'y_train': ..., 'x_val': ..., "
        "'y_val': ...}) or a training history (options={'health.overfitting': {'history': 'log.csv'}})")


def test_cli_words_are_left_as_written():
    from diagnostics._phrasing import backend_refusal, data_hint, for_caller

    reason = "no judge: missing (name one with --option health.gan.judge=FILE.keras); raise --timeout"
    assert for_caller(reason, "cli") == reason
    assert for_caller(reason, "api") == ("no judge: missing (name one with options={'health.gan': {'judge': "
                                         "'FILE.keras'}}); raise timeout_s=")
    assert for_caller("pass --data for real numbers", "api") == "pass data= for real numbers"
    assert data_hint("xy", "cli") == "--data FILE.npz" and data_hint("xy", "api") == "data=(x, y)"
    assert backend_refusal(["torch"], "tensorflow", "cli") == "supports the torch backend(s), not tensorflow (--backend)"
    with pytest.raises(ValueError, match="caller must be one of"):
        for_caller("x", "gui")
