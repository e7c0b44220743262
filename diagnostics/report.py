"""The report: the one model that the CLI table, the JSON, the HTML report and the dashboard read.

Small frozen dataclasses, serialised to JSON with sorted keys and a schema version. Arrays and
images are files beside the JSON (``artifacts/<analyzer>/...``), referenced by relative path.
Same seed, model and data give the same JSON apart from the keys named in :data:`TIMING_KEYS`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from .analyzer import Finding, Severity
from ._exitcodes import ExitCode
from ._measures import MeasureSection
from ._verdicts import MethodExplanation

#: 2: typed per-method explanation sections (``analyzers[].explanations``) and the worker traceback
#: of a failed analyzer (``analyzers[].traceback``).
#: 3: typed per-measure health sections (``analyzers[].measures``). A version 2 report still reads:
#: its analyzers have no measure sections (their free-form ``metrics`` are kept).
#: 4: every explanation ``Check`` carries its ``interval``, ``samples`` and ``level``, and ``undecided`` is
#: an outcome and a verdict (issue 23). Checks of version 2-3 reports read with no interval.
SCHEMA_VERSION = 4
#: The versions :meth:`Report.from_dict` reads.
READABLE_SCHEMAS = (2, 3, 4)
class Status(enum.StrEnum):
    """How an analyzer's run ended. ``crashed``: its worker process died (a segfault, the OOM killer)."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"

    @property
    def problem(self) -> bool:
        """True for the outcomes that make the run exit ANALYZER_FAILED."""
        return self in (Status.FAILED, Status.TIMED_OUT, Status.CRASHED)


STATUSES = tuple(s.value for s in Status)
#: Keys whose values vary from run to run; everything else is reproducible.
TIMING_KEYS = frozenset({"duration_s", "timings", "phases", "workers", "peak_memory_mb", "resource_notes"})
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
ARTIFACTS = "artifacts"


