"""The Overview page shows where the time of a run went: the phase table and chart, and each worker's peak memory."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.core.test_phases import _report

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def _text(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("subheader", "markdown", "caption") for e in getattr(at, kind))


def test_overview_shows_the_phase_breakdown_and_peak_memory(tmp_path, monkeypatch):
    report = _report()
    d = tmp_path / "run"
    d.mkdir()
    (d / "report.json").write_text(report.to_json())
    monkeypatch.setenv("DIAGNOSTICS_DASHBOARD_REPORT", str(d))
    at = AppTest.from_file(str(APP), default_timeout=300)  # a ceiling: a loaded script run takes a minute
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Timings" in [s.value for s in at.subheader]
    phases = next(e.value for e in at.dataframe if list(e.value.columns) == ["phase", "seconds"])
    assert list(phases["phase"]) == [label for label, _ in report.phase_breakdown()]
    assert list(phases["seconds"])[:2] == [6.0, 5.0]
    assert "Peak worker memory: tensorflow 812 MiB, torch 640 MiB." in _text(at)
