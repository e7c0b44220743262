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

from diagnostics.report import AnalyzerRecord, Report

from . import charts, reports
from .reports import md_escape, md_line

#: Streamlit badge colours matching diagnostics.html.SEVERITY_COLOURS (red, orange, blue, green).
BADGE = {"error": "red", "warning": "orange", "info": "blue", None: "green", "ok": "green", "skipped": "gray",
         "failed": "red", "timed_out": "violet", "trusted": "green", "doubtful": "orange"}

PAGES = {  # key -> (file, title, icon)
    "overview": ("views/overview.py", "Overview", ":material/dashboard:"),
    "explanations": ("views/explanations.py", "Explanations", ":material/visibility:"),
    "training": ("views/training.py", "Training", ":material/show_chart:"),
    "gradients": ("views/gradients.py", "Gradients", ":material/trending_down:"),
    "weights": ("views/weights.py", "Weights", ":material/grid_on:"),
    "gan": ("views/gan.py", "GAN", ":material/auto_awesome:"),
    "compare": ("views/compare.py", "Compare", ":material/compare_arrows:"),
    "sweep": ("views/sweep.py", "Sweep", ":material/timeline:"),
    "run": ("views/run.py", "Run a diagnosis", ":material/play_arrow:"),
    "plugins": ("views/plugins.py", "Plugins", ":material/extension:"),
}


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
    from diagnostics.plugin_manager import PluginHost

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


def chart_tables(r: AnalyzerRecord, key: str, log_words: tuple[str, ...] = ("norm",),
                 fraction_words: tuple[str, ...] = ("fraction", "frac", "ratio_dead", "dead", "saturat"),
                 expand_first: bool = True) -> int:
    """Every per-layer (or per-item) table in the metrics as bar charts of its numeric columns (the first one
    open unless ``expand_first`` is false: the page already charted what it holds)."""
    n = 0
    for path, rows in reports.tables(r.metrics).items():
        label = reports.label_column(rows)
        cols = [c for c in reports.numeric_columns(rows) if c != label]
        if not label or not cols:
            continue
        names = [str(row.get(label, i)) for i, row in enumerate(rows)]
        with st.expander(md_line(f"{path}: {', '.join(cols)}"), expanded=expand_first and n == 0):
            picked = st.selectbox("Quantity", cols, key=f"{key}-{path}-col") if len(cols) > 1 else cols[0]
            vals = [row.get(picked) for row in rows]
            keep = [(nm, v) for nm, v in zip(names, vals) if reports.is_number(v)]
            if keep:
                log = any(w in picked.lower() for w in log_words) and all(v > 0 for _, v in keep)
                st.plotly_chart(charts.bars([k for k, _ in keep], [v for _, v in keep], title=f"{picked} per {label}",
                                            ylabel=picked, log=log), key=f"{key}-{path}-chart")
            import pandas as pd

            st.dataframe(pd.DataFrame(rows), hide_index=True, key=f"{key}-{path}-table")
        n += 1
    return n


def chart_series(r: AnalyzerRecord, key: str, exclude: Iterable[str] = ()) -> int:
    s = {k: v for k, v in reports.series(r.metrics).items() if k not in set(exclude)}
    if not s:
        return 0
    st.plotly_chart(charts.lines(s, title=f"{r.name}: series"), key=f"{key}-series")
    return len(s)


def show_scalars(r: AnalyzerRecord, limit: int = 8) -> None:
    sc = {k: v for k, v in reports.scalars(r.metrics).items() if reports.is_number(v) and k.count(".") <= 1}
    if not sc:
        return
    items = list(sc.items())[:limit]
    cols = st.columns(min(4, len(items)))
    for i, (k, v) in enumerate(items):
        cols[i % len(cols)].metric(md_line(k), f"{v:.4g}" if isinstance(v, float) else str(v))


def tiles_or_table(r: AnalyzerRecord, tiles: list[tuple[str, str, str]], key: str) -> None:
    """``tiles`` (title, value, help) as metric tiles; without any, the record's numbers as a plain table,
    since a raw metric key (``ece.bins``, ``gap.train``) is no title for a tile."""
    if tiles:
        for col, (name, value, help_) in zip(st.columns(len(tiles)), tiles):
            col.metric(name, value, help=md_escape(help_))
        return
    numbers = {k: v for k, v in reports.scalars(r.metrics).items() if reports.is_number(v)}
    if numbers:
        import pandas as pd

        st.dataframe(pd.DataFrame(list(numbers.items()), columns=["quantity", "value"]), hide_index=True,
                     key=f"{key}-{r.name}-numbers")


def show_metrics_json(r: AnalyzerRecord) -> None:
    if r.metrics:
        with st.expander("All metrics (JSON)"):
            st.code(json.dumps(r.metrics, sort_keys=True, indent=1)[:50000], language="json")


def analyzer_section(r: AnalyzerRecord, directory: Path, key: str) -> None:
    """Everything one analyzer put in the report, shown generically."""
    record_header(r)
    show_findings([r], key=f"{key}-findings")
    show_scalars(r)
    show_images(r, directory)
    chart_tables(r, key=key)
    chart_series(r, key=key)
    show_metrics_json(r)
