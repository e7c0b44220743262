"""Data: the faults that live in the data and the predictions (analyzers of category ``data``: input drift
between the splits, label leakage, prediction quality), drawn from their measure sections like the Health
page, so a new data analyzer appears here with no view edited."""

import streamlit as st

from diagnostics_dashboard import reports, ui

report, directory = ui.require_report()
st.title("Data", anchor=False)
ui.measure_page(
    reports.data_records(report), directory, key="data-analyzer", prefix="data",
    empty=("No data analyzer in this report.",
           "Data analyzers (input drift between the splits, label leakage, prediction quality per class, or any "
           "third-party analyzer of category `data`) need both splits with labels: run `diagnose MODEL --data "
           "FILE.npz` with x_train, y_train, x_val and y_val, or a model whose sidecar names its data."))
