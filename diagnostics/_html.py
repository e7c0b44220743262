"""The self-contained HTML report: the same :class:`Report`, rendered, that survives being shared alone.

- A table of contents at the top links every analyzer's section, coloured by its worst finding (or its
  status when it did not finish); every section links back to it.
- Images (PNG artifacts) are inlined as data URIs. The other artifacts (arrays as ``.npy``) are embedded
  as downloadable data-URI links when together they take at most :data:`EMBED_LIMIT` bytes; above that the
  page links them beside it and :func:`write_archive` puts the whole report folder in ``report.zip`` next
  to the page. The page says which of the two it did.
- Explained samples are listed with the output explained and, where the data has them, the true label.
- A health analyzer's measures (its :class:`~diagnostics._measures.MeasureSection` s) are one block each:
  the title and unit, the chart the host drew, the thresholds and their reference, and the values with
  their 95% intervals and outcomes (a long list shows the values that did not pass, the rest folded).
  The blocks are read by scope, direction and outcome, never by analyzer name or metric key, so a new
  health analyzer appears unedited; the notebook shows the same blocks (:func:`measure_blocks`).
- An analyzer's summary line comes from its findings, and each of its figures is captioned with what the
  findings say about it: a figure of an analyzer without findings shows what was *measured* (a candidate
  region that failed its test, say), not a problem.

Every string that came from a plugin or a file is escaped: nothing a model or plugin says is
ever interpreted as HTML.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Mapping

from . import _measure_text as words
from ._measures import MeasureSection
from .report import ARTIFACTS, REPORT_HTML, REPORT_JSON, AnalyzerRecord, Report
# html.escape, and control and bidi characters shown as escapes: one implementation for every sink.
from ._textsafe import html_text as escape
from ._verdicts import phrase

SEVERITY_COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0", None: "#2e7d32"}
STATUS_COLOURS = {"ok": "#2e7d32", "skipped": "#757575", "failed": "#c62828", "timed_out": "#6a1b9a", "crashed": "#b71c1c"}
VERDICT_COLOURS = {"trusted": "#2e7d32", "passed": "#2e7d32", "undecided": "#546e7a", "doubtful": "#ef6c00",
                   "failed": "#c62828"}
#: The non-image artifacts (arrays) are embedded in the page up to this many bytes in all; above it they are
#: linked, and report.zip beside the page holds the whole report (:func:`write_archive`).
EMBED_LIMIT = 2 * 2**20
ARCHIVE = "report.zip"
_IMAGE_SUFFIXES = (".png",)

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#212121}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0} th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eee;vertical-align:top}
th{background:#fafafa} .pill{display:inline-block;padding:0 .5rem;border-radius:.7rem;color:#fff;font-size:.85em}
.muted{color:#757575} code{background:#f5f5f5;padding:0 .25rem;border-radius:3px}
figure{display:inline-block;margin:.5rem;vertical-align:top;max-width:100%} figure img{max-width:100%;border:1px solid #eee}
details{margin:.4rem 0} pre{background:#f5f5f5;padding:.6rem;overflow:auto;max-height:300px}
nav.toc{background:#fafafa;border:1px solid #eee;padding:.4rem .8rem;margin:1rem 0} nav.toc ol{columns:2;margin:.2rem 0;padding-left:1.2rem}
nav.toc li{margin:.1rem 0;break-inside:avoid} .top{font-size:.8rem;font-weight:normal;margin-left:.5rem}
figcaption{font-size:.85rem} .note{border-left:3px solid #90a4ae;padding:.2rem .6rem;background:#fafafa}
"""


def _pill(text: str, colour: str) -> str:
    return f'<span class="pill" style="background:{colour}">{escape(text)}</span>'


