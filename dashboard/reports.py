"""Finding, loading and reading reports for the dashboard. No Streamlit here, so it is testable alone.

Everything the dashboard shows comes from :class:`diagnostics.report.Report` (the model the CLI
writes) and the artifact files beside it. Nothing here analyses a model: functions only pick values
out of a report and reshape them for display. What a page shows is chosen by the report's typed
sections (explanation methods, health measures) and categories, never by words in names or keys.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from diagnostics import _measure_text as measure_text
from diagnostics._measures import MeasureSection
from diagnostics.report import REPORT_JSON, AnalyzerRecord, Report
from diagnostics._textsafe import streamlit_markdown
from diagnostics._verdicts import MethodExplanation, Outcome

#: Environment variable through which ``diagnose dashboard`` passes the report or directory to open.
REPORT_ENV = "DIAGNOSTICS_DASHBOARD_REPORT"
#: How deep below a directory the dashboard looks for ``report.json`` files.
SEARCH_DEPTH = 3

def start_path(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The report or directory to open: ``streamlit run app.py -- PATH``, then the environment, then ./reports."""
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    # Under `streamlit run`, sys.argv[0] is the app script and the rest are the user's arguments.
    # Under pytest (AppTest) sys.argv belongs to pytest, so only trust it when argv[0] is our script.
    if len(argv) > 1 and Path(argv[0]).name == "app.py":
        return Path(argv[1]).expanduser()
    if environ.get(REPORT_ENV):
        return Path(environ[REPORT_ENV]).expanduser()
    return Path("reports")


