"""Statistics the health checks share: a float for the report, a bootstrap interval, the membership
AUC (the HealthCallback's), class probabilities from a classifier's output."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def finite_or_none(x: Any) -> float | None:
    """A float for the report, or None when it is NaN/Inf (JSON has no NaN)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def bootstrap_diff_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``a`` minus mean of ``b`` and its percentile bootstrap interval (each resampled independently)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), (n_boot, len(a)))
    ib = rng.integers(0, len(b), (n_boot, len(b)))
    diffs = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    lo, hi = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve for scores where ``positive`` should score higher (ties count half)."""
    pos = np.asarray(positive, np.float64)
    neg = np.asarray(negative, np.float64)
    scores = np.concatenate([pos, neg])
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = len(pos), len(neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def probabilities(out: np.ndarray, activation: str | None) -> np.ndarray | None:
    """Class probabilities (n, classes) from a classifier's output, or None for a non-classifier."""
    out = np.asarray(out, np.float64).reshape(len(out), -1)
    if activation == "softmax":
        return out
    if activation == "sigmoid" and out.shape[1] == 1:
        return np.concatenate([1 - out, out], axis=1)
    if activation in (None, "linear") and out.shape[1] > 1:
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return None