@dataclasses.dataclass(frozen=True)
class AnalyzerRecord:
    """The outcome of one analyzer in one run.

    ``status`` is a :class:`Status`: ``ok``, ``skipped`` (``reason`` says why), ``failed`` (``reason``
    holds the error, ``traceback`` the worker's traceback when it raised; omitted from the JSON when empty),
    ``timed_out`` or ``crashed``. ``artifacts`` map a name to a path relative to the report directory.
    ``explanations`` holds one typed section per explanation method
    (:class:`~diagnostics._verdicts.MethodExplanation`). ``phases`` maps a phase the analyzer timed with
    :meth:`diagnostics.Context.timed` to its seconds (omitted from the JSON when empty).
    """

    name: str
    plugin: str
    category: str
    status: str
    reason: str = ""
    backend: str = ""
    duration_s: float = 0.0
    findings: tuple[Finding, ...] = ()
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: Mapping[str, str] = dataclasses.field(default_factory=dict)
    explanations: tuple[MethodExplanation, ...] = ()
    #: one typed section per health measure (:class:`~diagnostics._measures.MeasureSection`)
    measures: tuple[MeasureSection, ...] = ()
    traceback: str = ""
    phases: Mapping[str, float] = dataclasses.field(default_factory=dict)
    #: Peak resident memory of the worker process while this analyzer ran (MiB; None: not measured).
    peak_memory_mb: float | None = None
    #: What was scaled down to fit the memory limit or the time budget ("batches of 8 instead of 1024 ...",
    #: "explained 4 of 16 samples within the 300 s budget ...").
    resource_notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "resource_notes", tuple(self.resource_notes))
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "explanations", tuple(self.explanations))
        object.__setattr__(self, "measures", tuple(self.measures))

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def explanation(self, method: str) -> MethodExplanation:
        """The typed section of one explanation method (KeyError names the methods there are)."""
        for e in self.explanations:
            if e.method == method:
                return e
        raise KeyError(f"{self.name} has no section for {method!r}; it has {[e.method for e in self.explanations]}")

    def measure(self, name: str) -> MeasureSection:
        """The typed section of one health measure, by its name or its code (KeyError names those there are)."""
        for s in self.measures:
            if name in (s.measure, s.code):
                return s
        raise KeyError(f"{self.name} has no measure {name!r}; it has {[s.measure for s in self.measures]}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        d["findings"] = [f.to_dict() for f in self.findings]
        d["metrics"] = dict(self.metrics)
        d["artifacts"] = dict(self.artifacts)
        if not d["traceback"]:
            del d["traceback"]
        d["phases"] = dict(self.phases)
        if not d["phases"]:
            del d["phases"]
        d["explanations"] = [e.to_dict() for e in self.explanations]
        d["measures"] = [s.to_dict() for s in self.measures]
        d["resource_notes"] = list(self.resource_notes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AnalyzerRecord":
        d = dict(d)
        d["findings"] = tuple(Finding.from_dict(f) for f in d.get("findings", ()))
        d["explanations"] = tuple(MethodExplanation.from_dict(e) for e in d.get("explanations", ()))
        d["measures"] = tuple(MeasureSection.from_dict(s) for s in d.get("measures", ()))
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class Report:
    """A whole run: model, data, environment, plugins, and one record per analyzer.

    ``timings`` holds the run's own phases in seconds (``total_s``, and where measured ``prescan_s``,
    ``data_s``, ``report_s``); ``workers`` maps a backend to its worker processes' phases (``spawn_s``,
    ``import_s``, ``plugins_s``, ``load_s``), ``processes`` and ``peak_rss_mib`` (see
    :meth:`phase_breakdown`). Both are omitted from the JSON when empty.

    ``warnings`` holds what the run printed instead of reporting (a Keras ``UserWarning``, a line
    TensorFlow logged on stderr), captured by :func:`diagnostics.diagnose` so that it does not land in
    the notebook; omitted from the JSON when empty, so older readers and older files are unaffected.

    In a notebook a report renders itself (:meth:`_repr_html_`); :meth:`show` displays it anywhere and
    :meth:`save` copies it, with its artifacts, to a folder.
    """

    model: Mapping[str, Any]
    data: Mapping[str, Any] | None
    environment: Mapping[str, Any]
    plugins: tuple[Mapping[str, Any], ...]
    analyzers: tuple[AnalyzerRecord, ...]
    seed: int
    fail_on: str
    exit_code: int = 0
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    workers: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "analyzers", tuple(self.analyzers))
        object.__setattr__(self, "plugins", tuple(self.plugins))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    # -- queries -------------------------------------------------------------------------------
    def record(self, name: str) -> AnalyzerRecord:
        for r in self.analyzers:
            if r.name == name:
                return r
        raise KeyError(f"no analyzer {name!r} in this report; it has {[r.name for r in self.analyzers]}")

    def findings(self, at_least: Severity | str = Severity.INFO) -> list[tuple[str, Finding]]:
        floor = Severity(at_least).rank
        return [(r.name, f) for r in self.analyzers for f in r.findings if f.severity.rank >= floor]

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for _, f in self.findings()), key=lambda s: s.rank, default=None)

    def phase_breakdown(self) -> list[tuple[str, float]]:
        """Every timed phase of the run as ``(label, seconds)``, slowest first.

        The run's own phases (``run: prescan``...), each worker's start-up, framework import, plugin
        loading and model loading (``tensorflow worker: import``), and each analyzer: its timed phases
        plus the rest as ``other`` (``explain.gradients: randomisation``), or its total when it timed
        none. Workers run side by side, so the phases overlap in time: they do not add up to the total.
        """
        out: list[tuple[str, float]] = []
        for key, value in self.timings.items():
            if key != "total_s" and key.endswith("_s"):
                out.append((f"run: {key[:-2]}", float(value)))
        names = {"spawn_s": "start", "import_s": "import", "plugins_s": "plugins", "load_s": "model load"}
        for backend, stats in sorted(self.workers.items()):
            for key, label in names.items():
                if key in stats:
                    out.append((f"{backend} worker: {label}", float(stats[key])))
        for r in self.analyzers:
            if r.phases:
                out.extend((f"{r.name}: {name}", float(s)) for name, s in r.phases.items())
                rest = r.duration_s - sum(float(s) for s in r.phases.values())
                if rest >= 0.001:
                    out.append((f"{r.name}: other", round(rest, 3)))
            elif r.status != "skipped" or r.duration_s:
                out.append((r.name, float(r.duration_s)))
        return sorted(out, key=lambda p: -p[1])

    @property
    def plugin_problems(self) -> list[str]:
        return [f"plugin {p['name']!r}: {p['error']}" for p in self.plugins if p.get("error")]

    def assert_ok(self, fail_on: str | None = None, allow: Iterable[str] = ()) -> None:
        """Fail (``AssertionError``) listing the findings at or above ``fail_on`` whose code matches no
        ``allow`` glob, and any analyzer that did not finish. See :func:`diagnostics.assertions.assert_ok`."""
        __tracebackhide__ = True
        from .assertions import assert_ok

        assert_ok(self, fail_on=fail_on, allow=allow)

    def compute_exit_code(self) -> ExitCode:
        """The exit code this report implies (see :class:`ExitCode` for precedence)."""
        if any(r.status.problem for r in self.analyzers) or self.plugin_problems:
            return ExitCode.ANALYZER_FAILED
        if self.fail_on != "never" and self.findings(self.fail_on):
            return ExitCode.FINDINGS
        return ExitCode.OK

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema_version": self.schema_version,
            "model": dict(self.model),
            "data": None if self.data is None else dict(self.data),
            "environment": dict(self.environment),
            "plugins": [dict(p) for p in self.plugins],
            "analyzers": [r.to_dict() for r in self.analyzers],
            "seed": self.seed,
            "fail_on": self.fail_on,
            "exit_code": int(self.exit_code),
            "timings": dict(self.timings),
        }
        if self.workers:
            out["workers"] = {k: dict(v) for k, v in self.workers.items()}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Report":
        version = d.get("schema_version")
        if version not in READABLE_SCHEMAS:
            older = isinstance(version, int) and version < min(READABLE_SCHEMAS)
            raise ValueError(
                f"report schema version {version!r} is not supported: this diagnostics reads versions "
                f"{', '.join(map(str, READABLE_SCHEMAS))}; "
                + ("the report predates the typed explanation verdicts: " if older else "")
                + "re-run diagnose to regenerate the report"
            )
        return cls(
            model=d["model"],
            data=d.get("data"),
            environment=d.get("environment", {}),
            plugins=tuple(d.get("plugins", ())),
            analyzers=tuple(AnalyzerRecord.from_dict(r) for r in d["analyzers"]),
            seed=d["seed"],
            fail_on=d["fail_on"],
            exit_code=d.get("exit_code", 0),
            timings=d.get("timings", {}),
            workers=d.get("workers", {}),
            warnings=tuple(d.get("warnings", ())),
            schema_version=version,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Report":
        """Read a report from ``report.json`` or from the directory holding it."""
        p = Path(path)
        if p.is_dir():
            p = p / REPORT_JSON
        report = cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        object.__setattr__(report, "directory", str(p.parent))  # where its artifacts are (images, save())
        return report

    # -- display (diagnostics.notebook renders) ------------------------------------------------
    def _repr_html_(self) -> str:
        """The report inline in Jupyter: verdicts, the warnings and errors, the explanation maps (embedded)."""
        from .notebook import render

        return render(self)

    def _repr_pretty_(self, printer, cycle) -> None:
        """One line for IPython's plain-text view (the dataclass repr runs to tens of kilobytes)."""
        from .notebook import one_line

        printer.text(one_line(self))

    def show(self) -> None:
        """Display the report: inline in a Jupyter notebook, else the verdict table on stdout."""
        from .notebook import show

        show(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``report.json``, ``report.html`` and the artifacts to the folder ``path``; return it.

        All or nothing: the files are written beside it first and renamed into place (a report already in
        ``path`` stays as it was when writing fails, and a folder this call created is removed again).
        """
        from .notebook import save

        return save(self, Path(path))


def strip_timings(d: Any) -> Any:
    """The report dict without the keys that vary between identical runs (for comparisons)."""
    if isinstance(d, Mapping):
        return {k: strip_timings(v) for k, v in d.items() if k not in TIMING_KEYS}
    if isinstance(d, list):
        return [strip_timings(v) for v in d]
    return d


# -- output directory ------------------------------------------------------------------------------
class OutputDirError(Exception):
    """The output directory cannot be written."""


def check_writable(out_dir: Path) -> None:
    """Fail early, before any work, when ``out_dir`` cannot receive a report."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputDirError(f"cannot write the report to {out_dir}: {e.strerror or e}") from None


def new_staging_dir(out_dir: Path) -> Path:
    """A private directory inside ``out_dir`` where a run writes everything before committing."""
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))


def commit(out_dir: Path, staging: Path, files: Mapping[str, str]) -> None:
    """Publish a finished run: artifacts directory swapped in, then each file renamed into place.

    Until this runs, the previous report in ``out_dir`` is untouched. SIGINT is held off during the
    few renames so that an interrupt cannot leave a report pointing at the wrong artifacts.
    """
    for name, text in files.items():
        (staging / name).write_text(text, encoding="utf-8")
    staged_artifacts = staging / ARTIFACTS
    staged_artifacts.mkdir(exist_ok=True)
    previous = signal.getsignal(signal.SIGINT) if _main_thread() else None
    if previous is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        old = out_dir / ARTIFACTS
        trash = None
        if old.exists():
            trash = Path(tempfile.mkdtemp(prefix=".old-", dir=out_dir))
            os.replace(old, trash / ARTIFACTS)
        os.replace(staged_artifacts, old)
        for name in files:  # report.json last in the mapping's order is up to the caller
            os.replace(staging / name, out_dir / name)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def discard(staging: Path | None) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def severities_at_least(level: str) -> Iterable[Severity]:
    floor = Severity(level).rank
    return [s for s in Severity if s.rank >= floor]
