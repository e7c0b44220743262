"""Sweep: a model's health over the checkpoints of a training run (``diagnose sweep``), what changed at
each checkpoint (why the verdict moved), when each finding was present (first appearance and every
interval, gaps included), and a click through to any checkpoint's report. The x axis is the sweep's: the
epochs (or steps) the file names and sidecars state. One chart per health measure in the index, titled,
scaled and thresholded as its analyzer declared it (the index's catalogue), one line per layer, class,
feature or series."""

from pathlib import Path

import pandas as pd
import streamlit as st

from diagnostics_dashboard import charts, reports, sweeps, ui
from diagnostics_dashboard.reports import md_escape

st.title("Checkpoint sweep", anchor=False)
root = reports.start_path()
found = sweeps.discover(root)
if not found:
    ui.placeholder("No checkpoint sweep here.",
                   "Run `diagnose sweep CHECKPOINTS... --out DIR` (e.g. `make demo-sweep`), then start the dashboard "
                   "on DIR or a folder above it.")
    st.stop()
labels = {(str(d.relative_to(root)) if d != root and d.is_relative_to(root) else d.name): d for d in found}
label = st.selectbox("Sweep", list(labels), key="sweep-pick")
directory = labels[label]
try:
    index = sweeps.load(directory)
except ValueError as e:
    st.error(md_escape(e))
    st.stop()
entries = index["checkpoints"]
unit = sweeps.axis_label(index)
xs = sweeps.steps(entries, sweeps.axis(index))
st.markdown(f"{len(entries)} checkpoints · analyzers {md_escape(', '.join(index.get('analyzers', [])))} · "
            f"seed {md_escape(index.get('seed'))} · executor {md_escape(index.get('executor', 'local'))}")

rows = [{unit: x, "checkpoint": e["checkpoint"], "verdict": e.get("verdict", "?"), "findings": len(e.get("findings", [])),
         "what changed": sweeps.changes_text(e) if e.get("since") else (e.get("message") or ""),
         "exit code": e.get("exit_code")} for x, e in zip(xs, entries)]
df = pd.DataFrame(rows, columns=[unit, "checkpoint", "verdict", "findings", "what changed", "exit code"])
st.dataframe(ui._styled(df, {"verdict": {**charts.SEVERITY_COLOURS, "clean": charts.SEVERITY_COLOURS[None]}}),
             hide_index=True, key="sweep-table")
st.caption("What changed: the warnings and errors that appeared (+), went (\u2212) or changed severity since the "
           "checkpoint before it with a report; they are what moves the verdict.")

st.subheader("Health over training", anchor=False)
THRESHOLD_COLOURS = {"warning": charts.SEVERITY_COLOURS["warning"], "error": charts.SEVERITY_COLOURS["error"]}
if sweeps.has_measures(index):
    measures = sweeps.catalogue(index)
    for code, meta in measures.items():  # one chart per measure, titled and scaled as its analyzer declared it
        series = sweeps.measure_series(entries, code)
        shown = sweeps.worst_lines(series, meta.get("direction", "neutral"))
        positive = all(y is None or y > 0 for v in shown.values() for y in v)
        fig = charts.lines(shown, title=sweeps.chart_title(meta), xlabel=unit, ylabel=meta.get("unit") or meta.get("title"),
                           log=meta.get("scale") == "log" and positive, x=xs)
        for name, y, level in sweeps.threshold_lines(meta):  # a trace, not a shape: a log axis places it right
            fig.add_scatter(x=[xs[0], xs[-1]], y=[y, y], mode="lines", name=charts.label(name), hoverinfo="skip",
                            line={"color": THRESHOLD_COLOURS[level], "dash": "dash", "width": 1})
        st.plotly_chart(fig, key=f"sweep-{code}")
        notes = [md_escape(code)]
        if meta.get("scope") == "epoch":
            notes.append("each checkpoint's last epoch")
        if len(shown) < len(series):
            notes.append(f"the {len(shown)} worst of {len(series)} lines")
        if meta.get("scale") == "log" and not positive:
            notes.append("linear scale: a value is not positive")
        if meta.get("reference"):
            notes.append(md_escape(meta["reference"]))
        st.caption(" · ".join(notes))
    if not measures:
        ui.placeholder("No health measure in this sweep.", "The analyzers it ran measure nothing over the checkpoints "
                       "(see --only; the explanations are not part of a sweep).")
else:  # an index written before measures: its free-form metrics, as they are, with nothing read into them
    legacy = sweeps.legacy_metrics(entries)
    st.caption(f"This index was written by an earlier `diagnose sweep` (index schema {md_escape(index.get('schema'))}): "
               "its health values are free-form metrics without titles, units or thresholds, so they are listed, "
               "not charted. Run `diagnose sweep` on the same checkpoints again to chart them.")
    if legacy:
        st.dataframe(pd.DataFrame({unit: xs, **legacy}), hide_index=True, key="sweep-legacy-metrics")

st.subheader("First appearance of each finding", anchor=False)
first = index.get("first_seen") or []
if first:
    first_col = f"first {unit}"
    frows = [{first_col: f.get("at", f.get("step")), "present": sweeps.intervals_text(f, unit),
              "severity": f.get("worst", f.get("severity")), "analyzer": f.get("analyzer"), "code": f.get("code"),
              "where": f.get("where"), "checkpoint": f.get("checkpoint")} for f in first]
    fdf = pd.DataFrame(frows, columns=[first_col, "present", "severity", "analyzer", "code", "where", "checkpoint"])
    st.dataframe(ui._styled(fdf, {"severity": charts.SEVERITY_COLOURS}), hide_index=True, key="sweep-first-seen")
    st.caption("Present: every run of consecutive checkpoints with the finding, so one that goes and comes back "
               "shows its gap; severity: its worst. First checkpoint: where it first appeared.")
else:
    st.caption("No checkpoint has a finding.")

st.subheader("Open a checkpoint's report", anchor=False)
names = [e["checkpoint"] for e in entries]
pick = st.selectbox("Checkpoint", names, index=len(names) - 1, key="sweep-checkpoint")
target = sweeps.report_dir(directory, entries[names.index(pick)])
if target is None:
    st.caption("This checkpoint has no report (it was refused or failed; see its row above).")
else:
    def _choose(target: Path, name: str) -> None:
        """Runs before the rerun builds the sidebar, so the report picker can be set to the checkpoint."""
        by_dir = {str(Path(d).resolve()): l for l, d in ui.available_reports().items()}
        if str(target) not in by_dir:  # outside what the sidebar lists: add it as a run of this session
            st.session_state.setdefault("runs", {})[name] = str(target)
            by_dir[str(target)] = name
        st.session_state["report_dir"] = str(target)
        st.session_state["report_label"] = by_dir[str(target)]

    if st.button("Open its report", key="sweep-open", icon=":material/open_in_new:", on_click=_choose,
                 args=(target, f"{label}/{pick}")):
        st.switch_page(ui.PAGES["overview"][0])
