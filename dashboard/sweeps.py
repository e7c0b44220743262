"""Reading checkpoint sweeps (``sweep.json``, written by ``diagnose sweep``) for the Sweep page.

No Streamlit here, so it is testable alone. Nothing is computed from a model: the values are the
index's (``measures``: by measure code, one value per label), arranged as one series per label over the
sweep, and each chart is titled, scaled and given its thresholds by the index's ``catalogue`` (what the
analyzer declared): a new health analyzer gets its charts with no edit here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SWEEP_JSON = "sweep.json"  # diagnostics._sweep.SWEEP_JSON (the dashboard imports no more of the core than it shows)
#: The index schema whose checkpoints carry measure values and whose index a catalogue
#: (diagnostics._sweep.SWEEP_SCHEMA); an older index (2) has free-form metrics, shown as they are.
MEASURES_SCHEMA = 3
#: Lines per chart at most: a measure per feature can have hundreds; the worst are drawn.
MAX_LINES = 12


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


def has_measures(index: dict[str, Any]) -> bool:
    """Whether the index carries typed measure values (schema 3 on); an older one holds free-form metrics."""
    schema = index.get("schema")
    return isinstance(schema, int) and schema >= MEASURES_SCHEMA


def number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def catalogue(index: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Code -> the measure's declaration, for every measure some checkpoint has a number for; a code
    missing from the index's catalogue is titled by its code, never by a guess."""
    declared = index.get("catalogue") if isinstance(index.get("catalogue"), dict) else {}
    codes: list[str] = []
    for e in index.get("checkpoints") or []:
        for code, values in ((e.get("measures") or {}) if isinstance(e, dict) else {}).items():
            if code not in codes and isinstance(values, dict) and any(number(v) for v in values.values()):
                codes.append(code)
    out = {}
    for code in sorted(codes):
        meta = declared.get(code) if isinstance(declared.get(code), dict) else {}
        out[code] = {"title": code, "unit": "", "scale": "linear", "direction": "neutral", "thresholds": {}, **meta}
    return out


def measure_series(entries: list[dict[str, Any]], code: str) -> dict[str, list[float | None]]:
    """Label -> one value per checkpoint (None where that checkpoint lacks it) of measure ``code``."""
    labels: list[str] = []
    for e in entries:
        for label in (e.get("measures") or {}).get(code) or {}:
            if label not in labels:
                labels.append(label)
    out = {}
    for label in labels:
        ys = [((e.get("measures") or {}).get(code) or {}).get(label) for e in entries]
        out[label] = [y if number(y) else None for y in ys]
    return {k: v for k, v in out.items() if any(y is not None for y in v)}


def worst_lines(series: dict[str, list[float | None]], direction: str, limit: int = MAX_LINES) -> dict[str, list[float | None]]:
    """At most ``limit`` lines: those whose worst value is worst (largest when higher is worse, smallest
    when lower is, farthest from the median in a band or for a neutral measure), in their given order."""
    if len(series) <= limit:
        return series
    values = [y for ys in series.values() for y in ys if y is not None]
    middle = sorted(values)[len(values) // 2]

    def badness(ys):
        ys = [y for y in ys if y is not None]
        if direction == "higher_is_worse":
            return max(ys)
        if direction == "lower_is_worse":
            return -min(ys)
        return max(abs(y - middle) for y in ys)

    keep = set(sorted(series, key=lambda k: -badness(series[k]))[:limit])
    return {k: v for k, v in series.items() if k in keep}


def chart_title(meta: dict[str, Any]) -> str:
    """The measure's title with its unit: ``Gradient norm (L2 norm)``."""
    unit = meta.get("unit") or ""
    return f"{meta.get('title')}{f' ({unit})' if unit else ''}"


def threshold_lines(meta: dict[str, Any]) -> list[tuple[str, float, str]]:
    """``(name, y, level)`` of every threshold the measure was judged against: one line each for a
    one-sided threshold (``warning ≥ 0.1``, ``error < 0.5``), two for a band (``warning band low 0.25``)."""
    direction = meta.get("direction")
    side = {"higher_is_worse": "\u2265", "lower_is_worse": "<"}.get(direction, "")
    out = []
    for level in ("warning", "error"):
        limit = (meta.get("thresholds") or {}).get(level)
        if isinstance(limit, (list, tuple)) and len(limit) == 2 and all(number(v) for v in limit):
            out += [(f"{level}: below {limit[0]:g}", float(limit[0]), level),
                    (f"{level}: above {limit[1]:g}", float(limit[1]), level)]
        elif number(limit):
            out.append((f"{level} {side} {limit:g}".replace("  ", " "), float(limit), level))
    return out


def legacy_metrics(entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """An index written before measures (schema 2): its ``analyzers[name].metrics`` as columns
    ``analyzer: key`` (one value per checkpoint), as the sweep wrote them; nothing is read into them."""
    columns: dict[str, list[Any]] = {}
    for i, e in enumerate(entries):
        for analyzer, rec in sorted(((e.get("analyzers") or {}) if isinstance(e, dict) else {}).items()):
            for key, value in sorted(((rec or {}).get("metrics") or {}).items() if isinstance(rec, dict) else ()):
                columns.setdefault(f"{analyzer}: {key}", [None] * len(entries))[i] = value if number(value) else None
    return columns


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
