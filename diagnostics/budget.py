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
SHARE = 0.5
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


def plan(context, requested: int, costs: dict[str, float], *, model=None, x=None, minimum: int = 2,
         drop: bool = True, least_costs: dict[str, float] | None = None) -> tuple[int, dict[str, str], float]:
    """Samples and methods that fit the analyzer's time left. ``costs`` maps each method, in order of
    priority, to the gradient evaluations explaining one sample takes (checks included);
    ``least_costs`` to what it takes with its options lowered as far as they go (default: the same).

    In order, a method whose least cost does not fit ``minimum`` samples in :data:`SHARE` of the time
    left, beside the methods kept before it, is left out with the reason (never when ``drop`` is False). If the full
    costs do not fit, a common factor (< 1) says how far the methods should lower their options; the
    kept ones explain as many of ``requested`` samples as fit (at least ``minimum``). Each cut is said in
    the report. Returns (samples, {left-out method: reason}, factor)."""
    from . import memory

    requested, left = int(requested), context.time_left()
    if not np.isfinite(left) or not costs:
        return requested, {}, 1.0
    per_eval = seconds_per_eval(context.model if model is None else model, context.data.x if x is None else x,
                                context.backend)
    room, least = SHARE * context.time_left(), min(minimum, requested)  # the probe took some of the time
    full = {k: float(v) * per_eval for k, v in costs.items()}
    low = {k: min(full[k], float((least_costs or costs).get(k, costs[k])) * per_eval) for k in costs}
    dropped: dict[str, str] = {}
    taken = 0.0
    for name in costs:
        if drop and (taken + low[name]) * least > room:
            dropped[name] = (f"left out: about {low[name] * least:.0f} s for {least} samples on this model, with the "
                             f"methods before it more than the {room:.0f} s the {round(context.budget_s, 1):g} s budget leaves "
                             f"(raise --timeout, or lower its options)")
        else:
            taken += low[name]
    kept = [k for k in costs if k not in dropped]

    def total(f):
        return sum(max(low[k], full[k] * f) for k in kept)

    factor = 1.0
    if drop and total(1.0) * least > room:
        lo, hi = 0.0, 1.0
        for _ in range(30):
            lo, hi = ((lo + hi) / 2, hi) if total((lo + hi) / 2) * least <= room else (lo, (lo + hi) / 2)
        factor = lo
    for name in dropped:
        memory.note(f"{name} {dropped[name]}")
    per_sample = total(factor)
    n = max(least, min(requested, int(room // per_sample))) if per_sample > 0 else requested
    if n < requested:
        memory.note(f"explained {n} of {requested} samples within the {round(context.budget_s, 1):g} s budget "
                    f"(about {per_sample:.1f} s per sample on this machine)")
    return n, dropped, factor


def fit_samples(context, requested: int, work: float, *, model=None, x=None, minimum: int = 1) -> int:
    """How many of ``requested`` samples fit the analyzer's time left, when each takes ``work`` gradient
    evaluations; at least ``minimum``. Says in the report when fewer than requested are explained."""
    return plan(context, requested, {"": work}, model=model, x=x, minimum=minimum, drop=False)[0]
