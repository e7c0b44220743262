"""Gradient machinery shared by the gradient-family explainers: the batched gradient stream, gradients at
``x``, Gauss-Legendre path integrals, Integrated Gradients with its completeness check, and the time test
that decides whether a refinement round fits.

Everything here takes a *gradient function* ``grad_fn(x, targets) -> (values, grads)`` (see
:mod:`diagnostics.backends`: ``input_gradients`` bound to a model) and feeds it fixed-size batches, so
the compiled function traces once and memory is bounded by ``batch_size`` whatever the number of
samples. Nothing here imports a deep-learning framework. (The module is not called ``gradients`` so that
the name ``diagnostics.explain.gradients`` stays the function.)

Saliency, input x gradient, SmoothGrad and expected gradients are built on it in their plugin
(diagnostics_plugins.explain_gradients); Integrated Gradients stays here because two plugins run it
(explain.gradients, and shortcut on its own models).

References:
    Sundararajan, Taly & Yan (2017), *Axiomatic Attribution for Deep Networks* (Integrated Gradients).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

GradFn = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]


#: IG completeness: the gap must be under this fraction of |F(x) - F(baseline)| ...
COMPLETENESS_TOLERANCE = 0.01
#: ... or under this absolute value (float32 round-off when F(x) and F(baseline) nearly agree).
COMPLETENESS_ABS_FLOOR = 1e-5


def gradient_stream(grad_fn: GradFn, points: Callable[[np.ndarray], np.ndarray], owner: np.ndarray, targets: np.ndarray,
                    total: int, batch_size: int):
    """Yield ``(indices, values, grads)`` over ``total`` virtual inputs, in batches of exactly
    ``batch_size`` (the last padded by repetition), so the compiled function traces once.

    The inputs are never all built: ``points(indices)`` returns the batch of inputs for those virtual
    indices, and ``owner[i]`` is the explained sample that virtual input ``i`` belongs to (its target is
    ``targets[owner[i]]``). A method accumulates the yielded gradients per owner."""
    size = max(1, min(batch_size, total))
    for start in range(0, total, size):
        idx = np.arange(start, min(start + size, total))
        pad = size - len(idx)
        full = np.concatenate([idx, np.repeat(idx[-1:], pad)]) if pad else idx
        values, grads = grad_fn(points(full), targets[owner[full]])
        yield idx, values[: len(idx)], grads[: len(idx)]


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
    for idx, values, grads in gradient_stream(grad_fn, points, owner, np.asarray(targets), len(owner), batch_size):
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
    for idx, v, g in gradient_stream(grad_fn, lambda full: x32[full], owner, np.asarray(targets), n, batch_size):
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
