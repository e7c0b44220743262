"""Shared, numpy-only machinery of the explanation analyzers: methods built on a gradient function,
target selection, trust metrics and verdicts, and the pictures (overlays, heat strips).

The gradient-family methods here take a *gradient function* ``grad_fn(x, targets) -> (values,
grads)`` (see :mod:`diagnostics.backends`: ``input_gradients`` bound to a model) and feed it fixed-size
batches, so the compiled function traces once and memory is bounded by ``batch_size`` whatever the
number of samples. Nothing here imports a deep-learning framework.

References:
    Sundararajan, Taly & Yan (2017), *Axiomatic Attribution for Deep Networks* (Integrated Gradients).
    Simonyan, Vedaldi & Zisserman (2014), *Deep Inside Convolutional Networks* (saliency).
    Smilkov et al. (2017), *SmoothGrad: removing noise by adding noise*.
    Shrikumar et al. (2016), *Not Just a Black Box* (gradient x input).
    Erion et al. (2021), *Improving performance of deep learning models with axiomatic attribution
    priors and expected gradients*; Lundberg & Lee (2017), *A Unified Approach to Interpreting Model
    Predictions* (expected gradients = SHAP's GradientExplainer).
    Adebayo et al. (2018), *Sanity Checks for Saliency Maps* (model-parameter randomisation).
    Petsiuk, Das & Saenko (2018), *RISE* (deletion and insertion curves).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

GradFn = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]
ForwardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: IG completeness: the gap must be under this fraction of |F(x) - F(baseline)| ...
COMPLETENESS_TOLERANCE = 0.01
#: ... or under this absolute value (float32 round-off when F(x) and F(baseline) nearly agree).
COMPLETENESS_ABS_FLOOR = 1e-5



# ---------------------------------------------------------------------------------------------
# Targets


@dataclasses.dataclass(frozen=True)
class Targets:
    """What to explain per sample: output unit ``index`` and a ``sign`` (+1, or -1 to explain
    "not this unit", used for class 0 of a one-unit sigmoid, whose probability is 1 - p)."""

    index: np.ndarray
    sign: np.ndarray
    description: str


def select_targets(predictions: np.ndarray, target: Any = None, activation: str | None = None) -> Targets:
    """Targets from the model's ``predictions`` (n, units): the predicted class by default.

    ``target`` (``--target``) is a class index. One-unit outputs: a sigmoid is a binary classifier
    (unit 0 is p(class 1); class 0 is explained as -p, which has the same attributions negated,
    since attributions of 1 - p are those of -p); anything else is a regression output, explained as is.
    """
    p = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    n, units = p.shape
    if units == 1:
        binary = activation == "sigmoid"
        if target is None:
            cls = (p[:, 0] >= 0.5).astype(int) if binary else np.ones(n, int)
            desc = "predicted class (sigmoid: p>=0.5 is class 1)" if binary else "the regression output"
        else:
            t = _as_class(target, 2 if binary else 1, "a one-unit sigmoid output has classes 0 and 1" if binary
                          else "a one-unit regression output has only output 0")
            cls = np.full(n, t if binary else 1, int)
            desc = f"class {t}" if binary else "the regression output"
        sign = np.where(cls == 1, 1.0, -1.0) if binary else np.ones(n)
        return Targets(np.zeros(n, np.int64), sign, desc)
    if target is None:
        return Targets(p.argmax(1).astype(np.int64), np.ones(n), "predicted class")
    t = _as_class(target, units, f"the output has {units} classes (0..{units - 1})")
    return Targets(np.full(n, t, np.int64), np.ones(n), f"class {t}")


def select_samples(n_total: int, n: int, seed: int) -> np.ndarray:
    """The sample indices every explanation analyzer explains: the same ones for the same seed, so
    maps from different analyzers (and backends) can be compared sample by sample."""
    n = min(int(n), int(n_total))
    return np.sort(np.random.default_rng(seed).choice(int(n_total), size=n, replace=False))


def _as_class(target: Any, units: int, why: str) -> int:
    try:
        t = int(target)
    except (TypeError, ValueError):
        raise ValueError(f"--target must be a class index: {why}; got {target!r}") from None
    if not 0 <= t < max(units, 1):
        raise ValueError(f"--target {t} is out of range: {why}")
    return t


# ---------------------------------------------------------------------------------------------
# Methods on a gradient function


def _stream(grad_fn: GradFn, points: Callable[[np.ndarray], np.ndarray], owner: np.ndarray, targets: np.ndarray,
            total: int, batch_size: int):
    """Yield (indices, values, grads) over ``total`` virtual inputs, in batches of exactly
    ``batch_size`` (the last padded by repetition), so the compiled function traces once."""
    size = max(1, min(batch_size, total))
    for start in range(0, total, size):
        idx = np.arange(start, min(start + size, total))
        pad = size - len(idx)
        full = np.concatenate([idx, np.repeat(idx[-1:], pad)]) if pad else idx
        values, grads = grad_fn(points(full), targets[owner[full]])
        yield idx, values[: len(idx)], grads[: len(idx)]


def nonfinite_predictions(predictions: np.ndarray, code: str):
    """A ``failed`` Result when any explained sample's prediction is NaN/Inf (there is nothing to
    explain), else None. ``code`` is the analyzer's finding code, e.g. ``"explain.lime.failed"``."""
    from .analyzer import Finding, Result, Severity

    flat = np.asarray(predictions).reshape(len(predictions), -1)
    bad = int(np.sum(~np.all(np.isfinite(flat), axis=1)))
    if not bad:
        return None
    return Result(findings=[Finding(code, Severity.WARNING, where="predictions",
                                    message=f"the model's outputs are NaN or Inf for {bad} of {len(flat)} explained "
                                            f"samples: there is nothing to explain — fix the model first (see the "
                                            f"weights and health findings)")],
                  metrics={"verdict": "failed", "nonfinite_predictions": bad})


