"""Health: every analyzer with measure sections, drawn from the sections alone, so a new health analyzer
appears here with no view edited.

The table atop lists every measure of the report (its analyzer, scope, how many values, the worst
outcome, how it was judged); the selector (kept in the URL's ``?analyzer=``, which the Overview's link
sets) shows one analyzer: its findings, then per measure its chart, thresholds and values
(:func:`ui.analyzer_section`). A ``health`` analyzer without sections (skipped, failed, not yet a
HealthAnalyzer, or from a schema 2 report) is listed too, with its findings and its metrics as a table.
"""

import pandas as pd
import streamlit as st

from diagnostics_dashboard import reports, ui
from diagnostics_dashboard.reports import md_line

report, directory = ui.require_report()
st.title("Health", anchor=False)

records = reports.health_records(report)
if not records:
    ui.placeholder("No health analyzer in this report.",
                   "Health analyzers (gradients, dead units, overfitting, weight spectra, GAN coverage, or any "
                   "third-party `HealthAnalyzer`) put their measures here: per layer, epoch or class, judged "
                   "against their thresholds. Enable them and run `diagnose` again; `diagnose plugins` lists "
                   "what is installed.")
    st.stop()

#: the worst first (report order among equals), so the default choice is the first option
names = [r.name for r in sorted(records, key=lambda r: -(r.worst.rank if r.worst else -1))]
KEY = "analyzer"  # also the URL's query parameter

summary = reports.measure_summary(records)
if summary:
    rows = pd.DataFrame(summary, columns=["analyzer", "measure", "unit", "code", "scope", "values", "worst", "judged"])

    def _pick_row():
        sel = st.session_state.get("health-measures")
        picked = getattr(getattr(sel, "selection", None), "rows", None) if sel is not None else None
        if picked is None and isinstance(sel, dict):
            picked = sel.get("selection", {}).get("rows")
        if picked:
            st.session_state[KEY] = summary[picked[0]]["analyzer"]

    st.caption("Every measure in this report; click a row to show its analyzer below.")
    st.dataframe(ui._styled(rows, {"worst": reports.OUTCOME_COLOURS}), hide_index=True, key="health-measures",
                 on_select=_pick_row, selection_mode="single-row",
                 column_config={"judged": st.column_config.TextColumn(width="medium")})
else:
    st.caption("No analyzer in this report has measure sections (a report of schema 2, or analyzers that did not "
               "run): each is shown below with its findings and metrics.")

# The URL says which analyzer (the Overview links here with ?analyzer=NAME, and a shared link keeps it): it
# decides when it names another analyzer than the page last put there, or the selector is new on this visit.
asked = st.query_params.get(KEY)
if asked in names and (KEY not in st.session_state or asked != st.session_state.get("health-url")):
    st.session_state[KEY] = asked
elif st.session_state.get(KEY) not in names:
    st.session_state.pop(KEY, None)
chosen = st.radio("Analyzer", names, key=KEY, horizontal=True, format_func=md_line)
st.query_params[KEY] = st.session_state["health-url"] = chosen
with st.container(border=True):
    ui.analyzer_section(report.record(chosen), directory, key=f"h-{chosen}")
