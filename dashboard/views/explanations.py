"""Explanations: pick a sample, see every method side by side with its trust verdict, then one in detail.

Everything here comes from the report's typed explanation sections (``analyzers[].explanations``):
the verdict, reasons and checks, the explained sample indices and targets, and the artifacts the
pipeline saved beside the report (the inputs, the per-feature maps, the labels and the mask).
"""

import numpy as np
import pandas as pd
import streamlit as st

from diagnostics_dashboard import charts, reports, ui
from diagnostics_dashboard.reports import md_escape, md_line

report, directory = ui.require_report()
st.title("Explanations", anchor=False)

methods = reports.explanation_methods(report)
if not methods:
    ui.placeholder("No explanation analyzer in this report.",
                   "Explanation analyzers (category `explanation`: Integrated Gradients, SHAP, LIME, captum…) put "
                   "attribution maps, faithfulness curves and a trust verdict per method here. Install or enable "
                   "them and run `diagnose` again; `diagnose plugins` lists what is installed.")
    st.stop()


def array(m: reports.Method, key: str):
    rel = m.artifacts.get(key)
    return ui.load_array(directory, rel) if rel else None


# -- the samples: the first method that ran says which ones, with their targets and labels --------------
ran = [m for m in methods if m.section is not None and m.section.verdict is not None]
first = ran[0] if ran else None
indices = list(first.section.sample_indices) if first else []
targets = list(first.section.targets) if first else []
labels = array(first, "labels") if first else None
#: a one-unit sigmoid explains unit 0 for both classes (the class is in the sign): no class to show
sigmoid = first is not None and "sigmoid" in first.section.target


def sample_label(i: int) -> str:
    parts = [f"sample {indices[i]}"]
    if labels is not None and i < len(labels):
        parts.append(f"true {labels[i].item()}")
    if i < len(targets) and not sigmoid:
        parts.append(f"{'predicted' if 'predicted' in first.section.target else 'explained class'} {targets[i]}")
    return " · ".join(parts)


probe_x = array(first, "inputs") if first else None
probe_mask = array(first, "mask") if first else None
is_image = probe_x is not None and probe_x.ndim == 4
c1, c2, c3 = st.columns([3, 2, 2])
if indices:
    sample = c1.selectbox("Sample", range(len(indices)), format_func=sample_label, key="ex-sample")
else:
    sample = 0
    c1.caption("No method ran; see the reasons below.")
opacity = c2.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="ex-opacity",
                    help="How strongly the attribution covers the input image.") if is_image else 1.0
show_mask = probe_mask is not None and c3.toggle(
    "Ground-truth mask", value=True, key="ex-mask",
    help="Mark the input positions that decide the label (the zoo's synthetic tasks plant them).")
if probe_mask is None:
    c3.caption("This task has no ground-truth mask.")


def draw(m: reports.Method, key: str) -> bool:
    """The method's per-feature map for the chosen sample, over its input."""
    fmap, x = array(m, "map"), array(m, "inputs")
    if fmap is None or sample >= len(fmap):
        st.caption("No attribution map saved.")
        return False
    a = np.asarray(fmap[sample], dtype=float)
    mask = array(m, "mask") if show_mask else None
    mask = np.asarray(mask[sample]) if mask is not None else None
    xi = np.asarray(x[sample]) if x is not None else None
    if a.ndim == 2:  # an image: H x W, drawn over the input's mean over channels
        bg = xi.mean(axis=-1) if xi is not None and xi.ndim == 3 else None
        st.plotly_chart(charts.heatmap(a, title="", background=bg, opacity=opacity,
                                       mask=mask if mask is not None and mask.shape == a.shape else None), key=key)
    else:  # time steps, tokens or table columns: one value per position
        st.plotly_chart(charts.strip(a, title="", mask=mask.reshape(-1) if mask is not None else None), key=key)
        if xi is not None and xi.dtype.kind in "iu":
            st.caption("tokens: " + md_escape(" ".join(str(t) for t in xi.reshape(-1))))
    return True


