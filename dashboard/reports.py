"""Finding, loading and reading reports for the dashboard. No Streamlit here, so it is testable alone.

Everything the dashboard shows comes from :class:`diagnostics.report.Report` (the model the CLI
writes) and the artifact files beside it. Nothing here analyses a model: functions only pick values
out of a report and reshape them for display.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from diagnostics.report import REPORT_JSON, AnalyzerRecord, Report
from diagnostics.textsafe import streamlit_markdown
from diagnostics.verdicts import MethodExplanation

#: Environment variable through which ``diagnose dashboard`` passes the report or directory to open.
REPORT_ENV = "DIAGNOSTICS_DASHBOARD_REPORT"
#: How deep below a directory the dashboard looks for ``report.json`` files.
SEARCH_DEPTH = 3
#: Words (in an analyzer's name, metric keys or artifact names) that route it to a dedicated page.
TOPICS: dict[str, tuple[str, ...]] = {
    "training": ("overfit", "train", "memoris", "memoriz", "calibrat", "history", "generaliz", "generalis"),
    "gradients": ("grad", "dead", "saturat", "activation", "units"),
    "weights": ("weight", "spectr", "alpha", "esd"),
    "gan": ("gan", "generator", "discriminator", "coverage", "mode_collapse"),
}


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
# Both are diagnostics.textsafe.streamlit_markdown: every ASCII punctuation mark backslash-escaped
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


def _words(record: AnalyzerRecord) -> str:
    return " ".join([record.name, *record.artifacts.keys(), *map(str, record.metrics.keys())]).lower()


def about(report: Report, topic: str, categories: Iterable[str] = ("health",)) -> list[AnalyzerRecord]:
    """Analyzers whose category is in ``categories`` and whose name mentions ``topic``'s words.

    The name decides first (``health.gradients`` belongs to the Gradients page); metric keys and
    artifact names are used only for analyzers whose name matches no topic at all.
    """
    cats = set(categories)
    words = TOPICS[topic]
    chosen = []
    for r in report.analyzers:
        if r.category not in cats:
            continue
        name = r.name.lower()
        named_topics = [t for t, ws in TOPICS.items() if any(w in name for w in ws)]
        if named_topics:
            if topic in named_topics:
                chosen.append(r)
        elif any(w in _words(r) for w in words):
            chosen.append(r)
    return chosen


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


def series(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, list[float]]:
    """Numeric lists (at least two values) anywhere in ``metrics``, by dotted path."""
    out: dict[str, list[float]] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(series(v, key + "."))
        elif isinstance(v, (list, tuple)) and len(v) >= 2 and all(is_number(x) for x in v):
            out[key] = [float(x) for x in v]
    return out


_LABEL_KEYS = ("layer", "name", "variable", "method", "class", "label")


def tables(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, list[dict[str, Any]]]:
    """Lists of records (dicts sharing keys, e.g. one per layer) anywhere in ``metrics``, by dotted path.

    Also turns a mapping of records keyed by name (``{"dense": {"alpha": 2.1}, ...}``) into a list
    with the key under ``"name"``.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, (list, tuple)) and v and all(isinstance(x, Mapping) for x in v):
            out[key] = [dict(x) for x in v]
        elif isinstance(v, Mapping) and v:
            values = list(v.values())
            if all(isinstance(x, Mapping) for x in values) and any(
                    any(is_number(y) for y in x.values()) for x in values):
                out[key] = [{"name": str(name), **dict(x)} for name, x in v.items()]
            else:
                out.update(tables(v, key + "."))
    return out


def label_column(rows: list[Mapping[str, Any]]) -> str | None:
    keys = set().union(*(r.keys() for r in rows)) if rows else set()
    for k in _LABEL_KEYS:
        if k in keys:
            return k
    return None


def numeric_columns(rows: list[Mapping[str, Any]]) -> list[str]:
    """Columns whose values are numbers in at least one row (and nothing but numbers or None)."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    cols = []
    for k in keys:
        vals = [r.get(k) for r in rows]
        if any(is_number(v) for v in vals) and all(v is None or is_number(v) for v in vals):
            cols.append(k)
    return cols


def find_key(metrics: Mapping[str, Any], *names: str) -> Any:
    """The first value stored under any of ``names`` at any depth of ``metrics`` (None if absent)."""
    wanted = [n.lower() for n in names]
    stack: list[Any] = [metrics]
    while stack:
        node = stack.pop(0)
        if isinstance(node, Mapping):
            lowered = {str(k).lower(): v for k, v in node.items()}
            for w in wanted:  # the earlier name wins among keys at the same depth
                if w in lowered:
                    return lowered[w]
            stack.extend(v for v in node.values() if isinstance(v, (Mapping, list)))
    return None


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
VERDICT_COLOURS = {"trusted": "#2e7d32", "doubtful": "#ef6c00", "failed": "#c62828"}


def iter_findings(report: Report) -> Iterator[tuple[AnalyzerRecord, Any]]:
    for r in report.analyzers:
        for f in r.findings:
            yield r, f


class Method:
    """One explanation method as the report holds it: the analyzer's record and the method's typed
    section (:class:`diagnostics.verdicts.MethodExplanation`), or no section when the analyzer itself
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
