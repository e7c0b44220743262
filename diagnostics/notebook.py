"""The report in a notebook: inline HTML, progress while it runs, ``show()`` and ``save()``.

:meth:`Report._repr_html_ <diagnostics.Report._repr_html_>` renders :func:`render`: the verdict, one row
per analyzer, the explanation methods' verdicts, the warnings and errors, the health measures (the HTML
report's own blocks, :func:`diagnostics._html.measure_blocks`: chart, thresholds, values), and the PNG artifacts embedded
as ``data:`` URIs, so that a saved notebook (or its HTML export) shows the pictures after the report's
folder is gone. Styles are inline: a notebook page has its own CSS, and JupyterLab drops ``<style>``
from outputs it does not trust. Every string from the model, the data or a plugin goes through
:func:`diagnostics._textsafe.html_text`.

:class:`NotebookProgress` is the run's progress as one display updated in place (an IPython display
handle): no ipywidgets, whose bars need a live widget manager and show as raw text in a saved notebook,
on GitHub and in nbconvert's HTML, where this HTML stays readable.
"""

from __future__ import annotations

import base64
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Iterable

from . import report as report_mod
from ._html import SEVERITY_COLOURS, STATUS_COLOURS, VERDICT_COLOURS, measure_blocks
from .report import AnalyzerRecord, Report
from ._runner import Progress
from ._textsafe import html_text as escape
from ._verdicts import Outcome, phrase

#: Findings listed inline (the worst first); the rest are counted.
MAX_FINDINGS = 10
#: Captured warnings listed inline; the rest are counted.
MAX_WARNINGS = 20
_MUTED = "#757575"
_FONT = "font:13px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#212121"
_TABLE = "border-collapse:collapse;margin:.3rem 0 .6rem 0"
_CELL = "text-align:left;padding:.15rem .6rem;border-bottom:1px solid #eee;vertical-align:top"
_HEAD = _CELL + ";background:#fafafa;font-weight:600"
_H = "margin:.8rem 0 .2rem 0;font-size:1.05em"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not plain Python). IPython is never imported
    here: if it is not loaded already, this is not a kernel."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


# -- the report, rendered ------------------------------------------------------------------------------
def _pill(text: str, colour: str) -> str:
    return (f"<span style='display:inline-block;padding:0 .5rem;border-radius:.7rem;color:#fff;font-size:.85em;"
            f"background:{colour}'>{escape(text)}</span>")


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    out = [f"<table style=\"{_TABLE}\"><tr>" + "".join(f"<th style=\"{_HEAD}\">{escape(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td style=\"{_CELL}\">{cell}</td>" for cell in row) + "</tr>" for row in rows]
    return "".join(out) + "</table>"


def _data_uri(path: Path) -> str | None:
    try:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return None


def _is_temporary(report: Report) -> bool:
    return bool(getattr(report, "temporary", False))


def render(report: Report) -> str:
    """The report as one self-contained HTML fragment (images embedded from ``report.directory``)."""
    m = report.model
    info = m.get("info", {}) or {}
    worst = report.worst.value if report.worst else None
    backends = ", ".join(report.environment.get("backends", []) or [])
    facts = [f"{escape(info.get('kind', '?'))} model", f"{escape(info.get('n_params', '?'))} parameters",
             f"{escape(info.get('n_layers', '?'))} layers"]
    if backends:
        facts.append(f"{escape(backends)} backend")
    if report.data:
        shapes = ", ".join(f"{escape(k)} {'×'.join(escape(n) for n in v)}" for k, v in (report.data.get("shapes") or {}).items())
        facts.append(f"data: {escape(report.data.get('source'))}" + (f" ({shapes})" if shapes else ""))
    facts.append(f"exit code {int(report.exit_code)} (fail on {escape(report.fail_on)})")
    parts = [f"<div class='diagnostics-report' style=\"{_FONT}\">",
             f"<div><b style='font-size:1.2em'>{escape(m.get('name'))}</b> {_pill(worst or 'clean', SEVERITY_COLOURS[worst])}"
             f" <span style='color:{_MUTED}'>{' · '.join(facts)}</span></div>"]
    for problem in report.plugin_problems:
        parts.append(f"<p>{_pill('plugin', STATUS_COLOURS['failed'])} {escape(problem)}</p>")
    parts.append(_verdict_table(report.analyzers))
    parts.append(_methods(report.analyzers))
    parts.append(_findings(report))
    parts.append(_measures(report))
    parts.append(_images(report))
    parts.append(_warnings(report.warnings))
    parts.append(_footer(report))
    parts.append("</div>")
    return "\n".join(p for p in parts if p)


def _verdict_table(records: tuple[AnalyzerRecord, ...]) -> str:
    rows = []
    for r in records:
        w = r.worst.value if r.worst else None
        note = f"<span style='color:{_MUTED}'>{escape(r.reason)}</span>" if r.reason else ""
        rows.append((escape(r.name), _pill(r.status.value, STATUS_COLOURS[r.status.value]),
                     _pill(w, SEVERITY_COLOURS[w]) if w else "-", str(len(r.findings)),
                     f"{r.duration_s:.1f} s", note))
    return _table(("analyzer", "status", "worst", "findings", "time", ""), rows)


