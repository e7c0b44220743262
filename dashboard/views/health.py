"""Health: every analyzer with measure sections, drawn from the sections alone, so a new health analyzer
appears here with no view edited.

The table atop lists every measure of the report (its analyzer, scope, how many values, the worst
outcome, how it was judged); the selector (kept in the URL's ``?analyzer=``, which the Overview's link
sets) shows one analyzer: its findings, then per measure its chart, thresholds and values
(:func:`ui.analyzer_section`). A ``health`` analyzer without sections (skipped, failed, not yet a
HealthAnalyzer, or from a schema 2 report) is listed too, with its findings and its metrics as a table.
"""

import streamlit as st

from diagnostics_dashboard import reports, ui

report, directory = ui.require_report()
st.title("Health", anchor=False)
ui.measure_page(
    reports.health_records(report), directory, key="analyzer", prefix="health",
    empty=("No health analyzer in this report.",
           "Health analyzers (gradients, dead units, overfitting, weight spectra, GAN coverage, or any "
           "third-party `HealthAnalyzer`) put their measures here: per layer, epoch or class, judged "
           "against their thresholds. Enable them and run `diagnose` again; `diagnose plugins` lists "
           "what is installed."))