def render_html(report: Report, base_dir: Path) -> str:
    """Render ``report``; artifact paths are resolved against ``base_dir`` to inline images and arrays
    (or, over :data:`EMBED_LIMIT`, to link them and announce ``report.zip``: see :func:`write_archive`)."""
    m = report.model
    info = m.get("info", {})
    worst = report.worst.value if report.worst else None
    files = _other_artifacts(report)
    embed = embeds(report, base_dir)
    anchors = _anchors(report)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>diagnostics: {escape(str(m.get('name')))}</title><style>{_CSS}</style></head><body>",
        f"<h1 id='top'>{escape(str(m.get('name')))}</h1>",
        f"<p class=muted>{escape(str(info.get('kind', '?')))} model · {escape(str(info.get('n_params', '?')))} parameters · "
        f"{escape(str(info.get('n_layers', '?')))} layers · backends {escape(', '.join(report.environment.get('backends', [])))} · "
        f"seed {report.seed} · exit code {report.exit_code}</p>",
        f"<p>Verdict: {_pill(worst or 'clean', SEVERITY_COLOURS[worst])} (fail on {escape(report.fail_on)})</p>",
    ]
    if report.data:
        shapes = ", ".join(f"{escape(k)} {tuple(v)}" for k, v in report.data.get("shapes", {}).items())
        parts.append(f"<p class=muted>Data: {escape(str(report.data.get('source')))} — {shapes}</p>")
    parts.append(_toc(report, anchors))
    if files:
        parts.append(f"<p class=note>{_sharing_note(report, base_dir, embed)}</p>")
    problems = report.plugin_problems
    if problems:
        parts.append("<h2>Plugin problems</h2><ul>" + "".join(f"<li>{escape(p)}</li>" for p in problems) + "</ul>")
    parts.append(f"<h2 id='verdicts'>Verdicts{_TOP}</h2><table><tr><th>analyzer</th><th>status</th><th>worst finding</th>"
                 "<th>findings</th><th>time</th></tr>")
    for r in report.analyzers:
        w = r.worst.value if r.worst else None
        parts.append(
            f"<tr><td><a href='#{anchors[r.name]}'>{escape(r.name)}</a></td><td>{_pill(r.status, STATUS_COLOURS[r.status])}</td>"
            f"<td>{_pill(w or 'none', SEVERITY_COLOURS[w])}</td><td>{len(r.findings)}</td><td>{r.duration_s:.2f} s</td></tr>")
    parts.append("</table>")
    for r in report.analyzers:
        parts.append(f"<h2 id='{anchors[r.name]}'>{escape(r.name)} <small class=muted>({escape(r.category)}, plugin {escape(r.plugin)}"
                     f"{', ' + escape(r.backend) if r.backend else ''})</small>{_TOP}</h2>")
        if r.reason:
            parts.append(f"<p>{_pill(r.status, STATUS_COLOURS[r.status])} {escape(r.reason)}</p>")
        if r.traceback:
            parts.append("<details><summary>Traceback</summary><pre>" + escape(r.traceback) + "</pre></details>")
        if r.explanations:
            parts.append("<table><tr><th>method</th><th>verdict</th><th>checks (value / threshold)</th><th>reasons</th></tr>")
            for e in r.explanations:
                v = e.verdict.value if e.verdict is not None else "not run"
                checks = "<br>".join(f"{_pill(k.outcome.value, VERDICT_COLOURS[k.outcome.value])} {escape(phrase(k))}"
                                     for k in e.checks)
                why = "; ".join(e.reasons) or e.skipped
                parts.append(f"<tr><td>{escape(e.method)}</td><td>{_pill(v, VERDICT_COLOURS.get(v, '#757575'))}</td>"
                             f"<td>{checks}</td><td>{escape(why)}</td></tr>")
            parts.append("</table>")
        if r.findings:
            parts.append("<table><tr><th>severity</th><th>code</th><th>where</th><th>message</th></tr>")
            for f in r.findings:
                parts.append(f"<tr><td>{_pill(f.severity.value, SEVERITY_COLOURS[f.severity.value])}</td><td><code>{escape(f.code)}</code></td>"
                             f"<td>{escape(f.where)}</td><td>{escape(f.message)}</td></tr>")
            parts.append("</table>")
        images = [(k, v) for k, v in sorted(r.artifacts.items()) if _is_image(v)]
        if not r.findings and r.status == "ok":
            charts = [s for s in r.measures if s.chart]
            parts.append(f"<p class=muted>{escape(_no_findings_line(images + charts))}</p>")
        parts.append(measure_blocks(r, base_dir))
        for name, rel in images:
            src = _data_uri(base_dir / rel) if _plain_relative(rel) else None  # never a file outside the report
            if src:
                parts.append(f"<figure><img alt='{escape(name)}' src='{src}'><figcaption>{_figure_caption(r, name)}"
                             f"</figcaption></figure>")
        parts.append(_samples_table(r, base_dir))
        mine = [(label, rel) for owner, label, rel in files if owner == r.name]
        if mine:
            links = ", ".join(_file_link(label, rel, base_dir, embed) for label, rel in mine)
            parts.append(f"<p class=muted>Files{' (embedded: click to download)' if embed else ''}: {links}</p>")
        if r.metrics:
            parts.append("<details><summary>Metrics</summary><pre>" +
                         escape(json.dumps(r.metrics, sort_keys=True, indent=1)[:20000]) + "</pre></details>")
    parts.append(_phases_section(report))
    env = ", ".join(f"{escape(k)} {escape(str(v))}" for k, v in sorted(report.environment.items()) if v and k != "backends")
    parts.append(f"<h2 id='environment'>Environment{_TOP}</h2><p class=muted>{env}</p>")
    parts.append("<table><tr><th>plugin</th><th>version</th><th>analyzers</th><th>status</th></tr>")
    for p in report.plugins:
        status = "disabled" if p.get("disabled") else ("error: " + p["error"]) if p.get("error") else "ok"
        parts.append(f"<tr><td>{escape(p['name'])}</td><td>{escape(str(p.get('version')))}</td>"
                     f"<td>{escape(', '.join(p.get('analyzers', [])))}</td><td>{escape(status)}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


_TOP = " <a class=top href='#top'>↑ contents</a>"


def _anchors(report: Report) -> dict[str, str]:
    """A section id per analyzer: ``a-<name>``, with anything but letters, digits, ``.``, ``_`` and ``-``
    made ``-`` (a name is data: it must not end the attribute), unique."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for r in report.analyzers:
        base = "a-" + re.sub(r"[^A-Za-z0-9._-]", "-", r.name)
        anchor, n = base, 2
        while anchor in used:
            anchor, n = f"{base}-{n}", n + 1
        used.add(anchor)
        out[r.name] = anchor
    return out


def _state(r: AnalyzerRecord) -> tuple[str, str]:
    """What the contents show for an analyzer: its worst finding, else its status when it did not finish
    (or was skipped), else 'clean'; with the colour of either."""
    if r.status != "ok" and not r.findings:
        return r.status.value, STATUS_COLOURS[r.status]
    w = r.worst.value if r.worst else None
    return (w or "clean"), SEVERITY_COLOURS[w]


def _toc(report: Report, anchors: Mapping[str, str]) -> str:
    items = ["<li><a href='#verdicts'>Verdicts</a></li>"]
    for r in report.analyzers:
        text, colour = _state(r)
        items.append(f"<li><a href='#{anchors[r.name]}'>{escape(r.name)}</a> {_pill(text, colour)}</li>")
    if report.phase_breakdown():
        items.append("<li><a href='#timings'>Timings</a></li>")
    items.append("<li><a href='#environment'>Environment</a></li>")
    return "<nav class=toc aria-label='Contents'><strong>Contents</strong><ol>" + "".join(items) + "</ol></nav>"


def _no_findings_line(images: list) -> str:
    if not images:
        return "No findings."
    what = "figure below shows" if len(images) == 1 else "figures below show"
    return (f"No findings: nothing this analyzer measured crossed its thresholds. The {what} what it measured, "
            f"not a problem found.")


def _figure_caption(r: AnalyzerRecord, name: str) -> str:
    """The artifact's name, and what the analyzer's findings say of it: a figure of an analyzer without
    findings is a measurement (the shortcut analyzer draws the candidate region it tested even when the
    test rejected it), one of an analyzer with findings illustrates them."""
    if r.findings:
        codes = ", ".join(sorted({f.code for f in r.findings}))
        w = r.worst.value
        return f"{escape(name)} — {_pill(w, SEVERITY_COLOURS[w])} illustrates {escape(codes)}"
    return f"{escape(name)} — {_pill('measured, no finding', SEVERITY_COLOURS[None])}"


# -- health measures: one block per section, read by scope, direction and outcome -------------------------
#: A measure with more values than this (a layer each, a feature each) lists the ones that did not pass and
#: folds the whole list into a <details>; the chart shows them all.
MAX_ROWS = 12
#: The folded list stops here (a per-feature measure of a wide table): the report.json has every value.
MAX_FOLDED = 500
# Inline styles: the blocks are also the notebook's (diagnostics.notebook), where no <style> applies.
_M_BLOCK = "margin:.9rem 0 1.2rem 0"
_M_HEAD = "font-size:1.05em;margin:.2rem 0"
_M_MUTED = "color:#757575;margin:.15rem 0"
_M_TABLE = "border-collapse:collapse;margin:.3rem 0;width:auto"
_M_CELL = "text-align:left;padding:.15rem .6rem;border-bottom:1px solid #eee;vertical-align:top"
_M_TH = _M_CELL + ";background:#fafafa;font-weight:600"
_OUTCOME_COLOURS = {"passed": "#2e7d32", "warning": "#ef6c00", "error": "#c62828", "shown": "#757575"}


def _inline_pill(text: str, colour: str) -> str:
    return (f"<span style='display:inline-block;padding:0 .5rem;border-radius:.7rem;color:#fff;font-size:.85em;"
            f"background:{colour}'>{escape(text)}</span>")


def measure_blocks(r: AnalyzerRecord, base_dir: Path | None) -> str:
    """The analyzer's health measures, one block each (title, chart, thresholds, values), as HTML with
    inline styles: the HTML report shows them under the analyzer, the notebook in its own section. Charts
    are embedded from ``base_dir`` (none when it is None or the chart is not beside it)."""
    return "".join(_measure_block(s, base_dir) for s in r.measures)


def _measure_block(s: MeasureSection, base_dir: Path | None) -> str:
    unit = f" <span style='color:#757575;font-weight:normal'>({escape(s.unit)})</span>" if s.unit else ""
    worst = words.OUTCOME_WORDS[s.worst] if words.judged(s) else "shown"
    facts = [f"<code>{escape(s.code)}</code>", escape(words.scope_words(s)), escape(words.thresholds(s))]
    if s.reference:
        facts.append(f"reference: {escape(s.reference)}")
    out = [f"<div class='measure' style='{_M_BLOCK}'><div style='{_M_HEAD}'><b>{escape(s.title)}</b>{unit} "
           f"{_inline_pill(worst, _OUTCOME_COLOURS[worst])}</div>",
           f"<div style='{_M_MUTED}'>{' · '.join(facts)}</div>"]
    src = (_data_uri(base_dir / s.chart) if base_dir is not None and _plain_relative(s.chart) and _is_image(s.chart)
           else None)  # never a file outside the report
    if src:
        out.append(f"<figure style='margin:.3rem 0;max-width:100%'><img alt='{escape(s.code)}' src='{src}' "
                   f"style='max-width:100%;border:1px solid #eee'></figure>")
    out.append(_values_table(s))
    out.append("</div>")
    return "".join(out)


def _values_table(s: MeasureSection) -> str:
    values = s.values
    if len(values) <= MAX_ROWS:
        return _values_rows(s, values)
    bad = words.not_passed(s)
    shown = bad[:MAX_ROWS]
    if shown:
        lead = (f"{len(bad)} of {len(values)} values did not pass" + (f"; the {len(shown)} worst:" if len(bad) > len(shown)
                                                                       else ":"))
    elif words.judged(s):
        lead = f"All {len(values)} values passed."
    else:
        lead = f"{len(values)} values, shown in the chart."
    folded = values[:MAX_FOLDED]
    cut = f" (the first {MAX_FOLDED}; report.json has every one)" if len(values) > MAX_FOLDED else ""
    return (f"<div style='{_M_MUTED}'>{escape(lead)}</div>" + (_values_rows(s, shown) if shown else "")
            + f"<details><summary>All {len(values)} values{escape(cut)}</summary>{_values_rows(s, folded)}</details>")


def _values_rows(s: MeasureSection, values) -> str:
    """One row per value; a column only when some value fills it (no series, no interval: no column)."""
    columns = []
    if any(v.where for v in s.values):
        columns.append((words.where_heading(s), lambda v: escape(v.where) or "model"))
    if any(v.series for v in s.values):
        columns.append(("series", lambda v: escape(v.series)))
    columns.append(("value", lambda v: escape(words.value(s, v.value))))
    if any(v.interval is not None for v in s.values):
        columns.append(("95% interval", lambda v: escape(words.interval(v)) or "-"))
    if any(v.n is not None for v in s.values):
        columns.append(("n", lambda v: "-" if v.n is None else escape(str(v.n))))
    if words.judged(s):
        columns.append(("outcome", lambda v: _outcome_cell(s, v)))
    if any(v.note for v in s.values):
        columns.append(("note", lambda v: escape(v.note)))
    head = "".join(f"<th style='{_M_TH}'>{escape(name)}</th>" for name, _ in columns)
    rows = "".join("<tr>" + "".join(f"<td style='{_M_CELL}'>{cell(v)}</td>" for _, cell in columns) + "</tr>"
                   for v in values)
    return f"<table style='{_M_TABLE}'><tr>{head}</tr>{rows}</table>"


def _outcome_cell(s: MeasureSection, v) -> str:
    if v.value is None:
        return "<span style='color:#757575'>not measured</span>"
    word = words.OUTCOME_WORDS[v.outcome]
    relation = words.crossed(s, v.threshold)
    return _inline_pill(word, _OUTCOME_COLOURS[word]) + (f" <span style='color:#757575'>{escape(relation)}</span>"
                                                         if relation else "")


def _samples_table(r: AnalyzerRecord, base_dir: Path) -> str:
    """The explained samples, one row each: the data row, the output each method explained, and the true
    label where the data has one (the ``labels`` artifact of the explanation sections)."""
    section = next((e for e in r.explanations if e.sample_indices), None)
    if section is None:
        return ""
    labels = _labels(base_dir, section.artifacts.get("labels"))
    rows = []
    for i, idx in enumerate(section.sample_indices):
        target = section.targets[i] if i < len(section.targets) else None
        label = labels[i] if labels is not None and i < len(labels) else None
        if label is None:
            agree = ""
        else:
            agree = "✓" if target is not None and _same(label, target) else "✗"
        rows.append(f"<tr><td>#{escape(idx)}</td><td>{'-' if target is None else escape(target)}</td>"
                    f"<td>{'not in the data' if label is None else escape(label)}</td><td>{agree}</td></tr>")
    target_how = f" ({escape(section.target)})" if section.target else ""
    return ("<details open><summary>Samples explained, in the order the figures show them</summary><table><tr><th>sample</th>"
            f"<th>output explained{target_how}</th><th>true label</th><th>same</th></tr>" + "".join(rows) +
            "</table></details>")


def _labels(base_dir: Path, rel: str | None) -> list | None:
    """The true labels of the explained samples (a 1-D numeric array), or None when there are none."""
    if not rel or not _plain_relative(rel):
        return None
    try:
        import numpy as np

        a = np.load(base_dir / rel, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        return None
    return [int(v) if float(v).is_integer() else float(v) for v in a.tolist()]


def _same(label, target) -> bool:
    try:
        return float(label) == float(target)
    except (TypeError, ValueError):
        return False


# -- artifacts that survive sharing the one file ----------------------------------------------------------
def _is_image(rel: str) -> bool:
    return rel.lower().endswith(_IMAGE_SUFFIXES)


def _other_artifacts(report: Report) -> list[tuple[str, str, str]]:
    """``(analyzer, label, relative path)`` of every artifact that is not an image: the analyzer's own and
    those of its explanation sections (``integrated_gradients map``), each path once."""
    out, seen = [], set()
    for r in report.analyzers:
        named = list(sorted(r.artifacts.items()))
        for e in r.explanations:
            named += [(f"{e.method} {k}" if k not in ("inputs", "labels", "sample indices", "mask") else k, v)
                      for k, v in sorted(e.artifacts.items())]
        for label, rel in named:
            if rel and not _is_image(rel) and rel not in seen:
                seen.add(rel)
                out.append((r.name, label, rel))
    return out


def _size(base_dir: Path, rel: str) -> int:
    if not _plain_relative(rel):
        return 0
    try:
        return (base_dir / rel).stat().st_size
    except OSError:
        return 0


def embeds(report: Report, base_dir: Path) -> bool:
    """Whether the page embeds its arrays (they take :data:`EMBED_LIMIT` bytes or less in all)."""
    return sum(_size(base_dir, rel) for _, _, rel in _other_artifacts(report)) <= EMBED_LIMIT


def _sharing_note(report: Report, base_dir: Path, embed: bool) -> str:
    total = sum(_size(base_dir, rel) for _, _, rel in _other_artifacts(report))
    if embed:
        return (f"This page is self-contained: its pictures and its arrays ({_bytes(total)} of .npy files) are inside it, "
                f"so it can be shared alone; each file link downloads its array.")
    return (f"The pictures are inside this page, but its arrays ({_bytes(total)}) are too large to embed "
            f"(over {_bytes(EMBED_LIMIT)}): the file links open them in the <code>artifacts</code> folder beside this page, "
            f"and <a href='{ARCHIVE}'>{ARCHIVE}</a> beside it holds the whole report (this page, report.json and every "
            f"artifact). To share the report, send {ARCHIVE}.")


def _bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{max(1, round(n / 1024))} kB"


def write_archive(out_dir: Path) -> Path | None:
    """``report.zip`` beside the report in ``out_dir`` when its page does not embed its arrays (else any
    stale one is removed): report.html, report.json and the artifacts folder, written to a temporary name
    and renamed into place. Returns the archive's path, or None when the page needed none."""
    out_dir = Path(out_dir)
    target = out_dir / ARCHIVE
    report = Report.load(out_dir)
    if embeds(report, out_dir):
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        return None
    tmp = out_dir / f".{ARCHIVE}.{os.getpid()}.tmp"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name in (REPORT_HTML, REPORT_JSON):
                z.write(out_dir / name, name)
            root = out_dir / ARTIFACTS
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    z.write(path, path.relative_to(out_dir).as_posix())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _phases_section(report: Report) -> str:
    """Where the time went: every timed phase, slowest first, with a bar scaled to the slowest."""
    phases = report.phase_breakdown()
    if not phases:
        return ""
    top = max(s for _, s in phases) or 1.0
    rows = [f"<a id='timings'></a><h2>Timings</h2><p class=muted>{float(report.timings.get('total_s', 0.0)):.1f} s in all; the workers "
            f"run side by side, so their phases overlap.</p>",
            "<table><tr><th>phase</th><th>seconds</th><th style='width:50%'></th></tr>"]
    for label, seconds in phases:
        width = max(0.5, 100.0 * seconds / top)
        rows.append(f"<tr><td>{escape(label)}</td><td>{seconds:.2f}</td><td><div style='background:#90a4ae;height:.8em;"
                    f"width:{width:.1f}%'></div></td></tr>")
    rows.append("</table>")
    mem = [f"{escape(b)} {float(w['peak_rss_mib']):.0f} MiB" for b, w in sorted(report.workers.items()) if "peak_rss_mib" in w]
    if mem:
        rows.append(f"<p class=muted>Peak worker memory: {', '.join(mem)}</p>")
    return "\n".join(rows)


def _plain_relative(rel: str) -> bool:
    """A plain relative path inside the report folder: not ``javascript:``, ``https://``, ``/etc/...`` or ``../``."""
    return bool(rel) and ":" not in rel and not rel.startswith(("/", "\\")) and ".." not in Path(rel).parts


def _file_link(name: str, rel: str, base_dir: Path | None = None, embed: bool = False) -> str:
    """A link to an artifact: embedded (a data URI that downloads it) when ``embed``, else beside the report;
    a path that is not a plain relative one is shown as text, never as a link."""
    if not _plain_relative(rel):
        return f"{escape(name)} ({escape(rel)})"
    data = None
    if embed and base_dir is not None:
        try:
            data = (Path(base_dir) / rel).read_bytes()
        except OSError:  # not beside the page being rendered: a link, for a reader who has the folder
            pass
    if data is not None:
        uri = "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")
        return f"<a download='{escape(Path(rel).name)}' href='{uri}'>{escape(name)}</a> <small>({_bytes(len(data))})</small>"
    return f"<a href='{escape(rel)}'>{escape(name)}</a>"


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")



