"""GAN: a grid of generated samples and the class-coverage histogram from the GAN-health analyzers."""

from collections.abc import Mapping

import streamlit as st

from diagnostics_dashboard import charts, reports, ui

report, directory = ui.require_report()
st.title("GAN", anchor=False)

records = reports.about(report, "gan")
if not records:
    kind = (report.model.get("info") or {}).get("kind")
    ui.placeholder("No GAN-health analyzer in this report.",
                   "This view shows generated samples and how evenly they cover the classes (mode collapse). "
                   + ("This model is a generator: install or enable a GAN-health analyzer and run again."
                      if kind == "generator" else f"It applies to generator models; this one is a {kind} model."))
    st.stop()

COVERAGE_KEYS = ("class_counts", "coverage_counts", "class_histogram", "counts_per_class", "histogram", "coverage")

for r in records:
    with st.container(border=True):
        ui.record_header(r)
        ui.show_findings([r], key=f"gan-{r.name}-findings")
        if r.status != "ok":
            continue
        ui.show_scalars(r)
        counts = reports.find_key(r.metrics, *COVERAGE_KEYS)
        if isinstance(counts, Mapping) and counts and all(reports.is_number(v) for v in counts.values()):
            labels, values = [str(k) for k in counts], list(counts.values())
        elif isinstance(counts, list) and counts and all(reports.is_number(v) for v in counts):
            labels, values = [str(i) for i in range(len(counts))], counts
        else:
            labels, values = [], []
        if values:
            total = float(sum(values))
            st.plotly_chart(charts.histogram(labels, values, title="Generated samples per class (judged by the classifier)",
                                             expected=total / len(values) if total else None), key=f"gan-{r.name}-coverage")
        else:
            st.caption("No per-class counts in this analyzer's metrics.")
        ui.show_images(r, directory, columns=2)
        ui.chart_tables(r, key=f"gan-{r.name}")
        ui.chart_series(r, key=f"gan-{r.name}")
        ui.show_metrics_json(r)
