"""Fitting an analyzer's work to its time budget: measure what one model evaluation costs, then
explain as many samples as fit, and say so in the report, rather than time out with nothing.

An analyzer states roughly how many gradient evaluations (forward + backward of one sample) explaining
one sample takes with its options (``work``: path steps, noise samples, perturbations, the sanity
and stability repeats); :func:`fit_samples` times the model on a small batch and returns how many
samples fit in :data:`SHARE` of the time left. What was cut is recorded with
:func:`diagnostics.memory.note` and lands in the analyzer's record (``resource_notes``).
"""

from __future__ import annotations

import time

import numpy as np

#: Share of the time left that the planned work may take (tracing, clones and plots take the rest).
SHARE = 0.4
#: Samples in the timing probe.
PROBE = 4


def seconds_per_eval(model, x, backend: str) -> float:
    """Seconds one gradient evaluation of one sample costs: the slope between batches of
    :data:`PROBE` and 4 x :data:`PROBE` copies of ``x[0]`` through the backend's compiled input-gradient
    primitive, each timed after a warm-up call (which traces). The slope leaves out the fixed cost of a
    call, which dominates for small models and would make them look expensive. Models with integer
    inputs are timed forward only, times 3 (a backward pass costs about 2 forwards)."""
    from . import backends
    from . import inputs as I

    def timer(k: int):
        xb = I.repeat_first(x, k)
        targets = np.zeros(k, np.int64)
        if any(np.issubdtype(np.asarray(a).dtype, np.integer) for a in I.leaves(xb)):
            def call():
                model(I.for_model(model, xb), training=False)
            factor = 3.0
        else:
            prim = backends.get(backend)

            def call():
                prim.input_gradients(model, xb, targets, batch_size=k)
            factor = 1.0
        call()
        t0 = time.perf_counter()
        call()
        return factor * (time.perf_counter() - t0)

    small, large = timer(PROBE), timer(4 * PROBE)
    return max(0.0, (large - small) / (3 * PROBE))


def fit_samples(context, requested: int, work: float, *, model=None, x=None, minimum: int = 1) -> int:
    """How many of ``requested`` samples fit the analyzer's time left, when each takes ``work`` gradient
    evaluations; at least ``minimum``. Says in the report when fewer than requested are explained."""
    from . import memory

    requested = int(requested)
    left = context.time_left()
    if not np.isfinite(left) or requested <= minimum:
        return requested
    model = context.model if model is None else model
    x = context.data.x if x is None else x
    per_sample = seconds_per_eval(model, x, context.backend) * float(work)
    left = context.time_left()  # the probe took some of it
    n = int(SHARE * left // max(per_sample, 1e-9))
    n = max(minimum, min(requested, n))
    if n < requested:
        memory.note(f"explained {n} of {requested} samples within the {context.budget_s:g} s budget "
                    f"(about {per_sample:.1f} s per sample on this machine)")
    return n
