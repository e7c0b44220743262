"""The health pipeline's judging (diagnostics._measures): known answers for each direction, the interval's
conservative end, ceilings, bands, the composed message, the section's JSON round trip, and the
declarations the host refuses."""

from __future__ import annotations

import json

import pytest

from diagnostics import (Direction, Finding, HealthAnalyzer, Measure, MeasureSection, Measurements, Report, Scope,
                         Severity, Value)
from diagnostics._measures import judge, thresholds_of
from diagnostics.report import AnalyzerRecord
from diagnostics._verdicts import Outcome


class Toy(HealthAnalyzer):
    name = "toy.check"
    description = "a health analyzer declared by the test"
    default_thresholds = {"gap_warning": 0.1, "gap_error": 0.5, "low": 0.2, "high": 0.8, "ratio_warning": 1e-3}
    measures = (
        Measure("gap", "Train − validation accuracy", unit="fraction", direction=Direction.HIGHER_IS_WORSE,
                warning="gap_warning", error="gap_error", reference="Toy et al. 2024", advice="regularise"),
        Measure("alpha", "Alpha", scope=Scope.LAYER, direction=Direction.BAND, warning=("low", "high")),
        Measure("ratio", "First/last ratio", direction=Direction.LOWER_IS_WORSE, warning="ratio_warning", format=".1e"),
        Measure("loss", "Loss", scope=Scope.EPOCH),
    )

    def measure(self, context):  # judged directly in these tests
        raise NotImplementedError


def run(*values: Value, options=None, findings=(), artifact_dir=None):
    return judge(Toy, Measurements(values=values, findings=findings), thresholds_of(Toy, options or {}), artifact_dir)


def outcomes(result, measure):
    section = next(s for s in result.measures if s.measure == measure)
    return [(v.where, v.outcome) for v in section.values]


@pytest.mark.parametrize("value, expected", [(0.05, Outcome.PASSED), (0.1, Outcome.DOUBTFUL), (0.49, Outcome.DOUBTFUL),
                                             (0.5, Outcome.FAILED), (3.0, Outcome.FAILED)])
def test_higher_is_worse_is_judged_at_or_above_each_threshold(value, expected):
    assert outcomes(run(Value("gap", value)), "gap") == [("", expected)]


@pytest.mark.parametrize("value, expected", [(1e-3, Outcome.PASSED), (9.9e-4, Outcome.DOUBTFUL)])
def test_lower_is_worse_is_judged_strictly_below(value, expected):
    assert outcomes(run(Value("ratio", value)), "ratio") == [("", expected)]


def test_an_interval_is_judged_on_its_end_nearest_to_passing():
    """A gap of 0.6 whose interval reaches down to 0.08 is not evidence of even a warning."""
    result = run(Value("gap", 0.6, interval=(0.08, 0.9), n=16), Value("gap", 0.6, where="b", interval=(0.3, 0.9)))
    assert outcomes(result, "gap") == [("", Outcome.PASSED), ("b", Outcome.DOUBTFUL)]
    (finding,) = result.findings
    assert finding == Finding("toy.check.gap", Severity.WARNING, where="b", message=(
        "Train − validation accuracy 0.6 fraction (95% CI 0.3–0.9), at or above the warning threshold 0.1 "
        "(Toy et al. 2024) — regularise"))


def test_a_ceiling_caps_the_severity_and_the_message_names_the_warning_threshold():
    result = run(Value("gap", 0.9, ceiling=Severity.WARNING, note="from the history's last epoch, no interval"))
    (finding,) = result.findings
    assert finding.severity is Severity.WARNING
    assert finding.message == ("Train − validation accuracy 0.9 fraction, at or above the warning threshold 0.1 "
                               "(Toy et al. 2024): from the history's last epoch, no interval — regularise")


def test_a_band_judges_both_sides_and_an_interval_must_lie_wholly_outside():
    result = run(Value("alpha", 0.1, where="d1"), Value("alpha", 0.5, where="d2"), Value("alpha", 0.9, where="d3"),
                 Value("alpha", 0.1, where="d4", interval=(0.05, 0.3)))
    assert outcomes(result, "alpha") == [("d1", Outcome.DOUBTFUL), ("d2", Outcome.PASSED), ("d3", Outcome.DOUBTFUL),
                                         ("d4", Outcome.PASSED)]
    assert [f.message for f in result.findings] == ["Alpha 0.1, outside the healthy band 0.2–0.8",
                                                    "Alpha 0.9, outside the healthy band 0.2–0.8"]


def test_neutral_and_unmeasurable_values_are_shown_never_judged():
    result = run(Value("loss", 1e9, where="1", series="train"), Value("gap", float("nan")))
    assert result.findings == ()
    assert outcomes(result, "loss") == [("1", Outcome.PASSED)]
    assert next(s for s in result.measures if s.measure == "gap").values[0].value is None


def test_options_override_the_analyzers_own_thresholds():
    result = run(Value("gap", 0.2), options={"gap_warning": 0.3})
    assert result.findings == () and result.measures[0].thresholds == {"warning": 0.3, "error": 0.5}


