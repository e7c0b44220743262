"""The Health page draws every analyzer from its measure sections alone, under streamlit.testing.v1.AppTest.

The reports are written by tests/dashboard/health_reports.py: a HealthAnalyzer declared there, judged by
the host's own pipeline (so every outcome, threshold and chart is what ``diagnose`` writes), beside an
analyzer without sections and, separately, a report of schema 2.
"""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from diagnostics import Direction, HealthAnalyzer, Measure, Measurements, Scope, Value
from diagnostics._measures import judge, thresholds_of
from diagnostics.report import AnalyzerRecord, Report
from diagnostics_dashboard.reports import md_escape, md_line

from tests.dashboard import health_reports as hr



def specs(at: AppTest) -> dict[str, dict]:
    return {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def frame_with(at: AppTest, *columns: str):
    return [e.value for e in at.dataframe if set(columns) <= set(e.value.columns)]


def value_tables(at: AppTest):
    """The measures' tables of values (a metrics table has a value column too, beside its metric)."""
    return [e.value for e in at.dataframe if "value" in e.value.columns and "metric" not in e.value.columns]


def test_the_analyzers_are_chosen_by_their_sections(open_app, tmp_path):
    report = hr.write_report(tmp_path / "probe")
    at = open_app(tmp_path / "probe", "health")
    assert at.title[0].value == "Health"
    # probe.health by its sections (the worst first), health.legacy by its category; architecture has neither
    assert at.radio(key="analyzer").options == [md_line("probe.health"), md_line("health.legacy")]
    assert at.radio(key="analyzer").value == "probe.health"
    (summary,) = frame_with(at, "analyzer", "measure", "worst")
    sections = report.record("probe.health").measures
    assert list(summary["code"]) == [s.code for s in sections] == [
        "probe.health.loss", "probe.health.grad_norm", "probe.health.alpha", "probe.health.coverage", "probe.health.per_class"]
    assert list(summary["worst"]) == ["not judged", "error", "warning", "warning", "not judged"]
    assert list(summary["values"]) == ["none of 10 epochs", "1 error, 1 warning of 3 layers", "1 warning of 2 layers",
                                       "warning", "none of 4 classes"]
    assert list(summary["judged"]) == ["shown, not judged", "warning at ≥ 10, error at ≥ 1e+03", "warning outside 2–6",
                                       "warning at < 0.8", "shown, not judged"]


def test_each_measure_shows_title_unit_thresholds_chart_and_values(open_app, tmp_path):
    report = hr.write_report(tmp_path / "probe")
    rec = report.record("probe.health")
    at = open_app(tmp_path / "probe", "health")
    headings = [m.value for m in at.markdown if m.value.startswith("####")]
    assert headings == [f"#### {md_line(t)}" for t in ("Loss", "Gradient norm (L2 norm)", "Power-law exponent alpha",
                                                      "Classes covered (fraction)", "Samples per class (samples)")]
    lines = [m.value for m in at.markdown]
    assert (":red-badge[error] · " + md_escape("probe.health.grad_norm") + " · one per layer · "
            + md_escape("warning at ≥ 10, error at ≥ 1e+03")) in lines
    assert md_escape("Pascanu et al. 2013") in [c.value for c in at.caption]

    charts = specs(at)
    assert list(charts) == ["Loss", "Gradient norm (L2 norm)", "Power-law exponent alpha", "Samples per class (samples)"]
    loss = charts["Loss"]
    assert [(t["name"], t["x"], t["y"]) for t in loss["data"]] == [
        (series, [1, 2, 3, 4, 5], ys) for series, ys in hr.LOSS.items()]
    assert loss["layout"]["xaxis"]["title"]["text"] == "epoch" and not loss["layout"].get("shapes")  # neutral
    assert loss["layout"]["xaxis"]["dtick"] == 1  # whole epochs
    norms = charts["Gradient norm (L2 norm)"]
    assert {t["name"]: (t["x"], t["y"]) for t in norms["data"] if t["type"] == "bar"} == {
        "passed": (["dense_1"], [0.5]), "warning": (["dense_2"], [50.0]), "error": (["out"], [5000.0])}
    assert [t["name"] for t in norms["data"] if t["type"] == "scatter"] == ["warning at ≥ 10", "error at ≥ 1000"]
    assert norms["layout"]["yaxis"]["type"] == "log"
    assert norms["layout"]["xaxis"]["categoryarray"] == list(hr.NORMS)  # the layers' order kept
    assert [(s["y0"], s["line"]["color"]) for s in norms["layout"]["shapes"]] == [(10.0, "#ef6c00"), (1000.0, "#c62828")]
    alpha = charts["Power-law exponent alpha"]
    assert [(s["type"], s["y0"], s["y1"]) for s in alpha["layout"]["shapes"]] == [("rect", 2.0, 6.0)]
    assert [t["name"] for t in alpha["data"]] == ["passed", "warning", "warning outside 2–6"]
    per_class = charts["Samples per class (samples)"]
    assert (per_class["data"][0]["x"], per_class["data"][0]["y"]) == (list(hr.COUNTS), list(hr.COUNTS.values()))
    # a single value is a tile, not a chart of one bar
    assert [(m.label, m.value) for m in at.metric] == [(md_line("Classes covered"), md_line("0.6 fraction"))]

    tables = value_tables(at)
    assert len(tables) == len(rec.measures)
    loss, grad, alpha, coverage, per_class = tables
    assert [list(t.columns)[0] for t in tables] == ["epoch", "layer", "layer", "where", "class"]  # named by scope
    assert list(loss["series"]) == ["train"] * 5 + ["validation"] * 5
    assert list(loss.columns) == ["epoch", "series", "value"]  # neutral: no outcome
    assert list(per_class.columns) == ["class", "value"]
    assert grad.to_dict("list") == {"layer": list(hr.NORMS), "value": list(hr.NORMS.values()), "n": [32, 32, 32],
                                    "outcome": ["passed", "warning", "error"], "crossed": ["", "≥ 10", "≥ 1e+03"]}
    assert list(alpha["crossed"]) == ["", "outside 2–6"]
    assert coverage.to_dict("records") == [{"where": "model", "value": 0.6, "95% interval": "0.5–0.7", "n": 200,
                                            "outcome": "warning", "crossed": "< 0.8", "note": "6 of 10 classes"}]
    # the host's PNG of each charted measure, once, in a closed expander
    pictures = [e for e in at.expander if e.label.startswith("The report's picture")]
    assert len(pictures) == 4 and not any(e.proto.expanded for e in pictures)
    assert sum(len(e.get("image")) for e in pictures) == len(at.get("image")) == 4

    (findings,) = frame_with(at, "severity", "code", "message")
    assert sorted(zip(findings["code"], findings["severity"], findings["where"])) == sorted(
        (f.code, f.severity.value, f.where) for f in rec.findings)
    assert "probe.health.nonfinite_outputs" in set(findings["code"])  # a finding that is no threshold on a value


def test_an_analyzer_without_sections_shows_its_findings_and_metrics(open_app, tmp_path):
    hr.write_report(tmp_path / "probe")
    at = open_app(tmp_path / "probe", "health")
    at.radio(key="analyzer").set_value("health.legacy").run()
    assert not at.exception
    assert [s.value for s in at.subheader] == [md_line("health.legacy")]
    (findings,) = frame_with(at, "severity", "code", "message")
    assert list(findings["message"]) == ["inputs drifted by 0.4 std"]
    (metrics,) = frame_with(at, "metric", "value")
    assert metrics.to_dict("records") == [{"metric": "drift", "value": "0.4"}]  # the list stays in the JSON view
    assert not at.get("plotly_chart") and not [m for m in at.markdown if m.value.startswith("####")]
    assert at.query_params["analyzer"] == "health.legacy"  # the URL says which, to share or reload


def test_a_schema_2_report_opens_and_shows_its_findings(open_app, tmp_path):
    d = hr.write_schema2_report(tmp_path / "old")
    assert Report.load(tmp_path / "old").schema_version == 2
    at = open_app(tmp_path / "old")
    assert at.title[0].value == md_line("old_cnn.h5")
    (verdicts,) = frame_with(at, "analyzer", "status")
    assert list(verdicts["analyzer"]) == ["health.gradients", "health.gan"]
    (findings,) = frame_with(at, "severity", "code", "message")  # the Overview's details: the worst first
    gradients = d["analyzers"][0]
    assert list(findings["code"]) == ["gradients.vanishing"]
    assert list(findings["message"]) == [gradients["findings"][0]["message"]]

    at.switch_page("views/health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="analyzer").options == [md_line("health.gradients"), md_line("health.gan")]
    assert "No analyzer in this report has measure sections" in at.caption[0].value
    (findings,) = frame_with(at, "severity", "code", "message")
    assert findings.to_dict("records") == [{"severity": "error", "code": "gradients.vanishing", "where": "conv1",
                                            "message": gradients["findings"][0]["message"],
                                            "analyzer": "health.gradients"}]
    (metrics,) = frame_with(at, "metric", "value")
    assert metrics.to_dict("records") == [{"metric": "first_last_ratio", "value": "1.2e-06"},  # as the JSON orders them
                                          {"metric": "global_grad_norm", "value": "0.0123"}]
    at.radio(key="analyzer").set_value("health.gan").run()
    assert md_escape(d["analyzers"][1]["reason"]) in [c.value for c in at.caption]


def test_the_overview_links_to_the_analyzer_on_the_health_page(open_app, tmp_path):
    hr.write_report(tmp_path / "probe")
    at = open_app(tmp_path / "probe")
    at.selectbox(key="overview-analyzer").select("probe.health").run()
    # the details are the same generic view: its measures are there too
    assert f"#### {md_line('Gradient norm (L2 norm)')}" in [m.value for m in at.markdown]
    (link,) = [p for p in at.get("page_link") if p.proto.label == "Open it on the Health page"]
    assert (link.proto.page, link.proto.query_string) == ("health", "analyzer=probe.health")
    at.selectbox(key="overview-analyzer").select("architecture").run()
    assert not [p for p in at.get("page_link") if p.proto.label == "Open it on the Health page"]  # no sections, not health
    # the link's query parameter chooses the analyzer on the Health page
    at = open_app(tmp_path / "probe", "health", query={"analyzer": "health.legacy"})
    assert at.radio(key="analyzer").value == "health.legacy"
    at.radio(key="analyzer").set_value("probe.health").run()
    assert at.query_params["analyzer"] == "probe.health"
    assert at.radio(key="analyzer").value == "probe.health"  # the old URL no longer wins once the page changed it


class ThirdParty(HealthAnalyzer):
    """A health check no view knows: one class with its measures."""

    name = "acme.drift"
    description = "input drift per feature"
    default_thresholds = {"drift_warning": 0.5}
    measures = (Measure("shift", "Feature drift", unit="std", scope=Scope.FEATURE, direction=Direction.HIGHER_IS_WORSE,
                        warning="drift_warning"),)

    def measure(self, context):  # judged directly here
        raise NotImplementedError


def test_a_new_health_analyzer_appears_with_no_view_edited(open_app, tmp_path):
    values = [Value("shift", 0.1, where="age"), Value("shift", 0.9, where="income")]
    result = judge(ThirdParty, Measurements(values=values), thresholds_of(ThirdParty, {}), None)
    third = AnalyzerRecord(name=ThirdParty.name, plugin="acme", category="health", status="ok", findings=result.findings,
                           measures=result.measures)
    hr.write_report(tmp_path / "probe", third)
    at = open_app(tmp_path / "probe", "health", query={"analyzer": "acme.drift"})
    assert md_line("acme.drift") in at.radio(key="analyzer").options
    (summary,) = frame_with(at, "analyzer", "measure", "worst")
    assert ("acme.drift", "Feature drift", "warning") in set(zip(summary["analyzer"], summary["measure"], summary["worst"]))
    assert [m.value for m in at.markdown if m.value.startswith("####")] == [f"#### {md_line('Feature drift (std)')}"]
    chart = specs(at)["Feature drift (std)"]
    assert {t["name"]: t["x"] for t in chart["data"] if t["type"] == "bar"} == {"passed": ["age"], "warning": ["income"]}
    assert chart["layout"]["xaxis"]["title"]["text"] == "feature"


def test_compare_lists_the_measures_that_changed(open_app, tmp_path):
    hr.write_report(tmp_path / "a")
    hr.write_report(tmp_path / "b", norms={**hr.NORMS, "dense_2": 5.0})
    at = open_app(tmp_path, "compare")
    assert (at.selectbox(key="cmp-a").value, at.selectbox(key="cmp-b").value) == ("a", "b")
    (changed,) = frame_with(at, "measure", "outcome A", "outcome B")
    assert changed.to_dict("records") == [{"analyzer": "probe.health", "measure": "Gradient norm", "where": "dense_2",
                                           "A": 50.0, "B": 5.0, "B − A": -45.0, "outcome A": "warning",
                                           "outcome B": "passed"}]


class DataProbe(hr.Probe):
    """The same measures, from an analyzer of category ``data`` (drift, leakage, prediction quality)."""

    name = "probe.data"
    category = "data"


def test_data_analyzers_have_their_own_page_drawn_from_their_sections(open_app, tmp_path):
    """Issue 25's Data page: analyzers of category ``data`` are on it, drawn by the Health page's own body from
    their sections, and not on the Health page; the Overview links a data analyzer to it; a report without
    one says what would fill it."""
    report = hr.write_report(tmp_path / "probe", hr.record(tmp_path / "probe", DataProbe))
    at = open_app(tmp_path / "probe", "data")
    assert at.title[0].value == "Data"
    assert at.radio(key="data-analyzer").options == [md_line("probe.data")]
    (summary,) = frame_with(at, "analyzer", "measure", "worst")
    assert list(summary["code"]) == [s.code for s in report.record("probe.data").measures]
    assert set(summary["analyzer"]) == {"probe.data"}
    assert len(specs(at)) == len([s for s in report.record("probe.data").measures if len(s.values) > 1])
    health = open_app(tmp_path / "probe", "health")
    assert health.radio(key="analyzer").options == [md_line("probe.health"), md_line("health.legacy")]
    # the Overview's details on the data analyzer link to the Data page with it chosen
    overview = open_app(tmp_path / "probe")
    overview.selectbox(key="overview-analyzer").set_value("probe.data").run()
    links = [e.proto for e in overview.get("page_link")]
    assert [(l.label, l.page, dict(l.query_string and [l.query_string.split("=")] or [])) for l in links
            if "Data" in l.label] == [("Open it on the Data page", "data", {"analyzer": "probe.data"})]
    empty = open_app(hr.write_report(tmp_path / "plain") and tmp_path / "plain", "data")
    assert [i.value for i in empty.info] == [
        "**No data analyzer in this report.**  \nData analyzers (input drift between the splits, label leakage, "
        "prediction quality per class, or any third-party analyzer of category `data`) need both splits with labels: "
        "run `diagnose MODEL --data FILE.npz` with x_train, y_train, x_val and y_val, or a model whose sidecar names "
        "its data."]
