"""Verdicts with intervals (issue 23): known answers of the intervals, the decision rule, the sequential
audit on synthetic checks whose true value is known, and the strings a person reads."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import scipy.stats

from diagnostics import Check, Data, ExplanationAnalyzer, Explainer, Outcome, Verdict
from diagnostics import _intervals as I
from diagnostics._verdicts import format_interval, phrase, verdict_of

from .test_pipeline import run_analyzer


@pytest.mark.parametrize("p,df", [(0.975, 1), (0.975, 3), (0.995, 3), (0.995, 7), (0.99875, 15), (0.975, 63), (0.9, 2)])
def test_t_quantile_agrees_with_scipy(p, df):
    assert I.t_quantile(p, df) == pytest.approx(scipy.stats.t.ppf(p, df), rel=1e-9)


def test_mean_interval_known_answer():
    # mean 2.5, s = 1.2910, t(3, 0.975) = 3.182446: 2.5 ± 2.0543
    lo, hi = I.mean_interval([1, 2, 3, 4], 0.95)
    assert (lo, hi) == (pytest.approx(0.445739, abs=1e-6), pytest.approx(4.554261, abs=1e-6))
    assert I.mean_interval([0.3], 0.95) == (-math.inf, math.inf)  # one value says nothing about the spread
    assert I.mean_interval([0.2, 0.2, 0.2], 0.99) == (pytest.approx(0.2), pytest.approx(0.2))


def test_a_bounded_check_keeps_its_interval_inside_the_bounds():
    """Rank correlations near 1: the t interval of their mean reaches past 1 (0.84 [0.68, 1.01] on the zoo
    conv_gru's saliency); the mean of values in [-1, 1] lies in [-1, 1], so the interval is cut there and the
    decision (about a threshold inside the range) is the same."""
    from diagnostics._trust_checks import CORRELATION, sample_check

    r = [1.0, 1.0, 0.99, 0.6]
    lo, hi = I.mean_interval(r, 0.95)
    assert hi > 1
    free = sample_check("randomisation", r, 0.3, 0.95, fail=0.6, higher_is_better=False)
    cut = sample_check("randomisation", r, 0.3, 0.95, fail=0.6, higher_is_better=False, bounds=CORRELATION)
    assert cut.interval == (lo, 1.0) and free.interval == (lo, hi)
    assert cut.outcome is free.outcome and cut.value == free.value


def test_wilson_interval_known_answer():
    # 3 of 8 at 95%: [0.1368, 0.6943], as scipy computes Wilson's score interval; 0 of n stays inside [0, 1]
    for k, n, level in [(3, 8, 0.95), (7, 8, 0.99), (15, 16, 0.99)]:
        ref = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
        assert I.proportion_interval(k, n, level) == (pytest.approx(ref.low, abs=1e-9), pytest.approx(ref.high, abs=1e-9))
    assert I.proportion_interval(3, 8, 0.95) == (pytest.approx(0.136844, abs=1e-6), pytest.approx(0.694258, abs=1e-6))
    assert I.proportion_interval(0, 10, 0.95)[0] == 0.0 and I.proportion_interval(10, 10, 0.95)[1] == 1.0
    assert I.proportion_interval(0, 0, 0.95) == (0.0, 1.0)


def test_looks_and_the_level_spent_over_them():
    assert I.look_sizes(4, 64) == [4, 8, 16, 32, 64]
    assert I.look_sizes(4, 20) == [4, 8, 16, 20]
    assert I.look_sizes(8, 4) == [4]
    assert I.per_look_level(5) == pytest.approx(0.99)  # Bonferroni: 0.05 spent over 5 looks
    assert I.per_look_level(1, 0.9) == pytest.approx(0.9)


@pytest.mark.parametrize("interval,hib,expected,settled", [
    ((0.05, 0.11), True, "passed", True),     # wholly above 0.02
    ((-0.01, 0.11), True, "undecided", False),  # straddles 0.02
    ((0.001, 0.015), True, "doubtful", True),   # under 0.02, over the fail threshold 0
    ((-0.05, 0.01), True, "doubtful", False),   # under 0.02, straddling 0: doubtful at least, failed maybe
    ((-0.05, -0.01), True, "failed", True),
    ((0.1, 0.2), False, "passed", True),        # lower is better: wholly under 0.3 (randomisation)
    ((0.55, 0.9), False, "failed", True),       # wholly at or over 0.5
    ((0.25, 0.45), False, "undecided", False),
])
def test_the_interval_decides(interval, hib, expected, settled):
    doubtful, fail = (0.02, 0.0) if hib else (0.3, 0.5)
    d = I.decide(interval, doubtful, fail, hib)
    assert (d.outcome.value, d.settled) == (expected, settled)


def test_the_strings_a_person_reads():
    faith = Check("faithfulness", 0.047, 0.02, "undecided", interval=(-0.01, 0.11), samples=8, level=0.99)
    assert phrase(faith) == "faithfulness 0.047 [\u22120.01, 0.11], 8 samples: undecided against 0.02"
    ig = Check("completeness", 3 / 8, 1.0, "doubtful", detail={"within": 3}, interval=(0.1, 0.76), samples=8)
    assert phrase(ig) == "complete on 3 of 8 samples (all wanted)"
    shap = Check("additivity", 7 / 8, 0.9, "doubtful", detail={"within": 7}, interval=(0.4, 0.99), samples=8)
    assert phrase(shap) == "additive on 7 of 8 samples (90% wanted)"
    rand = Check("randomisation", 0.41, 0.3, "doubtful", higher_is_better=False, interval=(0.33, 0.49), samples=16)
    assert phrase(rand) == "randomisation 0.41 [0.33, 0.49], 16 samples: doubtful against 0.3, lower wanted"
    old = Check("stability", 0.5, 0.8, "doubtful")  # a schema 2-3 report: no interval
    assert phrase(old) == "stability 0.5 (> 0.8 wanted)"
    assert format_interval((-0.0001, 0.5)) == "[0.00, 0.50]" and format_interval(None) == ""


def test_a_method_whose_only_problem_is_undecided_is_undecided_not_failed():
    passed = Check("finite", 1.0, 1.0, "passed")
    open_ = Check("stability", 0.8, 0.8, "undecided", reason="stability 0.8 [0.7, 0.9], 64 samples: undecided against 0.8")
    assert verdict_of([passed, open_]) == (Verdict.UNDECIDED, (open_.reason,))
    doubt = Check("faithfulness", 0.01, 0.02, "doubtful", reason="barely")
    assert verdict_of([open_, doubt])[0] is Verdict.DOUBTFUL


# -- the sequential rule, on checks whose true value is known ---------------------------------------------
U = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]) / math.sqrt(10)  # centred, unit length
V = np.array([2.0, -1.0, -2.0, -1.0, 2.0]) / math.sqrt(14)  # centred, unit length, orthogonal to U


class Staged(Explainer):
    """A sampling method whose stability on each sample is exactly the sample's first feature: the map of
    seed s is 10 + U, that of seed s + 1 is 10 + ρ U + sqrt(1 − ρ²) V, whose Pearson correlation with it is
    ρ. On the randomised model the map is 10 + V (rank correlation 0 with 10 + U: randomisation passes at
    once, and only stability is left to decide)."""

    name = "staged"
    sampling = True

    def attribute(self, view, x, targets, seed):
        rho = np.clip(np.asarray(x, np.float64)[:, 0], -1, 1)[:, None]
        if view.randomised:
            return np.tile(10 + V, (len(x), 1))
        if self.stage == "stability":
            return 10 + rho * U + np.sqrt(1 - rho ** 2) * V
        return np.tile(10 + U, (len(x), 1))


class Sequential(ExplanationAnalyzer):
    name = "explain.sequential"
    description = "a method whose stability per sample is set by the data"
    explainers = (Staged,)
    defaults = {"faithfulness": False}


def _data(rho: np.ndarray) -> Data:
    x = np.zeros((len(rho), 5), np.float32)
    x[:, 0] = rho
    x[:, 1:] = np.random.default_rng(0).normal(size=(len(rho), 4))
    return Data(x_val=x)


def test_a_check_far_from_its_threshold_decides_at_the_first_look(linear, tmp_path):
    model, _, _ = linear
    rho = 0.99 + 0.002 * np.random.default_rng(1).standard_normal(64)  # far above stability_min 0.8
    result = run_analyzer(Sequential, model, _data(rho), tmp_path)
    (s,) = result.explanations
    stab = s.check("stability")
    assert (s.verdict, stab.outcome.value, stab.samples) == (Verdict.TRUSTED, "passed", 4)
    assert result.metrics["looks"] == [4] and result.metrics["looks_ended"] == "settled"
    assert stab.interval[0] > 0.8 and stab.level == pytest.approx(0.99)


def test_a_check_whose_true_value_sits_on_its_threshold_ends_undecided_at_the_cap(linear, tmp_path):
    model, _, _ = linear
    z = np.abs(np.random.default_rng(2).standard_normal(32)) * 0.08
    rho = 0.8 + np.concatenate([z, -z])  # 64 samples whose mean is exactly stability_min
    result = run_analyzer(Sequential, model, _data(rho), tmp_path)
    (s,) = result.explanations
    stab = s.check("stability")
    assert result.metrics["looks"] == [4, 8, 16, 32, 64] and result.metrics["looks_ended"] == "cap"
    assert (stab.outcome, stab.samples, stab.value) == (Outcome.UNDECIDED, 64, pytest.approx(0.8))
    assert stab.interval[0] < 0.8 < stab.interval[1]
    assert s.verdict is Verdict.UNDECIDED and s.reasons == (stab.reason,)
    assert stab.reason.startswith("stability 0.8 [") and stab.reason.endswith(
        "], 64 samples: undecided against 0.8 at the cap of 64 samples (--option check_samples=N audits more)")
    [finding] = result.findings
    assert (finding.code, finding.severity.value) == ("explain.sequential.staged.undecided", "info")
    assert finding.message == f"staged is undecided: {stab.reason}"


def test_looks_the_budget_cannot_hold_are_not_started_and_the_check_says_so(linear, tmp_path, monkeypatch):
    """A look is started only when the time left holds LOOK_ROOM times the last one; made impossible here,
    the audit ends after the first look and the undecided check names the budget, not the cap."""
    from diagnostics import _audit

    monkeypatch.setattr(_audit, "LOOK_ROOM", 1e12)
    model, _, _ = linear
    z = np.abs(np.random.default_rng(2).standard_normal(32)) * 0.08
    result = run_analyzer(Sequential, model, _data(0.8 + np.concatenate([z, -z])), tmp_path)
    (s,) = result.explanations
    stab = s.check("stability")
    assert result.metrics["looks"] == [4] and result.metrics["looks_ended"].endswith("; raise --timeout")
    assert stab.outcome is Outcome.UNDECIDED and stab.samples == 4 and s.verdict is Verdict.UNDECIDED
    assert re.search(r", 4 samples: undecided against 0\.8; the looks ended at 4 samples: the \d+ s left of the "
                     r"analyzer's budget do not hold another look \(the last took \d+\.\d s\); raise --timeout$",
                     stab.reason), stab.reason


class Tight(Explainer):
    """Explains its first chunk, then runs out of memory: its first look never finishes."""

    name = "tight"

    def attribute(self, view, x, targets, seed):
        from diagnostics import memory

        Tight.calls = getattr(Tight, "calls", 0) + 1
        if Tight.calls > 1:
            raise memory.TooLarge("one sample's backward pass needs 9 GiB")
        return np.asarray(x, np.float64)


class TightAnalyzer(ExplanationAnalyzer):
    name = "explain.tight"
    description = "a method that stops inside its first look"
    explainers = (Tight,)


def test_a_method_stopped_inside_its_first_look_is_left_out_not_trusted_unaudited(linear, tmp_path):
    model, _, _ = linear
    Tight.calls = 0
    result = run_analyzer(TightAnalyzer, model, _data(np.full(64, 0.9)), tmp_path, samples=8)
    (s,) = result.explanations
    assert s.verdict is None and s.skipped == "left out: one sample's backward pass needs 9 GiB"
