"""Explanations: pick a sample, see every method side by side with its trust verdict, then one in detail."""

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
import streamlit as st

from diagnostics_dashboard import charts, reports, ui
from diagnostics_dashboard.reports import md_escape

report, directory = ui.require_report()
st.title("Explanations", anchor=False)

methods = reports.explanation_methods(report)
if not methods:
    ui.placeholder("No explanation analyzer in this report.",
                   "Explanation analyzers (category `explanation`: Integrated Gradients, SHAP, LIME, captum…) put "
                   "attribution maps, faithfulness curves and a trust verdict per method here. Install or enable "
                   "them and run `diagnose` again; `diagnose plugins` lists what is installed.")
    st.stop()

ATTR_WORDS = ("attribution", "attr", "saliency", "map", "shap", "values")
INPUT_WORDS = ("input", "inputs", "x", "samples", "images")
MASK_WORDS = ("mask", "ground_truth", "ground truth", "groundtruth")
CURVE_WORDS = ("deletion", "insertion", "faithful", "curve")


def _matches(name: str, words) -> bool:
    low = name.lower()
    tokens = set(re.split(r"[^a-z0-9]+", low))
    return any(w in tokens or (len(w) > 3 and w in low) for w in words)


def pick_array(arts: Mapping[str, str], words, exclude=()):
    """The first ``.npy`` artifact whose name mentions one of ``words`` and none of ``exclude``."""
    for name, rel in sorted(arts.items()):
        if rel.lower().endswith(".npy") and _matches(name, words) and not _matches(name, exclude):
            return name, rel
    return None


def target_name(metrics) -> str | None:
    """What the analyzer's ``targets`` are: the predicted class unless a --target was chosen. For a
    sigmoid output the target is the output unit (0) and the class is in the sign: not a label."""
    t = str(metrics.get("target", "predicted")).lower()
    if "sigmoid" in t:
        return None
    return "predicted" if "predict" in t else "explained class"


def sample_table(ms):
    """Per-sample labels as the analyzers recorded them: a list of {index, label, predicted} records,
    or parallel lists (``sample_indices``, ``targets``/``predicted``, ``labels``/``y_true``)."""
    for m in ms:
        for src in (m.metrics, m.record.metrics):
            rows = reports.find_key(src, "samples")
            if isinstance(rows, list) and rows and all(isinstance(r, Mapping) for r in rows):
                return rows
    for m in ms:
        met = m.record.metrics
        idx = met.get("sample_indices")
        if isinstance(idx, list) and idx:
            cols = {"index": idx}
            for out, keys in (("label", ("labels", "y_true", "true_labels")),
                              ("predicted", ("predicted", "predictions", "y_pred")),
                              (target_name(met), ("targets",))):
                for k in keys:
                    if out is not None and isinstance(met.get(k), list) and len(met[k]) == len(idx):
                        cols[out] = met[k]
                        break
            return [{k: v[i] for k, v in cols.items()} for i in range(len(idx))]
    return []


def sample_label(i, row):
    idx = row.get("index", i)
    parts = [f"sample {idx}"]
    true = next((row[k] for k in ("label", "true", "y", "y_true", "true_label") if k in row), None)
    pred = next((row[k] for k in ("predicted", "pred", "prediction", "y_pred") if k in row), None)
    target = row.get("explained class", row.get("target"))
    if true is not None:
        parts.append(f"true {true}")
    if pred is not None:
        parts.append(f"predicted {pred}")
    if target is not None and target != pred:
        parts.append(f"explained class {target}")
    return " · ".join(parts)


# -- controls ----------------------------------------------------------------------------------------
samples = sample_table(methods)
n_from_arrays = 0
for m in methods:
    hit = pick_array(m.artifacts, ATTR_WORDS, exclude=MASK_WORDS)
    if hit:
        arr = ui.load_array(directory, hit[1])
        if arr is not None and arr.ndim >= 2:
            n_from_arrays = max(n_from_arrays, int(arr.shape[0]))
n_samples = len(samples) or n_from_arrays

# The inputs, true labels and ground-truth masks of the explained samples: saved by the analyzer as
# artifacts, else read back from the data the run used (its sidecar dataset or data file).
data = ui.report_data(report)


def true_label(row):
    if data is None or data.get("y") is None or "index" not in row:
        return None
    y = np.asarray(data["y"])
    i = int(row["index"])
    if i >= len(y):
        return None
    v = y[i]
    return int(np.argmax(v)) if np.ndim(v) == 1 and np.size(v) > 1 else v.item() if hasattr(v, "item") else v


for row in samples:
    if "label" not in row:
        t = true_label(row)
        if t is not None:
            row["label"] = t