def discover(path: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Report directories at or below ``path`` (a report.json, a report directory, or a folder of them)."""
    path = Path(path)
    if path.is_file():
        return [path.parent] if path.name == REPORT_JSON else []
    if not path.is_dir():
        return []
    if (path / REPORT_JSON).is_file():
        return [path]
    found: list[Path] = []

    def walk(d: Path, level: int) -> None:
        try:
            children = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for c in children:
            if (c / REPORT_JSON).is_file():
                found.append(c)
            elif level < depth:
                walk(c, level + 1)

    walk(path, 1)
    return found


def report_mtime(directory: Path) -> float:
    try:
        return (Path(directory) / REPORT_JSON).stat().st_mtime
    except OSError:
        return 0.0


def load(directory: str | os.PathLike) -> Report:
    """:meth:`Report.load`; raises ``ValueError`` with a readable message for unreadable reports."""
    try:
        return Report.load(directory)
    except FileNotFoundError:
        raise ValueError(f"no {REPORT_JSON} in {directory}") from None
    except (KeyError, TypeError) as e:
        raise ValueError(f"{directory}/{REPORT_JSON} is not a diagnostics report (missing {e})") from None
    except ValueError as e:  # includes JSONDecodeError and the schema-version message
        raise ValueError(f"{directory}/{REPORT_JSON}: {e}") from None


# -- text -------------------------------------------------------------------------------------------
# Both are diagnostics._textsafe.streamlit_markdown: every ASCII punctuation mark backslash-escaped
# (CommonMark allows it for any of them, so the text reads the same), so nothing in a report can become
# a link, an image, HTML, a colour directive (``:red[...]``), an icon or LaTeX; control and bidi
# characters are shown as ``\x1b``-style escapes.
def md_escape(text: Any) -> str:
    """Text for a Markdown body (``st.markdown``, alerts, captions): a newline stays a line break
    inside the same paragraph, so it can never start a heading or a list."""
    return streamlit_markdown(text, multiline=True)


def md_line(text: Any) -> str:
    """Text for one line of Markdown: titles, headings, badges, widget, metric, expander and image
    labels (a newline is shown as ``\\n``)."""
    return streamlit_markdown(text)


# -- choosing analyzers -----------------------------------------------------------------------------
def by_category(report: Report, category: str) -> list[AnalyzerRecord]:
    return [r for r in report.analyzers if r.category == category]


def health_records(report: Report) -> list[AnalyzerRecord]:
    """The analyzers the Health page shows, in report order: every one with measure sections (whatever
    its category, but ``data``: those are the Data page's), and every ``health`` analyzer without any (skipped, failed, not yet a
    :class:`~diagnostics.HealthAnalyzer`, or read from a schema 2 report), shown by its findings and metrics."""
    return [r for r in report.analyzers if r.category != "data" and (r.measures or r.category == "health")]


def data_records(report: Report) -> list[AnalyzerRecord]:
    """The analyzers the Data page shows, in report order: those of category ``data`` (the faults that
    live in the data and the predictions: drift, leakage, prediction quality), with or without sections."""
    return [r for r in report.analyzers if r.category == "data"]


# -- reading metrics --------------------------------------------------------------------------------
def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def scalars(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattened scalar metrics: ``{"a.b": 1.0}`` for ``{"a": {"b": 1.0}}``; lists are left out."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(scalars(v, key + "."))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[key] = v
    return out


def metric_rows(record: AnalyzerRecord) -> list[dict[str, str]]:
    """The record's scalar metrics as ``{"metric", "value"}`` rows: the generic table of an analyzer that
    has no measure sections (its lists and tables stay in the JSON view)."""
    return [{"metric": k, "value": f"{v:.4g}" if isinstance(v, float) else str(v)}
            for k, v in scalars(record.metrics).items()]


# -- health measures (the report's typed sections) ----------------------------------------------------
# Worded as every view words them (diagnostics._measure_text: thresholds, outcomes, intervals), read by
# scope, direction and outcome, never by an analyzer's name or a metric key.
#: A value's outcome as the views call it (the severity of the finding it made), with that severity's colour.
OUTCOME_COLOURS = {"passed": "#2e7d32", "warning": "#ef6c00", "error": "#c62828"}


def outcome_word(outcome: Outcome) -> str:
    return measure_text.OUTCOME_WORDS[outcome]


def with_unit(section: MeasureSection, value: float | None) -> str:
    """A value in its measure's format with its unit, as a tile shows it ("n/a": not measurable, e.g.
    non-finite); a percentage carries its own unit."""
    text = measure_text.value(section, value)
    return text + (f" {section.unit}" if section.unit and value is not None and "%" not in section.format else "")


def value_rows(section: MeasureSection) -> list[dict[str, Any]]:
    """One row per judged value: its place (the column named by the scope: ``layer``, ``epoch``...), series,
    value, 95% interval, n, outcome, the threshold it crossed and the plugin's note; columns no value
    fills are left out, and the outcome of a neutral measure."""
    place = measure_text.where_heading(section)
    rows = [{place: v.where or "model", "series": v.series, "value": v.value, "95% interval": measure_text.interval(v),
             "n": v.n, "outcome": outcome_word(v.outcome), "crossed": measure_text.crossed(section, v.threshold),
             "note": v.note} for v in section.values]
    empty = [k for k in ("series", "95% interval", "n", "crossed", "note") if all(r[k] in ("", None) for r in rows)]
    if not measure_text.judged(section):
        empty.append("outcome")  # a neutral measure is shown, never judged
    return [{k: x for k, x in r.items() if k not in empty} for r in rows]


def measure_summary(records: Iterable[AnalyzerRecord]) -> list[dict[str, Any]]:
    """One row per measure section of ``records``: the table atop the Health page."""
    return [{"analyzer": r.name, "measure": s.title, "unit": s.unit, "code": s.code, "scope": s.scope.value,
             "worst": outcome_word(s.worst) if measure_text.judged(s) else "not judged", "values": measure_text.tally(s),
             "judged": measure_text.thresholds(s)}
            for r in records for s in r.measures]


def measure_changes(a: AnalyzerRecord, b: AnalyzerRecord) -> list[dict[str, Any]]:
    """Values of the same measure at the same place whose number or outcome differs between two runs
    (a value only one run measured counts as changed)."""
    def keyed(r):
        return {(s.code, v.where, v.series): (s, v) for s in r.measures for v in s.values}

    ka, kb = keyed(a), keyed(b)
    rows = []
    for k in dict.fromkeys([*ka, *kb]):
        (sa, va), (sb, vb) = ka.get(k, (None, None)), kb.get(k, (None, None))
        if va is not None and vb is not None and (va.value, va.outcome) == (vb.value, vb.outcome):
            continue
        s = sa or sb
        delta = vb.value - va.value if va is not None and vb is not None and None not in (va.value, vb.value) else None
        rows.append({"analyzer": a.name, "measure": s.title, "where": " · ".join(p for p in (k[2], k[1]) if p) or "model",
                     "A": None if va is None else va.value, "B": None if vb is None else vb.value, "B − A": delta,
                     "outcome A": "—" if va is None else outcome_word(va.outcome),
                     "outcome B": "—" if vb is None else outcome_word(vb.outcome)})
    return rows


# -- artifacts --------------------------------------------------------------------------------------
def artifact_path(directory: Path, rel: str) -> Path | None:
    """The artifact's absolute path if it exists inside the report directory (never outside it)."""
    base = Path(directory).resolve()
    p = (base / rel).resolve()
    if base != p and base not in p.parents:
        return None
    return p if p.is_file() else None


