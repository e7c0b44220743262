"""The self-contained HTML report: the same :class:`Report`, rendered; PNG artifacts are inlined.

Every string that came from a plugin or a file is escaped: nothing a model or plugin says is
ever interpreted as HTML.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from .report import Report
# html.escape, and control and bidi characters shown as escapes: one implementation for every sink.
from .textsafe import html_text as escape

SEVERITY_COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0", None: "#2e7d32"}
STATUS_COLOURS = {"ok": "#2e7d32", "skipped": "#757575", "failed": "#c62828", "timed_out": "#6a1b9a", "crashed": "#b71c1c"}
VERDICT_COLOURS = {"trusted": "#2e7d32", "passed": "#2e7d32", "doubtful": "#ef6c00", "failed": "#c62828"}

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#212121}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0} th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eee;vertical-align:top}
th{background:#fafafa} .pill{display:inline-block;padding:0 .5rem;border-radius:.7rem;color:#fff;font-size:.85em}
.muted{color:#757575} code{background:#f5f5f5;padding:0 .25rem;border-radius:3px}
figure{display:inline-block;margin:.5rem;vertical-align:top;max-width:100%} figure img{max-width:100%;border:1px solid #eee}
details{margin:.4rem 0} pre{background:#f5f5f5;padding:.6rem;overflow:auto;max-height:300px}
"""


def _pill(text: str, colour: str) -> str:
    return f'<span class="pill" style="background:{colour}">{escape(text)}</span>'


def render_html(report: Report, base_dir: Path) -> str:
    """Render ``report``; artifact paths are resolved against ``base_dir`` to inline images."""
    m = report.model
    info = m.get("info", {})
    worst = report.worst.value if report.worst else None
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>diagnostics: {escape(str(m.get('name')))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(str(m.get('name')))}</h1>",
        f"<p class=muted>{escape(str(info.get('kind', '?')))} model · {escape(str(info.get('n_params', '?')))} parameters · "
        f"{escape(str(info.get('n_layers', '?')))} layers · backends {escape(', '.join(report.environment.get('backends', [])))} · "
        f"seed {report.seed} · exit code {report.exit_code}</p>",
        f"<p>Verdict: {_pill(worst or 'clean', SEVERITY_COLOURS[worst])} (fail on {escape(report.fail_on)})</p>",
    ]
    if report.data:
        shapes = ", ".join(f"{escape(k)} {tuple(v)}" for k, v in report.data.get("shapes", {}).items())
        parts.append(f"<p class=muted>Data: {escape(str(report.data.get('source')))} — {shapes}</p>")
    problems = report.plugin_problems
    if problems:
        parts.append("<h2>Plugin problems</h2><ul>" + "".join(f"<li>{escape(p)}</li>" for p in problems) + "</ul>")
    parts.append("<h2>Verdicts</h2><table><tr><th>analyzer</th><th>status</th><th>worst finding</th><th>findings</th><th>time</th></tr>")
    for r in report.analyzers:
        w = r.worst.value if r.worst else None
        parts.append(
            f"<tr><td><a href='#a-{escape(r.name)}'>{escape(r.name)}</a></td><td>{_pill(r.status, STATUS_COLOURS[r.status])}</td>"
            f"<td>{_pill(w or 'none', SEVERITY_COLOURS[w])}</td><td>{len(r.findings)}</td><td>{r.duration_s:.2f} s</td></tr>")
    parts.append("</table>")
    for r in report.analyzers:
        parts.append(f"<h2 id='a-{escape(r.name)}'>{escape(r.name)} <small class=muted>({escape(r.category)}, plugin {escape(r.plugin)}"
                     f"{', ' + escape(r.backend) if r.backend else ''})</small></h2>")
        if r.reason:
            parts.append(f"<p>{_pill(r.status, STATUS_COLOURS[r.status])} {escape(r.reason)}</p>")
        if r.traceback:
            parts.append("<details><summary>Traceback</summary><pre>" + escape(r.traceback) + "</pre></details>")
        if r.explanations:
            parts.append("<table><tr><th>method</th><th>verdict</th><th>checks (value / threshold)</th><th>reasons</th></tr>")
            for e in r.explanations:
                v = e.verdict.value if e.verdict is not None else "not run"
                checks = "<br>".join(f"{_pill(k.outcome.value, VERDICT_COLOURS[k.outcome.value])} {escape(k.name)} "
                                     f"{_num(k.value)} / {_num(k.threshold)}" for k in e.checks)
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
        elif r.status == "ok":
            parts.append("<p class=muted>No findings.</p>")
        images = [(k, v) for k, v in sorted(r.artifacts.items()) if v.lower().endswith(".png")]
        for name, rel in images:
            src = _data_uri(base_dir / rel)
            if src:
                parts.append(f"<figure><img alt='{escape(name)}' src='{src}'><figcaption>{escape(name)}</figcaption></figure>")
        others = [(k, v) for k, v in sorted(r.artifacts.items()) if not v.lower().endswith(".png")]
        if others:
            parts.append("<p class=muted>Files: " + ", ".join(_file_link(k, v) for k, v in others) + "</p>")
        if r.metrics:
            parts.append("<details><summary>Metrics</summary><pre>" +
                         escape(json.dumps(r.metrics, sort_keys=True, indent=1)[:20000]) + "</pre></details>")
    parts.append(_phases_section(report))
    env = ", ".join(f"{escape(k)} {escape(str(v))}" for k, v in sorted(report.environment.items()) if v and k != "backends")
    parts.append(f"<h2>Environment</h2><p class=muted>{env}</p>")
    parts.append("<table><tr><th>plugin</th><th>version</th><th>analyzers</th><th>status</th></tr>")
    for p in report.plugins:
        status = "disabled" if p.get("disabled") else ("error: " + p["error"]) if p.get("error") else "ok"
        parts.append(f"<tr><td>{escape(p['name'])}</td><td>{escape(str(p.get('version')))}</td>"
                     f"<td>{escape(', '.join(p.get('analyzers', [])))}</td><td>{escape(status)}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def _phases_section(report: Report) -> str:
    """Where the time went: every timed phase, slowest first, with a bar scaled to the slowest."""
    phases = report.phase_breakdown()
    if not phases:
        return ""
    top = max(s for _, s in phases) or 1.0
    rows = [f"<h2>Timings</h2><p class=muted>{float(report.timings.get('total_s', 0.0)):.1f} s in all; the workers "
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


def _file_link(name: str, rel: str) -> str:
    """A link to an artifact beside the report; a path that is not a plain relative one (``javascript:``,
    ``https://``, ``/etc/...``, ``../``) is shown as text, never as a link."""
    parts = Path(rel).parts
    if rel and ":" not in rel and not rel.startswith(("/", "\\")) and ".." not in parts:
        return f"<a href='{escape(rel)}'>{escape(name)}</a>"
    return f"{escape(name)} ({escape(rel)})"


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _num(v) -> str:
    return "-" if v is None else escape(f"{v:.3g}")
