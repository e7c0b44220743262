"""The report as Markdown for a CI job page (``--summary-md``, ``$GITHUB_STEP_SUMMARY``).

The verdict (and what else the exit code says), the verdict table, one row per explanation method, one
row per health measure that did not pass (read from the report's measure sections by outcome, never by
metric key; the passing ones are counted), the worst findings (warnings and errors; info findings are
counted) and where the full report is: read from the :class:`~diagnostics.report.Report` alone. Every
name and message (the model's file name, analyzer names, finding codes, where and messages, a measure's
title, unit and where) goes through :mod:`diagnostics._textsafe`: it cannot break the table, start a line
of its own (a second heading) or inject markup.
"""

from __future__ import annotations

from . import _measure_text as words
from .analyzer import Severity
from ._exitcodes import verdict_and_why
from .report import Report, Status
from ._textsafe import markdown as _md, markdown_code as _code
from ._verdicts import phrase

#: How many findings the summary lists (worst first); the rest are counted, and are in the HTML report.
MAX_FINDINGS = 10


def to_markdown(report: Report, html_path: str | None = None, run_url: str | None = None) -> str:
    """The summary of ``report``; ``html_path`` is where report.html was written, ``run_url`` a page
    (a CI run) where it can be downloaded."""
    name = str(report.model.get("name") or "model")
    verdict, why = verdict_and_why(report)
    lines = [
        f"### diagnose {_code(name)}: {_outcome(report, verdict)}",
        "",
        f"Verdict: **{verdict}** (fail on {_md(report.fail_on)}){', ' + _md(why) if why else ''}"
        f" → exit code {int(report.exit_code)}",
        "",
        "| analyzer | status | worst finding | findings | time |",
        "|---|---|---|---:|---:|",
    ]
    for r in report.analyzers:
        worst = r.worst.value if r.worst else "-"
        lines.append(f"| {_md(r.name)} | {r.status} | {worst} | {len(r.findings)} | {float(r.duration_s):.1f} s |")
    problems = [r for r in report.analyzers if Status(r.status).problem]
    if problems or report.plugin_problems:
        lines += ["", "**Did not finish**", ""]
        lines += [f"- {_code(r.name)} {r.status}: {_md(r.reason)}" for r in problems]
        lines += [f"- {_md(p)}" for p in report.plugin_problems]
    methods = [(r.name, e) for r in report.analyzers for e in r.explanations]
    if methods:  # a passing method is one row here, not a finding of its own
        lines += ["", "| explanation method | verdict | checks not passed |", "|---|---|---|"]
        for analyzer, e in methods:
            lines.append(f"| {_md(analyzer)}: {_md(e.method)} | {e.verdict.value if e.verdict else 'not run'} | "
                         f"{_not_passed(e)} |")
    lines += _measures(report)
    # Worst findings are the ones that need someone: info findings (a doubtful method, a note) stay in the report.
    findings = sorted(report.findings(Severity.WARNING), key=lambda nf: -nf[1].severity.rank)
    infos = len(report.findings()) - len(findings)
    if findings:
        lines += ["", "**Worst findings**", "", "| severity | code | where | message |", "|---|---|---|---|"]
        for _, f in findings[:MAX_FINDINGS]:
            lines.append(f"| {f.severity.value} | {_code(f.code, in_table=True)} | {_md(f.where) or '-'} | {_md(f.message)} |")
    more = [f"{len(findings) - MAX_FINDINGS} more warning(s) or error(s)"] if len(findings) > MAX_FINDINGS else []
    more += [f"{infos} info finding(s)"] if infos else []
    if more:
        lines += ["", f"{' and '.join(more)} in the full report."]
    where = []
    if html_path:
        where.append(_code(html_path))
    if run_url:
        where.append(f"[the run's artifacts]({run_url})")
    if where:
        lines += ["", "Full report: " + " · ".join(where)]
    return "\n".join(lines) + "\n"


