"""Plotly figures for the dashboard: interactive, in the report's severity colours, sized for a laptop.

Plotly reads titles, axis and legend labels, tick labels and annotations as a subset of HTML (links,
bold, line breaks): every text here that a report chose (layer, metric and series names) goes
through :func:`label`, so ``<a href=...>`` in a layer name shows as itself.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from diagnostics._html import SEVERITY_COLOURS, STATUS_COLOURS
from diagnostics._textsafe import html_text

__all__ = ["SEVERITY_COLOURS", "STATUS_COLOURS", "bars", "lines", "heatmap", "histogram", "label"]

HEIGHT = 340
BLUE = SEVERITY_COLOURS["info"]
#: A qualitative palette that avoids the severity colours, for series that are not verdicts.
SERIES = ("#1565c0", "#00897b", "#8e24aa", "#6d4c41", "#546e7a", "#f9a825", "#3949ab", "#00acc1")


def label(text) -> str:
    """``text`` as Plotly shows it literally: HTML-escaped (Plotly decodes the entities), control and
    bidi characters shown as escapes."""
    return html_text(text)


def _layout(fig, title: str, xlabel: str = "", ylabel: str = "", log: bool = False):
    fig.update_layout(title={"text": label(title), "font": {"size": 15}}, height=HEIGHT,
                      margin={"l": 50, "r": 20, "t": 50, "b": 60}, xaxis_title=label(xlabel), yaxis_title=label(ylabel),
                      legend={"orientation": "h", "y": -0.25})
    if log:
        fig.update_yaxes(type="log")
    return fig


def bars(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str = "", log: bool = False,
         colours: Sequence[str] | str | None = None, hlines: Mapping[str, float] | None = None,
         band: tuple[float, float] | None = None, ymin: float | None = None, legend: Mapping[str, str] | None = None,
         band_label: str | None = None):
    """One bar per label (layers, classes). ``band`` shades the healthy range; ``hlines`` mark thresholds.

    ``legend`` says what each of ``colours`` means (colour -> words), one legend entry each. With a ``band``,
    bars are coloured inside/outside it unless ``colours`` says otherwise, and the legend names both and the
    shading (``band_label``), so the chart explains itself without a caption.
    """
    import plotly.graph_objects as go

    labels, values = list(labels), list(values)
    per_bar = list(colours) if colours is not None and not isinstance(colours, str) else None
    if band is not None:
        lo, hi = band
        inside = f"within {lo:g}–{hi:g}"
        if per_bar is None and colours is None:
            per_bar = [BLUE if v is None or lo <= v <= hi else SEVERITY_COLOURS["warning"] for v in values]
        if legend is None:
            legend = {BLUE: inside, SEVERITY_COLOURS["warning"]: f"outside {lo:g}–{hi:g}"}
    fig = go.Figure()
    if legend and per_bar is not None:
        for colour in dict.fromkeys(per_bar):  # one trace per meaning, in order of first appearance
            idx = [i for i, c in enumerate(per_bar) if c == colour]
            fig.add_trace(go.Bar(x=[label(labels[i]) for i in idx], y=[values[i] for i in idx], marker_color=colour,
                                 name=label(legend.get(colour, "other")), hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
        fig.update_layout(barmode="relative", showlegend=True)  # one bar per label: no gaps beside it
        fig.update_xaxes(categoryorder="array", categoryarray=[label(l) for l in labels])
    else:
        fig.add_trace(go.Bar(x=[label(l) for l in labels], y=values, marker_color=per_bar or colours or BLUE,
                             hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
    if band is not None:
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor=SEVERITY_COLOURS[None], opacity=0.08, line_width=0)
        # shapes have no legend entry: a marker of the shading's colour stands for it
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip",
                                 marker={"symbol": "square", "size": 14, "color": SEVERITY_COLOURS[None], "opacity": 0.25},
                                 name=label(band_label or f"shaded: {band[0]:g} to {band[1]:g}")))
    for name, y in (hlines or {}).items():
        fig.add_hline(y=y, line_dash="dash", line_color=SEVERITY_COLOURS["warning"], annotation_text=label(name))
    if ymin is not None and not log:
        top = max([v for v in values if v is not None] + [ymin + 1])
        fig.update_yaxes(range=[ymin, top * 1.1])
    return _layout(fig, title, "", ylabel, log)


def lines(series: Mapping[str, Sequence[float]], *, title: str, xlabel: str = "", ylabel: str = "", log: bool = False,
          x: Sequence[float] | None = None, markers: Mapping[str, float] | None = None):
    """One line per series; ``markers`` draw labelled vertical lines (e.g. best epoch, divergence)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        xs = list(x) if x is not None and len(x) == len(ys) else list(range(len(ys)))
        fig.add_trace(go.Scatter(x=xs, y=list(ys), mode="lines+markers" if len(ys) <= 60 else "lines", name=label(name),
                                 line={"color": SERIES[i % len(SERIES)]}))
    for i, (name, at) in enumerate((markers or {}).items()):
        colour = SEVERITY_COLOURS["warning"] if i else SEVERITY_COLOURS[None]
        fig.add_vline(x=at, line_dash="dot", line_color=colour, annotation_text=label(name), annotation_position="top")
    return _layout(fig, title, xlabel, ylabel, log)


