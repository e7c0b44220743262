"""The explanation trust checks, each turned into a :class:`~diagnostics.Check` with its interval.

Every check here takes per-sample values (one per audited sample) and the interval level of the current
look, and says passed / doubtful / failed only when the interval lies on one side of its threshold,
``undecided`` while it straddles (:mod:`diagnostics._intervals` holds the intervals and the rule; the
pipeline, :class:`diagnostics.explainers.ExplanationAnalyzer`, audits more samples while a check is not
settled). The point value of a per-sample check is the mean of its per-sample values, the quantity the
interval is about.

The axiom checks (completeness, additivity) are the exception on the pass side: "all samples complete"
is a property of the maps delivered, which the methods enforce by refining each sample (more steps,
more draws), not an estimate of a population — they pass when the share of samples within tolerance
reaches the wanted share on the samples explained, and the interval decides only doubtful against
failed.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from . import _intervals as I
from . import explain as E
from ._verdicts import Check, Outcome, format_interval, phrase

#: The range of a rank correlation, and of a precision or share.
CORRELATION, FRACTION = (-1.0, 1.0), (0.0, 1.0)
#: The per-sample values a check keeps in its detail (beyond this many, only the summary).
DETAIL_SAMPLES = 64


def sample_check(name: str, values: Sequence[float], threshold: float, level: float, *, fail: float | None = None,
                 higher_is_better: bool = True, reasons: dict[Outcome, str] | None = None,
                 detail: dict | None = None, bounds: tuple[float, float] | None = None) -> Check:
    """A check on the mean of per-sample ``values`` with its Student-t interval at ``level``:
    decided by :func:`diagnostics._intervals.decide` against ``threshold`` (doubtful beyond it) and
    ``fail``. ``reasons[outcome]`` is formatted with ``value``, ``interval`` and ``n``; an undecided
    check's reason is its phrase ("faithfulness 0.047 [−0.01, 0.11], 8 samples: undecided against 0.02").
    ``bounds``: the range every per-sample value lies in (a correlation's [−1, 1]); the mean lies in it too,
    so the interval is cut to it (a rank correlation of 0.84 is not shown as "[0.68, 1.01]")."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    value = float(v.mean()) if n else float("nan")
    interval = I.mean_interval(v, level)
    if bounds is not None:
        interval = (max(interval[0], bounds[0]), min(interval[1], bounds[1]))
    decision = I.decide(interval, threshold, fail, higher_is_better)
    extra = {"per_sample": [round(float(x), 6) for x in v[:DETAIL_SAMPLES]], "settled": decision.settled}
    if fail is not None:
        extra["fail_at"] = fail
    check = Check(name, value, threshold, decision.outcome, higher_is_better, "", {**(detail or {}), **extra},
                  interval=interval if all(map(np.isfinite, interval)) else None, samples=n, level=level)
    text = (reasons or {}).get(decision.outcome, "")
    if decision.outcome is Outcome.UNDECIDED or not text:
        text = phrase(check)
    else:
        text = text.format(value=value, interval=format_interval(check.interval), n=n)
    return dataclasses.replace(check, reason=text)


def axiom_check(what: str, gap: np.ndarray, delta: np.ndarray, tol: float, fail: float, wanted: float,
                level: float, notes: dict | None = None) -> Check:
    """Completeness (``what="completeness"``: Σ attributions = F(x) − F(baseline)) or additivity: a
    sample is within tolerance when its gap is under ``tol`` of |F(x) − reference|. Passed when at least
    ``wanted`` of the explained samples are (a fact of the maps, see the module doc); failed when the
    Wilson interval of that share lies under ``fail``, doubtful when it lies at or over it; not settled
    while it straddles ``fail``."""
    gap, delta = np.asarray(gap, np.float64), np.asarray(delta, np.float64)
    n = len(gap)
    rel = gap / np.maximum(np.abs(delta), E.COMPLETENESS_ABS_FLOOR)
    ok = gap <= np.maximum(tol * np.abs(delta), E.COMPLETENESS_ABS_FLOOR)
    k = int(ok.sum())
    frac = k / n if n else 0.0
    interval = I.proportion_interval(k, n, level)
    if n and frac >= wanted - 1e-12:
        outcome, settled = Outcome.PASSED, True
    elif interval[1] < fail:
        outcome, settled = Outcome.FAILED, True
    else:
        outcome, settled = Outcome.DOUBTFUL, interval[0] >= fail
    detail = {"tolerance": tol, "within": k, "median_relative_gap": float(np.median(rel)) if n else None,
              "max_relative_gap": float(np.max(rel)) if n else None, "median_abs_gap": float(np.median(gap)) if n else None,
              "fail_below": fail, "settled": settled, **(notes or {})}
    check = Check(what, frac, wanted, outcome, True, "", detail, interval=interval, samples=n, level=level)
    ci = format_interval(interval)
    reason = "" if outcome is Outcome.PASSED else f"{phrase(check)}, median gap {float(np.median(rel)):.1%}" + (
        f"; the share within tolerance, {ci}, is under the {fail:.0%} a method needs not to fail"
        if outcome is Outcome.FAILED else "" if settled else
        f"; whether under {fail:.0%} are (failed) is undecided: {ci}")
    return dataclasses.replace(check, reason=reason)


def randomisation_check(trained: np.ndarray, randomised: np.ndarray, signed: bool, t: dict,
                        level: float = I.LEVEL) -> Check:
    """Adebayo et al. (2018): the rank correlation per sample between the maps of the trained model and
    of a weight-randomised copy; high means the map does not depend on what the model learnt."""
    a, b = (trained, randomised) if signed else (np.abs(trained), np.abs(randomised))
    return randomisation_of(E.rank_correlation(a, b), signed, t, level)


def randomisation_of(correlations: Sequence[float], signed: bool, t: dict, level: float = I.LEVEL) -> Check:
    """The randomisation check on per-sample rank correlations already measured (the pipeline pools them
    over its looks): low wanted, doubtful above ``randomisation_doubtful``, failed above ``randomisation_fail``."""
    return sample_check("randomisation", correlations, t["randomisation_doubtful"], level, fail=t["randomisation_fail"],
                        higher_is_better=False, detail={"absolute": not signed}, reasons=RANDOMISATION_REASONS,
                        bounds=CORRELATION)


RANDOMISATION_REASONS = {
    Outcome.FAILED: "maps barely change when the weights are randomised (rank correlation {value:.2f} {interval}, "
                    "{n} samples)",
    Outcome.DOUBTFUL: "maps change only partly when the weights are randomised (rank correlation {value:.2f} "
                      "{interval}, {n} samples)"}


def faithfulness_check(curves: dict, t: dict, level: float = I.LEVEL) -> Check:
    """Petsiuk et al. (2018): deletion and insertion margins over a random order, per sample
    (``curves`` from :func:`diagnostics.explain.perturbation_curves`). The better of the two directions
    (by its mean) is judged; failed only when both directions' intervals lie at or under the fail
    threshold."""
    margins = {"deletion": np.asarray(curves["deletion_margins"], np.float64),
               "insertion": np.asarray(curves["insertion_margins"], np.float64)}
    best = max(margins, key=lambda k: margins[k].mean() if len(margins[k]) else -np.inf)
    other = "insertion" if best == "deletion" else "deletion"
    shown = {k: v for k, v in curves.items() if k not in ("sample_curves", "deletion_margins", "insertion_margins")}
    check = sample_check("faithfulness", margins[best], t["faithfulness_doubtful"], level, fail=t["faithfulness_fail"],
                         detail={**shown, "direction": best}, reasons={
                             Outcome.FAILED: "removing the top-attributed features hurts the output no more than a "
                                             "random order ({value:+.3f} {interval} " + best + " margin, {n} samples)",
                             Outcome.DOUBTFUL: "barely more faithful than a random order ({value:+.3f} {interval} "
                                               + best + " margin, {n} samples)"})
    if check.outcome is Outcome.FAILED:  # the other direction must be as bad for a failure
        lo, hi = I.mean_interval(margins[other], level)
        if hi > t["faithfulness_fail"]:
            return dataclasses.replace(check, outcome=Outcome.DOUBTFUL,
                                       detail={**check.detail, "settled": False})
    return check


def simple_check(name: str, value: float, minimum: float, reason: str, detail: dict | None = None) -> Check:
    """A check of one measured fact (no samples to draw more of): doubtful below ``minimum`` (``reason``
    is formatted with ``value``). A check over samples is :func:`sample_check`."""
    ok = value >= minimum
    return Check(name, value, minimum, Outcome.PASSED if ok else Outcome.DOUBTFUL, reason=reason.format(value=value),
                 detail={**(detail or {}), "settled": True})


def settled(check: Check) -> bool:
    """Whether more samples could change the check (a check without the flag predates issue 23: settled)."""
    return bool(check.detail.get("settled", True))
