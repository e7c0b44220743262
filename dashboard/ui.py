"""Streamlit building blocks shared by the pages: the report picker, caching, and generic views.

Untrusted text (the model's name, analyzer, plugin, method, layer and feature names, finding codes
and messages, file names) only ever reaches the page through :func:`reports.md_escape` (Markdown
bodies), :func:`reports.md_line` (titles, headings, badges and every label: widget, metric, expander,
image caption, radio option), :func:`charts.label` (Plotly), ``st.text``/``st.code`` or data frames;
nothing is rendered as HTML.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import streamlit as st

from diagnostics import _measure_text as measure_text
from diagnostics._measures import MeasureSection
from diagnostics.report import AnalyzerRecord, Report

from . import charts, reports
from .reports import md_escape, md_line

#: Streamlit badge colours matching diagnostics._html.SEVERITY_COLOURS (red, orange, blue, green).
BADGE = {"error": "red", "warning": "orange", "info": "blue", None: "green", "ok": "green", "skipped": "gray",
         "failed": "red", "timed_out": "violet", "trusted": "green", "undecided": "gray", "doubtful": "orange", "passed": "green",
         "crashed": "red"}

PAGES = {  # key -> (file, title, icon)
    "overview": ("views/overview.py", "Overview", ":material/dashboard:"),
    "explanations": ("views/explanations.py", "Explanations", ":material/visibility:"),
    "health": ("views/health.py", "Health", ":material/monitor_heart:"),
    "data": ("views/data.py", "Data", ":material/dataset:"),
    "compare": ("views/compare.py", "Compare", ":material/compare_arrows:"),
    "sweep": ("views/sweep.py", "Sweep", ":material/timeline:"),
    "run": ("views/run.py", "Run a diagnosis", ":material/play_arrow:"),
    "plugins": ("views/plugins.py", "Plugins", ":material/extension:"),
}


#: A measure's table of values is open below its chart up to this many values, else folded.
VALUES_OPEN = 6

_FROM_TEXT = object()


def badge(text: str, key: Any = _FROM_TEXT) -> str:
    """A coloured markdown badge; ``text`` is escaped, the colour comes from our own table.

    ``key`` picks the colour (a severity, status or verdict; None means clean/green); by default the
    text itself is the key.
    """
    colour = BADGE.get(text if key is _FROM_TEXT else key, "gray")
    return f":{colour}-badge[{md_line(text)}]"


# -- loading ---------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=64)
def _load_cached(directory: str, mtime: float) -> Report:  # mtime is part of the cache key on purpose
    return reports.load(directory)


def load_report(directory: str | Path) -> Report:
    return _load_cached(str(directory), reports.report_mtime(Path(directory)))


@st.cache_data(show_spinner=False, max_entries=256)
def _array_cached(directory: str, rel: str, mtime: float):
    return reports.load_array(Path(directory), rel)


def load_array(directory: Path, rel: str):
    return _array_cached(str(directory), rel, reports.report_mtime(Path(directory)))


def available_reports() -> dict[str, Path]:
    """Label -> report directory: those under the start path, plus the runs made in this session."""
    root = reports.start_path()
    found: dict[str, Path] = {}
    for d in reports.discover(root):
        try:
            label = str(d.relative_to(root)) if d != root else d.name
        except ValueError:
            label = str(d)
        found[label or d.name] = d
    for label, d in st.session_state.get("runs", {}).items():
        found[label] = Path(d)
    return found


def report_picker() -> None:
    """Sidebar: choose the report every page shows (kept in ``st.session_state["report_dir"]``)."""
    options = available_reports()
    with st.sidebar:
        if not options:
            st.caption(f"No report found under {md_escape(reports.start_path())}.")
            st.session_state.pop("report_dir", None)
            return
        labels = list(options)
        current = st.session_state.get("report_dir")
        index = next((i for i, l in enumerate(labels) if str(options[l]) == current), 0)
        asked = st.session_state.pop("report_open", None)  # open_report(): set the widget before it is drawn
        hit = next((l for l in labels if asked and Path(options[l]).resolve() == Path(asked).resolve()), None)
        if hit is not None:
            st.session_state["report_label"] = hit
            index = 0  # the label set above decides; a default beside it would only log a warning
        label = st.selectbox("Report", labels, index=index, key="report_label",
                             help="Reports found under the directory given to `diagnose dashboard`, and runs made here.")
        st.session_state["report_dir"] = str(options[label])


def open_report(directory: str | Path) -> None:
    """Make ``directory`` the report of every page, the sidebar's picker included, from the next run of the
    app on (call ``st.rerun()`` after it). Setting ``report_dir`` alone is not enough: the picker keeps the
    label the browser sends back."""
    st.session_state["report_dir"] = str(directory)
    st.session_state["report_open"] = str(directory)


def current() -> tuple[Report, Path] | None:
    d = st.session_state.get("report_dir")
    if not d:
        return None
    try:
        return load_report(d), Path(d)
    except ValueError as e:
        st.error(md_escape(str(e)))
        return None


def require_report() -> tuple[Report, Path]:
    """The chosen report, or a placeholder and stop when there is none."""
    got = current()
    if got is None:
        st.info("No report is open. Start the dashboard with `diagnose dashboard reports/`, pick a report in the "
                "sidebar, or run a diagnosis from the **Run a diagnosis** page.")
        st.page_link(PAGES["run"][0], label="Run a diagnosis", icon=":material/play_arrow:")
        st.stop()
    return got


def placeholder(what: str, how: str) -> None:
    """A clear 'not in this report' box saying what would fill the view."""
    st.info(f"**{what}**  \n{how}", icon=":material/hourglass_empty:")


@st.cache_resource(show_spinner="Loading plugins…")
def plugin_host():
    """The installed plugins, loaded once per server (loading imports each plugin module, not keras)."""
    from diagnostics._plugin_manager import PluginHost

    return PluginHost().load()


# -- generic views ---------------------------------------------------------------------------------
def _styled(df, colour_columns: dict[str, dict]):
    def paint(mapping):
        def f(v):
            c = mapping.get(v if v in mapping else None if v in ("none", "", "-") else "__missing__")
            return f"background-color: {c}; color: white" if c else ""
        return f

    styler = df.style
    for col, mapping in colour_columns.items():
        if col in df.columns:
            styler = styler.map(paint(mapping), subset=[col])
    return styler


def findings_frame(records: Iterable[AnalyzerRecord]):
    import pandas as pd

    rows = [{"severity": f.severity.value, "code": f.code, "where": f.where, "message": f.message, "analyzer": r.name}
            for r in records for f in r.findings]
    order = {"error": 0, "warning": 1, "info": 2}
    rows.sort(key=lambda r: order.get(r["severity"], 3))
    return pd.DataFrame(rows, columns=["severity", "code", "where", "message", "analyzer"])


def show_findings(records: Iterable[AnalyzerRecord], key: str) -> None:
    df = findings_frame(records)
    if df.empty:
        st.caption("No findings.")
        return
    st.dataframe(_styled(df, {"severity": charts.SEVERITY_COLOURS}), hide_index=True, key=key,
                 column_config={"message": st.column_config.TextColumn(width="large")})


def record_header(r: AnalyzerRecord, level: str = "subheader") -> None:
    worst = r.worst.value if r.worst else None
    getattr(st, level)(md_line(r.name), anchor=False)
    bits = [badge(r.status), badge(worst or "no findings", worst), f"category {md_escape(r.category)}",
            f"plugin {md_escape(r.plugin)}"]
    if r.backend:
        bits.append(f"{md_escape(r.backend)} backend")
    bits.append(f"{r.duration_s:.2f} s")
    st.markdown(" · ".join(bits))
    if r.reason:
        (st.warning if r.status != "skipped" else st.caption)(md_escape(r.reason))


def show_images(r: AnalyzerRecord, directory: Path, columns: int = 2, exclude: Iterable[str] = ()) -> int:
    shown = 0
    imgs = [(k, v) for k, v in reports.images(r) if k not in set(exclude)]
    if not imgs:
        return 0
    # Figures the analyzer drew itself: side by side, never wider than a laptop column needs.
    cols = st.columns(max(columns, 2))
    for i, (name, rel) in enumerate(imgs):
        p = reports.artifact_path(directory, rel)
        with cols[i % len(cols)]:
            if p is None:
                st.caption(f"{md_escape(name)}: file missing ({md_escape(rel)})")
            else:
                st.image(str(p), caption=md_line(name), width="stretch")
                shown += 1
    return shown


def metrics_table(r: AnalyzerRecord, key: str) -> None:
    """The record's scalar metrics as a plain table (an analyzer without measure sections)."""
    rows = reports.metric_rows(r)
    if rows:
        import pandas as pd

        st.dataframe(pd.DataFrame(rows, columns=["metric", "value"]), hide_index=True, key=f"{key}-metrics")


