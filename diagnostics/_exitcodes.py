"""Exit codes of the ``diagnose`` command, documented in docs/usage.md (Exit codes)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What the process exit status of ``diagnose`` means.

    Precedence when several apply to one run: INTERRUPTED, then ANALYZER_FAILED, then FINDINGS.
    A failed analyzer outranks findings because the verdict it leaves is incomplete.
    """

    OK = 0  #: every analyzer ran or was skipped for a stated reason; no finding at or above --fail-on
    FINDINGS = 1  #: at least one finding at or above --fail-on
    USAGE = 2  #: bad command line, unknown analyzer name, an unwritable output directory or output file
    ANALYZER_FAILED = 3  #: an analyzer or plugin raised, timed out, crashed, returned garbage or failed to load
    MODEL_REFUSED = 4  #: the model file was refused by the pre-scan or could not be loaded safely
    DATA_REFUSED = 5  #: the data file is unreadable or does not fit the model
    PLUGIN_ERROR = 6  #: --strict-plugins and a plugin misbehaved: the run was stopped
    INTERNAL_ERROR = 70  #: a bug in diagnostics itself (EX_SOFTWARE)
    INTERRUPTED = 130  #: Ctrl-C or SIGTERM; the previous report is left untouched


#: How each unfinished status reads in a verdict line ("1 analyzer crashed").
_UNFINISHED = {"failed": "failed", "timed_out": "timed out", "crashed": "crashed"}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def verdict_and_why(report) -> tuple[str, str]:
    """The run's verdict (its worst finding, or "clean") and what else its exit code says, as a clause
    to follow it: "" when the findings alone explain the code (0 or 1), so that a verdict line never
    reads "clean ... -> exit 3": ``("clean", "but 1 analyzer crashed")``, ``("error", "and 2 analyzers
    did not finish (1 failed, 1 timed out)")``. "but" when the findings alone would have passed, "and"
    when they would have failed the run too. ``report`` is a :class:`diagnostics.report.Report` (not
    imported: it imports this module).
    """
    verdict = report.worst.value if report.worst else "clean"
    why = exit_reason(report)
    if not why:
        return verdict, ""
    failing = report.fail_on != "never" and bool(report.findings(report.fail_on))
    return verdict, f"{'and' if failing else 'but'} {why}"


def exit_reason(report) -> str:
    """What, besides the findings, set the report's exit code: "1 analyzer crashed", "--strict-plugins
    stopped the run: 1 plugin failed to load"; "" for exit codes 0 and 1, which the findings explain."""
    code = int(report.exit_code)
    if code not in (ExitCode.ANALYZER_FAILED, ExitCode.PLUGIN_ERROR):
        return ""
    statuses = [str(getattr(r.status, "value", r.status)) for r in report.analyzers]
    unfinished = [s for s in statuses if s in _UNFINISHED]
    kinds = sorted(set(unfinished), key=list(_UNFINISHED).index)
    parts = []
    if len(kinds) == 1:
        parts.append(f"{_count(len(unfinished), 'analyzer')} {_UNFINISHED[kinds[0]]}")
    elif kinds:
        detail = ", ".join(f"{unfinished.count(k)} {_UNFINISHED[k]}" for k in kinds)
        parts.append(f"{_count(len(unfinished), 'analyzer')} did not finish ({detail})")
    broken = len(report.plugin_problems)
    if broken:
        parts.append(f"{_count(broken, 'plugin')} failed to load")
    if code == ExitCode.PLUGIN_ERROR:
        return f"--strict-plugins stopped the run: {' and '.join(parts) or 'a plugin misbehaved'}"
    return " and ".join(parts) or "an analyzer did not finish"
