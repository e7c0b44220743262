"""The Sweep page under AppTest, on a real `diagnose sweep` of the zoo's checkpoints with a throwaway
health analyzer (tests/history_probe.py) that no view names: its charts come from the index alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diagnostics.report import Report
from diagnostics_dashboard import sweeps
from diagnostics_dashboard.reports import md_line

from tests.history_probe import probe_sweep

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


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    proc, out, _ = probe_sweep(tmp_path_factory.mktemp("probe") / "runs")
    assert proc.returncode == 1, proc.stderr[-3000:]  # the accuracy gap is an error at epoch 16
    return proc, out


def test_sweep_page_plots_health_over_steps_and_opens_a_checkpoint(monkeypatch, swept):
    proc, out = swept
    index = json.loads((out / "sweep.json").read_text())
    entries = index["checkpoints"]
    at = _open(monkeypatch, out.parent)  # a folder above the sweep, as `diagnose dashboard reports/` would be
    assert at.title[0].value == "Checkpoint sweep"
    table = next(e.value for e in at.dataframe if "checkpoint" in e.value.columns and "verdict" in e.value.columns)
    # the first column is the epoch of the file names (01, 03, 06...), not the sidecars' optimizer steps
    assert index["axis"] == "epoch" and list(table.columns)[0] == "epoch"
    assert list(table["epoch"]) == [e["epoch"] for e in entries] == [6, 16, 25]
    assert list(table["verdict"]) == [e["verdict"] for e in entries]
    # a verdict that moves says which finding moved it
    for i in range(1, len(entries)):
        if entries[i]["verdict"] != entries[i - 1]["verdict"]:
            assert table["what changed"].iloc[i] == sweeps.changes_text(entries[i]) != "", entries[i]
    for c in entries[1]["changes"]:
        assert c["code"] in table["what changed"].iloc[1]
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    # one chart per measure, titled from the catalogue: the accuracy gap and the loss gap are two charts
    assert sorted(charts) == ["Kernel norm (L2 norm)", "Loss per epoch", "Train \u2212 validation accuracy (fraction)",
                              "Validation \u2212 train loss (nats)"]
    lines = {title: {t["name"]: t for t in chart["data"]} for title, chart in charts.items()}

    def values(code, label):
        return [e["measures"][code][label] for e in entries]

    norms = charts["Kernel norm (L2 norm)"]
    assert norms["layout"]["yaxis"]["type"] == "log" and norms["layout"]["xaxis"]["title"]["text"] == "epoch"
    assert sorted(lines["Kernel norm (L2 norm)"]) == ["conv1", "conv2", "dense", "probs"]  # one line per layer
    conv1 = lines["Kernel norm (L2 norm)"]["conv1"]
    assert conv1["x"] == [6, 16, 25] and conv1["y"] == pytest.approx(values("probe.history.kernel_norm", "conv1"))
    gap = lines["Train \u2212 validation accuracy (fraction)"]
    assert gap["value"]["y"] == pytest.approx(values("probe.history.accuracy_gap", "value"))
    assert charts["Train \u2212 validation accuracy (fraction)"]["layout"]["yaxis"].get("type") != "log"
    # the thresholds the values were judged against, drawn across the sweep
    assert (gap["warning \u2265 0.1"]["y"], gap["error \u2265 0.25"]["y"]) == ([0.1, 0.1], [0.25, 0.25])
    assert gap["error \u2265 0.25"]["x"] == [6, 25]  # from the first checkpoint to the last
    assert sorted(lines["Validation \u2212 train loss (nats)"]) == ["error \u2265 1", "value", "warning \u2265 0.5"]
    loss = lines["Loss per epoch"]
    assert sorted(loss) == ["train", "validation"]  # neutral: no thresholds
    assert loss["validation"]["y"] == pytest.approx(values("probe.history.loss", "validation"))
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


def test_measure_series_put_a_gap_where_a_checkpoint_lacks_a_label():
    entries = [{"step": 1, "measures": {"a.units": {"a": 0.0}}},
               {"step": 2, "measures": {"a.units": {"a": 0.5, "b": 0.1, "c": None}}},
               {"step": None, "measures": {}}]
    assert sweeps.measure_series(entries, "a.units") == {"a": [0.0, 0.5, None], "b": [None, 0.1, None]}
    assert sweeps.steps(entries) == [1, 2, 3]  # no step: the position, from 1
    index = {"schema": 3, "checkpoints": entries, "catalogue": {"a.units": {"title": "Units", "unit": "fraction"}}}
    assert sweeps.catalogue(index) == {"a.units": {"title": "Units", "unit": "fraction", "scale": "linear",
                                                   "direction": "neutral", "thresholds": {}}}
    # a code the catalogue lacks is titled by its code, not by a guess
    assert sweeps.catalogue({**index, "catalogue": {}})["a.units"]["title"] == "a.units"


def test_the_worst_lines_are_drawn_and_thresholds_named_by_direction():
    series = {f"l{i}": [float(i), None] for i in range(20)}
    assert list(sweeps.worst_lines(series, "higher_is_worse", 3)) == ["l17", "l18", "l19"]
    assert list(sweeps.worst_lines(series, "lower_is_worse", 3)) == ["l0", "l1", "l2"]
    assert list(sweeps.worst_lines(series, "band", 3)) == ["l0", "l1", "l19"]  # farthest from the median (l10)
    assert sweeps.worst_lines(series, "neutral", 20) is series
    assert sweeps.threshold_lines({"direction": "lower_is_worse", "thresholds": {"warning": 1e-3, "error": 1e-5}}) == [
        ("warning < 0.001", 1e-3, "warning"), ("error < 1e-05", 1e-5, "error")]
    assert sweeps.threshold_lines({"direction": "band", "thresholds": {"warning": [2, 6]}}) == [
        ("warning: below 2", 2.0, "warning"), ("warning: above 6", 6.0, "warning")]
    assert sweeps.threshold_lines({"direction": "neutral", "thresholds": {}}) == []
    assert sweeps.chart_title({"title": "Gap", "unit": ""}) == "Gap"


def test_an_index_written_before_measures_lists_its_metrics(monkeypatch, tmp_path):
    """A schema-2 index (free-form metrics per analyzer) opens: its table, its findings and its metrics as
    the sweep wrote them, and no chart, since nothing says what its numbers are."""
    d = tmp_path / "old"
    d.mkdir()
    old = {"schema": 2, "axis": "epoch", "analyzers": ["health.gradients"], "seed": 0, "executor": "local",
           "checkpoints": [
               {"checkpoint": f"m.{e:02d}.keras", "epoch": e, "at": e, "step": None, "report": f"checkpoints/m.{e:02d}",
                "exit_code": 0, "verdict": "clean", "findings": [], "changes": [], "since": None,
                "analyzers": {"health.gradients": {"status": "ok", "metrics": {"grad_norm[conv1]": g, "global_grad_norm": 2 * g}}}}
               for e, g in ((1, 0.5), (3, 0.25))],
           "first_seen": []}
    (d / "sweep.json").write_text(json.dumps(old))
    at = _open(monkeypatch, d)
    assert not at.get("plotly_chart")
    assert any("index schema 2" in str(c.value) for c in at.caption)
    metrics = next(e.value for e in at.dataframe if "epoch" in e.value.columns and "verdict" not in e.value.columns)
    assert list(metrics.columns) == ["epoch", "health.gradients: global_grad_norm", "health.gradients: grad_norm[conv1]"]
    assert list(metrics["health.gradients: grad_norm[conv1]"]) == [0.5, 0.25]


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