def verdict_line(m: reports.Method) -> str:
    if m.record.status != "ok":
        return f"{ui.badge(m.record.status)} {md_escape(m.record.reason)}"
    v, reason = m.verdict
    if v is None:
        return ui.badge("not run", "skipped") + (f" {md_escape(reason)}" if reason else "")
    return ui.badge(v, v) + (f" {md_escape(reason)}" if reason else "")


def faithfulness_view(m: reports.Method):
    """Deletion/insertion curves of the attribution order against a random order."""
    check = m.section.check("faithfulness") if m.section is not None else None
    if check is None or "curves" not in check.detail:
        st.caption("No faithfulness check (deletion / insertion) for this method.")
        return
    curves = {k.replace(".", " "): v for k, v in check.detail["curves"].items()}
    st.plotly_chart(charts.lines(curves, x=check.detail.get("fractions"), title="Faithfulness (deletion / insertion)",
                                 xlabel="fraction of features removed / inserted", ylabel="model output"),
                    key=f"ex-{m.name}-curves")


def checks_frame(m: reports.Method):
    """One row per check: its value with the interval that decided it and the samples behind it."""
    def interval(c, side):
        return None if c.interval is None else c.interval[side]

    rows = [{"check": c.name, "value": c.value, "interval low": interval(c, 0), "interval high": interval(c, 1),
             "samples": c.samples, "threshold": c.threshold, "outcome": c.outcome.value,
             "better": "higher" if c.higher_is_better else "lower", "reason": c.reason}
            for c in (m.section.checks if m.section is not None else ())]
    return pd.DataFrame(rows, columns=["check", "value", "interval low", "interval high", "samples", "threshold",
                                       "outcome", "better", "reason"])


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
            st.markdown(f"**{md_line(m.name)}**")
            st.markdown(verdict_line(m))
            draw(m, key=f"ex-side-{m.name}")

verdicts = [{"method": m.name, "verdict": (m.verdict[0] or "not run") if m.record.status == "ok" else m.record.status,
             "reason": m.verdict[1], "analyzer": m.record.name, "analyzer time (s)": round(m.record.duration_s, 2)}
            for m in methods]
st.dataframe(ui._styled(pd.DataFrame(verdicts), {"verdict": {**reports.VERDICT_COLOURS, "skipped": "#757575",
                                                             "timed_out": charts.STATUS_COLOURS["timed_out"]}}),
             hide_index=True, key="ex-verdicts",
             column_config={"analyzer time (s)": st.column_config.NumberColumn(format="%.2f")})

# -- one method in detail --------------------------------------------------------------------------
st.subheader("Method in detail", anchor=False)
focus = st.radio("Method", names, horizontal=True, key="ex-focus", format_func=md_line)
m = next(x for x in methods if x.name == focus)
with st.container(border=True):
    st.markdown(f"#### {md_line(m.name)}")
    st.markdown(f"Trust verdict: {verdict_line(m)}")
    if m.section is not None and m.section.reference:
        st.caption(md_escape(m.section.reference))
    ui.show_findings([m.findings()], key=f"ex-{m.name}-findings")
    left, right = st.columns(2)
    with left:
        draw(m, key=f"ex-detail-{m.name}")
    with right:
        faithfulness_view(m)
    st.dataframe(ui._styled(checks_frame(m), {"outcome": {"passed": reports.VERDICT_COLOURS["trusted"],
                                                          "doubtful": reports.VERDICT_COLOURS["doubtful"],
                                                          "failed": reports.VERDICT_COLOURS["failed"]}}),
                 hide_index=True, key=f"ex-{m.name}-checks")
    imgs = [(k, v) for k, v in sorted(m.record.artifacts.items()) if v.lower().endswith(".png")]
    if imgs:
        with st.expander(f"All figures ({len(imgs)})"):
            cols = st.columns(3)
            for i, (name, rel) in enumerate(imgs):
                p = reports.artifact_path(directory, rel)
                if p is not None:
                    cols[i % 3].image(str(p), caption=md_line(name), width="stretch")
    ui.show_metrics_json(m.record)
