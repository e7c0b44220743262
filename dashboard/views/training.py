"""Training: learning curves with overfitting markers, memorisation and calibration figures."""

import json
from pathlib import Path

import streamlit as st

from diagnostics_dashboard import charts, reports, ui

report, directory = ui.require_report()
st.title("Training", anchor=False)

records = reports.about(report, "training")
MARKERS = {"best epoch": ("best_epoch",), "divergence": ("divergence_epoch", "turn_epoch", "overfit_epoch",
                                                           "val_loss_turns_up", "divergence")}


@st.cache_data(show_spinner=False)
def sidecar_history(model_path: str, sidecar: str) -> dict:
    """The per-epoch history in the model's sidecar (what diagnose itself read), if it is still there."""
    try:
        d = json.loads((Path(model_path).parent / sidecar).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    h = d.get("history") if isinstance(d, dict) else None
    return {k: v for k, v in (h or {}).items() if isinstance(v, list) and all(reports.is_number(x) for x in v)}


history = {}
for r in records:
    h = reports.find_key(r.metrics, "history")
    if isinstance(h, dict):
        history = {k: v for k, v in h.items() if isinstance(v, list) and len(v) >= 1 and all(reports.is_number(x) for x in v)}
        if history:
            break
if not history and report.model.get("sidecar") and report.model.get("path"):
    history = sidecar_history(str(report.model["path"]), str(report.model["sidecar"]))

st.header("Learning curves", anchor=False)
if history:
    markers = {}
    for label, keys in MARKERS.items():
        for r in records:
            v = reports.find_key(r.metrics, *keys)
            if reports.is_number(v):
                markers[f"{label} ({int(v)})"] = v
                break
    losses = {k: v for k, v in history.items() if "loss" in k}
    others = {k: v for k, v in history.items() if "loss" not in k}
    c1, c2 = st.columns(2)
    with c1:
        n = max(len(v) for v in (losses or history).values())
        st.plotly_chart(charts.lines(losses or history, title="Loss per epoch", xlabel="epoch", ylabel="loss",
                                     markers=markers, x=list(range(1, n + 1))),
                        key="t-loss")
    if others:
        with c2:
            n = max(len(v) for v in others.values())
            st.plotly_chart(charts.lines(others, title="Metrics per epoch", xlabel="epoch", markers=markers,
                                         x=list(range(1, n + 1))), key="t-metrics")
    if not markers:
        st.caption("No overfitting markers (best epoch, divergence) in this report.")
else:
    ui.placeholder("No training history.", "Zoo models carry theirs in the sidecar; an overfitting analyzer "
                   "reports it along with the best epoch and where validation loss turns up.")

st.header("Overfitting, memorisation and calibration", anchor=False)
if not records:
    ui.placeholder("No overfitting analyzer in this report.",
                   "A health analyzer measuring the train/validation gap, membership-inference AUC "
                   "(memorisation) and expected calibration error fills this view. It needs both data splits.")
for r in records:
    with st.container(border=True):
        ui.record_header(r)
        ui.show_findings([r], key=f"t-{r.name}-findings")
        if r.status != "ok":
            continue
        ui.show_scalars(r, limit=12)
        ui.show_images(r, directory, columns=2)
        ui.chart_tables(r, key=f"t-{r.name}")
        ui.chart_series(r, key=f"t-{r.name}", exclude=[f"history.{k}" for k in history])
        ui.show_metrics_json(r)
