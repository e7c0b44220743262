"""The pytest plugin as a model's test suite would use it: a separate pytest process finds the
``diagnose`` fixture through the ``pytest11`` entry point alone, passes on a healthy zoo model and
fails on its faulty twin with the finding codes in the message; an ``allow`` written with the old code
still allows it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from diagnostics import AnalyzerRecord, Finding, Report
from diagnostics.assertions import DiagnosisFailed

from ..conftest import ZOO_DIR

SUITE = '''
MODELS = {models!r}

def test_healthy_model(diagnose):
    report = diagnose(MODELS["healthy"], only=("health.gradients",))
    report.assert_ok(fail_on="warning", allow=["explain.gradients.saliency.*"])

def test_faulty_twin(diagnose):
    report = diagnose(MODELS["faulty"], only=("health.gradients",))
    report.assert_ok(fail_on="warning", allow=["explain.gradients.saliency.*"])

def test_faulty_twin_allowed_by_its_old_code(diagnose):
    report = diagnose(MODELS["faulty"], only=("health.gradients",))
    report.assert_ok(fail_on="warning", allow=["gradients.vanishing"])
'''


def test_diagnose_fixture_passes_healthy_and_fails_faulty_with_codes(tmp_path):
    models = {"healthy": str(ZOO_DIR / "mlp.keras"), "faulty": str(ZOO_DIR / "mlp_vanishing.keras")}
    (tmp_path / "test_model.py").write_text(textwrap.dedent(SUITE.format(models=models)))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_model.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "1 failed, 2 passed" in out, out[-3000:]
    assert "FAILED test_model.py::test_faulty_twin" in out
    assert "diagnose: mlp_vanishing.keras has 1 finding(s) at or above warning (allowed: explain.gradients.saliency.*):" in out
    assert ("ERROR health.gradients.first_last_ratio [dense1] (health.gradients): First ÷ last layer kernel-gradient "
            "norm 1.3e-06, below the error threshold 1e-05 (Glorot & Bengio 2010;") in out
    assert "/diagnose-1/report.html" in out, "the failure says where the report is"
    assert "raise DiagnosisFailed" not in out, "the failure shows the test's line, not the plugin's internals"
    # the old code still allows its replacement, and pytest's summary says what to write instead
    line = SUITE.splitlines().index('    report.assert_ok(fail_on="warning", allow=["gradients.vanishing"])') + 1
    assert (f"test_model.py:{line}: DeprecationWarning: allow pattern 'gradients.vanishing' is written with old finding "
            "codes (aliases until the next release); it matches health.gradients.first_last_ratio: write those") in out


def _report(*findings, status="ok") -> Report:
    record = AnalyzerRecord(name="explain.gradients", plugin="p", category="explain", status=status, findings=findings,
                            reason="plugin 'p': raised ValueError: x" if status == "failed" else "")
    return Report(model={"name": "m.keras"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
                  fail_on="error")


def test_assert_ok_thresholds_allow_globs_and_unfinished_analyzers():
    saliency = Finding("explain.gradients.saliency.failed", "warning", "maps barely change", "saliency")
    info = Finding("explain.ig.trusted", "info", "passed")
    report = _report(saliency, info)
    report.assert_ok()  # the report's own fail_on: error
    report.assert_ok(fail_on="warning", allow=["explain.gradients.saliency.*"])
    with pytest.raises(DiagnosisFailed) as e:
        report.assert_ok(fail_on="warning")
    assert str(e.value) == ("diagnose: m.keras has 1 finding(s) at or above warning:\n"
                            "  WARNING explain.gradients.saliency.failed [saliency] (explain.gradients): maps barely change")
    assert isinstance(e.value, AssertionError) and e.value.findings == [("explain.gradients", saliency)]
    with pytest.raises(DiagnosisFailed, match=r"2 finding\(s\) at or above info"):
        report.assert_ok(fail_on="info", allow=["explain.gradients.saliency"])  # a pattern matches whole codes
    with pytest.raises(DiagnosisFailed) as e:
        _report(status="failed").assert_ok(fail_on="never")
    assert str(e.value).splitlines() == [
        "diagnose: 1 analyzer(s) or plugin(s) did not finish, so the verdict is incomplete:",
        "  explain.gradients: failed: plugin 'p': raised ValueError: x"]
    with pytest.raises(ValueError, match="fail_on must be info, warning, error or never, got 'warnings'"):
        report.assert_ok(fail_on="warnings")


def test_assert_ok_allow_written_with_old_codes_matches_their_replacements():
    """A suite written before issue 24's rename keeps passing for one release, and is told what to write."""
    first_last = Finding("health.gradients.first_last_ratio", "error", "first/last 1e-6", "dense1")
    record = AnalyzerRecord(name="health.gradients", plugin="p", category="health", status="ok", findings=(first_last,))
    report = Report(model={"name": "m.keras"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
                    fail_on="error")
    with pytest.warns(DeprecationWarning) as caught:
        report.assert_ok(allow=["gradients.vanishing"])
    assert [str(w.message) for w in caught] == [
        "allow pattern 'gradients.vanishing' is written with old finding codes (aliases until the next release); "
        "it matches health.gradients.first_last_ratio: write those"]
    with pytest.warns(DeprecationWarning, match="'gradients.\\*' .* it matches health.gradients.grad_norm, "):
        report.assert_ok(allow=["gradients.*"])
    with pytest.warns(DeprecationWarning), pytest.raises(DiagnosisFailed, match="ERROR health.gradients.first_last_ratio"):
        report.assert_ok(allow=["gradients.exploding"])  # another old code: its replacement is another measure
    report.assert_ok(allow="health.gradients.*")  # one pattern as a string, in current codes: no warning
    old = Finding("gradients.vanishing", "error", "first/last 1e-6", "dense1")  # a report of an earlier release
    record = AnalyzerRecord(name="health.gradients", plugin="p", category="health", status="ok", findings=(old,))
    Report(model={"name": "m.keras"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
           fail_on="error").assert_ok(allow=["health.gradients.first_last_ratio"])