def sample_inputs(m: reports.Method, i: int):
    """(input, mask) of sample ``i`` for method ``m``: from its artifacts, else from the report's data."""
    x_hit = pick_array(m.artifacts, INPUT_WORDS, exclude=ATTR_WORDS + MASK_WORDS)
    x = ui.load_array(directory, x_hit[1]) if x_hit else None
    xi = np.asarray(x[i]) if x is not None and i < len(x) else None
    m_hit = pick_array(m.artifacts, MASK_WORDS)
    mask = ui.load_array(directory, m_hit[1]) if m_hit else None
    mi = np.asarray(mask[i]) if mask is not None and i < len(mask) else None
    if data is not None and i < len(samples) and "index" in samples[i]:
        j = int(samples[i]["index"])
        if xi is None and data.get("x") is not None and j < len(data["x"]):
            xi = np.asarray(data["x"][j])
        if mi is None and data.get("mask") is not None and j < len(data["mask"]):
            mi = np.asarray(data["mask"][j])
    return xi, mi


probe_x, probe_mask = sample_inputs(methods[0], 0) if n_samples else (None, None)
c1, c2, c3 = st.columns([3, 2, 2])
if n_samples:
    labels = [sample_label(i, samples[i]) if i < len(samples) else f"sample {i}" for i in range(n_samples)]
    sample = c1.selectbox("Sample", range(n_samples), format_func=lambda i: labels[i], key="ex-sample")
else:
    sample = 0
    c1.caption("The analyzers saved no per-sample arrays; showing their figures.")
opacity = 1.0
is_image = probe_x is not None and probe_x.dtype.kind == "f" and (
    probe_x.ndim == 3 or (probe_x.ndim == 2 and probe_x.shape[0] == probe_x.shape[1] >= 8))
if is_image:
    opacity = c2.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="ex-opacity",
                        help="How strongly the attribution covers the input image.")
show_mask = False
if probe_mask is not None:
    show_mask = c3.toggle("Ground-truth mask", value=True, key="ex-mask",
                          help="Mark the input positions that decide the label (the zoo's synthetic tasks plant them).")
else:
    c3.caption("This task has no ground-truth mask.")


def draw(m: reports.Method, key: str):
    """The method's attribution for the chosen sample (from its arrays), else its images."""
    hit = pick_array(m.artifacts, ATTR_WORDS, exclude=MASK_WORDS)
    arr = ui.load_array(directory, hit[1]) if hit else None
    if arr is not None and arr.ndim >= 2 and sample < arr.shape[0]:
        a = np.asarray(arr[sample], dtype=float)
        x, mask = sample_inputs(m, sample)
        mask = mask if show_mask else None
        xf = np.asarray(x, dtype=float) if x is not None and np.asarray(x).dtype.kind == "f" else None
        if a.ndim == 3 or (a.ndim == 2 and xf is not None and xf.ndim == 3 and xf.shape[:2] == a.shape):
            a2 = a.sum(axis=-1) if a.ndim == 3 else a  # H, W(, C): channels summed for display
            bg = xf.mean(axis=-1) if xf is not None and xf.ndim == 3 else None
            st.plotly_chart(charts.heatmap(a2, title="", background=bg, opacity=opacity,
                                           mask=mask if mask is not None and mask.shape == a2.shape else None),
                            key=key)
        elif a.ndim == 2 and a.shape[0] == a.shape[1] >= 8 and (xf is None or xf.shape == a.shape):
            st.plotly_chart(charts.heatmap(a, title="", background=xf, opacity=opacity), key=key)
        else:  # a sequence (T,) or (T, F), or tokens: one value per position
            strip = a if a.ndim == 1 else a.sum(axis=-1)
            tokens = [str(t) for t in np.asarray(x).reshape(-1)] if x is not None and np.asarray(x).dtype.kind in "iu" \
                and np.asarray(x).size == strip.size else None
            st.plotly_chart(charts.strip(strip, title="", mask=mask.reshape(-1) if mask is not None and
                                         mask.size == strip.size else None), key=key)
            if tokens:
                st.caption("tokens: " + md_escape(" ".join(tokens)))
        return True
    imgs = [(k, v) for k, v in sorted(m.artifacts.items()) if v.lower().endswith(".png")]
    if imgs:
        tagged = [(k, v) for k, v in imgs if f"_{sample}." in v or f"sample {sample}" in k or k.endswith(f" {sample}")]
        name, rel = (tagged or imgs)[0]
        p = reports.artifact_path(directory, rel)
        if p is not None:
            st.image(str(p), caption=name, width="stretch")
            return True
    st.caption("No attribution map saved.")
    return False


def verdict_line(m: reports.Method) -> str:
    v, reason = m.verdict
    status = m.record.status
    if status != "ok":
        return f"{ui.badge(status)} {md_escape(m.record.reason)}"
    if v is None:
        return ui.badge("no verdict", "skipped")
    return ui.badge(v, v.lower()) + (f" {md_escape(reason)}" if reason else "")