def test_extra_findings_come_first_and_values_of_undeclared_measures_are_refused():
    extra = Finding("toy.check.nonfinite", Severity.ERROR, "the outputs are NaN")
    assert run(Value("gap", 0.7), findings=[extra]).findings[0] == extra
    with pytest.raises(ValueError, match=r"undeclared measure\(s\) \['typo'\]; toy.check declares \['alpha', 'gap', 'loss', 'ratio'\]"):
        run(Value("typo", 1.0))


def test_a_chart_is_drawn_per_measure_with_several_values(tmp_path):
    result = run(Value("alpha", 0.1, where="d1"), Value("alpha", 0.5, where="d2"), Value("gap", 0.3), artifact_dir=tmp_path)
    charts = {s.measure: s.chart for s in result.measures}
    assert charts == {"gap": "", "alpha": "measure_alpha.png"}
    assert (tmp_path / "measure_alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_hostile_name_draws_literally_instead_of_failing_the_analyzer(tmp_path):
    """A ``$`` in a layer, series or title would start matplotlib's mathtext; an unparsable one raised."""
    hostile = type("Hostile", (Toy,), {"measures": (Measure("loss", "Loss $\\bad{", scope=Scope.EPOCH, unit="$x"),
                                                    Measure("alpha", "Alpha", scope=Scope.LAYER))})
    values = [Value("loss", 1.0, where="1", series="a$\\frac{$"), Value("loss", 0.5, where="2", series="a$\\frac{$"),
              Value("alpha", 1.0, where="d$\\frac{$1"), Value("alpha", 2.0, where="d2")]
    result = judge(hostile, Measurements(values=values), thresholds_of(hostile, {}), tmp_path)
    assert [s.chart for s in result.measures] == ["measure_loss.png", "measure_alpha.png"]
    assert (tmp_path / "measure_loss.png").read_bytes()[:4] == b"\x89PNG"


def test_the_section_round_trips_through_the_report_json(tmp_path):
    result = run(Value("gap", 0.3, interval=(0.2, 0.4), n=512, note="on 512 samples"),
                 Value("loss", 0.5, where="1", series="train"), Value("loss", 0.4, where="2", series="train"))
    record = AnalyzerRecord(name="toy.check", plugin="toy", category="health", status="ok", findings=result.findings,
                            measures=tuple(s.relocated("artifacts/toy.check") for s in result.measures))
    report = Report(model={}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0, fail_on="error")
    d = json.loads(report.to_json())
    assert d["schema_version"] == 4
    gap = d["analyzers"][0]["measures"][0]
    assert gap == {"measure": "gap", "code": "toy.check.gap", "title": "Train − validation accuracy", "unit": "fraction",
                   "scale": "linear", "scope": "model", "direction": "higher_is_worse", "reference": "Toy et al. 2024",
                   "thresholds": {"warning": 0.1, "error": 0.5}, "chart": "", "format": ".3g",
                   "values": [{"value": 0.3, "where": "", "interval": [0.2, 0.4], "n": 512, "note": "on 512 samples",
                               "outcome": "doubtful", "threshold": 0.1}]}
    again = Report.from_dict(d)
    assert again == report
    assert again.record("toy.check").measure("toy.check.loss").value("2", series="train") == 0.4


def test_a_schema_2_report_still_reads_without_sections():
    d = {"schema_version": 2, "model": {}, "environment": {}, "plugins": [], "seed": 0, "fail_on": "error",
         "analyzers": [{"name": "health.gradients", "plugin": "builtin", "category": "health", "status": "ok",
                        "findings": [{"code": "gradients.exploding", "severity": "error", "message": "m", "where": "d"}],
                        "metrics": {"global_grad_norm": 4e3}, "explanations": []}]}
    report = Report.from_dict(d)
    assert report.schema_version == 2 and report.record("health.gradients").measures == ()
    assert report.record("health.gradients").metrics == {"global_grad_norm": 4e3}


@pytest.mark.parametrize("measure, problem", [
    (Measure("Bad Name", "t"), "measure name must be a non-empty lower-case identifier, got 'Bad Name'"),
    (Measure("x", "X", warning="w"), "measure 'x' is neutral but names a warning threshold"),
    (Measure("x", "X", direction=Direction.BAND, warning="w"),
     "measure 'x': a band takes a (low, high) pair of threshold keys, a one-sided direction one key; warning is 'w'"),
    (Measure("x", "X", scale="cubic"), "measure 'x': scale must be 'linear' or 'log', got 'cubic'"),
])
def test_bad_declarations_are_named(measure, problem):
    cls = type("Declared", (Toy,), {"measures": (measure,)})
    assert problem in cls.metadata_problems()


def test_a_health_analyzer_implements_measure_not_run():
    cls = type("Overrides", (HealthAnalyzer,), {"name": "x.y", "description": "d", "run": lambda self, c: None})
    assert cls.metadata_problems() == ["a HealthAnalyzer implements measure(), not run()", "measure() is not implemented"]
