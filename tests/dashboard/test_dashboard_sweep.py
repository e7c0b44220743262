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
    at = AppTest.from_file(str(APP), default_timeout=300)  # a ceiling: a loaded script run takes a minute
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
    # the first column is the epoch of the file names (01, 03, 06...), not the sidecars' optimizer steps
    assert index["axis"] == "epoch" and list(table.columns)[0] == "epoch"
    assert list(table["epoch"]) == [e["epoch"] for e in entries] == [1, 3, 6, 10, 16, 25, 40]
    assert list(table["verdict"]) == [e["verdict"] for e in entries]
    # a verdict that moves says which finding moved it
    for i in range(1, len(entries)):
        if entries[i]["verdict"] != entries[i - 1]["verdict"]:
            assert table["what changed"].iloc[i] == sweeps.changes_text(entries[i]) != "", entries[i]
    for c in entries[1]["changes"]:
        assert c["code"] in table["what changed"].iloc[1]
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert set(charts) == {f[0] for f in sweeps.FAMILIES}
    grads = charts["Gradient norm per layer"]
    assert grads["data"][0]["x"] == [e["epoch"] for e in entries]
    assert grads["layout"]["xaxis"]["title"]["text"] == "epoch"
    conv1 = next(t for t in grads["data"] if t["name"] == "conv1")
    assert conv1["y"] == pytest.approx([e["analyzers"]["health.gradients"]["metrics"]["grad_norm[conv1]"] for e in entries])
    gap = next(t for t in charts["Train/validation gap"]["data"] if t["name"] == "gap.gap")
    assert gap["y"][-1] > 0.2
    first = next(e.value for e in at.dataframe if "code" in e.value.columns and "present" in e.value.columns)
    for item in index["first_seen"]:  # where each finding was present, gaps included, as the index says
        row = first[(first["code"] == item["code"]) & (first["where"] == item["where"])].iloc[0]
        having = [e["epoch"] for e in entries if any(f["code"] == item["code"] and f["where"] == item["where"]
                                                     for f in e["findings"])]
        assert row["first epoch"] == having[0]
        spans = row["present"].split(" ", 1)[1].split(", ")
        covered = [x for x in having if any(int(s.split("\u2013")[0]) <= x <= int(s.split("\u2013")[-1]) for s in spans)]
        assert covered == having and len(spans) == len(item["intervals"]), (row.to_dict(), having)
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
    assert sweeps.steps(entries) == [1, 2, 3]  # no step: the position, from 1


def test_changes_and_intervals_in_words():
    entry = {"changes": [{"analyzer": "a", "code": "chance", "where": "val", "change": "appeared", "severity": "error",
                          "was": None},
                         {"analyzer": "a", "code": "gap", "where": "", "change": "worse", "severity": "error",
                          "was": "warning"},
                         {"analyzer": "a", "code": "calib", "where": "", "change": "gone", "severity": None,
                          "was": "warning"}]}
    assert sweeps.changes_text(entry) == "+ chance (error, val); gap: warning \u2192 error; \u2212 calib (warning)"
    item = {"intervals": [{"from": 1, "to": 1}, {"from": 6, "to": 40}]}
    assert sweeps.intervals_text(item, "epoch") == "epochs 1, 6\u201340"
    assert sweeps.intervals_text({"intervals": [{"from": 3, "to": 3}]}, "epoch") == "epoch 3"
    assert sweeps.axis({"axis": "epoch"}) == "epoch" and sweeps.axis({}) == "step"  # a schema-1 index: its steps
