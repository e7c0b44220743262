"""Trust metrics of the explanation analyzers, numpy only: rank and Pearson correlations, the
model-parameter randomisation correlation, deletion and insertion curves, ground-truth scores on
informative samples, agreement between methods, stability between seeds, and the edge-detector control.

References:
    Adebayo et al. (2018), *Sanity Checks for Saliency Maps* (model-parameter randomisation).
    Petsiuk, Das & Saenko (2018), *RISE* (deletion and insertion curves).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

ForwardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _rank(a: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis of a 2-D array, from 0 (ties share their mean rank), as
    ``scipy.stats.rankdata(a, axis=-1) - 1``; vectorised over rows and tie groups."""
    a = np.asarray(a)
    n, m = a.shape
    if not a.size:
        return np.zeros(a.shape, np.float64)
    order = np.argsort(a, axis=-1, kind="mergesort")
    s = np.take_along_axis(a, order, axis=-1)
    first = np.ones((n, m), bool)  # where a group of equal values starts, in the sorted rows
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], n * m)
    ends = np.minimum(ends, (starts // m + 1) * m)  # a group never runs past its row
    mean_rank = (starts % m + (ends - 1 - starts // m * m)) / 2.0
    out = np.empty((n, m), np.float64)
    np.put_along_axis(out, order, mean_rank[np.cumsum(first.ravel()) - 1].reshape(n, m), axis=-1)
    return out


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation per row of two (n, features) arrays (0 where a row is constant)."""
    ra, rb = _rank(np.asarray(a, np.float64)), _rank(np.asarray(b, np.float64))
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), 0.0)


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation per row of two (n, features) arrays."""
    a = np.asarray(a, np.float64) - np.mean(a, 1, keepdims=True)
    b = np.asarray(b, np.float64) - np.mean(b, 1, keepdims=True)
    den = np.sqrt((a ** 2).sum(1) * (b ** 2).sum(1))
    return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1.0), 0.0)


def randomisation_correlation(trained: np.ndarray, randomised: np.ndarray, absolute: bool = False) -> float:
    """Adebayo et al. (2018), model-parameter randomisation: the median rank correlation between the
    maps of the trained model and of a copy with re-initialised weights (both (n, features)). Near 1,
    the map does not depend on what the model learnt (:func:`diagnostics.explainers.randomisation_check`
    turns it into a check)."""
    a, b = (np.abs(trained), np.abs(randomised)) if absolute else (trained, randomised)
    return float(np.median(rank_correlation(a, b)))


#: Steps of the deletion/insertion curves (each curve is evaluated at both ends too).
PERTURBATION_FRACTIONS = 10


def perturbation_curves(forward: ForwardFn, x: np.ndarray, baseline: np.ndarray, importance: np.ndarray,
                        targets: np.ndarray, sign: np.ndarray | None = None,
                        fractions: int = PERTURBATION_FRACTIONS, seed: int = 0,
                        feature_shape: tuple[int, ...] | None = None, scale: float | None = None) -> dict[str, Any]:
    """Deletion and insertion curves (Petsiuk et al., 2018) against a random order.

    ``importance`` is (n, features); features are the leading axes of one sample (``feature_shape``,
    e.g. (28, 28) for a 28x28x1 image: a feature's channels move together). Deletion replaces the most
    important features by the baseline first; insertion starts from the baseline and restores them.
    ``forward(x, targets)`` returns the explained output per sample (times ``sign``). Curves are in
    units of ``scale`` (default: the median |F(x)| of these samples; pass the first call's ``scale`` to
    pool samples scored in several calls). Returns the areas under the curves (medians over samples),
    the faithfulness margins (random-order AUC minus attribution-order AUC for deletion, the reverse for
    insertion; positive is better than random) and the same margins per sample
    (``deletion_margins``, ``insertion_margins``: each sample has its own random order, so their spread
    holds the random order's too) and the per-sample curves (``sample_curves``) to pool.
    """
    x = np.asarray(x)
    n = len(x)
    feats = importance.shape[1]
    feature_shape = feature_shape or (feats,)
    baseline = np.broadcast_to(np.asarray(baseline, x.dtype), x.shape)
    sign = np.ones(n) if sign is None else np.asarray(sign, np.float64)
    rng = np.random.default_rng(seed)
    orders = {"attribution": np.argsort(-importance, axis=1, kind="stable"),
              "random": np.stack([rng.permutation(feats) for _ in range(n)])}
    ks = np.unique(np.round(np.linspace(0, feats, fractions + 1)).astype(int))
    batch, owner, keys = [], [], []
    trailing = x.shape[1 + len(feature_shape):]
    for name, order in orders.items():
        for mode in ("deletion", "insertion"):
            for k in ks:
                keep = np.zeros((n, feats), bool)
                np.put_along_axis(keep, order[:, :k], True, axis=1)
                keep = keep.reshape((n,) + feature_shape + (1,) * len(trailing))
                # deletion: the top-k become baseline; insertion: only the top-k come from x
                xb = np.where(keep, baseline, x) if mode == "deletion" else np.where(keep, x, baseline)
                batch.append(xb)
                owner.append(np.arange(n))
                keys.append((name, mode, k))
    out = forward(np.concatenate(batch), np.concatenate([targets] * len(keys))).reshape(len(keys), n)
    out = out * sign[None]
    full = out[keys.index(("random", "insertion", ks[-1]))]
    # one scale for all samples (the median |F(x)|), not per-sample spans, which blow up when the
    # baseline's output is close to the input's
    scale = float(scale) if scale else float(np.median(np.abs(full))) or 1.0
    curves = {}
    for i, key in enumerate(keys):
        curves.setdefault(f"{key[0]}.{key[1]}", []).append(out[i] / scale)
    return summarise_curves({k: np.stack(v, axis=1) for k, v in curves.items()}, ks / feats, scale)


def summarise_curves(sample_curves: dict[str, np.ndarray], fractions: np.ndarray, scale: float) -> dict[str, Any]:
    """:func:`perturbation_curves`'s summary of per-sample curves (``{"attribution.deletion": (n, steps)
    array, ...}``), also of curves pooled from several calls (concatenate each key's rows)."""
    fractions = np.asarray(fractions, np.float64)
    area = {k: np.trapezoid(np.asarray(v, np.float64), fractions, axis=1) for k, v in sample_curves.items()}
    auc = {k: float(np.median(v)) for k, v in area.items()}
    return {"deletion_auc": auc["attribution.deletion"], "deletion_auc_random": auc["random.deletion"],
            "insertion_auc": auc["attribution.insertion"], "insertion_auc_random": auc["random.insertion"],
            "deletion_margin": auc["random.deletion"] - auc["attribution.deletion"],
            "insertion_margin": auc["attribution.insertion"] - auc["random.insertion"],
            "deletion_margins": (area["random.deletion"] - area["attribution.deletion"]).tolist(),
            "insertion_margins": (area["attribution.insertion"] - area["random.insertion"]).tolist(),
            "fractions": fractions.tolist(), "scale": scale,
            "curves": {k: np.median(np.asarray(v), axis=0).tolist() for k, v in sample_curves.items()},
            "sample_curves": {k: np.asarray(v) for k, v in sample_curves.items()}}


#: Ground truth is scored only on samples whose output moves by at least this fraction of |F(x)|
#: between baseline and input: where the baseline alone already gets the explained output, the model
#: does not need the planted positions and a faithful attribution is (rightly) near zero.
INFORMATIVE_DELTA = 0.1


def informative_samples(fx: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Samples with |F(x) − F(baseline)| ≥ INFORMATIVE_DELTA · |F(x)| (bool per sample)."""
    fx, fb = np.asarray(fx, np.float64), np.asarray(fb, np.float64)
    return np.abs(fx - fb) >= INFORMATIVE_DELTA * np.maximum(np.abs(fx), 1e-12)


def ground_truth_scores(importance: np.ndarray, mask: np.ndarray, scored: np.ndarray | None = None) -> dict[str, Any]:
    """Share of |attribution| mass on the planted positions (median) and top-k precision (mean;
    k = planted count per sample; per scored sample with planted positions in ``precisions``);
    ``importance`` and ``mask`` are (n, positions). ``scored`` (bool per sample, see
    :func:`informative_samples`) limits the scoring to some samples."""
    imp = np.abs(np.asarray(importance, np.float64))
    mask = np.asarray(mask, bool)
    n_all = len(imp)
    if scored is not None:
        imp, mask = imp[np.asarray(scored, bool)], mask[np.asarray(scored, bool)]
    if len(imp) == 0:
        return {"mass_share": 0.0, "top_k_precision": 0.0, "planted_fraction": float(mask.mean()) if mask.size else 0.0,
                "scored_samples": 0, "samples": n_all, "precisions": []}
    total = imp.sum(1)
    share = np.where(total > 0, (imp * mask).sum(1) / np.where(total > 0, total, 1.0), 0.0)
    prec = []
    for row, m in zip(imp, mask):
        k = int(m.sum())
        if k == 0:
            continue
        top = np.argsort(-row, kind="stable")[:k]
        prec.append(m[top].mean())
    return {"mass_share": float(np.median(share)), "top_k_precision": float(np.mean(prec)) if prec else 0.0,
            "planted_fraction": float(mask.mean()), "scored_samples": int(len(imp)), "samples": n_all,
            "precisions": [float(p) for p in prec]}


def agreement_matrix(maps: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Median per-sample rank correlation of |map| between every pair of methods."""
    names = sorted(maps)
    out: dict[str, dict[str, float]] = {a: {} for a in names}
    for i, a in enumerate(names):
        for b in names[i:]:
            v = 1.0 if a == b else float(np.median(rank_correlation(np.abs(maps[a]), np.abs(maps[b]))))
            out[a][b] = out[b][a] = round(v, 4)
    return out


def stability(map_a: np.ndarray, map_b: np.ndarray) -> float:
    """Median Pearson correlation of |map| between two seeds of a sampling method. Pearson, not rank:
    it is dominated by the features a reader sees, not by the order of the many near-zero ones."""
    return float(np.median(pearson(np.abs(map_a), np.abs(map_b))))


def edge_map(x: np.ndarray) -> np.ndarray:
    """A model-independent "saliency" (the gradient magnitude of the image itself, a Sobel-like edge
    detector): the control that the randomisation check must fail."""
    x = np.asarray(x, np.float64)
    img = x.sum(-1) if x.ndim == 4 else x
    gy, gx = np.gradient(img, axis=(1, 2))
    return np.hypot(gx, gy)
