"""What comes back from one analyzer job, and the worker protocol's replies around it.

A job's outcome is a :class:`JobResult` whose ``status`` is a :class:`~diagnostics.report.Status`, set
once, where the outcome happens: the worker says ``ok``, ``skipped`` or ``failed`` (the analyzer raised,
or returned something malformed); the executor says ``crashed`` (the worker process died under it) or
``timed_out`` (it stopped the worker at the job's budget). Nothing downstream reads a status out of the
reason's words.

It crosses a process (or a Ray) boundary as a plain JSON-able dict, :meth:`JobResult.to_wire`, and is
read back with :meth:`JobResult.from_wire`: the only place that knows the wire form. The local executor
and the Ray executor read a worker's other replies through the same functions here
(:func:`problem`, :func:`loaded`, :func:`not_started`), so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NoReturn

from .analyzer import Finding
from ._data import DataRefused
from ._measures import MeasureSection
from .report import Status
from .safety import ModelRefused
from ._verdicts import MethodExplanation


@dataclasses.dataclass(frozen=True)
class JobResult:
    """The outcome of one analyzer job, as the worker (or the executor that watched it) saw it.

    ``artifacts``, the ``explanations``' artifacts and the ``measures``' charts are paths relative to the
    job's artifact directory; the runner relocates them under the report's. ``phases``: the seconds of
    each phase the analyzer timed; ``peak_memory_mb``: the worker's peak resident memory during the job
    (None: not measured); ``resource_notes``: what was scaled down to fit memory or time.
    """

    status: Status
    reason: str = ""
    duration_s: float = 0.0
    findings: tuple[Finding, ...] = ()
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: Mapping[str, str] = dataclasses.field(default_factory=dict)
    explanations: tuple[MethodExplanation, ...] = ()
    measures: tuple[MeasureSection, ...] = ()
    phases: Mapping[str, float] = dataclasses.field(default_factory=dict)
    traceback: str = ""
    peak_memory_mb: float | None = None
    resource_notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):
            raise TypeError(f"JobResult.status must be a diagnostics.report.Status, got {self.status!r}")
        for name in ("findings", "explanations", "measures", "resource_notes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    # -- where each status is decided ----------------------------------------------------------------
    @classmethod
    def failed(cls, reason: str, duration_s: float = 0.0, **more: Any) -> "JobResult":
        """The analyzer raised or returned something malformed, or its job could not start."""
        return cls(Status.FAILED, reason, duration_s, **more)

    @classmethod
    def skipped(cls, reason: str, duration_s: float = 0.0, **more: Any) -> "JobResult":
        return cls(Status.SKIPPED, reason, duration_s, **more)

    @classmethod
    def timed_out(cls, budget_s: float, duration_s: float) -> "JobResult":
        """The executor stopped the worker at the job's budget."""
        return cls(Status.TIMED_OUT, f"exceeded its {round(budget_s, 1):g} s budget and was stopped", duration_s)

    @classmethod
    def crashed(cls, how: str, duration_s: float) -> "JobResult":
        """The worker process died under the job (``how``: the executor's account of the death)."""
        return cls(Status.CRASHED, f"crashed: {how}", duration_s)

    # -- the wire ------------------------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """A plain dict of JSON types (besides what an analyzer put in its metrics) for a pipe or Ray."""
        return {
            "status": self.status.value, "reason": self.reason, "duration_s": self.duration_s,
            "findings": [f.to_dict() for f in self.findings], "metrics": dict(self.metrics),
            "artifacts": dict(self.artifacts), "explanations": [e.to_dict() for e in self.explanations],
            "measures": [s.to_dict() for s in self.measures], "phases": dict(self.phases),
            "traceback": self.traceback, "peak_memory_mb": self.peak_memory_mb,
            "resource_notes": list(self.resource_notes),
        }

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> "JobResult":
        return cls(
            status=Status(d["status"]), reason=d.get("reason", ""), duration_s=float(d.get("duration_s", 0.0)),
            findings=tuple(Finding.from_dict(f) for f in d.get("findings", ())), metrics=d.get("metrics") or {},
            artifacts=d.get("artifacts") or {},
            explanations=tuple(MethodExplanation.from_dict(e) for e in d.get("explanations", ())),
            measures=tuple(MeasureSection.from_dict(s) for s in d.get("measures", ())),
            phases=d.get("phases") or {}, traceback=d.get("traceback", ""), peak_memory_mb=d.get("peak_memory_mb"),
            resource_notes=tuple(d.get("resource_notes") or ()),
        )


# -- the worker's other replies ----------------------------------------------------------------------
# A worker answers ("load", job) with ("loaded", {...}) and ("run", job) with ("started", ...), progress and
# ("result", {"job": JobResult.to_wire(), ...}); when it cannot load the model (or a Ray actor cannot ship
# it) it answers with a problem instead: ("refused" | "data_refused" | "error", message).

def problem(e: BaseException) -> tuple[str, str]:
    """The reply that stands for ``e``, raised while a worker loaded a job's model or data."""
    if isinstance(e, ModelRefused):
        return ("refused", str(e))
    if isinstance(e, DataRefused):
        return ("data_refused", str(e))
    return ("error", f"{type(e).__name__}: {e}")


def raise_problem(kind: str, message: str) -> NoReturn:
    """Raise what the problem reply ``(kind, message)`` stands for (its inverse of :func:`problem`)."""
    if kind == "refused":
        raise ModelRefused(message)
    if kind == "data_refused":
        raise DataRefused(message)
    from ._executors import ExecutorError

    raise ExecutorError(message)


def loaded(kind: str, payload: Any) -> dict[str, Any]:
    """The ``{"info": ..., "versions": ...}`` of a ``("loaded", ...)`` reply; any other reply is raised."""
    if kind == "loaded":
        return payload
    raise_problem(kind, payload)


def not_started(kind: str, payload: Any, duration_s: float) -> JobResult:
    """The outcome of a job the worker answered with ``(kind, payload)`` instead of starting it: a refused
    model raises :class:`~diagnostics.safety.ModelRefused` (no analyzer can run on it); anything else fails
    this job only."""
    if kind == "refused":
        raise ModelRefused(payload)
    return JobResult.failed(f"could not start: {payload}", duration_s)
