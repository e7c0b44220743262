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


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def headline(r) -> None:
    """The analyzer's headline numbers as tiles, in words and units. health.overfitting's are read by their
    exact keys (plugins/health_overfitting.py); any other analyzer's numbers go in a plain table, since a raw
    key (``ece.bins``, ``gap.train``) is no title for a tile."""
    m = r.metrics
    tiles = []
    if r.name == "health.overfitting":
        gap, loss_gap, ece = (m.get(k) if isinstance(m.get(k), dict) else {} for k in ("gap", "loss_gap", "ece"))
        if all(reports.is_number(gap.get(k)) for k in ("gap", "train", "val")):
            metric = str(gap.get("metric") or "accuracy")
            ci = gap.get("ci95")
            interval = (f"; 95 % interval {100 * ci[0]:+.2f} to {100 * ci[1]:+.2f} points" if isinstance(ci, list)
                        and len(ci) == 2 and all(reports.is_number(c) for c in ci) else "")
            tiles.append((f"{metric.capitalize()} gap, train − validation", f"{100 * gap['gap']:+.2f} points",
                          f"{metric} {pct(gap['train'])} on training data, {pct(gap['val'])} on validation data{interval}."))
        if all(reports.is_number(loss_gap.get(k)) for k in ("gap", "train", "val")):
            loss = f" ({m['loss']})" if isinstance(m.get("loss"), str) else ""
            tiles.append(("Loss gap, validation − train", f"{loss_gap['gap']:+.3g}",
                          f"mean loss per sample{loss}: {loss_gap['train']:.3g} on training data, "
                          f"{loss_gap['val']:.3g} on validation data."))
        if all(reports.is_number(ece.get(k)) for k in ("train", "val")):
            bins = f" over {int(ece['bins'])} confidence bins" if reports.is_number(ece.get("bins")) else ""
            tiles.append(("Calibration error, validation", pct(ece["val"]),
                          f"expected calibration error{bins}: how far confidence is from accuracy; {pct(ece['train'])} "
                          f"on training data."))
        if reports.is_number(m.get("membership_auc")):
            tiles.append(("Membership-inference AUC", f"{m['membership_auc']:.3f}",
                          "how well a sample's loss tells training samples from unseen ones: 0.5, not at all; "
                          "towards 1, the model memorised its training data."))
    ui.tiles_or_table(r, tiles, key="t")


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
        headline(r)
        if history and list(reports.images(r)):  # the learning curves are drawn above: one chart, not two
            with st.expander("The analyzer's own figures (as in the HTML report)"):
                ui.show_images(r, directory, columns=2)
        else:
            ui.show_images(r, directory, columns=2)
        ui.chart_tables(r, key=f"t-{r.name}")
        # the gaps' 95 % intervals are in their tiles' help, not a series over anything
        intervals = ["gap.ci95", "loss_gap.ci95"] if r.name == "health.overfitting" else []
        ui.chart_series(r, key=f"t-{r.name}", exclude=[f"history.{k}" for k in history] + intervals)
        ui.show_metrics_json(r)
