"""Cause before symptom (issue 25): a finding another analyzer explains leads with that explanation.

Two throwaway analyzers installed through a real entry point: ``probe.cause`` declares that its warnings
explain ``probe.symptom.gap``; the host, after both ran, leads the symptom's message with the sentence and
names the cause's findings, and leaves the code, severity and other findings as they were.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer

from .conftest import install_plugin

PLUGIN = '''
import diagnostics
from diagnostics import Analyzer, Finding, Result, Severity


class Cause(Analyzer):
    name = "probe.cause"
    description = "finds a cause unless its option found is false"
    options = None
    explains = {"probe.symptom.gap": "the inputs of the two splits differ, so the gap is drift, not noise fitted",
                "probe.symptom.other": {"probe.cause.missing": "never said: no such finding",
                                        "probe.cause.note": "never said either: an info is no cause"}}

    def run(self, context):
        if not context.options.get("found", True):
            return Result()
        return Result(findings=(
            Finding("probe.cause.shift", Severity.ERROR, "feature a shifted", where="a"),
            Finding("probe.cause.shift", Severity.WARNING, "feature b shifted", where="b"),
            Finding("probe.cause.note", Severity.INFO, "a note")))


class Symptom(Analyzer):
    name = "probe.symptom"
    description = "a gap and another warning"

    def run(self, context):
        return Result(findings=(
            Finding("probe.symptom.gap", Severity.WARNING, "train - validation accuracy 0.13: fitted the noise"),
            Finding("probe.symptom.other", Severity.WARNING, "something else"),
            Finding("probe.symptom.gap", Severity.INFO, "a gap too small to judge")))


@diagnostics.hookimpl
def register_analyzers(register):
    register(Cause)
    register(Symptom)
'''


def test_a_symptom_leads_with_the_cause_another_analyzer_found(tiny, tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_plugin(site, "probe_causes", PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    report = diagnostics.diagnose(tiny["model"], only=("probe.cause", "probe.symptom"), out_dir=tmp_path / "r")
    symptom = report.record("probe.symptom")
    assert [(f.code, f.severity.value, f.message) for f in symptom.findings] == [
        ("probe.symptom.gap", "warning",
         "likely cause: the inputs of the two splits differ, so the gap is drift, not noise fitted (probe.cause found "
         "probe.cause.shift at a, probe.cause.shift at b). What probe.symptom measured: train - validation accuracy "
         "0.13: fitted the noise"),
        ("probe.symptom.other", "warning", "something else"),  # its causes were not found: untouched
        ("probe.symptom.gap", "info", "a gap too small to judge"),  # info is no symptom
    ]
    assert report.record("probe.cause").findings[0].message == "feature a shifted"
    # the written report is what the API returned, and the exit code still counts the symptom's severity
    assert diagnostics.Report.load(tmp_path / "r").record("probe.symptom").findings == symptom.findings
    # without the cause's findings, nothing is led
    quiet = diagnostics.diagnose(tiny["model"], only=("probe.cause", "probe.symptom"), out_dir=tmp_path / "q",
                                 options={"probe.cause": {"found": False}})
    assert quiet.record("probe.symptom").findings[0].message == "train - validation accuracy 0.13: fitted the noise"


def test_explains_is_checked_with_the_metadata():
    class Own(Analyzer):
        name = "probe.own"
        description = "explains itself"
        explains = {"probe.own.*": "circular"}

        def run(self, context):
            raise NotImplementedError

    class Empty(Own):
        explains = {"health.*": " "}

    assert Own.metadata_problems() == ["explains names this analyzer's own findings (probe.own.*): a cause explains "
                                       "other analyzers' findings"]
    assert Empty.metadata_problems() == ["explains must map finding-code globs to non-empty sentences (or to {glob "
                                         "of its own codes: sentence}), got {'health.*': ' '}"]


def test_the_sentence_follows_the_kind_of_cause_found():
    """``explains`` maps a symptom to {glob of the cause's codes: sentence}: the first kind of cause found
    speaks, and names only its own findings."""
    from diagnostics import Finding, Severity
    from diagnostics._causes import attribute
    from diagnostics.report import AnalyzerRecord

    class Quality(Analyzer):
        name = "probe.quality"
        explains = {"probe.chance.*": {"probe.quality.underfit": "a linear model does better: it underfits",
                                       "probe.quality.imbalance": "the rare class is never predicted: imbalance"}}

    cause = AnalyzerRecord(name="probe.quality", plugin="p", category="data", status="ok", findings=(
        Finding("probe.quality.imbalance", Severity.ERROR, "recall 0 for class 1", where="class 1"),))
    symptom = AnalyzerRecord(name="probe.chance", plugin="p", category="health", status="ok", findings=(
        Finding("probe.chance.level", Severity.WARNING, "at chance"),))
    out = attribute((cause, symptom), {"probe.quality": Quality})
    assert out[0] is cause
    assert out[1].findings[0].message == ("likely cause: the rare class is never predicted: imbalance (probe.quality "
                                          "found probe.quality.imbalance at class 1). What probe.chance measured: at "
                                          "chance")