def measure_section(s: MeasureSection, directory: Path, key: str) -> None:
    """One health measure as the report's typed section holds it: its title and unit, how it was judged
    and why, its chart (a tile for a single value), and every value with its outcome and interval."""
    import pandas as pd

    unit = f" ({s.unit})" if s.unit else ""
    st.markdown(f"#### {md_line(s.title + unit)}")
    judged = measure_text.judged(s)  # a neutral measure is shown, never judged: no outcome to colour
    bits = [badge(reports.outcome_word(s.worst))] if judged else []
    bits += [md_escape(s.code), measure_text.scope_words(s), md_escape(measure_text.thresholds(s))]
    st.markdown(" · ".join(bits))
    if s.reference:
        st.caption(md_escape(s.reference))
    table = _styled(pd.DataFrame(reports.value_rows(s)), {"outcome": reports.OUTCOME_COLOURS})
    config = {"value": st.column_config.NumberColumn(format="%.4g"), "note": st.column_config.TextColumn(width="large")}
    picture = reports.artifact_path(directory, s.chart) if s.chart else None
    fig = charts.measure(s) if len(s.values) > 1 else None
    if len(s.values) == 1 and picture is None:  # one number: a tile, and its row (interval, n, note) beside it
        v = s.values[0]
        tile, row = st.columns([2, 5])
        tile.metric(md_line(s.title), md_line(reports.with_unit(s, v.value)), label_visibility="collapsed")
        row.dataframe(table, hide_index=True, key=f"{key}-{s.code}-values", column_config=config)
        return
    if fig is not None:
        st.plotly_chart(fig, key=f"{key}-{s.code}-chart")
        if picture is not None:  # the same numbers: one chart open, not two
            with st.expander("The report's picture of it (as in the HTML report)"):
                st.image(str(picture), caption=md_line(s.title), width="content")
    elif picture is not None:
        st.image(str(picture), caption=md_line(s.title), width="content")
    # a few values open below the chart; a long list (every epoch, every layer) one click away
    with st.expander(f"The {len(s.values)} values", expanded=len(s.values) <= VALUES_OPEN):
        st.dataframe(table, hide_index=True, key=f"{key}-{s.code}-values", column_config=config)


