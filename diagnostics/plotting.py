"""Small plotting helpers for analyzers (matplotlib, imported only when a plot is drawn).

Public so that third-party analyzers draw the same way the built-ins do. Output is PNG, written
beside the report and inlined by the HTML report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

SEVERITY_COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0", "ok": "#2e7d32"}


def plain_text(text) -> str:
    """``text`` as matplotlib draws it literally: a ``$`` would start mathtext, and a name from a hostile
    file (``a$\\frac{$``) would make the drawing raise, failing the analyzer. Pass every name that comes
    from a model or a data file (layers, features, classes) through it before it labels a figure."""
    return str(text).replace("$", r"\$")


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display is opened in a worker), imported on
    first use: every figure the suite and its plugins draw starts here."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: Path, labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str = "",
              log: bool = False, colours: Sequence[str] | None = None) -> Path:
    """A bar per label; returns ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(labels) + 1.5), 3.2), dpi=100)
    xs = range(len(labels))
    ax.bar(xs, values, color=colours or "#1565c0")
    ax.set_xticks(list(xs), [plain_text(v) for v in labels], rotation=45, ha="right", fontsize=8)
    ax.set_title(plain_text(title), fontsize=10)
    ax.set_ylabel(plain_text(ylabel), fontsize=9)
    if log:
        ax.set_yscale("log")
    return save_png(fig, path)


def save_png(fig, path, *, tight: bool = True) -> Path:
    """Write ``fig`` as a PNG at ``path`` and close it; returns ``path``. ``tight``: lay it out with
    ``tight_layout`` first (False for a figure placed by hand). No ``Software`` stamp, so the same
    figure gives the same bytes whatever the matplotlib version."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    pyplot().close(fig)
    return Path(path)
