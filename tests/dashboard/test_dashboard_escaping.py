"""A report.json someone sent you cannot put Markdown or HTML into the dashboard: the model's name, analyzer,
method, metric and layer names reach titles, headings, badges, labels and charts as literal text.

The report is written here from a constructed :class:`Report` (no model run): every string a report can
choose is hostile, and each page under AppTest must show it escaped, exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from diagnostics import Direction, HealthAnalyzer, Measure, Measurements, Scope, Value
from diagnostics.analyzer import Finding
from diagnostics._measures import judge, thresholds_of
from diagnostics.report import AnalyzerRecord, Report
from diagnostics._verdicts import Check, MethodExplanation
from diagnostics_dashboard.reports import md_escape, md_line

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"

#: A tracking image, a phishing link, a green "clean" badge, and a heading on a line of its own.
NAME = "![t](http://evil.example/t.png) [clean](http://phish.example) :green-badge[clean]\n# PASSED"
ANALYZER = "evil [docs](http://phish.example) :material/verified:"
METRIC = "![m](http://evil/m)"  # a free-form metric key: shown in a table, verbatim
LAYER = "<a href='http://phish.example'>dense</a>\x1b[8m"
METHODS = ("ig [x](http://phish.example)", ":red[saliency] $x^2$")
#: A measure's title, unit, reference and series, as a third-party HealthAnalyzer may declare them.
TITLE = "Norm ![n](http://evil/n.png)"
UNIT = ":red[L2] <b>"
SINGLE = "Score [ok](http://phish.example)"
SERIES = "train **bold** <i>"


def _evil_health() -> AnalyzerRecord:
    """A HealthAnalyzer whose every declared string is hostile, judged by the host's own pipeline."""
    cls = type("Evil", (HealthAnalyzer,), {
        "name": ANALYZER, "description": "d", "measure": lambda self, c: None,
        "default_thresholds": {"w": 1.0},
        "measures": (Measure("norm", TITLE, unit=UNIT, scope=Scope.LAYER, direction=Direction.HIGHER_IS_WORSE,
                             warning="w", reference=NAME),
                     Measure("score", SINGLE, unit=UNIT),
                     Measure("loss", "Loss", scope=Scope.EPOCH))})
    values = [Value("norm", 0.5, where=LAYER), Value("norm", 2.0, where="b", note=NAME), Value("score", 0.7, note=NAME),
              *[Value("loss", 1.0 / e, where=str(e), series=SERIES) for e in (1, 2, 3)]]
    result = judge(cls, Measurements(values=values, findings=(Finding("x.evil", "error", NAME, LAYER),)),
                   thresholds_of(cls, {}), None)
    return AnalyzerRecord(name=ANALYZER, plugin="evil **plugin**", category="health", status="ok", duration_s=0.5,
                          findings=result.findings, measures=result.measures)


def _report() -> Report:
    legacy = AnalyzerRecord(name="legacy [x](http://phish.example)", plugin="p", category="health", status="ok",
                            metrics={METRIC: 1.5, "table": [{"layer": LAYER, "norm": 1.0}]})
    sections = tuple(MethodExplanation(method=m, verdict="doubtful", reasons=(NAME,),
                                       checks=(Check("faithfulness", 0.1, 0.5, "doubtful"),)) for m in METHODS)
    explain = AnalyzerRecord(name="explain.evil", plugin="evil", category="explanation", status="ok",
                             duration_s=0.25, explanations=sections)
    return Report(model={"name": NAME, "path": "m.keras", "info": {"kind": "tabular<b>", "n_params": 10, "n_layers": 2}},
                  data=None, environment={}, plugins=({"name": "bad [p](http://phish.example)", "error": NAME},),
                  analyzers=(_evil_health(), legacy, explain), seed=0, fail_on="error", exit_code=3)


@pytest.fixture
def hostile_app(tmp_path, monkeypatch):
    d = tmp_path / "sent-to-you"
    d.mkdir()
    (d / "report.json").write_text(_report().to_json())
    monkeypatch.setenv("DIAGNOSTICS_DASHBOARD_REPORT", str(d))

    def start(page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=300)  # a ceiling: a loaded script run takes a minute
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if page:
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, [e.value for e in at.exception]
        return at

    return start


_LINK_OR_IMAGE = re.compile(r"(?<!\\)\]\((?!\\)")  # "](" not escaped: a Markdown link or image


