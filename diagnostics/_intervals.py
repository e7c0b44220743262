"""Confidence intervals of the trust checks, and the sequential rule that reads them (issue 23).

A trust check measures one number per audited sample (a rank correlation, a deletion margin, whether
an attribution sums to the output) and is judged on a summary of them against a threshold. With 4-16
samples a point estimate against a hard threshold is a coin flip near the threshold, so every check
carries an interval and the interval decides:

- passed, or the verdict the check pulls the method down to, only when the whole interval lies on
  one side of the threshold;
- while it straddles a threshold the pipeline audits more samples (:func:`look_sizes`: 4, 8, 16, ...
  doubling up to a cap) and looks again;
- a check still straddling its pass threshold at the cap (or when the time budget is spent) is
  ``undecided``, with its interval.

Repeated looks at growing data inflate the error rate of a fixed-level interval (each look is another
chance to cross a threshold by luck). The error is spent over the planned looks by Bonferroni's
inequality: with ``K`` looks each interval is built at level ``1 - alpha / K``, so the chance that any
look of a check decides wrongly is at most ``alpha`` whatever the dependence between looks
(Jennison & Turnbull, *Group Sequential Methods with Applications to Clinical Trials*, 2000, §1.3 and
ch. 2: Bonferroni is the conservative bound their boundaries improve on).

The intervals themselves are textbook:

- a mean of per-sample values: Student's t interval (the per-sample values of these checks are
  bounded correlations and margins; with 4-16 samples the percentile bootstrap under-covers — it never
  reaches outside the sample's range — so the t interval is used, Efron & Tibshirani, *An Introduction
  to the Bootstrap*, 1993, §12.5);
- a fraction of samples: Wilson's score interval (Agresti & Coull, *The American Statistician* 52,
  1998), which stays inside [0, 1] and is not degenerate at 0 or n successes.

numpy only (Student's t quantile is computed here, exactly for integer degrees of freedom), so the CLI
and the workers do not need scipy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from ._verdicts import Outcome

#: The family-wise level of a check over all its looks (alpha = 0.05).
LEVEL = 0.95


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4: finite sums)."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd
        if df == 1:
            return 2 * theta / math.pi
        term, total = math.cos(theta), math.cos(theta)
        for k in range(3, df - 1, 2):  # cos + (2/3) cos^3 + (2*4)/(3*5) cos^5 + ...
            term *= c2 * (k - 1) / k
            total += term
        return 2 / math.pi * (theta + s * total)
    term, total = 1.0, 1.0
    for k in range(2, df - 1, 2):  # 1 + (1/2) cos^2 + (1*3)/(2*4) cos^4 + ...
        term *= c2 * (k - 1) / k
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` >= 1 degrees of freedom (bisection on
    the exact distribution function; agrees with ``scipy.stats.t.ppf`` to 1e-9)."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df >= 1, got p={p}, df={df}")
    want = 2 * p - 1  # P(|T| <= q)
    lo, hi = 0.0, 1.0
    while _t_two_sided(hi, df) < want:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_two_sided(mid, df) < want:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _z(level: float) -> float:
    """The two-sided normal quantile of ``level`` (the t quantile's limit, by bisection on erf)."""
    want, lo, hi = level, 0.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid / math.sqrt(2)) < want else (lo, mid)
    return (lo + hi) / 2


def mean_interval(values: Sequence[float], level: float) -> tuple[float, float]:
    """Student's t interval of the mean of ``values`` at two-sided ``level``; (-inf, inf) with fewer
    than two values (one value says nothing about the spread)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n < 2:
        return -math.inf, math.inf
    half = t_quantile(0.5 + level / 2, n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    m = float(v.mean())
    return m - half, m + half


def proportion_interval(k: int, n: int, level: float) -> tuple[float, float]:
    """Wilson's score interval of a fraction ``k`` of ``n`` at two-sided ``level``; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = _z(level)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # at 0 or n successes the bound is exactly 0 or 1 (the formula gives it up to rounding)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def look_sizes(start: int, cap: int) -> list[int]:
    """The audited sample counts of successive looks: ``start``, doubling, ending at ``cap``
    (4, 32 -> [4, 8, 16, 32]; 4, 20 -> [4, 8, 16, 20]; a start at or above the cap is one look)."""
    start, cap = max(1, int(start)), max(1, int(cap))
    sizes = [min(start, cap)]
    while sizes[-1] < cap:
        sizes.append(min(sizes[-1] * 2, cap))
    return sizes


def per_look_level(looks: int, level: float = LEVEL) -> float:
    """The level of each look's interval so that ``looks`` looks together err with at most
    ``1 - level`` (Bonferroni)."""
    return 1 - (1 - level) / max(1, int(looks))


@dataclasses.dataclass(frozen=True)
class Decision:
    """What an interval says against a check's thresholds: the ``outcome`` (``undecided`` while it
    straddles the pass threshold) and whether it is ``settled`` (False also when the check is known not
    to pass but straddles the fail threshold: more samples may tell doubtful from failed)."""

    outcome: Outcome
    settled: bool


def decide(interval: tuple[float, float], doubtful: float, fail: float | None = None,
           higher_is_better: bool = True) -> Decision:
    """The outcome of a check whose value lies in ``interval``: passed when the interval lies wholly on
    the good side of ``doubtful`` (above it, or below it when lower is better), failed when wholly on the
    bad side of ``fail`` (at or below it, at or above it when lower is better), doubtful when wholly on the
    bad side of ``doubtful``; undecided while it straddles ``doubtful``."""
    lo, hi = interval
    if not higher_is_better:  # mirror: lower is better becomes higher is better
        lo, hi, doubtful = -hi, -lo, -doubtful
        fail = None if fail is None else -fail
    if lo > doubtful:
        return Decision(Outcome.PASSED, True)
    if fail is not None and hi <= fail:
        return Decision(Outcome.FAILED, True)
    if hi <= doubtful:
        return Decision(Outcome.DOUBTFUL, fail is None or lo > fail)
    return Decision(Outcome.UNDECIDED, False)

