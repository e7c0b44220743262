"""The typed explanation section of the report: JSON round trip, schema-1 refusal, what the CLI table
and the HTML report show, and that nothing a plugin writes becomes markup."""

from __future__ import annotations

import json

import pytest

from diagnostics import AnalyzerRecord, Check, Finding, MethodExplanation, Report, Severity, Verdict
from diagnostics._html import render_html
from diagnostics.report import SCHEMA_VERSION
from diagnostics._table import verdict_table

SCRIPT = "<script>alert(1)</script>"


def _report(tmp_path, name="dense_1", message="ok") -> Report:
    checks = (Check("completeness", 1.0, 1.0, "passed", detail={"tolerance": 0.01}),
              Check("randomisation", 0.61, 0.3, "failed", higher_is_better=False,
                    reason="maps barely change when the weights are randomised (rank correlation 0.61)"))
    section = MethodExplanation("saliency", Verdict.FAILED, (checks[1].reason,), checks, sample_indices=(3, 9),
                                targets=(1, 0), signs=(1.0, 1.0), target="predicted class",
                                artifacts={"inputs": "artifacts/explain.x/inputs.npy"}, reference="Simonyan et al. 2014")
    rec = AnalyzerRecord(name="explain.x", plugin="p", category="explanation", status="ok", explanations=(section,),
                         findings=(Finding("explain.x.saliency.failed", Severity.WARNING, message, where=name),))
    broken = AnalyzerRecord(name="broken", plugin="b", category="model", status="failed", reason="plugin 'b': raised",
                            traceback="Traceback (most recent call last):\n  ValueError: <b>no</b>")
    return Report(model={"name": "m.keras", "info": {}}, data=None, environment={}, plugins=(), analyzers=(rec, broken),
                  seed=0, fail_on="error")


def test_the_section_round_trips_through_json(tmp_path):
    report = _report(tmp_path)
    d = json.loads(report.to_json())
    assert d["schema_version"] == SCHEMA_VERSION == 4
    (section,) = d["analyzers"][0]["explanations"]
    assert section["verdict"] == "failed" and section["targets"] == [1, 0] and section["sample_indices"] == [3, 9]
    assert section["checks"][1] == {"name": "randomisation", "value": 0.61, "threshold": 0.3, "outcome": "failed",
                                    "higher_is_better": False, "reason": section["reasons"][0], "detail": {},
                                    "interval": None, "samples": None, "level": None}
    assert d["analyzers"][1]["traceback"].startswith("Traceback")
    again = Report.from_dict(d)
    assert again == report
    assert again.analyzers[0].explanations[0].verdict is Verdict.FAILED


def test_a_schema_1_report_is_refused_with_the_reason():
    d = json.loads(_report(None).to_json())
    d["schema_version"] = 1
    with pytest.raises(ValueError) as e:
        Report.from_dict(d)
    assert str(e.value) == ("report schema version 1 is not supported: this diagnostics reads versions 2, 3, 4; the report "
                            "predates the typed explanation verdicts: re-run diagnose to regenerate the report")


def test_the_cli_table_lists_each_method_with_the_checks_it_failed(tmp_path):
    text = verdict_table(_report(tmp_path))
    assert "explain.x:saliency  failed   randomisation 0.61 (< 0.3 wanted)" in text


def test_html_escapes_script_in_a_finding_message_a_layer_name_and_a_traceback(tmp_path):
    html = render_html(_report(tmp_path, name=f"dense{SCRIPT}", message=f"bad {SCRIPT} weights"), tmp_path)
    assert "<script>" not in html
    assert f"dense{SCRIPT}".replace("<", "&lt;").replace(">", "&gt;") in html
    assert f"bad {SCRIPT} weights".replace("<", "&lt;").replace(">", "&gt;") in html
    assert "ValueError: &lt;b&gt;no&lt;/b&gt;" in html
    assert "randomisation 0.61 (&lt; 0.3 wanted)" in html  # a check without an interval, as schema 2-3 wrote it