def heatmap(values, *, title: str, background=None, opacity: float = 0.6, mask=None, colorscale: str = "RdBu_r"):
    """An attribution map, optionally over a greyscale ``background`` image and a ground-truth ``mask`` outline."""
    import numpy as np
    import plotly.graph_objects as go

    v = np.asarray(values, dtype=float)
    lim = float(np.nanmax(np.abs(v))) if v.size and np.isfinite(v).any() else 1.0
    fig = go.Figure()
    if background is not None:
        fig.add_trace(go.Heatmap(z=np.asarray(background, dtype=float), colorscale="gray", showscale=False,
                                 hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=v, colorscale=colorscale, zmin=-lim or -1, zmax=lim or 1, zmid=0,
                             opacity=opacity if background is not None else 1.0,
                             colorbar={"thickness": 10}, hovertemplate="(%{x}, %{y}): %{z:.3g}<extra></extra>"))
    if mask is not None:
        m = np.asarray(mask, dtype=float)
        fig.add_trace(go.Contour(z=m, showscale=False, contours={"start": 0.5, "end": 0.5, "coloring": "lines"},
                                 line={"color": SEVERITY_COLOURS[None], "width": 2}, hoverinfo="skip", name="ground truth"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title={"text": label(title), "font": {"size": 13}}, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def strip(values, *, title: str, mask=None, labels: Sequence[str] | None = None):
    """A 1-D attribution (time steps, tokens) as a heat strip; ground-truth positions outlined below."""
    import numpy as np
    import plotly.graph_objects as go

    v = np.asarray(values, dtype=float).reshape(1, -1)
    lim = float(np.nanmax(np.abs(v))) if v.size else 1.0
    fig = go.Figure(go.Heatmap(z=v, colorscale="RdBu_r", zmin=-lim or -1, zmax=lim or 1, zmid=0,
                               x=[label(l) for l in labels] if labels is not None else None, colorbar={"thickness": 10}))
    if mask is not None:
        m = np.asarray(mask, dtype=bool).reshape(-1)
        xs = [label(labels[i]) if labels is not None else i for i in np.flatnonzero(m)]
        fig.add_trace(go.Scatter(x=xs, y=[0.6] * len(xs), mode="markers", marker={"symbol": "triangle-down",
                                 "color": SEVERITY_COLOURS[None], "size": 9}, name="ground truth"))
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title={"text": label(title), "font": {"size": 13}}, height=200, margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig


def histogram(labels: Sequence[str], counts: Sequence[float], *, title: str, expected: float | None = None):
    """Counts per class; ``expected`` draws the uniform-coverage line."""
    hl = {"uniform": expected} if expected is not None else None
    return bars(labels, counts, title=title, ylabel="count", hlines=hl)


def measure(section):
    """A health measure's interactive chart, generic by the section's declaration: a line per series over
    epochs for an epoch-scoped measure, else a bar per value (layer, class, feature); each value coloured
    by its outcome (the palette of :mod:`diagnostics._measure_charts`, the report's picture), its 95%
    interval as an error bar, the warning and error thresholds as dashed lines or the healthy band shaded,
    and a log axis for a log-scaled measure whose values are all positive. None when no value is a number."""
    import plotly.graph_objects as go

    from diagnostics._measure_charts import COLOURS
    from diagnostics._measures import Direction, Scope
    from diagnostics._verdicts import Outcome

    values = [v for v in section.values if v.value is not None]
    if not values:
        return None
    words = {Outcome.PASSED: "passed", Outcome.DOUBTFUL: "warning", Outcome.FAILED: "error"}
    log = section.scale == "log" and all(v.value > 0 for v in values)

    def error_y(vs):
        if not any(v.interval for v in vs):
            return None
        return {"type": "data", "symmetric": False, "color": "#212121", "thickness": 1,
                "array": [max(v.interval[1] - v.value, 0) if v.interval else 0 for v in vs],
                "arrayminus": [max(v.value - v.interval[0], 0) if v.interval else 0 for v in vs]}

    fig = go.Figure()
    if section.scope is Scope.EPOCH:
        series: dict[str, list] = {}
        for v in values:
            series.setdefault(v.series or section.title, []).append(v)
        for i, (name, vs) in enumerate(series.items()):
            xs = [_epoch(v.where, n) for n, v in enumerate(vs, start=1)]
            fig.add_trace(go.Scatter(x=xs, y=[v.value for v in vs], name=label(name), error_y=error_y(vs),
                                     mode="lines+markers" if len(vs) <= 60 else "lines",
                                     line={"color": SERIES[i % len(SERIES)]},
                                     hovertemplate="epoch %{x}: %{y:.4g}<extra></extra>"))
            bad = [(x, v) for x, v in zip(xs, vs) if v.outcome is not Outcome.PASSED]
            if bad:
                fig.add_trace(go.Scatter(x=[x for x, _ in bad], y=[v.value for _, v in bad], mode="markers",
                                         marker={"color": [COLOURS[v.outcome] for _, v in bad], "size": 10},
                                         name=label(f"{name}: outside its threshold"), hoverinfo="skip"))
        xlabel = "epoch"
        last = max((x for tr in fig.data for x in tr.x if x is not None), default=1)
        fig.update_xaxes(dtick=max(1, round(last / 10)))  # whole epochs
    else:
        order = [label(v.label) for v in values]
        judged = section.direction is not Direction.NEUTRAL
        for outcome in (Outcome.PASSED, Outcome.DOUBTFUL, Outcome.FAILED):  # one legend entry per outcome
            vs = [v for v in values if v.outcome is outcome]
            if vs:
                fig.add_trace(go.Bar(x=[label(v.label) for v in vs], y=[v.value for v in vs],
                                     name=words[outcome] if judged else "measured", showlegend=judged,
                                     marker_color=COLOURS[outcome], error_y=error_y(vs),
                                     hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
        fig.update_layout(barmode="relative")  # one bar per label: no gaps beside it
        fig.update_xaxes(categoryorder="array", categoryarray=order)
        xlabel = section.scope.value
    t = section.thresholds
    if section.direction is Direction.BAND:
        for level, opacity in (("warning", 0.08), ("error", 0.04)):
            if t.get(level):
                lo, hi = t[level]
                fig.add_hrect(y0=lo, y1=hi, fillcolor=SEVERITY_COLOURS[None], opacity=opacity, line_width=0)
                fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip",
                                         marker={"symbol": "square", "size": 14, "color": SEVERITY_COLOURS[None],
                                                 "opacity": 0.25}, name=f"{level} outside {lo:g}–{hi:g}"))
    elif section.direction is not Direction.NEUTRAL:
        relation = "≥" if section.direction is Direction.HIGHER_IS_WORSE else "<"
        for level in ("warning", "error"):
            if t.get(level) is not None:
                # named in the legend, not by an annotation: Plotly places those wrongly on a log axis
                fig.add_hline(y=t[level], line_dash="dash", line_color=SEVERITY_COLOURS[level])
                fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", hoverinfo="skip",
                                         line={"dash": "dash", "color": SEVERITY_COLOURS[level]},
                                         name=f"{level} at {relation} {t[level]:g}"))
    fig.update_layout(showlegend=True)
    title = section.title + (f" ({section.unit})" if section.unit else "")
    fig = _layout(fig, title, xlabel, section.unit or section.title, log)
    ys = [v.value for v in values] + [x for level in ("warning", "error") for x in _flat(t.get(level))]
    if log and max(ys) >= 100 * min(y for y in ys if y > 0):
        fig.update_yaxes(dtick=1)  # a tick per decade: over several decades Plotly labels 2 and 5 of each, unreadably
    return fig


def _flat(limit) -> list[float]:
    """A threshold as numbers: none, one, or a band's two."""
    return [] if limit is None else [float(x) for x in limit] if isinstance(limit, (list, tuple)) else [float(limit)]


def _epoch(where: str, default: int) -> float:
    try:
        return float(where)
    except ValueError:
        return float(default)
