"""The report as a JUnit XML test report, for CI systems' test-result pages (``--junit-xml``).

One ``testsuite`` per run, one ``testcase`` per analyzer (``classname`` = its category, ``name`` = the
analyzer) and, after it, one per health measure the analyzer judged (``classname`` = the analyzer,
``name`` = the measure's code, ``health.gradients.grad_norm``), read from the
:class:`~diagnostics.report.Report` alone, so a new health analyzer's measures are test cases with no
edit here:

- a measure's findings (its values that did not pass) at or above the report's ``fail_on`` -> one
  ``<failure>`` in the measure's test case (``type`` = the code, ``message`` = the worst one's code and
  message, text = every such finding, one per line); its ``<system-out>`` holds every value that did not
  pass and the thresholds. A neutral measure (shown, never judged) is no test case: it cannot fail;
- the analyzer's other findings at or above ``fail_on`` (those no measure holds: non-finite outputs, a
  diagnosis from several values, any finding of an analyzer without measures) -> one ``<failure>`` in the
  analyzer's test case, in the same form; each failing finding is thus counted once;
- ``failed`` / ``timed_out`` / ``crashed`` -> ``<error>`` with the reason as message and the traceback as text;
- ``skipped`` -> ``<skipped>`` with the reason;
- every finding, failing or not, is listed in the test case's ``<system-out>`` (a trusted explanation
  method has none: its verdict is in the report's method table);
- the suite's properties hold the model, the seed, ``fail_on``, ``exit_code``, ``verdict`` and, when an
  analyzer or plugin rather than a finding set the exit code, ``exit_reason`` ("1 analyzer crashed");
- a plugin that failed to load has no analyzer record, so it becomes a test case of its own
  (classname ``plugin``) with an ``<error>``: the XML is red whenever the exit code says 3.

Durations go in ``time`` (seconds, three decimals: the common JUnit schema allows no more).

Every text passes through :func:`diagnostics._textsafe.xml_text` and every attribute through
:func:`~diagnostics._textsafe.visible`: a character XML 1.0 cannot carry (an ANSI colour code in a
message, say) would make the file unreadable, so it is shown as an escape (``\\x1b``) instead, as
are bidi overrides and, in attributes and finding lines, newlines; ElementTree escapes the rest.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .analyzer import Finding, Severity
from ._exitcodes import exit_reason
from ._measures import Direction, MeasureSection, formatted
from .report import AnalyzerRecord, Report, Status
from ._textsafe import visible, xml_text


def _time(seconds: float) -> str:
    return f"{max(float(seconds), 0.0):.3f}"


def _line(f: Finding) -> str:
    """One finding on one line: a newline in its code, where or message is shown as an escape, so it
    cannot pass for a finding line of its own."""
    where = f" [{visible(f.where)}]" if f.where else ""
    return f"{f.severity.value.upper()} {visible(f.code)}{where}: {visible(f.message)}"


def _failing(findings, fail_on: str) -> list[Finding]:
    if fail_on == "never":
        return []
    floor = Severity(fail_on).rank
    return sorted((f for f in findings if f.severity.rank >= floor), key=lambda f: -f.severity.rank)


def _judged(record: AnalyzerRecord) -> list[MeasureSection]:
    """The measures the host judged (a neutral one is shown, never judged: no test case)."""
    return [s for s in record.measures if s.direction is not Direction.NEUTRAL]


def _failure(case: ET.Element, failing: list[Finding]) -> None:
    worst = failing[0]
    _sub(case, "failure", "\n".join(_line(f) for f in failing), type=worst.code, message=f"{worst.code}: {worst.message}")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    # Attributes are one line (a name, a message): newlines shown too. Texts keep theirs (tracebacks).
    el = ET.SubElement(parent, tag, {k: visible(v) for k, v in attrs.items()})
    if text:
        el.text = xml_text(text)
    return el


def _testcase(suite: ET.Element, record: AnalyzerRecord, fail_on: str) -> str:
    """Add one analyzer's test case; return its outcome: passed, failure, error or skipped."""
    case = _sub(suite, "testcase", classname=record.category or "analyzer", name=record.name, time=_time(record.duration_s))
    outcome = "passed"
    if Status(record.status).problem:  # failed, timed out or crashed: the run exits 3, the XML is red
        _sub(case, "error", record.traceback or record.reason, type=record.status,
             message=record.reason or record.status)
        outcome = "error"
    elif record.status == "skipped":
        _sub(case, "skipped", message=record.reason or "skipped")
        outcome = "skipped"
    else:
        measured = {s.code for s in _judged(record)}
        failing = _failing([f for f in record.findings if f.code not in measured], fail_on)
        if failing:
            _failure(case, failing)
            outcome = "failure"
    if record.findings:
        _sub(case, "system-out", "\n".join(_line(f) for f in record.findings))
    return outcome


def _measure_testcase(suite: ET.Element, record: AnalyzerRecord, section: MeasureSection, fail_on: str) -> str:
    """Add one judged measure's test case; return its outcome: passed or failure."""
    case = _sub(suite, "testcase", classname=record.name, name=section.code)
    findings = [f for f in record.findings if f.code == section.code]
    failing = _failing(findings, fail_on)
    if failing:
        _failure(case, failing)
    limits = ", ".join(f"{level} {_limit(v)}" for level, v in section.thresholds.items()) or "none"
    not_passed = [v for v in section.values if v.outcome.value != "passed"]
    lines = [f"{section.title}: {len(section.values)} value(s), {len(section.values) - len(not_passed)} passed; "
             f"thresholds: {limits}"]
    for v in not_passed:  # a model-wide value has no place to name
        place = " \u00b7 ".join(p for p in (v.series, v.where) if p)
        lines.append(f"{v.outcome.value.upper()}{' ' + place if place else ''}: {formatted(v.value, '.4g')}")
    _sub(case, "system-out", "\n".join(visible(line) for line in lines))
    return "failure" if failing else "passed"


