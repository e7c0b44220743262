"""Shortcut (spurious-feature) detection: numpy-only steps, shared by the ``explain.shortcut`` analyzer.

A shortcut is a feature that predicts the label in the training split and not in the validation
split (a watermark, a border, a column filled in after the fact). Two kinds of evidence, each a
function here so that the analyzer (and, later, the explanation pipeline) can call them:

(a) *Where the model looks*: attribution maps of training samples and of validation samples, each
    normalised to unit mass, averaged per split; the region where the training mass exceeds the
    validation mass (:func:`attribution_region`) and how much of each split's mass it holds.
(b) *What the model needs*: the region's content shuffled across the samples of a split
    (:func:`permutation_drop`, Breiman 2001's permutation importance restricted to a region);
    training accuracy falls, validation accuracy does not.

Also :func:`constant_in_train`: input features that never vary in the training split but do in the
validation split (a leaked or broken column the model could not learn from).

References: Lapuschkin et al. (2019), *Unmasking Clever Hans predictors*; Geirhos et al. (2020),
*Shortcut learning in deep neural networks*; Breiman (2001), *Random forests* (permutation importance).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

def unit_mass(maps: np.ndarray) -> np.ndarray:
    """|maps| per sample scaled to sum 1 (samples whose map is all zero or not finite are dropped)."""
    a = np.abs(np.asarray(maps, np.float64)).reshape(len(maps), -1)
    total = a.sum(axis=1)
    keep = np.isfinite(total) & (total > 0)
    return (a[keep] / total[keep, None]).reshape((int(keep.sum()),) + np.asarray(maps).shape[1:])


def attribution_region(train_map: np.ndarray, val_map: np.ndarray, level: float = 0.5) -> dict[str, Any]:
    """The region where the training split's mean attribution exceeds the validation split's.

    ``train_map``/``val_map`` are the per-split means of :func:`unit_mass` maps, shape (H, W) for
    images, (T,) for sequences. The region is the connected set (4-neighbourhood; a run of steps for
    sequences) around the largest difference, of cells whose difference is at least ``level`` of it. Returns ``{"mask", "box" | "steps" | "features",
    "train_mass", "val_mass", "area"}`` (box = [top, left, bottom, right], inclusive)."""
    t = np.asarray(train_map, np.float64)
    v = np.asarray(val_map, np.float64)
    d = t - v
    peak = float(d.max()) if d.size else 0.0
    out: dict[str, Any] = {"peak_difference": peak}
    if peak <= 0:
        mask = np.zeros(d.shape, bool)
    else:
        above = d >= level * peak
        seed = np.unravel_index(int(np.argmax(d)), d.shape)
        mask = _component(above, seed) if d.ndim in (1, 2) else above
    out["mask"] = mask
    out["train_mass"] = float(t[mask].sum())
    out["val_mass"] = float(v[mask].sum())
    out["area"] = float(mask.mean()) if mask.size else 0.0
    if mask.any():
        idx = np.argwhere(mask)
        if d.ndim == 2:
            (r0, c0), (r1, c1) = idx.min(0), idx.max(0)
            out["box"] = [int(r0), int(c0), int(r1), int(c1)]
        else:
            out["steps"] = [int(idx.min()), int(idx.max())]
    return out


def _component(above: np.ndarray, seed: tuple) -> np.ndarray:
    """The 4-connected component of ``above`` containing ``seed`` (a run, for 1-D)."""
    mask = np.zeros(above.shape, bool)
    stack = [tuple(int(i) for i in seed)]
    while stack:
        p = stack.pop()
        if mask[p] or not above[p]:
            continue
        mask[p] = True
        for axis in range(above.ndim):
            for step in (-1, 1):
                q = list(p)
                q[axis] += step
                if 0 <= q[axis] < above.shape[axis] and not mask[tuple(q)]:
                    stack.append(tuple(q))
    return mask


def iou(box_a: Sequence[int], box_b: Sequence[int]) -> float:
    """Intersection over union of two inclusive pixel boxes [top, left, bottom, right]."""
    t, l = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    b, r = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    inter = max(0, b - t + 1) * max(0, r - l + 1)
    area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)
    return inter / float(area(box_a) + area(box_b) - inter)


def permutation_drop(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, mask: np.ndarray,
                     seed: int = 0) -> tuple[float, float, np.ndarray]:
    """(accuracy, accuracy with the region ``mask`` shuffled across samples, per-sample drop: correct
    before minus correct after, in {-1, 0, 1}) of ``predict`` (inputs -> predicted class) on ``x``.
    ``mask`` covers the input's non-batch axes, or all but the last (channels), broadcast over them."""
    x = np.asarray(x)
    y = np.asarray(y).reshape(-1)
    m = np.asarray(mask, bool)
    if m.shape != x.shape[1:]:
        if m.shape != x.shape[1:-1]:
            raise ValueError(f"mask of shape {m.shape} fits neither the inputs {x.shape[1:]} nor their cells {x.shape[1:-1]}")
        m = np.broadcast_to(m[..., None], x.shape[1:])
    perm = np.random.default_rng(seed).permutation(len(x))
    shuffled = np.where(m[None], x[perm], x)
    before = (predict(x) == y).astype(np.float64)
    after = (predict(shuffled) == y).astype(np.float64)
    return float(before.mean()), float(after.mean()), before - after


def drop_gap(drop_train: np.ndarray, drop_val: np.ndarray, seed: int = 0, n_boot: int = 1000) -> tuple[float, float]:
    """Training minus validation accuracy drop and the lower end of its 95% bootstrap interval (each
    split resampled independently): a region is *needed* only when that lower end clears the margin,
    so sampling noise on a few hundred samples cannot make a healthy model's region a shortcut."""
    from .health import bootstrap_diff_ci

    gap, lo, _ = bootstrap_diff_ci(drop_train, drop_val, n_boot, seed)
    return gap, lo


def constant_in_train(x_train: np.ndarray, x_val: np.ndarray, tolerance: float = 1e-12) -> list[int]:
    """Indices of features (last axis of 2-D tables) constant in the training split and varying in the
    validation split: the model saw one value and will meet others."""
    xt = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    xv = np.asarray(x_val, np.float64).reshape(len(x_val), -1)
    spread_t = xt.max(0) - xt.min(0)
    spread_v = xv.max(0) - xv.min(0)
    return [int(i) for i in np.flatnonzero((spread_t <= tolerance) & (spread_v > tolerance))]
