"""Weights: per-layer kernel norms and dead units (core ``weights``), alpha and spectral densities (health)."""

import streamlit as st

from diagnostics_dashboard import charts, reports, ui

report, directory = ui.require_report()
st.title("Weights", anchor=False)

records = reports.about(report, "weights", categories=("health", "model"))
core = next((r for r in records if r.name == "weights"), None)
spectral = [r for r in records if r is not core]

st.header("Norms and dead units", anchor=False)
if core is None:
    ui.placeholder("The core `weights` analyzer is not in this report.",
                   "It runs by default; it is missing when the run used --only/--skip.")
else:
    ui.record_header(core, level="subheader")
    ui.show_findings([core], key="w-core-findings")
    kernels = [v for v in core.metrics.get("variables", []) if "kernel" in str(v.get("variable", ""))
               or "embeddings" in str(v.get("variable", ""))]
    if kernels:
        left, right = st.columns(2)
        colours = [charts.SEVERITY_COLOURS["error"] if v.get("nonfinite") else charts.BLUE for v in kernels]
        norms = [v.get("norm", 0.0) for v in kernels]
        with left:
            st.plotly_chart(charts.bars([v["layer"] for v in kernels], norms, title="Kernel norm per layer",
                                        ylabel="Frobenius norm", log=all(n > 0 for n in norms), colours=colours),
                            key="w-norms")
        with right:
            with_units = [v for v in kernels if v.get("units")]
            st.plotly_chart(charts.bars([v["layer"] for v in with_units], [v.get("dead_units", 0) for v in with_units],
                                        title="All-zero (dead) units per layer", ylabel="units", ymin=0,
                                        colours=[charts.SEVERITY_COLOURS["warning"] if v.get("dead_units") else charts.BLUE
                                                 for v in with_units]),
                            key="w-dead")
        st.metric("Non-finite weights", int(core.metrics.get("nonfinite_total", 0)))
    else:
        st.caption("The model has no kernels to plot.")

st.header("Spectral analysis", anchor=False)
if not spectral:
    ui.placeholder("No weight-spectrum analyzer in this report.",
                   "A health analyzer that fits the power-law exponent alpha of each layer's empirical spectral "
                   "density fills this view (alpha per layer, with the 2–6 range marked, and the density plots).")
for r in spectral:
    with st.container(border=True):
        ui.record_header(r)
        ui.show_findings([r], key=f"w-{r.name}-findings")
        shown_alpha = False
        for path, rows in reports.tables(r.metrics).items():
            label = reports.label_column(rows)
            if label and "alpha" in reports.numeric_columns(rows):
                pts = [(str(row[label]), row["alpha"]) for row in rows if reports.is_number(row.get("alpha"))]
                if pts:
                    st.plotly_chart(charts.bars([p[0] for p in pts], [p[1] for p in pts], title="Power-law exponent alpha per layer",
                                                ylabel="alpha", band=(2.0, 6.0),
                                                band_label="2 ≤ alpha ≤ 6: well-trained layers"),
                                    key=f"w-{r.name}-{path}-alpha")
                    shown_alpha = True
        if shown_alpha and list(reports.images(r)):  # the analyzer drew alpha too: one chart open, not three
            with st.expander("The analyzer's own figures (as in the HTML report)"):
                ui.show_images(r, directory, columns=3)
        else:
            ui.show_images(r, directory, columns=3)
        ui.chart_tables(r, key=f"w-{r.name}", expand_first=not shown_alpha)
        ui.show_metrics_json(r)
