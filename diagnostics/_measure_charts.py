"""One chart per health measure, drawn in one place for every health analyzer.

The host (:func:`diagnostics._measures.judge`) calls :func:`draw` for each :class:`MeasureSection`
with more than one value: a line per series over epochs for an epoch-scoped measure, else a bar per
value (layer, class, feature), coloured by its outcome, with the thresholds drawn as lines (a band
shaded) and the 95% intervals as error bars. The HTML report, the notebook and the dashboard show
this picture; nothing else draws a measure.
"""

from __future__ import annotations

from pathlib import Path

from ._measures import Direction, MeasureSection, Scope
from .plotting import plain_text, pyplot, save_png
from ._verdicts import Outcome

#: Bar colour per outcome (diagnostics.plotting's palette: blue passed, orange warning, red error).
COLOURS = {Outcome.PASSED: "#1565c0", Outcome.DOUBTFUL: "#ef6c00", Outcome.FAILED: "#c62828"}
SERIES_COLOURS = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#2e7d32", "#ad1457")
#: Bars beyond this many are not drawn one by one: the chart keeps the worst ones and says so.
MAX_BARS = 60


def draw(section: MeasureSection, path: Path) -> str:
    """Draw ``section`` to ``path`` (PNG); return the file name, or "" when there is nothing to draw."""
    values = [v for v in section.values if v.value is not None]
    if not values:
        return ""
    if section.scale == "log" and any(v.value <= 0 for v in values):
        values = [v for v in values if v.value > 0]
        if not values:
            return ""
    plt = pyplot()
    title = section.title + (f" ({section.unit})" if section.unit else "")
    if section.scope is Scope.EPOCH:
        fig, ax = _lines(plt, section, values)
    else:
        fig, ax = _bars(plt, section, values)
        if len(values) < len([v for v in section.values if v.value is not None]):
            title += f" — the {len(values)} worst shown"
    _thresholds(ax, section)
    ax.set_title(plain_text(title), fontsize=9)
    ax.tick_params(labelsize=8)
    if section.scale == "log":
        ax.set_yscale("log")
    return save_png(fig, path, tight=False).name


def _bars(plt, section, values):
    if len(values) > MAX_BARS:
        rank = {Outcome.FAILED: 0, Outcome.DOUBTFUL: 1, Outcome.PASSED: 2}
        keep = set(map(id, sorted(values, key=lambda v: rank[v.outcome])[:MAX_BARS]))
        values = [v for v in values if id(v) in keep]
    width = max(4.0, 0.42 * len(values) + 1.6)
    fig = plt.figure(figsize=(width, 3.2), dpi=90)
    ax = fig.add_axes((0.9 / width, 0.25, 1 - 1.2 / width, 0.66))
    xs = list(range(len(values)))
    ax.bar(xs, [v.value for v in values], color=[COLOURS[v.outcome] for v in values])
    errs = [(i, v) for i, v in zip(xs, values) if v.interval is not None]
    if errs:
        ax.errorbar([i for i, _ in errs], [v.value for _, v in errs],
                    yerr=[[max(v.value - v.interval[0], 0) for _, v in errs], [max(v.interval[1] - v.value, 0) for _, v in errs]],
                    fmt="none", ecolor="#212121", capsize=3, lw=1)
    ax.set_xticks(xs, [plain_text(v.label) for v in values], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(plain_text(section.unit or section.title), fontsize=8)
    return fig, ax


def _lines(plt, section, values):
    fig = plt.figure(figsize=(5.5, 3.2), dpi=90)
    ax = fig.add_axes((0.12, 0.16, 0.84, 0.74))
    series: dict[str, list] = {}
    for v in values:
        series.setdefault(v.series or section.title, []).append(v)
    for (name, vs), colour in zip(series.items(), SERIES_COLOURS * 8):
        xs = [_number(v.where, i) for i, v in enumerate(vs, start=1)]
        ax.plot(xs, [v.value for v in vs], label=plain_text(name), color=colour)
        bad = [(x, v) for x, v in zip(xs, vs) if v.outcome is not Outcome.PASSED]
        if bad:
            ax.scatter([x for x, _ in bad], [v.value for _, v in bad], color=[COLOURS[v.outcome] for _, v in bad], zorder=3, s=14)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(plain_text(section.unit or section.title), fontsize=8)
    if len(series) > 1:
        ax.legend(fontsize=7)
    return fig, ax


def _number(where: str, default: int) -> float:
    try:
        return float(where)
    except ValueError:
        return float(default)


def _thresholds(ax, section: MeasureSection) -> None:
    t = section.thresholds
    if section.direction is Direction.BAND:
        if t.get("warning"):
            lo, hi = t["warning"]
            ax.axhspan(lo, hi, color="#2e7d32", alpha=0.08, lw=0)
        return
    for level, colour in (("warning", "#ef6c00"), ("error", "#c62828")):
        if t.get(level) is not None:
            ax.axhline(t[level], color=colour, ls="--", lw=1)