def _methods(records: tuple[AnalyzerRecord, ...]) -> str:
    rows = []
    for r in records:
        for e in r.explanations:
            v = e.verdict.value if e.verdict is not None else "not run"
            bad = "; ".join(escape(phrase(k)) for k in e.checks if k.outcome.value != "passed")
            rows.append((f"{escape(r.name)}: {escape(e.method)}", _pill(v, VERDICT_COLOURS.get(v, _MUTED)),
                         bad or f"<span style='color:{_MUTED}'>{escape(e.skipped or 'every check passed')}</span>"))
    if not rows:
        return ""
    return f"<div style=\"{_H}\"><b>Explanation methods</b></div>" + _table(("method", "verdict", "checks not passed"), rows)


def _findings(report: Report) -> str:
    found = sorted(report.findings("warning"), key=lambda nf: -nf[1].severity.rank)
    if not found:
        return f"<p style='color:{_MUTED}'>No warnings or errors.</p>"
    rows = [(_pill(f.severity.value, SEVERITY_COLOURS[f.severity.value]), f"<code>{escape(f.code)}</code>",
             escape(f.where), escape(f.message)) for _, f in found[:MAX_FINDINGS]]
    more = len(found) - MAX_FINDINGS
    tail = f"<p style='color:{_MUTED}'>… and {more} more (report.findings('warning'))</p>" if more > 0 else ""
    return (f"<div style=\"{_H}\"><b>Warnings and errors</b> <span style='color:{_MUTED}'>({len(found)})</span></div>"
            + _table(("severity", "code", "where", "message"), rows) + tail)


def _measures(report: Report) -> str:
    """Each health analyzer's measures, folded per analyzer: open when one of its values did not pass."""
    base = getattr(report, "directory", None)
    out = []
    for r in report.analyzers:
        if not r.measures:
            continue
        bad = [s for s in r.measures if s.worst is not Outcome.PASSED]
        count = f"{len(r.measures)} measure(s)" + (f", {len(bad)} not passed" if bad else ", all passed")
        out.append(f"<details style='margin:.3rem 0'{' open' if bad else ''}><summary><b>{escape(r.name)}</b> "
                   f"<span style='color:{_MUTED}'>{escape(count)}</span></summary>"
                   f"{measure_blocks(r, Path(base) if base else None)}</details>")
    if not out:
        return ""
    return f"<div style=\"{_H}\"><b>Health measures</b></div>" + "".join(out)


def _images(report: Report) -> str:
    base = getattr(report, "directory", None)
    if not base:
        return ""
    maps, others = [], []
    for r in report.analyzers:
        for name, rel in sorted(r.artifacts.items()):
            if not rel.lower().endswith(".png") or ".." in Path(rel).parts or Path(rel).is_absolute():
                continue
            src = _data_uri(Path(base) / rel)
            if src:
                figure = (f"<figure style='display:inline-block;margin:.3rem .6rem .3rem 0;vertical-align:top;max-width:100%'>"
                          f"<img alt='{escape(r.name)}: {escape(name)}' src='{src}' style='max-width:100%;border:1px solid #eee'>"
                          f"<figcaption style='color:{_MUTED}'>{escape(r.name)}: {escape(name)}</figcaption></figure>")
                (maps if r.category == "explanation" else others).append(figure)
    out = ""
    if maps:
        out += f"<div style=\"{_H}\"><b>Explanation maps</b></div>" + "".join(maps)
    if others:
        out += (f"<details style='margin:.4rem 0'><summary>Other plots ({len(others)})</summary>" + "".join(others)
                + "</details>")
    return out


def _warnings(warnings: tuple[str, ...]) -> str:
    if not warnings:
        return ""
    lines = "\n".join(escape(w) for w in warnings[:MAX_WARNINGS])
    more = f"\n… and {len(warnings) - MAX_WARNINGS} more (report.warnings)" if len(warnings) > MAX_WARNINGS else ""
    return (f"<details style='margin:.4rem 0'><summary style='color:{_MUTED}'>{len(warnings)} warning(s) printed "
            f"during the run, captured here (report.warnings)</summary><pre style='background:#f5f5f5;padding:.4rem;"
            f"white-space:pre-wrap;max-height:240px;overflow:auto'>{lines}{more}</pre></details>")


def _footer(report: Report) -> str:
    where = getattr(report, "directory", None)
    if not where:
        return ""
    kept = ("temporary: removed when this report is garbage-collected or Python exits; report.save(path) keeps a copy"
            if _is_temporary(report) else "report.json, report.html and the artifacts")
    return f"<p style='color:{_MUTED};margin-top:.6rem'>Folder: <code>{escape(where)}</code> ({escape(kept)})</p>"


