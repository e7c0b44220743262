"""The report as Markdown for a CI job page (``--summary-md``, ``$GITHUB_STEP_SUMMARY``).

The verdict, the verdict table, the worst findings and where the full report is: read from the
:class:`~diagnostics.report.Report` alone. Every name and message (the model's file name, analyzer
names, finding codes, where and messages) goes through :mod:`diagnostics.textsafe`: it cannot break
the table, start a line of its own (a second heading) or inject markup.
"""

from __future__ import annotations

from .report import Report
from .textsafe import markdown as _md, markdown_code as _code

#: How many findings the summary lists (worst first); the rest are counted, and are in the HTML report.
MAX_FINDINGS = 10


def to_markdown(report: Report, html_path: str | None = None, run_url: str | None = None) -> str:
    """The summary of ``report``; ``html_path`` is where report.html was written, ``run_url`` a page
    (a CI run) where it can be downloaded."""
    name = str(report.model.get("name") or "model")
    verdict = report.worst.value if report.worst else "clean"
    passed = report.exit_code == 0
    lines = [
        f"### diagnose {_code(name)}: {'passed' if passed else 'FAILED'}",
        "",
        f"Verdict: **{verdict}** (fail on {_md(report.fail_on)}) → exit code {int(report.exit_code)}",
        "",
        "| analyzer | status | worst finding | findings | time |",
        "|---|---|---|---:|---:|",
    ]
    for r in report.analyzers:
        worst = r.worst.value if r.worst else "-"
        lines.append(f"| {_md(r.name)} | {r.status} | {worst} | {len(r.findings)} | {float(r.duration_s):.1f} s |")
    problems = [r for r in report.analyzers if r.status in ("failed", "timed_out")]
    if problems or report.plugin_problems:
        lines += ["", "**Did not finish**", ""]
        lines += [f"- {_code(r.name)} {r.status}: {_md(r.reason)}" for r in problems]
        lines += [f"- {_md(p)}" for p in report.plugin_problems]
    findings = sorted(report.findings(), key=lambda nf: -nf[1].severity.rank)
    if findings:
        lines += ["", "**Worst findings**", "", "| severity | code | where | message |", "|---|---|---|---|"]
        for _, f in findings[:MAX_FINDINGS]:
            lines.append(f"| {f.severity.value} | {_code(f.code, in_table=True)} | {_md(f.where) or '-'} | {_md(f.message)} |")
        if len(findings) > MAX_FINDINGS:
            lines.append(f"\n{len(findings) - MAX_FINDINGS} more finding(s) in the full report.")
    where = []
    if html_path:
        where.append(_code(html_path))
    if run_url:
        where.append(f"[the run's artifacts]({run_url})")
    if where:
        lines += ["", "Full report: " + " · ".join(where)]
    return "\n".join(lines) + "\n"


def failed_run_markdown(model_name: str, message: str, exit_code: int) -> str:
    """A run that produced no report: say why, for the job page."""
    return f"### diagnose {_code(model_name)}: FAILED\n\nNo report (exit code {int(exit_code)}): {_md(message)}\n"