def images(record: AnalyzerRecord) -> list[tuple[str, str]]:
    return [(k, v) for k, v in sorted(record.artifacts.items()) if v.lower().endswith(".png")]


def arrays(record: AnalyzerRecord) -> list[tuple[str, str]]:
    return [(k, v) for k, v in sorted(record.artifacts.items()) if v.lower().endswith(".npy")]


def load_array(directory: Path, rel: str):
    """A ``.npy`` artifact, read without pickle (arrays of objects are refused)."""
    import numpy as np

    p = artifact_path(directory, rel)
    if p is None:
        return None
    try:
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError):
        return None


# -- explanation methods (the report's typed sections) -----------------------------------------------
VERDICT_COLOURS = {"trusted": "#2e7d32", "undecided": "#546e7a", "doubtful": "#ef6c00", "failed": "#c62828"}


def iter_findings(report: Report) -> Iterator[tuple[AnalyzerRecord, Any]]:
    for r in report.analyzers:
        for f in r.findings:
            yield r, f


class Method:
    """One explanation method as the report holds it: the analyzer's record and the method's typed
    section (:class:`diagnostics._verdicts.MethodExplanation`), or no section when the analyzer itself
    did not run (skipped, failed, timed out)."""

    def __init__(self, name: str, record: AnalyzerRecord, section: MethodExplanation | None):
        self.name, self.record, self.section = name, record, section

    @property
    def verdict(self) -> tuple[str | None, str]:
        """(verdict, reasons joined) — (None, why) for a method or analyzer that did not run."""
        s = self.section
        if s is None:
            return None, self.record.reason
        if s.verdict is None:
            return None, s.skipped
        return s.verdict.value, "; ".join(s.reasons)

    @property
    def artifacts(self) -> dict[str, str]:
        return dict(self.section.artifacts) if self.section is not None else {}

    def findings(self) -> AnalyzerRecord:
        """The record with only this method's findings (``where`` names the method)."""
        import dataclasses

        if self.section is None:
            return self.record
        return dataclasses.replace(self.record, findings=tuple(f for f in self.record.findings
                                                               if f.where == self.section.method))

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Method({self.name!r} from {self.record.name!r})"


def explanation_methods(report: Report) -> list[Method]:
    """Every explanation method in the report: one per typed section of each ``explanation`` analyzer
    (named ``analyzer:method`` when the report has several such analyzers), and one entry for an
    analyzer that did not run, so the page can say why."""
    records = by_category(report, "explanation")
    methods: list[Method] = []
    for r in records:
        if not r.explanations:
            methods.append(Method(r.name, r, None))
        for s in r.explanations:
            methods.append(Method(s.method if len(records) == 1 else f"{r.name}:{s.method}", r, s))
    return methods
