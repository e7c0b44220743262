"""The Sweep page under AppTest, on a real `diagnose sweep` of the zoo's checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnostics.report import Report
from diagnostics_dashboard import sweeps
from diagnostics_dashboard.reports import md_line

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"

from streamlit.testing.v1 import AppTest  # noqa: E402


def _open(monkeypatch, path) -> AppTest:
    monkeypatch.setenv("DIAGNOSTICS_DASHBOARD_REPORT", str(path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("views/sweep.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_sweep_page_plots_health_over_steps_and_opens_a_checkpoint(monkeypatch, zoo_sweep):
    proc, out = zoo_sweep
    index = json.loads((out / "sweep.json").read_text())
    entries = index["checkpoints"]
    at = _open(monkeypatch, out.parent)  # a folder above the sweep, as `diagnose dashboard reports/` would be
    assert at.title[0].value == "Checkpoint sweep"
    table = next(e.value for e in at.dataframe if "checkpoint" in e.value.columns and "verdict" in e.value.columns)
    assert list(table["step"]) == [e["step"] for e in entries]
    assert list(table["verdict"]) == [e["verdict"] for e in entries]
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert set(charts) == {f[0] for f in sweeps.FAMILIES}
    grads = charts["Gradient norm per layer"]
    assert grads["data"][0]["x"] == [e["step"] for e in entries]
    conv1 = next(t for t in grads["data"] if t["name"] == "conv1")
    assert conv1["y"] == pytest.approx([e["analyzers"]["health.gradients"]["metrics"]["grad_norm[conv1]"] for e in entries])
    gap = next(t for t in charts["Train/validation gap"]["data"] if t["name"] == "gap.gap")
    assert gap["y"][-1] > 0.2
    first = next(e.value for e in at.dataframe if "code" in e.value.columns and "step" in e.value.columns)
    row = first[first["code"] == "overfitting.gap"].iloc[0]
    assert row["step"] == next(e["step"] for e in entries if any(f["code"] == "overfitting.gap" for f in e["findings"]))
    # Click through to the first checkpoint's report: the Overview of that report.
    at.selectbox(key="sweep-checkpoint").select(entries[0]["checkpoint"]).run()
    at.button(key="sweep-open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == md_line(entries[0]["checkpoint"])
    assert at.session_state["report_dir"] == str((out / entries[0]["report"]).resolve())
    assert Report.load(out / entries[0]["report"]).model["name"] == entries[0]["checkpoint"]


def test_sweep_page_says_what_to_run_without_a_sweep(monkeypatch, tmp_path):
    at = _open(monkeypatch, tmp_path)
    assert "No checkpoint sweep here." in " ".join(str(e.value) for e in at.info)


def test_family_series_puts_a_gap_where_a_checkpoint_lacks_a_layer():
    entries = [{"step": 1, "analyzers": {"health.units": {"metrics": {"dead_fraction[a]": 0.0}}}},
               {"step": 2, "analyzers": {"health.units": {"metrics": {"dead_fraction[a]": 0.5, "dead_fraction[b]": 0.1}}}},
               {"step": None, "analyzers": {}}]
    assert sweeps.family_series(entries, "health.units", ("dead_fraction[",)) == {"a": [0.0, 0.5, None], "b": [None, 0.1, None]}
    assert sweeps.steps(entries) == [1, 2, 2]
