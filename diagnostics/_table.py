"""The terminal verdict table, rendered from a :class:`Report`.

Every name and message in it came from a model file or a plugin: each goes through
:func:`textsafe.terminal` before it is padded or coloured, so none can move the cursor, hide the
verdict, start a line of its own or pass for a CI workflow command.
"""

from __future__ import annotations

from ._exitcodes import verdict_and_why
from .report import Report
from ._textsafe import terminal as t, workflow_safe
from ._verdicts import phrase

_COLOURS = {"error": "31", "warning": "33", "info": "34", "ok": "32", "failed": "31", "timed_out": "35", "skipped": "90", "crashed": "31",
            "trusted": "32", "doubtful": "33", "undecided": "36"}


def verdict_table(report: Report, colour: bool = False) -> str:
    def c(text: str, key: str) -> str:
        return f"\033[{_COLOURS[key]}m{text}\033[0m" if colour and key in _COLOURS else text

    rows = [("analyzer", "status", "worst", "findings", "time")]
    for r in report.analyzers:
        rows.append((t(r.name), r.status, r.worst.value if r.worst else "-", str(len(r.findings)), f"{r.duration_s:.1f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for i, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths)]
        if i:
            cells[1] = c(cells[1], row[1])
            cells[2] = c(cells[2], row[2]) if row[2] != "-" else cells[2]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    methods = [(r.name, e) for r in report.analyzers for e in r.explanations]
    if methods:
        lines.append("")
        rows = [("explanation method", "verdict", "checks not passed")]
        for name, e in methods:
            verdict = e.verdict.value if e.verdict is not None else "not run"
            bad = ", ".join(t(phrase(k)) for k in e.checks if k.outcome.value != "passed") or t(e.skipped or "-")
            rows.append((f"{t(name)}:{t(e.method)}", verdict, bad))
        w0, w1 = (max(len(row[i]) for row in rows) for i in range(2))
        for i, (a, b, rest) in enumerate(rows):
            lines.append(f"{a.ljust(w0)}  {c(b.ljust(w1), b) if i else b.ljust(w1)}  {rest}".rstrip())
    findings = report.findings()
    if findings:
        lines.append("")
        for name, f in sorted(findings, key=lambda nf: -nf[1].severity.rank):
            where = f" [{t(f.where)}]" if f.where else ""
            lines.append(f"{c(f.severity.value.upper(), f.severity.value)} {t(f.code)}{where}: {t(f.message)}")
    skipped = [r for r in report.analyzers if r.status != "ok" and r.reason]
    if skipped:
        lines.append("")
        for r in skipped:
            lines.append(f"{t(r.name)}: {r.status}: {t(r.reason)}")
    for p in report.plugin_problems:
        lines.append(c(t(p), "failed"))
    worst, why = verdict_and_why(report)
    lines.append("")
    lines.append(f"verdict: {worst} (fail on {t(report.fail_on)}){', ' + why if why else ''} -> exit {int(report.exit_code)}")
    return workflow_safe("\n".join(lines))


def slowest_phases(report: Report, n: int = 3) -> str:
    """The ``n`` slowest phases of the run (``diagnose -v``), one per line, with the peak memory of each worker."""
    phases = [(t(label), seconds) for label, seconds in report.phase_breakdown()[:n]]
    if not phases:
        return ""
    width = max(len(label) for label, _ in phases)
    total = float(report.timings.get("total_s", 0.0))
    lines = [f"slowest phases (of {total:.1f}s in all; workers run side by side):" if total else "slowest phases:"]
    for label, seconds in phases:
        lines.append(f"  {label.ljust(width)}  {seconds:6.1f}s")
    mem = [f"{t(b)} {w['peak_rss_mib']:.0f} MiB" for b, w in sorted(report.workers.items()) if "peak_rss_mib" in w]
    if mem:
        lines.append("peak worker memory: " + ", ".join(mem))
    return workflow_safe("\n".join(lines))
