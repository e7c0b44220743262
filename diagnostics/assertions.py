"""``Report.assert_ok``: a diagnosis as a test assertion, with a failure message that lists the findings."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Iterable

from . import codes
from .analyzer import Severity

if TYPE_CHECKING:  # pragma: no cover
    from .report import Report


class DiagnosisFailed(AssertionError):
    """Raised by :meth:`Report.assert_ok`; ``findings`` holds ``(analyzer, Finding)`` of what failed."""

    def __init__(self, message: str, findings: list, unfinished: list):
        super().__init__(message)
        self.findings = findings
        self.unfinished = unfinished


def assert_ok(report: "Report", fail_on: str | None = None, allow: Iterable[str] = ()) -> None:
    """Raise :class:`DiagnosisFailed` unless every analyzer finished and no finding is at or above ``fail_on``.

    ``fail_on`` is ``info``, ``warning`` or ``error`` (default: the report's own ``fail_on``; ``never``
    checks only that every analyzer finished). ``allow`` holds glob patterns (``explain.gradients.saliency.*``)
    of finding codes that never fail; a pattern written with an old code (``gradients.vanishing``, an
    alias in :data:`diagnostics.codes.ALIASES`) still matches the code that replaced it, with a
    ``DeprecationWarning`` naming the new code(s). A failed or timed-out analyzer, or a plugin that did
    not load, always fails: its verdict is missing.
    """
    __tracebackhide__ = True  # pytest shows the test's line and this message, not these internals
    fail_on = fail_on or report.fail_on
    if fail_on not in ("info", "warning", "error", "never"):
        raise ValueError(f"fail_on must be info, warning, error or never, got {fail_on!r}")
    allow = (allow,) if isinstance(allow, str) else tuple(allow)  # one pattern, not its characters
    for pattern in allow:
        new = codes.renamed(pattern)
        if new:  # still honoured for one release; the warning says what to write instead
            warnings.warn(f"allow pattern {pattern!r} is written with old finding codes (aliases until the next "
                          f"release); it matches {', '.join(new)}: write those", DeprecationWarning, stacklevel=3)
    failing = [] if fail_on == "never" else [
        (name, f) for name, f in report.findings(Severity(fail_on))
        if not any(codes.matches(f.code, pattern) for pattern in allow)]
    failing.sort(key=lambda nf: -nf[1].severity.rank)
    unfinished = [f"{r.name}: {r.status}: {r.reason}" for r in report.analyzers if r.status in ("failed", "timed_out")]
    unfinished += report.plugin_problems
    if not failing and not unfinished:
        return
    name = report.model.get("name") or report.model.get("path") or "the model"
    lines = []
    if failing:
        allowed = f" (allowed: {', '.join(allow)})" if allow else ""
        lines.append(f"diagnose: {name} has {len(failing)} finding(s) at or above {fail_on}{allowed}:")
        for analyzer, f in failing:
            where = f" [{f.where}]" if f.where else ""
            lines.append(f"  {f.severity.value.upper()} {f.code}{where} ({analyzer}): {f.message}")
    if unfinished:
        lines.append(f"diagnose: {len(unfinished)} analyzer(s) or plugin(s) did not finish, so the verdict is incomplete:")
        lines += [f"  {u}" for u in unfinished]
    directory = getattr(report, "directory", None)
    if directory:
        lines.append(f"report: {directory}/report.html")
    raise DiagnosisFailed("\n".join(lines), failing, unfinished)
