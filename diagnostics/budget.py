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
from typing import Callable

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


def plan(context, requested: int, costs: dict[str, float], *, model=None, x=None, minimum: int = 2,
         drop: bool = True, shrink: Callable[[str, float], float | None] | None = None) -> tuple[int, dict[str, str]]:
    """Samples and methods that fit the analyzer's time left. ``costs`` maps each method, in order of
    priority, to the gradient evaluations explaining one sample takes (checks included). When a method
    cannot explain ``minimum`` samples beside those kept before it, ``shrink(name, factor)`` may lower
    its options by about ``factor`` and return its new cost (None: it cannot); if it still does not
    fit it is left out (unless ``drop`` is False), with the reason. The kept ones explain as many of
    ``requested`` samples as fit in :data:`SHARE` of the time left (at least ``minimum``). Each cut is
    said in the report. Returns (samples, {left-out method: reason})."""
    from . import memory

    requested, left = int(requested), context.time_left()
    if not np.isfinite(left) or not costs:
        return requested, {}
    per_eval = seconds_per_eval(context.model if model is None else model, context.data.x if x is None else x,
                                context.backend)
    room, least = SHARE * context.time_left(), min(minimum, requested)  # the probe took some of the time
    kept, dropped = 0.0, {}
    for name, evals in costs.items():
        need = float(evals) * per_eval
        if drop and (kept + need) * least > room and shrink is not None:
            smaller = shrink(name, max(0.0, room / least - kept) / max(need, 1e-12))
            need = need if smaller is None else float(smaller) * per_eval
        if drop and (kept + need) * least > room:
            dropped[name] = (f"left out: about {need * least:.0f} s for {least} samples on this model, more than the "
                             f"{room:.0f} s the {context.budget_s:g} s budget leaves for it (raise --timeout, or "
                             f"lower its options)")
            memory.note(f"{name} {dropped[name]}")
        else:
            kept += need
    n = max(least, min(requested, int(room // kept))) if kept > 0 else least
    if n < requested and len(dropped) < len(costs):
        memory.note(f"explained {n} of {requested} samples within the {context.budget_s:g} s budget "
                    f"(about {kept:.1f} s per sample on this machine)")
    return n, dropped


def fit_samples(context, requested: int, work: float, *, model=None, x=None, minimum: int = 1) -> int:
    """How many of ``requested`` samples fit the analyzer's time left, when each takes ``work`` gradient
    evaluations; at least ``minimum``. Says in the report when fewer than requested are explained."""
    return plan(context, requested, {"": work}, model=model, x=x, minimum=minimum, drop=False)[0]