def _measures(report: Report) -> list[str]:
    """One row per health measure with a value that did not pass (how many, the worst, its threshold);
    the judged measures that passed are counted in one line. Nothing for a report without sections."""
    sections = [(r.name, s) for r in report.analyzers for s in r.measures if words.judged(s)]
    bad = [(name, s) for name, s in sections if words.not_passed(s)]
    if not sections:
        return []
    lines = [""]
    if bad:
        lines += ["| health measure | not passed | worst | threshold |", "|---|---|---|---|"]
        for name, s in bad[:MAX_FINDINGS]:
            worst = words.worst_value(s)
            where = " · ".join(p for p in (worst.series, worst.where) if p)
            title = s.title + (f" ({s.unit})" if s.unit else "")
            lines.append(f"| {_md(name)}: {_md(title)} | {words.tally(s)} | "
                         f"{words.value(s, worst.value)}{' at ' + _md(where) if where else ''} | "
                         f"{_md(words.crossed(s, worst.threshold)) or '-'} |")
        if len(bad) > MAX_FINDINGS:
            lines += ["", f"{len(bad) - MAX_FINDINGS} more health measure(s) did not pass."]
    passed = len(sections) - len(bad)
    if passed:
        lines += (["", f"{passed} other health measure(s) passed."] if bad else
                  [f"All {passed} health measure(s) passed."])
    return lines


def _outcome(report: Report, verdict: str) -> str:
    """The heading's word, which the verdict line under it bears out: "passed" only when the run exits 0
    with nothing found, "passed with warnings" when what it found is below ``--fail-on``, else FAILED."""
    if int(report.exit_code) != 0:
        return "FAILED"
    if verdict == "clean":
        return "passed"
    return "passed with " + {"error": "errors", "warning": "warnings"}.get(verdict, f"{verdict} findings")


def _not_passed(e) -> str:
    bad = [_md(phrase(k)) for k in e.checks if k.outcome.value != "passed"]
    return ", ".join(bad) or _md(e.skipped) or "-"


def failed_run_markdown(model_name: str, message: str, exit_code: int) -> str:
    """A run that produced no report: say why, for the job page."""
    return f"### diagnose {_code(model_name)}: FAILED\n\nNo report (exit code {int(exit_code)}): {_md(message)}\n"


def compare_markdown(comparison, html_path: str | None = None) -> str:
    """A :class:`~diagnostics._compare.Comparison` for a CI job page: the gate's outcome, the counts, and
    one row per regressed, improved or not comparable item (at most :data:`MAX_FINDINGS` of each)."""
    from ._compare import Change

    bad = comparison.regressions()
    name_a, name_b = str(comparison.baseline.get("name") or "baseline"), str(comparison.candidate.get("name") or "candidate")
    lines = [f"### diagnose compare {_code(name_a)} → {_code(name_b)}: "
             f"{'❌ ' + str(len(bad)) + ' regressed' if bad else '✅ no regression'}", "",
             ", ".join(f"{comparison.count(c)} {c.value.replace('_', ' ')}" for c in Change)
             + f" (fail on {_md(comparison.fail_on)}) → exit code {comparison.exit_code}"]
    for change in (Change.REGRESSED, Change.IMPROVED, Change.NOT_COMPARABLE):
        items = [i for i in comparison.items if i.change is change]
        if not items:
            continue
        lines += ["", f"**{change.value.replace('_', ' ').capitalize()}**", "",
                  "| kind | item | baseline | candidate | why |", "|---|---|---|---|---|"]
        for i in items[:MAX_FINDINGS]:
            sev = f" ({i.severity.value})" if i.severity else ""
            lines.append(f"| {i.kind.value}{sev} | {_code(i.label, in_table=True)} | {_md(i.shown('baseline'))} | "
                         f"{_md(i.shown('candidate'))} | {_md(i.note) or '-'} |")
        if len(items) > MAX_FINDINGS:
            lines += ["", f"{len(items) - MAX_FINDINGS} more in compare.json."]
    if html_path:
        lines += ["", f"Full comparison: {_code(html_path)}"]
    return "\n".join(lines) + "\n"
