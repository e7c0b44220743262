"""Gradients: per-layer gradient norms (log scale), dead and saturated unit fractions."""

import streamlit as st

from diagnostics_dashboard import charts, reports, ui

report, directory = ui.require_report()
st.title("Gradients", anchor=False)

records = reports.about(report, "gradients")
if not records:
    ui.placeholder("No gradient-health analyzer in this report.",
                   "A health analyzer measuring per-layer gradient norms of the loss (vanishing / exploding) and "
                   "dead or saturated units fills this view. It needs data: zoo models bring theirs; otherwise "
                   "pass `--data FILE.npz`.")
    st.stop()

NORM_WORDS = ("grad_norm", "gradient_norm", "norm")
FRACTION_WORDS = ("dead", "saturat")


def headline(r) -> None:
    """The analyzer's few headline numbers as tiles, in words and units. health.gradients' are read by their
    exact keys (plugins/health_gradients.py); any other analyzer's numbers go in a plain table, since a raw
    key is no title for a tile."""
    m = r.metrics
    tiles = []
    if r.name == "health.gradients":
        where = f" on {m['inputs']}" if m.get("inputs") else ""
        if reports.is_number(m.get("global_grad_norm")):
            tiles.append(("Gradient norm, whole model", f"{m['global_grad_norm']:.3g}",
                          f"L2 norm of the loss gradient over every trainable weight{where}."))
        if reports.is_number(m.get("first_last_ratio")):
            tiles.append(("First ÷ last layer gradient", f"{m['first_last_ratio']:.2g}×",
                          "The first layer's kernel-gradient norm divided by the last layer's: far below 1, the early "
                          "layers barely learn (vanishing gradients)."))
        if reports.is_number(m.get("loss_value")):
            tiles.append(("Loss on the batch", f"{m['loss_value']:.4g}", f"{m.get('loss') or 'The loss'}{where}."))
    ui.tiles_or_table(r, tiles, key="g")

for r in records:
    with st.container(border=True):
        ui.record_header(r)
        ui.show_findings([r], key=f"g-{r.name}-findings")
        if r.status != "ok":
            continue
        headline(r)
        drawn = 0
        for path, rows in reports.tables(r.metrics).items():
            label = reports.label_column(rows)
            cols = reports.numeric_columns(rows)
            if not label:
                continue
            names = [str(row.get(label)) for row in rows]
            norm_cols = [c for c in cols if any(w in c.lower() for w in NORM_WORDS)]
            frac_cols = [c for c in cols if any(w in c.lower() for w in FRACTION_WORDS)]
            if norm_cols:
                picked = st.radio("Norm", norm_cols, horizontal=True, key=f"g-{r.name}-{path}-norm",
                                  format_func=reports.md_line) if len(norm_cols) > 1 else norm_cols[0]
                vals = [row.get(picked) for row in rows]
                pts = [(n, v) for n, v in zip(names, vals) if reports.is_number(v)]
                st.plotly_chart(charts.bars([p[0] for p in pts], [max(p[1], 1e-30) for p in pts],
                                            title=f"{picked} per {label} (log scale)", ylabel=picked, log=True),
                                key=f"g-{r.name}-{path}-norms")
                drawn += 1
            if frac_cols:
                import plotly.graph_objects as go

                fig = go.Figure([go.Bar(name=charts.label(c), x=[charts.label(n) for n in names], y=[row.get(c) for row in rows],
                                        marker_color=charts.SERIES[i % len(charts.SERIES)]) for i, c in enumerate(frac_cols)])
                fig.update_layout(barmode="group")
                st.plotly_chart(charts._layout(fig, f"Dead and saturated units per {label}", ylabel="fraction of units"),
                                key=f"g-{r.name}-{path}-fractions")
                drawn += 1
        if drawn and list(reports.images(r)):  # the analyzer drew the same numbers: one chart, not two
            with st.expander("The analyzer's own figure (as in the HTML report)"):
                ui.show_images(r, directory, columns=2)
        else:
            ui.show_images(r, directory, columns=2)
        ui.chart_series(r, key=f"g-{r.name}")
        ui.show_metrics_json(r)