# -- diagnose compare ------------------------------------------------------------------------------------
CHANGE_COLOURS = {"regressed": "#c62828", "improved": "#2e7d32", "unchanged": "#757575", "changed": "#1565c0",
                  "not_comparable": "#9e9e9e"}


def render_compare_html(comparison) -> str:
    """A :class:`~diagnostics._compare.Comparison` as a self-contained page: the gate's outcome, the two
    sides, then one table per change (regressed first; the unchanged items folded), each item with both
    values, their 95% intervals and why it was judged so. Every name is escaped."""
    from ._compare import Change

    a, b = comparison.baseline, comparison.candidate
    bad = comparison.regressions()
    verdict = f"{len(bad)} regressed" if bad else "no regression"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>diagnose compare: {escape(str(a.get('name')))} → {escape(str(b.get('name')))}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1 id='top'>{escape(str(a.get('name')))} → {escape(str(b.get('name')))}</h1>",
        f"<p>Gate: {_pill(verdict, SEVERITY_COLOURS['error'] if bad else SEVERITY_COLOURS[None])} "
        f"(fail on {escape(comparison.fail_on)}) · exit code {comparison.exit_code}</p>",
        "<table><tr><th></th><th>baseline</th><th>candidate</th></tr>",
    ]
    for key in ("name", "sha256", "report", "seed", "data"):
        va, vb = a.get(key), b.get(key)
        parts.append(f"<tr><td>{key}</td><td>{escape('' if va is None else str(va))}</td>"
                     f"<td>{escape('' if vb is None else str(vb))}</td></tr>")
    parts.append("</table><p>" + " ".join(_pill(f"{comparison.count(c)} {c.value.replace('_', ' ')}",
                                                CHANGE_COLOURS[c.value]) for c in Change) + "</p>")
    for change in (Change.REGRESSED, Change.IMPROVED, Change.CHANGED, Change.NOT_COMPARABLE, Change.UNCHANGED):
        items = [i for i in comparison.items if i.change is change]
        if not items:
            continue
        title = change.value.replace("_", " ").capitalize()
        rows = "".join(
            f"<tr><td>{escape(i.kind.value)}</td><td>{escape(i.label)}</td><td>{escape(i.shown('baseline'))}</td>"
            f"<td>{escape(i.shown('candidate'))}</td>"
            f"<td>{_pill(i.severity.value, SEVERITY_COLOURS[i.severity.value]) if i.severity else ''}</td>"
            f"<td>{escape(i.note)}</td></tr>" for i in items)
        table = (f"<table class='compare-{change.value}'><tr><th>kind</th><th>item</th><th>baseline</th>"
                 f"<th>candidate</th><th>severity</th><th>why</th></tr>{rows}</table>")
        if change is Change.UNCHANGED:
            parts.append(f"<h2 id='{change.value}'>{title} ({len(items)})</h2><details><summary>show</summary>"
                         f"{table}</details>")
        else:
            parts.append(f"<h2 id='{change.value}'>{title} ({len(items)})</h2>{table}")
    parts.append("</body></html>")
    return "".join(parts) + "\n"