def _markdown_values(at: AppTest) -> list[str]:
    values = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        values += [str(e.value) for e in getattr(at, kind)]
    values += [m.label for m in at.metric] + [str(m.value) for m in at.metric]
    values += [e.label for e in at.expander] + [o for r in at.radio for o in r.options]
    return values


def test_overview_shows_a_hostile_report_as_literal_text(hostile_app):
    at = hostile_app()
    assert [t.value for t in at.title] == [md_line(NAME)]
    assert "\n" not in at.title[0].value, "the name cannot start a second heading"
    assert md_line(ANALYZER) in [s.value for s in at.subheader]  # the analyzer shown in Details (worst first)
    assert f"#### {md_line(f'{TITLE} ({UNIT})')}" in [m.value for m in at.markdown]
    assert md_escape(NAME) in [c.value for c in at.caption]  # the measure's reference
    assert (md_line(SINGLE), md_line(f"0.7 {UNIT}")) in [(m.label, m.value) for m in at.metric]
    assert md_line("tabular<b>") in [m.value for m in at.metric]
    assert md_escape(f"plugin 'bad [p](http://phish.example)': {NAME}") in [e.value for e in at.error]
    values = _markdown_values(at)
    assert not [v for v in values if _LINK_OR_IMAGE.search(v)], values
    assert not [v for v in values if "<a " in v or "<b>" in v or "\x1b" in v], values
    # The page's own badges say "error" for this report: an unescaped green "clean" badge is the name's.
    assert not [v for v in values if re.search(r"(?<!\\):green-badge\[clean", v)], values
    _no_html_in_charts(at)


def _no_html_in_charts(at: AppTest) -> None:
    """Plotly reads titles, labels and legend names as HTML: each is escaped (Plotly shows the entities as text)."""
    specs = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    escaped = "Norm ![n](http://evil/n.png) (:red[L2] &lt;b&gt;)"
    assert escaped in specs, list(specs)
    xs = [x for trace in specs[escaped]["data"] for x in (trace.get("x") or []) if isinstance(x, str)]
    assert "&lt;a href=&#x27;http://phish.example&#x27;&gt;dense&lt;/a&gt;\\x1b[8m" in xs, xs
    assert [t["name"] for t in specs["Loss"]["data"]] == ["train **bold** &lt;i&gt;"]
    texts = json.dumps(list(specs.values()))
    assert "<a " not in texts and "<b>" not in texts and "<i>" not in texts


def test_health_page_shows_a_hostile_health_analyzer_as_literal_text(hostile_app):
    at = hostile_app("health")
    radio = at.radio(key="analyzer")
    assert radio.options == [md_line(ANALYZER), md_line("legacy [x](http://phish.example)")]
    assert radio.value == ANALYZER  # the value is the name itself; only its label is escaped
    assert [s.value for s in at.subheader] == [md_line(ANALYZER)]
    summary = next(e.value for e in at.dataframe if "measure" in e.value.columns)
    assert list(summary["measure"]) == [TITLE, SINGLE, "Loss"] and set(summary["unit"]) == {UNIT, ""}  # verbatim
    values = _markdown_values(at)
    assert not [v for v in values if _LINK_OR_IMAGE.search(v)], values
    assert not [v for v in values if re.search(r"(?<!\\):red\[", v) or "<b>" in v or "\x1b" in v], values
    _no_html_in_charts(at)
    radio.set_value("legacy [x](http://phish.example)").run()
    metrics = next(e.value for e in at.dataframe if "metric" in e.value.columns)
    assert list(metrics["metric"]) == [METRIC]  # a table shows text verbatim, never as markup
    assert not [v for v in _markdown_values(at) if _LINK_OR_IMAGE.search(v)]


def test_explanations_page_method_names_are_literal(hostile_app):
    at = hostile_app("explanations")
    radio = at.radio(key="ex-focus")
    assert radio.options == [md_line(m) for m in METHODS]
    assert radio.value == METHODS[0]  # the value is the method itself; only its label is escaped
    assert [m.value for m in at.markdown if m.value.startswith("####")] == [f"#### {md_line(METHODS[0])}"]
    assert f"**{md_line(METHODS[1])}**" in [m.value for m in at.markdown]
    values = _markdown_values(at)
    assert not [v for v in values if _LINK_OR_IMAGE.search(v) or re.search(r"(?<!\\):red\[", v)], values
