"""A training history's per-epoch indicators (recorded by :class:`diagnostics.callbacks.HealthCallback`)
and one sentence on how one developed."""

from __future__ import annotations

from typing import Any, Mapping

from .stats import finite_or_none


def training_series(history: Mapping[str, Any] | None, key: str) -> list[float | None] | None:
    """The per-epoch values of ``key`` (e.g. ``"health/grad_norm"``, recorded by
    :class:`diagnostics.callbacks.HealthCallback`) from a history, or None when it was not recorded."""
    if not history or key not in history:
        return None
    vals = [finite_or_none(v) for v in history[key]]
    return vals if any(v is not None for v in vals) else None


def development(values: list[float | None] | None, threshold: float | None = None, above: bool = True,
                fmt: str = ".3g", what: str = "it") -> str:
    """One sentence on how a recorded indicator developed during training ("" when not recorded)."""
    if not values:
        return ""
    epochs = [(i + 1, v) for i, v in enumerate(values) if v is not None]
    if not epochs:
        return ""
    (e0, v0), (e1, v1) = epochs[0], epochs[-1]
    text = f"during training {what} went from {v0:{fmt}} (epoch {e0}) to {v1:{fmt}} (epoch {e1})"
    if threshold is not None:
        crossed = next((e for e, v in epochs if (v >= threshold if above else v <= threshold)), None)
        if crossed is not None:
            text += f", first {'above' if above else 'below'} {threshold:{fmt}} at epoch {crossed}"
    return text