def _limit(value) -> str:
    if isinstance(value, (list, tuple)):
        return "\u2013".join(formatted(v, "g") for v in value)
    return formatted(value, "g")


def to_junit_xml(report: Report) -> str:
    """The JUnit XML document for ``report`` (``fail_on`` is the report's own)."""
    name = str(report.model.get("name") or report.model.get("path") or "model")
    root = ET.Element("testsuites", {"name": "diagnose"})
    suite = _sub(root, "testsuite", name=f"diagnose {name}")
    props = _sub(suite, "properties")
    for key, value in (("model", report.model.get("path") or name), ("sha256", report.model.get("sha256") or ""),
                       ("fail_on", report.fail_on), ("seed", str(report.seed)), ("exit_code", str(report.exit_code)),
                       ("verdict", report.worst.value if report.worst else "clean"),
                       ("exit_reason", exit_reason(report))):
        if key != "exit_reason" or value:  # what set the exit code when the findings did not: "1 analyzer crashed"
            _sub(props, "property", name=key, value=str(value))
    counts = {"passed": 0, "failure": 0, "error": 0, "skipped": 0}
    for record in report.analyzers:
        counts[_testcase(suite, record, report.fail_on)] += 1
        for section in _judged(record):
            counts[_measure_testcase(suite, record, section, report.fail_on)] += 1
    for plugin in report.plugins:
        if plugin.get("error"):
            case = _sub(suite, "testcase", classname="plugin", name=str(plugin.get("name")), time=_time(0))
            _sub(case, "error", str(plugin["error"]), type="plugin_error", message=f"plugin {plugin.get('name')!r}: {plugin['error']}")
            counts["error"] += 1
    total_time = report.timings.get("total_s", sum(r.duration_s for r in report.analyzers))
    stats = {"tests": str(sum(counts.values())), "failures": str(counts["failure"]), "errors": str(counts["error"]),
             "skipped": str(counts["skipped"]), "time": _time(total_time)}
    suite.attrib.update(stats)
    root.attrib.update(stats)
    return _serialise(root)


def failed_run_xml(model_name: str, message: str, exit_code: int) -> str:
    """A run that produced no report (model or data refused, stopped): one test case in error, so a CI
    page shows why instead of "no tests found"."""
    root = ET.Element("testsuites", {"name": "diagnose", "tests": "1", "failures": "0", "errors": "1", "skipped": "0", "time": _time(0)})
    suite = _sub(root, "testsuite", name=f"diagnose {model_name}", tests="1", failures="0", errors="1", skipped="0", time=_time(0))
    case = _sub(suite, "testcase", classname="diagnose", name="run", time=_time(0))
    _sub(case, "error", message, type=f"exit_{int(exit_code)}", message=message)
    return _serialise(root)


def _serialise(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"



def compare_junit_xml(comparison) -> str:
    """A :class:`~diagnostics._compare.Comparison` as JUnit XML: one test case per compared item
    (``classname`` = its kind and analyzer, ``name`` = the item), a ``<failure>`` for a regression at or
    above the comparison's ``fail_on`` (``type`` = its severity), ``<skipped>`` for an item that is not
    comparable (with the reason); every item's two values in its ``<system-out>``."""
    from ._compare import Change

    root = ET.Element("testsuites", {"name": "diagnose compare"})
    suite = _sub(root, "testsuite", name=f"diagnose compare {comparison.baseline.get('name')} -> "
                                         f"{comparison.candidate.get('name')}")
    props = _sub(suite, "properties")
    for key, value in (("baseline", comparison.baseline.get("report") or comparison.baseline.get("name") or ""),
                       ("candidate", comparison.candidate.get("report") or comparison.candidate.get("name") or ""),
                       ("fail_on", comparison.fail_on), ("exit_code", str(comparison.exit_code))):
        _sub(props, "property", name=key, value=str(value))
    failing = {id(i) for i in comparison.regressions()}
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for item in comparison.items:
        counts["tests"] += 1
        case = _sub(suite, "testcase", classname=f"{item.kind.value}.{item.analyzer}", name=item.label, time=_time(0))
        if id(item) in failing:
            _sub(case, "failure", item.note, type=item.severity.value,
                 message=f"regressed ({item.severity.value}): {item.shown('baseline')} -> {item.shown('candidate')}")
            counts["failures"] += 1
        elif item.change is Change.NOT_COMPARABLE:
            _sub(case, "skipped", message=f"not comparable: {item.note}")
            counts["skipped"] += 1
        _sub(case, "system-out", f"{item.change.value}: baseline {item.shown('baseline')}, candidate "
                                 f"{item.shown('candidate')}" + (f"; {item.note}" if item.note else ""))
    stats = {"tests": str(counts["tests"]), "failures": str(counts["failures"]), "errors": "0",
             "skipped": str(counts["skipped"]), "time": _time(0)}
    suite.attrib.update(stats)
    root.attrib.update(stats)
    return _serialise(root)
