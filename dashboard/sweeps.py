"""Reading checkpoint sweeps (``sweep.json``, written by ``diagnose sweep``) for the Sweep page.

No Streamlit here, so it is testable alone. Nothing is computed from a model: values are picked out
of the index the sweep wrote and arranged as one series per layer over the steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SWEEP_JSON = "sweep.json"  # diagnostics.sweep.SWEEP_JSON (the dashboard imports no more of the core than it shows)
#: The health families the page plots: title, analyzer, metric keys (a prefix ending in "[" means one
#: series per layer, ``field[layer]``), y-axis label, log scale.
FAMILIES: tuple[tuple[str, str, tuple[str, ...], str, bool], ...] = (
    ("Gradient norm per layer", "health.gradients", ("grad_norm[",), "‖∇W‖", True),
    ("Spectral alpha per layer (heavy-tailed self-regularisation)", "health.spectra", ("alpha[",), "alpha", False),
    ("Train/validation gap", "health.overfitting", ("gap.gap", "loss_gap.gap"), "gap", False),
    ("Dead units per layer", "health.units", ("dead_fraction[",), "fraction of units", False),
)


def discover(path: Path, depth: int = 2) -> list[Path]:
    """Sweep directories at or below ``path`` (a sweep.json, its directory, or a folder of sweeps)."""
    path = Path(path)
    if path.is_file():
        return [path.parent] if path.name == SWEEP_JSON else []
    if not path.is_dir():
        return []
    if (path / SWEEP_JSON).is_file():
        return [path]
    found = []
    if depth > 0:
        try:
            children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return []
        for c in children:
            found += discover(c, depth - 1)
    return found


def load(directory: Path) -> dict[str, Any]:
    """The sweep index; ``ValueError`` with a readable message when it is not one."""
    try:
        data = json.loads((Path(directory) / SWEEP_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {Path(directory) / SWEEP_JSON}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), list):
        raise ValueError(f"{Path(directory) / SWEEP_JSON} is not a sweep index (no checkpoints list)")
    return data


def axis(index: dict[str, Any]) -> str:
    """What the sweep's x axis counts: ``epoch``, ``step`` or ``position`` (an index written before the
    sweep recorded its axis counted the sidecars' ``step``)."""
    value = index.get("axis")
    return value if value in ("epoch", "step", "position") else "step"


def axis_label(index: dict[str, Any]) -> str:
    return {"epoch": "epoch", "step": "step"}.get(axis(index), "checkpoint")


def steps(entries: list[dict[str, Any]], along: str = "step") -> list[int | float]:
    """The x axis: each checkpoint's value on the sweep's axis (``at``, as the sweep wrote it; else its
    ``along`` field), or its position (from 1) when the sweep could not tell."""
    out = []
    for i, e in enumerate(entries, 1):
        value = e.get("at", e.get(along))
        out.append(value if isinstance(value, (int, float)) and not isinstance(value, bool) else i)
    return out


def changes_text(entry: dict[str, Any]) -> str:
    """The warnings and errors that moved at this checkpoint, in words (the index's ``changes``)."""
    parts = []
    for c in entry.get("changes") or []:
        if not isinstance(c, dict):
            continue
        where = f", {c.get('where')}" if c.get("where") else ""
        kind = c.get("change")
        if kind == "appeared":
            parts.append(f"+ {c.get('code')} ({c.get('severity')}{where})")
        elif kind == "gone":
            parts.append(f"\u2212 {c.get('code')} ({c.get('was')}{where})")
        else:
            parts.append(f"{c.get('code')}{' (' + c['where'] + ')' if c.get('where') else ''}: {c.get('was')} \u2192 "
                         f"{c.get('severity')}")
    return "; ".join(parts)


def intervals_text(item: dict[str, Any], unit: str) -> str:
    """``epochs 1\u20133, 6\u201340``: where a finding was present (an index without intervals: its first step)."""
    spans = []
    for i in item.get("intervals") or []:
        if isinstance(i, dict):
            spans.append(str(i.get("from")) if i.get("from") == i.get("to") else f"{i.get('from')}\u2013{i.get('to')}")
    if not spans:
        return f"{unit} {item.get('at', item.get('step'))} on"
    plural = len(spans) > 1 or "\u2013" in spans[0]
    return f"{unit}{'s' if plural else ''} {', '.join(spans)}"


def family_series(entries: list[dict[str, Any]], analyzer: str, keys: tuple[str, ...]) -> dict[str, list[float | None]]:
    """Series name -> one value per checkpoint (None where that checkpoint lacks it)."""
    names: list[str] = []
    for e in entries:
        metrics = ((e.get("analyzers") or {}).get(analyzer) or {}).get("metrics") or {}
        for k in metrics:
            if any(k == key or (key.endswith("[") and k.startswith(key)) for key in keys) and k not in names:
                names.append(k)
    out = {}
    for k in names:
        label = k[k.index("[") + 1: -1] if "[" in k and k.endswith("]") else k
        out[label] = [(((e.get("analyzers") or {}).get(analyzer) or {}).get("metrics") or {}).get(k) for e in entries]
    return out


def report_dir(root: Path, entry: dict[str, Any]) -> Path | None:
    """The checkpoint's report directory, when it is there and inside the sweep directory."""
    rel = entry.get("report")
    if not isinstance(rel, str):
        return None
    d = (Path(root) / rel).resolve()
    try:
        d.relative_to(Path(root).resolve())
    except ValueError:
        return None
    return d if (d / "report.json").is_file() else None
