"""Overview: the model card and the verdict table of every analyzer, with a click-through to each."""

import pandas as pd
import streamlit as st

from diagnostics._textsafe import visible

from diagnostics_dashboard import charts, reports, ui
from diagnostics_dashboard.reports import md_escape, md_line

report, directory = ui.require_report()
m = report.model
info = m.get("info", {}) or {}
worst = report.worst.value if report.worst else None

st.title(md_line(m.get("name") or "model"), anchor=False)
st.markdown(f"Verdict {ui.badge(worst or 'clean', worst)} · fail on {md_escape(report.fail_on)} · "
            f"exit code {int(report.exit_code)} · seed {int(report.seed)}")

card, data_col = st.columns([3, 2])
with card:
    st.subheader("Model card", anchor=False)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Kind", md_line(info.get("kind", "?")))
    c2.metric("Parameters", f"{info.get('n_params', 0):,}" if isinstance(info.get("n_params"), int) else "?")
    c3.metric("Layers", md_line(info.get("n_layers", "?")))
    c4.metric("Analyzers", str(len(report.analyzers)))
    card_rows = [
        ("file", m.get("path")), ("format", m.get("format")), ("sha256", (m.get("sha256") or "")[:16]),
        ("inputs", " ".join(f"{s} {d}" for s, d in zip(info.get("input_shapes", []), info.get("input_dtypes", [])))),
        ("outputs", str(info.get("output_shapes", ""))), ("output activation", info.get("output_activation")),
        ("loss", info.get("loss") or m.get("loss")), ("saved with keras", m.get("keras_version")),
        ("sidecar", m.get("sidecar")), ("backends", ", ".join(report.environment.get("backends", []))),
    ]
    st.dataframe(pd.DataFrame([(k, "" if v is None else str(v)) for k, v in card_rows], columns=["", "value"]),
                 hide_index=True, key="model-card")
with data_col:
    st.subheader("Data", anchor=False)
    if report.data:
        st.text(f"source: {visible(report.data.get('source'))}")
        shapes = report.data.get("shapes", {})
        st.dataframe(pd.DataFrame([(k, " × ".join(map(str, v))) for k, v in shapes.items()], columns=["array", "shape"]),
                     hide_index=True, key="data-shapes")
    else:
        st.caption("This run had no data: analyzers that need samples were skipped.")
    env = {k: v for k, v in sorted(report.environment.items()) if v and k != "backends"}
    st.caption(" · ".join(f"{md_escape(k)} {md_escape(v)}" for k, v in env.items()))

for problem in report.plugin_problems:
    st.error(md_escape(problem), icon=":material/extension_off:")

st.subheader("Verdicts", anchor=False)
rows = []
for r in report.analyzers:
    w = r.worst.value if r.worst else None
    rows.append({"analyzer": r.name, "category": r.category, "status": r.status, "worst": w or "none",
                 "findings": len(r.findings), "duration (s)": round(r.duration_s, 2), "backend": r.backend,
                 "reason": r.reason})
df = pd.DataFrame(rows, columns=["analyzer", "category", "status", "worst", "findings", "duration (s)", "backend", "reason"])
names = [r.name for r in report.analyzers]


def _pick_row():
    sel = st.session_state.get("verdict-table")
    picked = getattr(getattr(sel, "selection", None), "rows", None) if sel is not None else None
    if picked is None and isinstance(sel, dict):
        picked = sel.get("selection", {}).get("rows")
    if picked:
        st.session_state["overview-analyzer"] = names[picked[0]]


colours = {"status": charts.STATUS_COLOURS, "worst": {**charts.SEVERITY_COLOURS, None: charts.SEVERITY_COLOURS[None]}}
st.dataframe(ui._styled(df, colours), hide_index=True, key="verdict-table", on_select=_pick_row,
             selection_mode="single-row", column_config={"reason": st.column_config.TextColumn(width="large"),
                                                         "duration (s)": st.column_config.NumberColumn(format="%.2f")})
if report.analyzers:
    durations = [r.duration_s for r in report.analyzers]
    st.plotly_chart(charts.bars(names, durations, title="Time per analyzer", ylabel="seconds",
                                colours=[charts.SEVERITY_COLOURS[r.worst.value if r.worst else None] for r in report.analyzers]),
                    key="durations")

phases = report.phase_breakdown()
if phases:
    st.subheader("Timings", anchor=False)
    total = float(report.timings.get("total_s", 0.0))
    memory = [f"{md_escape(b)} {float(w['peak_rss_mib']):.0f} MiB" for b, w in sorted(report.workers.items())
              if "peak_rss_mib" in w]
    st.caption(f"{total:.1f} s in all; the workers run side by side, so their phases overlap."
               + (f" Peak worker memory: {', '.join(memory)}." if memory else ""))
    st.dataframe(pd.DataFrame([(label, round(s, 2)) for label, s in phases], columns=["phase", "seconds"]),
                 hide_index=True, key="phase-table",
                 column_config={"seconds": st.column_config.NumberColumn(format="%.2f")})
    st.plotly_chart(charts.bars([label for label, _ in phases], [s for _, s in phases], title="Time per phase",
                                ylabel="seconds"), key="phases")

st.subheader("Details", anchor=False)
if not names:
    ui.placeholder("No analyzer ran.", "Run `diagnose MODEL` with at least one analyzer installed.")
    st.stop()
if st.session_state.get("overview-analyzer") not in names:
    ranked = sorted(report.analyzers, key=lambda r: -(r.worst.rank if r.worst else -1))
    st.session_state["overview-analyzer"] = ranked[0].name
chosen = st.selectbox("Analyzer (or click a row above)", names, key="overview-analyzer")
record = report.record(chosen)
ui.analyzer_section(record, directory, key=f"ov-{chosen}")
if record.category == "explanation":
    st.page_link(ui.PAGES["explanations"][0], label="Open the Explanations page", icon=ui.PAGES["explanations"][2])
if record.name in {r.name for r in reports.health_records(report)}:
    st.page_link(ui.PAGES["health"][0], label="Open it on the Health page", icon=ui.PAGES["health"][2],
                 query_params={"analyzer": record.name})
if record.category == "data":
    st.page_link(ui.PAGES["data"][0], label="Open it on the Data page", icon=ui.PAGES["data"][2],
                 query_params={"analyzer": record.name})