def one_line(report: Report) -> str:
    """The report in one line of plain text (IPython's text view)."""
    from ._textsafe import terminal

    counts: dict[str, int] = {}
    for r in report.analyzers:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    statuses = ", ".join(f"{n} {s}" for s, n in counts.items())
    worst = report.worst.value if report.worst else "clean"
    return (f"<diagnostics.Report {terminal(report.model.get('name'))}: {worst}, {len(report.analyzers)} analyzers "
            f"({statuses}), exit {int(report.exit_code)}; report.show() for the table>")


def show(report: Report) -> None:
    """Inline in a notebook; the terminal's verdict table elsewhere."""
    if in_notebook():
        from IPython.display import display

        display(report)
        return
    from ._table import verdict_table

    print(verdict_table(report, colour=hasattr(sys.stdout, "isatty") and sys.stdout.isatty()))


# -- save ------------------------------------------------------------------------------------------------
def save(report: Report, path: Path) -> Path:
    """Copy the report to ``path`` (see :meth:`diagnostics.Report.save`)."""
    from ._html import render_html, write_archive

    missing = []  # folders this call creates, deepest first: removed again if it fails
    p = path.absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    staging = None
    try:
        report_mod.check_writable(path)
        staging = report_mod.new_staging_dir(path)
        source = getattr(report, "directory", None)
        artifacts = Path(source) / report_mod.ARTIFACTS if source else None
        if artifacts is not None and artifacts.is_dir():
            shutil.copytree(artifacts, staging / report_mod.ARTIFACTS, symlinks=True)
        files = {report_mod.REPORT_HTML: render_html(report, staging), report_mod.REPORT_JSON: report.to_json()}
        report_mod.commit(path, staging, files)
        staging = None
    except BaseException:
        report_mod.discard(staging)
        for d in missing:
            try:
                d.rmdir()
            except OSError:
                break
        raise
    write_archive(path)  # as a run does: a page that links its arrays gets report.zip beside it, to share whole
    return path


# -- progress ----------------------------------------------------------------------------------------------
class NotebookProgress(Progress):
    """The run's progress in the cell that runs it: one HTML display, updated in place.

    The analyzers finish on the runner's threads; the display is updated from whichever thread reports
    (ipykernel sends it to the executing cell), a bar at most every ``interval`` seconds.
    """

    def __init__(self, title: str, interval: float = 0.25):
        super().__init__(quiet=True)  # the base class's stderr lines are replaced by the display below
        from IPython.display import HTML, display

        self._HTML = HTML
        self.title = title
        self.interval = interval
        self.lines: list[str] = []
        self.current = ""
        self.started = time.monotonic()
        self._last = 0.0
        self._state_lock = threading.Lock()
        self.handle = display(HTML(self._html()), display_id=True)

    def say(self, text: str) -> None:
        with self._state_lock:
            self.current = escape(text)
        self._update(force=True)

    def step(self, name: str, done: int, total: int, message: str = "") -> None:
        if total <= 0:
            return
        with self._state_lock:
            self.current = (f"{escape(name)} {_bar(done / total, 120)} {min(done, total)}/{total} "
                            f"<span style='color:{_MUTED}'>{escape(message)}</span>")
        self._update()

    def finished(self, record: AnalyzerRecord) -> None:
        with self._lock:
            self.done += 1
        note = f": {escape(record.reason)}" if record.reason else ""
        with self._state_lock:
            self.lines.append(f"{_pill(record.status.value, STATUS_COLOURS[record.status.value])} {escape(record.name)}"
                              f"<span style='color:{_MUTED}'>{note} ({record.duration_s:.1f} s)</span>")
            self.current = ""
        self._update(force=True)

    def close(self, outcome: str) -> None:
        """The last state: ``outcome`` is one line (the verdict, or why no report came)."""
        with self._state_lock:
            self.current = escape(outcome)
        self._update(force=True)

    def _update(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._state_lock:
            if not force and now - self._last < self.interval:
                return
            self._last = now
            html = self._html()
        try:
            self.handle.update(self._HTML(html))
        except Exception:  # noqa: BLE001 - a display that cannot be updated must not stop the run
            pass

    def _html(self) -> str:
        total = self.total or 0
        fraction = self.done / total if total else 0.0
        count = f"{self.done}/{total} analyzers" if total else "starting"
        elapsed = time.monotonic() - self.started
        lines = "".join(f"<div>{line}</div>" for line in self.lines)
        return (f"<div class='diagnostics-progress' style=\"{_FONT}\"><div><b>{escape(self.title)}</b> "
                f"{_bar(fraction, 220)} {count} · {elapsed:.0f} s</div>{lines}"
                f"<div style='color:{_MUTED}'>{self.current}</div></div>")


def _bar(fraction: float, width: int) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    return (f"<span style='display:inline-block;vertical-align:middle;width:{width}px;height:.6em;background:#eee;"
            f"border-radius:.3em'><span style='display:block;height:100%;width:{100 * fraction:.0f}%;"
            f"background:#2e7d32;border-radius:.3em'></span></span>")