def show_metrics_json(r: AnalyzerRecord) -> None:
    if r.metrics:
        with st.expander("All metrics (JSON)"):
            st.code(json.dumps(r.metrics, sort_keys=True, indent=1)[:50000], language="json")


def analyzer_section(r: AnalyzerRecord, directory: Path, key: str) -> None:
    """Everything one analyzer put in the report, generic for any analyzer: its findings; each of its
    measure sections (a health analyzer), or its scalar metrics as a table (an analyzer without sections:
    not a :class:`~diagnostics.HealthAnalyzer`, or a schema 2 report); the pictures it drew itself; and
    every metric as JSON."""
    record_header(r)
    show_findings([r], key=f"{key}-findings")
    if r.measures:
        for s in r.measures:
            measure_section(s, directory, key=key)
    else:
        metrics_table(r, key=key)
    show_images(r, directory)
    show_metrics_json(r)


def measure_page(records: list[AnalyzerRecord], directory: Path, *, key: str, prefix: str,
                 empty: tuple[str, str]) -> None:
    """The body of a page of analyzers drawn from their measure sections (Health, Data): a table of every
    measure (click a row to choose its analyzer), a selector kept in the URL's ``?analyzer=`` (which the
    Overview's link sets), and the chosen analyzer's findings and measures (:func:`analyzer_section`).
    ``key`` is the selector's session key, ``prefix`` that of the page's other widgets; ``empty`` the
    placeholder's two lines when no analyzer belongs here."""
    import pandas as pd

    if not records:
        placeholder(*empty)
        st.stop()
    #: the worst first (report order among equals), so the default choice is the first option
    names = [r.name for r in sorted(records, key=lambda r: -(r.worst.rank if r.worst else -1))]
    table, url = f"{prefix}-measures", f"{prefix}-url"
    summary = reports.measure_summary(records)
    if summary:
        rows = pd.DataFrame(summary, columns=["analyzer", "measure", "unit", "code", "scope", "values", "worst", "judged"])

        def _pick_row():
            sel = st.session_state.get(table)
            picked = getattr(getattr(sel, "selection", None), "rows", None) if sel is not None else None
            if picked is None and isinstance(sel, dict):
                picked = sel.get("selection", {}).get("rows")
            if picked:
                st.session_state[key] = summary[picked[0]]["analyzer"]

        st.caption("Every measure in this report; click a row to show its analyzer below.")
        st.dataframe(_styled(rows, {"worst": reports.OUTCOME_COLOURS}), hide_index=True, key=table,
                     on_select=_pick_row, selection_mode="single-row",
                     column_config={"judged": st.column_config.TextColumn(width="medium")})
    else:
        st.caption("No analyzer in this report has measure sections (a report of schema 2, or analyzers that did not "
                   "run): each is shown below with its findings and metrics.")
    # The URL says which analyzer (the Overview links here with ?analyzer=NAME, and a shared link keeps it): it
    # decides when it names another analyzer than the page last put there, or the selector is new on this visit.
    asked = st.query_params.get("analyzer")
    if asked in names and (key not in st.session_state or asked != st.session_state.get(url)):
        st.session_state[key] = asked
    elif st.session_state.get(key) not in names:
        st.session_state.pop(key, None)
    chosen = st.radio("Analyzer", names, key=key, horizontal=True, format_func=md_line)
    st.query_params["analyzer"] = st.session_state[url] = chosen
    with st.container(border=True):
        analyzer_section(next(r for r in records if r.name == chosen), directory, key=f"{prefix[0]}-{chosen}")