def predict_batched(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``model`` outputs for ``x`` as ``(n, units)``, through ``predict_on_batch`` in fixed-size chunks.

    The last chunk is padded to the same size, so the compiled predict function traces once
    (a ``model.predict`` call costs ~120 ms whatever the batch; a compiled call a few ms).
    The chunk size is capped to fit the worker's memory and halved on out-of-memory (diagnostics.memory).
    """
    from . import memory

    n = len(x)
    size = memory.plan(model, max(1, min(int(batch_size), n)),
                       lambda k: model.predict_on_batch(np.repeat(x[:1], k, axis=0)), backward=False)

    def step(s, e, size):
        xb = x[s:e]
        pad = size - len(xb)
        if pad:
            xb = np.concatenate([xb, np.repeat(xb[-1:], pad, axis=0)])
        return np.asarray(model.predict_on_batch(xb)).reshape(size, -1)[: size - pad]

    return np.concatenate(memory.run_batched(model, n, size, step, backward=False))


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the ``steps``-point Gauss-Legendre rule on [0, 1] (captum's default)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1) / 2, weights / 2


def path_gradients(grad_fn: GradFn, x: np.ndarray, baseline: np.ndarray, targets: np.ndarray, alphas: np.ndarray,
                   weights: np.ndarray, batch_size: int = 1024, endpoints: bool = False):
    """Σ_j weights[j] · ∇F(baseline + alphas[j]·(x − baseline)) per sample, streamed in fixed batches.

    With ``endpoints``, F(x) and F(baseline) ride in the same stream (2n more points, same batch
    shape, so no second trace) and ``(sums, F(x), F(baseline))`` is returned."""
    n, m = len(x), len(alphas)
    x32 = np.asarray(x, np.float32)
    b32 = np.broadcast_to(np.asarray(baseline, np.float32), x32.shape)
    delta = x32 - b32
    # path points first (sample-major), then x and baseline of every sample (α = 1 and α = 0)
    owner = np.concatenate([np.repeat(np.arange(n), m)] + ([np.arange(n), np.arange(n)] if endpoints else []))
    a_all = np.concatenate([np.tile(np.asarray(alphas, np.float32), n)]
                           + ([np.ones(n, np.float32), np.zeros(n, np.float32)] if endpoints else []))
    w_all = np.concatenate([np.tile(np.asarray(weights, np.float64), n)] + ([np.zeros(2 * n)] if endpoints else []))
    shape1 = (-1,) + (1,) * (x32.ndim - 1)

    def points(full):
        return b32[owner[full]] + a_all[full].reshape(shape1) * delta[owner[full]]

    acc = np.zeros(x32.shape, np.float64)
    ends = np.zeros(2 * n)
    if endpoints:
        # spread the 2n endpoints over the batches the path needs anyway (each up to 10% larger)
        # rather than adding a mostly padded batch for them
        batches = max(1, -(-n * m // batch_size))
        spread = -(-len(owner) // batches)
        if spread <= 1.1 * batch_size:
            batch_size = spread
    for idx, values, grads in _stream(grad_fn, points, owner, np.asarray(targets), len(owner), batch_size):
        path = idx < n * m
        if endpoints and not path.all():
            ends[idx[~path] - n * m] = values[~path]
        if not path.any():
            continue
        idx, grads = idx[path], grads[path]
        contrib = grads.astype(np.float64) * w_all[idx].reshape(shape1)
        # idx is contiguous and each sample's steps are contiguous: reduce runs of equal owner.
        own = owner[idx]
        bounds = np.flatnonzero(np.diff(own)) + 1
        starts = np.concatenate([[0], bounds])
        sums = np.add.reduceat(contrib, starts, axis=0)
        np.add.at(acc, own[starts], sums)
    if endpoints:
        return acc, ends[:n], ends[n:]
    return acc


def gradients(grad_fn: GradFn, x: np.ndarray, targets: np.ndarray, batch_size: int = 1024):
    """Output values and gradients at ``x`` itself, in fixed batches."""
    x32 = np.asarray(x, np.float32)
    n = len(x32)
    owner = np.arange(n)
    vals, grads = np.zeros(n), np.zeros(x32.shape, np.float64)
    for idx, v, g in _stream(grad_fn, lambda full: x32[full], owner, np.asarray(targets), n, batch_size):
        vals[idx], grads[idx] = v, g
    return vals, grads


@dataclasses.dataclass
class IGResult:
    attributions: np.ndarray   #: same shape as x
    gap: np.ndarray            #: |Σ attributions − (F(x) − F(baseline))| per sample
    delta: np.ndarray          #: F(x) − F(baseline) per sample
    steps: np.ndarray          #: steps used per sample
    converged: np.ndarray      #: bool per sample


def completeness_ok(gap: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return gap <= np.maximum(COMPLETENESS_TOLERANCE * np.abs(delta), COMPLETENESS_ABS_FLOOR)


def integrated_gradients(grad_fn: GradFn, x: np.ndarray, baseline: np.ndarray, targets: np.ndarray,
                         steps: int = 32, max_steps: int = 512, batch_size: int = 1024,
                         time_left: Callable[[], float] | None = None) -> IGResult:
    """Integrated Gradients with Gauss-Legendre quadrature; the step count is doubled for the samples
    whose completeness gap exceeds 1% of |F(x) − F(baseline)|, up to ``max_steps`` and while
    ``time_left()`` (seconds) leaves room for another round (:func:`room_for_another`); samples still
    over it are marked not converged."""
    x = np.asarray(x, np.float32)
    baseline = np.broadcast_to(np.asarray(baseline, np.float32), x.shape)
    targets = np.asarray(targets)
    n = len(x)
    delta = None
    attr = np.zeros(x.shape, np.float64)
    used = np.zeros(n, int)
    gap = np.full(n, np.inf)
    todo = np.arange(n)
    s = int(steps)
    while len(todo):
        t0 = time.monotonic()
        alphas, weights = gauss_legendre(s)
        if delta is None:
            g, fx, fb = path_gradients(grad_fn, x, baseline, targets, alphas, weights, batch_size, endpoints=True)
            delta = fx - fb
        else:
            g = path_gradients(grad_fn, x[todo], baseline[todo], targets[todo], alphas, weights, batch_size)
        a = g * (x[todo] - baseline[todo]).astype(np.float64)
        attr[todo] = a
        used[todo] = s
        gap[todo] = np.abs(a.reshape(len(todo), -1).sum(1) - delta[todo])
        ok = completeness_ok(gap[todo], delta[todo])
        last, todo = time.monotonic() - t0, todo[~ok]
        if s * 2 > max_steps or not room_for_another(time_left, last):
            break
        s *= 2
    return IGResult(attr, gap, delta, used, completeness_ok(gap, delta))


def room_for_another(time_left: Callable[[], float] | None, last_s: float) -> bool:
    """Whether a refinement round that doubles the work of the last one (``last_s`` seconds) fits the
    time left, with room for the sanity runs after it (6 x the last round). True without a clock."""
    return time_left is None or time_left() > 6 * last_s


def saliency(grad_fn: GradFn, x, targets, batch_size: int = 1024) -> np.ndarray:
    """|∇F(x)| (Simonyan et al., 2014)."""
    return np.abs(gradients(grad_fn, x, targets, batch_size)[1])


def input_x_gradient(grad_fn: GradFn, x, baseline, targets, batch_size: int = 1024) -> np.ndarray:
    """(x − baseline) ⊙ ∇F(x); with a zero baseline, the classic gradient × input."""
    x = np.asarray(x, np.float32)
    return (x - np.broadcast_to(np.asarray(baseline, np.float32), x.shape)) * gradients(grad_fn, x, targets, batch_size)[1]


def smoothgrad(grad_fn: GradFn, x, targets, samples: int = 16, noise: float = 0.15, seed: int = 0,
               batch_size: int = 1024) -> np.ndarray:
    """Mean gradient over ``samples`` copies of x with Gaussian noise of std ``noise`` × (max − min) of x."""
    x = np.asarray(x, np.float32)
    n = len(x)
    rng = np.random.default_rng(seed)
    span = (x.reshape(n, -1).max(1) - x.reshape(n, -1).min(1)).reshape((n,) + (1,) * (x.ndim - 1))
    sigma = (noise * np.where(span > 0, span, 1.0)).astype(np.float32)
    owner = np.repeat(np.arange(n), samples)
    acc = np.zeros(x.shape, np.float64)
    seeds = rng.integers(0, 2**31, n * samples)

    def points(full):
        eps = np.stack([np.random.default_rng(s).standard_normal(x.shape[1:], dtype=np.float32) for s in seeds[full]])
        return x[owner[full]] + sigma[owner[full]] * eps

    for idx, _, g in _stream(grad_fn, points, owner, np.asarray(targets), n * samples, batch_size):
        np.add.at(acc, owner[idx], g.astype(np.float64))
    return acc / samples


def expected_gradients(grad_fn: GradFn, x, background: np.ndarray, targets, samples: int = 32, seed: int = 0,
                       batch_size: int = 1024) -> np.ndarray:
    """Expected gradients (SHAP's GradientExplainer): E_{b~background, α~U(0,1)}[(x − b) ⊙ ∇F(b + α(x − b))].

    Additivity holds in expectation: Σ attributions ≈ F(x) − E_b[F(b)], with a Monte-Carlo error
    shrinking as 1/√samples; the α are stratified over [0, 1] per sample to reduce that error.
    """
    x = np.asarray(x, np.float32)
    background = np.asarray(background, np.float32)
    n = len(x)
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(n), samples)
    bg_idx = rng.integers(0, len(background), n * samples)
    strata = np.concatenate([rng.permutation(samples) for _ in range(n)])
    alpha = ((strata + rng.random(n * samples)) / samples).astype(np.float32)
    shape1 = (-1,) + (1,) * (x.ndim - 1)

    def points(full):
        b = background[bg_idx[full]]
        return b + alpha[full].reshape(shape1) * (x[owner[full]] - b)

    acc = np.zeros(x.shape, np.float64)
    for idx, _, g in _stream(grad_fn, points, owner, np.asarray(targets), n * samples, batch_size):
        contrib = g.astype(np.float64) * (x[owner[idx]] - background[bg_idx[idx]])
        np.add.at(acc, owner[idx], contrib)
    return acc / samples


def expected_gradients_converging(grad_fn: GradFn, x, background, targets, reference: np.ndarray,
                                  samples: int = 64, max_samples: int = 512, seed: int = 0,
                                  tolerance: float = 0.1, batch_size: int = 1024,
                                  time_left: Callable[[], float] | None = None):
    """Expected gradients with the sample count doubled, for the rows whose additivity error
    |Σ attributions − (F(x) − reference)| exceeds ``tolerance`` × |F(x) − reference|, up to
    ``max_samples`` and while ``time_left()`` leaves room for another round. ``reference`` is (n,)
    F(x) − E_b[F(b)] per row. Returns (attributions, error, samples used per row)."""
    x = np.asarray(x, np.float32)
    n = len(x)
    attr = np.zeros(x.shape, np.float64)
    err = np.full(n, np.inf)
    used = np.zeros(n, int)
    todo = np.arange(n)
    s = int(samples)
    while len(todo):
        t0 = time.monotonic()
        a = expected_gradients(grad_fn, x[todo], background, np.asarray(targets)[todo], s, seed, batch_size)
        attr[todo], used[todo] = a, s
        err[todo] = np.abs(a.reshape(len(todo), -1).sum(1) - reference[todo])
        todo = todo[err[todo] > tolerance * np.maximum(np.abs(reference[todo]), COMPLETENESS_ABS_FLOOR)]
        if s * 2 > max_samples or not room_for_another(time_left, time.monotonic() - t0):
            break
        s *= 2
    return attr, err, used


# ---------------------------------------------------------------------------------------------
# LIME for images, vectorised (Ribeiro, Singh & Guestrin, 2016), numpy only


def grid_segments(image, patch: int = 4):
    """Superpixels for small images: a regular grid of ``patch`` x ``patch`` cells."""
    h, w = image.shape[:2]
    rows = (np.arange(h) // patch)[:, None]
    cols = (np.arange(w) // patch)[None, :]
    return (rows * ((w + patch - 1) // patch) + cols).astype(np.int64)


def patch_side(patch: Any, shape: Sequence[int]) -> int:
    """The side of the pixel blocks perturbation methods move for an (H, W, ...) input: ``patch`` when it
    is a number; for ``"auto"``, 4 px on small images (up to 55 px) and a grid of about 7 x 7 blocks on
    larger ones (``max(4, min(H, W) // 7)``), so that a 224 x 224 image costs 49 perturbations, not 3,136."""
    if patch == "auto":
        return max(4, min(int(shape[0]), int(shape[1])) // 7) if len(shape) >= 2 else 4
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or int(patch) < 1:
        raise ValueError(f"option 'patch' takes a positive integer or 'auto', got {patch!r}")
    return int(patch)


def feature_groups(shape: Sequence[int], patch: int = 4) -> np.ndarray:
    """One group id per input element, for perturbation methods that move features together: ``patch`` x
    ``patch`` pixel blocks (all channels) for an (H, W, C) image, one time step or token for a 2-D
    sequence, one column for a table. Shape ``shape``."""
    shape = tuple(shape)
    if len(shape) == 3:
        return np.broadcast_to(grid_segments(np.empty(shape[:2]), patch)[:, :, None], shape).copy()
    if len(shape) == 2:
        return np.broadcast_to(np.arange(shape[0])[:, None], shape).copy()
    return np.arange(int(np.prod(shape))).reshape(shape)


def weighted_ridge(X, y, w, alpha: float = 1.0):
    """Ridge regression with an intercept and sample weights, as ``sklearn.linear_model.Ridge``
    (which LIME uses, alpha=1): returns (coefficients, intercept, weighted R²)."""
    X, y, w = np.asarray(X, np.float64), np.asarray(y, np.float64), np.asarray(w, np.float64)
    sw = w / w.sum()
    xm, ym = sw @ X, sw @ y
    A = (X - xm) * np.sqrt(w)[:, None]
    b = (y - ym) * np.sqrt(w)
    coef = np.linalg.solve(A.T @ A + alpha * np.eye(X.shape[1]), A.T @ b)
    pred = X @ coef + (ym - xm @ coef)
    ss_res = np.sum(w * (y - pred) ** 2)
    ss_tot = np.sum(w * (y - ym) ** 2)
    return coef, ym - xm @ coef, float(1 - ss_res / ss_tot) if ss_tot > 0 else 0.0


def lime_image(predict, image, target=None, num_samples: int = 1000, seed: int = 0, patch: int = 4,
               kernel_width: float = 0.25):
    """LIME on one image (H, W, C), vectorised: the ``lime`` package's image algorithm (uniform
    on/off superpixel masks from ``RandomState(seed)``, the first all on; hidden superpixels black;
    cosine distance to the full image; kernel sqrt(exp(−d²/0.25²)); weighted ridge, alpha 1), with
    the perturbed images built in one array operation and predicted in one batched call instead of
    a Python loop and batches of 10. Same seed, same masks, same weights as the package
    (tests/explain). Returns (per-pixel weights (H, W), the explained class, R² of the local fit)."""
    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    seg = grid_segments(img, patch)
    n_seg = int(seg.max()) + 1
    masks = np.random.RandomState(seed).randint(0, 2, num_samples * n_seg).reshape((num_samples, n_seg))
    masks[0, :] = 1
    batch = np.where(masks[:, seg][..., None].astype(bool), img[None], np.float32(0))
    preds = np.asarray(predict(batch), np.float64)
    label = int(target) if target is not None else int(np.argmax(preds[0]))
    on = masks.sum(1).astype(np.float64)
    cos = np.divide(on, np.sqrt(on) * np.sqrt(n_seg), out=np.zeros_like(on), where=on > 0)
    distances = 1.0 - cos
    weights = np.sqrt(np.exp(-(distances ** 2) / kernel_width ** 2))
    coef, _, r2 = weighted_ridge(masks, preds[:, label], weights, alpha=1.0)
    return coef[seg], label, r2


# ---------------------------------------------------------------------------------------------
# Trust metrics


def feature_map(attr: np.ndarray, reduce_axes: Sequence[int] = ()) -> np.ndarray:
    """Per-feature importance (n, features): attributions summed over ``reduce_axes`` (channels,
    embedding dims) and flattened."""
    a = np.asarray(attr, np.float64)
    if reduce_axes:
        a = a.sum(axis=tuple(reduce_axes))
    return a.reshape(len(a), -1)


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
                        feature_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Deletion and insertion curves (Petsiuk et al., 2018) against a random order.

    ``importance`` is (n, features); features are the leading axes of one sample (``feature_shape``,
    e.g. (28, 28) for a 28x28x1 image: a feature's channels move together). Deletion replaces the most
    important features by the baseline first; insertion starts from the baseline and restores them.
    ``forward(x, targets)`` returns the explained output per sample (times ``sign``). Curves are in
    units of the median |F(x)|. Returns the areas under the curves (medians over samples) and the
    faithfulness margins: random-order AUC minus attribution-order AUC for deletion, the reverse for
    insertion (positive is better than random).
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
    scale = float(np.median(np.abs(full))) or 1.0
    curves = {}
    for i, key in enumerate(keys):
        curves.setdefault(key[:2], []).append(out[i] / scale)
    auc = {k: float(np.median(np.trapezoid(np.stack(v), ks / feats, axis=0))) for k, v in curves.items()}
    del_margin = auc[("random", "deletion")] - auc[("attribution", "deletion")]
    ins_margin = auc[("attribution", "insertion")] - auc[("random", "insertion")]
    return {"deletion_auc": auc[("attribution", "deletion")], "deletion_auc_random": auc[("random", "deletion")],
            "insertion_auc": auc[("attribution", "insertion")], "insertion_auc_random": auc[("random", "insertion")],
            "deletion_margin": del_margin, "insertion_margin": ins_margin,
            "fractions": (ks / feats).tolist(),
            "curves": {f"{a}.{b}": np.median(np.stack(v), axis=1).tolist() for (a, b), v in curves.items()}}


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
    k = planted count per sample); ``importance`` and ``mask`` are (n, positions). ``scored``
    (bool per sample, see :func:`informative_samples`) limits the scoring to some samples."""
    imp = np.abs(np.asarray(importance, np.float64))
    mask = np.asarray(mask, bool)
    n_all = len(imp)
    if scored is not None:
        imp, mask = imp[np.asarray(scored, bool)], mask[np.asarray(scored, bool)]
    if len(imp) == 0:
        return {"mass_share": 0.0, "top_k_precision": 0.0, "planted_fraction": float(mask.mean()) if mask.size else 0.0,
                "scored_samples": 0, "samples": n_all}
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
            "planted_fraction": float(mask.mean()), "scored_samples": int(len(imp)), "samples": n_all}


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


# ---------------------------------------------------------------------------------------------
# Pictures (matplotlib imported only when drawing)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


VERDICT_COLOURS = {"trusted": "#2e7d32", "doubtful": "#ef6c00", "failed": "#c62828"}


def _overlay_tiles(gray: np.ndarray, maps: np.ndarray | None, gap: int = 2) -> np.ndarray:
    """One row of the overlay grid as an RGB strip: each sample's grey image (35% over white) under its
    map in the ``bwr`` colormap (75%), the map scaled to its own largest |value|; ``maps`` None draws the
    images alone. Composited here in numpy, so the figure draws one image per row, not one per tile."""
    from matplotlib import colormaps

    g = np.asarray(gray, np.float64)
    lo, hi = g.min(axis=(1, 2), keepdims=True), g.max(axis=(1, 2), keepdims=True)
    g = (g - lo) / np.where(hi > lo, hi - lo, 1.0)
    if maps is None:
        tiles = np.repeat(g[..., None], 3, axis=-1)
    else:
        m = np.asarray(maps, np.float64)
        lim = np.max(np.abs(m), axis=(1, 2), keepdims=True)
        colour = colormaps["bwr"]((m / np.where(lim > 0, lim, 1.0) + 1) / 2)[..., :3]
        under = 0.35 * g[..., None] + 0.65
        tiles = 0.75 * colour + 0.25 * under
    k, h, w, _ = tiles.shape
    strip = np.ones((h, k * (w + gap) - gap, 3))
    for j in range(k):
        strip[:, j * (w + gap): j * (w + gap) + w] = tiles[j]
    return strip


def save_image_overlays(path: Path, images: np.ndarray, maps: dict[str, np.ndarray],
                        verdicts: dict[str, str], max_samples: int = 8, captions: Sequence[str] = ()) -> Path:
    """A grid: the inputs on the first row, one row per method with its map over the image (each map
    scaled to its own largest |value|, blue negative, red positive), the method's verdict in its row
    label. ``maps`` are (n, H, W) signed importances."""
    plt = _pyplot()
    images = np.asarray(images)
    k = min(max_samples, len(images))
    gray = images[..., 0] if images.ndim == 4 and images.shape[-1] == 1 else images
    if gray.ndim == 4:  # colour images: their luminance under the maps
        gray = gray.mean(-1)
    rows = [("input", "", _overlay_tiles(gray[:k], None))]
    rows += [(name, verdicts.get(name, ""), _overlay_tiles(gray[:k], np.asarray(m)[:k])) for name, m in maps.items()]
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.3 * k + 1.2, 1.35 * len(rows)), dpi=100, squeeze=False)
    for ax, (name, v, strip) in zip(axes[:, 0], rows):
        ax.imshow(strip, interpolation="nearest", aspect="equal")
        ax.set_ylabel(f"{name}\n{v}" if v else name, fontsize=7 if v else 8, color=VERDICT_COLOURS.get(v, "black"))
        ax.set_xticks([])
        ax.set_yticks([])
    w = gray.shape[2]
    for j, caption in enumerate(captions[:k]):
        axes[0, 0].text(j * (w + 2) + w / 2, -1, caption, ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def save_heat_strips(path: Path, maps: dict[str, np.ndarray], verdicts: dict[str, str], mask: np.ndarray | None = None,
                     max_samples: int = 8, xlabel: str = "position", tokens: np.ndarray | None = None) -> Path:
    """One strip per sample and method over the positions (time steps or tokens); planted
    ground-truth positions are outlined; token ids are written in the cells when given."""
    plt = _pyplot()
    names = list(maps)
    k = min(max_samples, len(next(iter(maps.values()))))
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 0.32 * k * len(names) + 0.9), dpi=100, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        m = np.asarray(maps[name][:k], np.float64)
        lim = float(np.max(np.abs(m))) or 1.0
        ax.imshow(m, cmap="bwr", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        if mask is not None:
            rows, cols = np.nonzero(np.asarray(mask[:k], bool))
            ax.scatter(cols, rows, s=14, facecolors="none", edgecolors="black", linewidths=0.8)
        if tokens is not None and m.shape[1] <= 40:
            for r in range(k):
                for c in range(m.shape[1]):
                    ax.text(c, r, str(int(tokens[r, c])), ha="center", va="center", fontsize=5)
        v = verdicts.get(name, "")
        ax.set_title(f"{name} — {v}" if v else name, fontsize=8, color=VERDICT_COLOURS.get(v, "black"), loc="left")
        ax.set_yticks(range(k))
        ax.set_yticklabels([str(i) for i in range(k)], fontsize=6)
        ax.tick_params(axis="x", labelsize=6)
    axes[-1, 0].set_xlabel(xlabel + ("  (circles: planted ground truth)" if mask is not None else ""), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def save_global_importance(path: Path, names: Sequence[str], importance: np.ndarray, title: str, top: int = 20) -> Path:
    """Horizontal bars of mean |attribution| per feature, the largest on top."""
    plt = _pyplot()
    imp = np.asarray(importance, np.float64)
    order = np.argsort(-imp)[:top]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(order) + 1.0), dpi=100)
    ax.barh(range(len(order))[::-1], imp[order], color="#1565c0")
    ax.set_yticks(range(len(order))[::-1], [names[i] for i in order], fontsize=7)
    ax.set_xlabel("mean |attribution|", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def json_round(value: Any, digits: int = 6) -> Any:
    """Metrics for the report: floats rounded, numpy scalars converted, non-finite as None."""
    if isinstance(value, dict):
        return {str(k): json_round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_round(v, digits) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return round(v, digits) if np.isfinite(v) else None
    return value