def own_findings(m: reports.Method):
    """The method's own findings when one analyzer reports several methods (``where`` or code names it)."""
    import dataclasses

    key = m.name.rsplit(":", 1)[-1]
    if m.name == m.record.name:
        return m.record
    mine = tuple(f for f in m.record.findings if f.where == key or f".{key}." in f".{f.code}.")
    return dataclasses.replace(m.record, findings=mine)


def faithfulness_view(m: reports.Method):
    """Deletion/insertion curves when the analyzer saved them; else its areas under them against random order."""
    all_series = reports.series(m.metrics)
    x = next((v for k, v in all_series.items() if k.rsplit(".", 1)[-1] in ("fractions", "fraction", "steps", "x")), None)
    curves = {k.split("curves.")[-1].replace(".", " "): v for k, v in all_series.items()
              if any(w in k.lower() for w in CURVE_WORDS) and k.rsplit(".", 1)[-1] not in ("fractions", "fraction", "steps", "x")}
    if curves:
        st.plotly_chart(charts.lines(curves, x=x, title="Faithfulness (deletion / insertion)",
                                     xlabel="fraction of features removed / inserted", ylabel="model output"),
                        key=f"ex-{m.name}-curves")
        return
    f = reports.find_key(m.metrics, "faithfulness")
    pairs = [(name, f.get(f"{name}_auc"), f.get(f"{name}_auc_random")) for name in ("deletion", "insertion")] \
        if isinstance(f, Mapping) else []
    pairs = [p for p in pairs if reports.is_number(p[1]) and reports.is_number(p[2])]
    if not pairs:
        st.caption("No faithfulness check (deletion / insertion) for this method.")
        return
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(name="this method", x=[p[0] for p in pairs], y=[p[1] for p in pairs], marker_color=charts.BLUE),
                     go.Bar(name="random order", x=[p[0] for p in pairs], y=[p[2] for p in pairs], marker_color="#9e9e9e")])
    fig.update_layout(barmode="group")
    st.plotly_chart(charts._layout(fig, "Faithfulness: area under the deletion / insertion curves",
                                   ylabel="normalised AUC"), key=f"ex-{m.name}-faith")
    st.caption("Deletion: lower than random is better (removing the top-attributed features first should hurt most). "
               "Insertion: higher than random is better.")


# -- side by side ------------------------------------------------------------------------------------
st.subheader("Methods side by side", anchor=False)
names = [m.name for m in methods]
shown = st.multiselect("Methods", names, default=names[:4], key="ex-methods")
per_row = 4
chosen = [m for m in methods if m.name in shown]
for start in range(0, len(chosen), per_row):
    cols = st.columns(per_row)
    for col, m in zip(cols, chosen[start:start + per_row]):
        with col:
            st.markdown(f"**{md_escape(m.name)}**")
            st.markdown(verdict_line(m))
            draw(m, key=f"ex-side-{m.name}")

verdicts = [{"method": m.name, "verdict": (m.verdict[0] or "—") if m.record.status == "ok" else m.record.status,
             "reason": m.verdict[1] or m.record.reason, "analyzer": m.record.name,
              "analyzer time (s)": round(m.record.duration_s, 2)}
            for m in methods]
st.dataframe(ui._styled(pd.DataFrame(verdicts), {"verdict": {**reports.VERDICT_COLOURS, "skipped": "#757575",
                                                             "timed_out": charts.STATUS_COLOURS["timed_out"]}}),
             hide_index=True, key="ex-verdicts",
             column_config={"analyzer time (s)": st.column_config.NumberColumn(format="%.2f")})

# -- one method in detail --------------------------------------------------------------------------
st.subheader("Method in detail", anchor=False)
focus = st.radio("Method", names, horizontal=True, key="ex-focus")
m = next(x for x in methods if x.name == focus)
with st.container(border=True):
    st.markdown(f"#### {md_escape(m.name)}")
    st.markdown(f"Trust verdict: {verdict_line(m)}")
    ui.show_findings([own_findings(m)], key=f"ex-{m.name}-findings")
    left, right = st.columns(2)
    with left:
        draw(m, key=f"ex-detail-{m.name}")
    with right:
        faithfulness_view(m)
    sc = {k: v for k, v in reports.scalars(m.metrics).items() if reports.is_number(v)}
    if sc:
        st.dataframe(pd.DataFrame([{"metric": k, "value": v} for k, v in sc.items()]), hide_index=True, key=f"ex-{m.name}-scalars")
    imgs = [(k, v) for k, v in sorted(m.artifacts.items()) if v.lower().endswith(".png")]
    if imgs:
        with st.expander(f"All figures ({len(imgs)})"):
            cols = st.columns(3)
            for i, (name, rel) in enumerate(imgs):
                p = reports.artifact_path(directory, rel)
                if p is not None:
                    cols[i % 3].image(str(p), caption=name, width="stretch")
    ui.show_metrics_json(m.record)
