"""The gradient-family methods (the core's Integrated Gradients, and the math of the explain.gradients plugin)
and the trust metrics of diagnostics.explain against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics import explain as E
from diagnostics.explain.metrics import _rank
from diagnostics_plugins.explain_gradients import expected_gradients, input_x_gradient, saliency, smoothgrad


def grad_fn_of(model):
    from diagnostics.backends import get

    backend = get()
    return lambda xb, tb: backend.input_gradients(model, xb, tb, batch_size=len(xb))


def test_linear_model_ig_and_gradient_x_input_equal_weight_times_input_minus_baseline(linear):
    model, w, _ = linear
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    baseline = rng.normal(size=(1, 5)).astype(np.float32)
    targets = np.array([0, 1, 2, 0, 1, 2, 1])
    expected = w[:, targets].T * (x - baseline).astype(np.float64)
    ig = E.integrated_gradients(grad_fn_of(model), x, baseline, targets, steps=4, batch_size=8)
    ixg = input_x_gradient(grad_fn_of(model), x, baseline, targets, batch_size=3)
    np.testing.assert_allclose(ig.attributions, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ixg, expected, rtol=1e-5, atol=1e-6)
    assert ig.converged.all() and (ig.steps == 4).all()  # exact at the first step count: no raising
    # a zero baseline gives the textbook gradient x input = w * x
    ixg0 = input_x_gradient(grad_fn_of(model), x, np.zeros((1, 5), np.float32), targets)
    np.testing.assert_allclose(ixg0, w[:, targets].T * x, rtol=1e-5, atol=1e-6)


def test_batches_are_fixed_size_and_results_do_not_depend_on_batch_size(linear, keras_tf):
    keras = keras_tf
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(2)])
    x = np.random.default_rng(1).normal(size=(9, 6)).astype(np.float32)
    t = np.array([0, 1] * 4 + [0])
    seen = []

    def spy(xb, tb):
        seen.append(len(xb))
        return grad_fn_of(model)(xb, tb)

    a = E.path_gradients(spy, x, 0 * x, t, *E.gauss_legendre(8), batch_size=10)
    assert set(seen) == {10}  # 72 points in 8 batches of exactly 10 (the last padded): one trace
    b = E.path_gradients(grad_fn_of(model), x, 0 * x, t, *E.gauss_legendre(8), batch_size=1000)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_ig_completeness_raises_steps_until_under_one_percent(keras_tf):
    keras = keras_tf
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(2).normal(size=(12, 8)).astype(np.float32) * 3
    t = np.arange(12) % 3
    r = E.integrated_gradients(grad_fn_of(model), x, np.zeros_like(x), t, steps=2, max_steps=512)
    assert r.converged.all(), (r.gap, r.delta, r.steps)
    np.testing.assert_array_less(r.gap, 0.01 * np.abs(r.delta) + E.COMPLETENESS_ABS_FLOOR + 1e-12)
    assert r.steps.max() > 2  # two Gauss-Legendre nodes do not integrate a ReLU net: steps were raised
    # with the cap at the starting count, the same samples are reported as not converged
    r2 = E.integrated_gradients(grad_fn_of(model), x, np.zeros_like(x), t, steps=2, max_steps=2)
    assert not r2.converged.all()
    np.testing.assert_array_equal(r2.converged, E.completeness_ok(r2.gap, r2.delta))


def test_expected_gradients_additivity_on_a_linear_model_is_exact_for_any_background(linear):
    model, w, b = linear
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    bg = rng.normal(size=(30, 5)).astype(np.float32)
    t = np.array([2, 1, 0, 2])
    fx = x @ w + b
    # per row, the expectation over the drawn baselines: Σ attr = F(x) − mean of the drawn F(b)
    a = expected_gradients(grad_fn_of(model), x, bg, t, samples=400, seed=0)
    ref = fx[np.arange(4), t] - (bg @ w + b).mean(0)[t]
    np.testing.assert_allclose(a.sum(1), ref, atol=0.15)  # Monte-Carlo over the background only
    # with one background row, EG is IG from that row, exactly
    a1 = expected_gradients(grad_fn_of(model), x, bg[:1], t, samples=3, seed=0)
    np.testing.assert_allclose(a1, w[:, t].T * (x - bg[:1]), rtol=1e-5, atol=1e-6)


def test_smoothgrad_of_a_linear_model_is_its_weights_and_seeded(linear):
    model, w, _ = linear
    x = np.random.default_rng(5).normal(size=(3, 5)).astype(np.float32)
    t = np.array([0, 1, 2])
    s = smoothgrad(grad_fn_of(model), x, t, samples=5, seed=7)
    np.testing.assert_allclose(s, w[:, t].T, rtol=1e-5)
    np.testing.assert_array_equal(saliency(grad_fn_of(model), x, t), np.abs(w[:, t].T).astype(np.float32))


def test_select_targets_for_softmax_sigmoid_and_regression():
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    t = E.select_targets(p)
    assert t.index.tolist() == [1, 0] and t.sign.tolist() == [1, 1]
    assert E.select_targets(p, 2).index.tolist() == [2, 2]
    with pytest.raises(ValueError, match="out of range: the output has 3 classes"):
        E.select_targets(p, 3)
    s = E.select_targets(np.array([[0.9], [0.2]]), activation="sigmoid")
    assert s.index.tolist() == [0, 0] and s.sign.tolist() == [1.0, -1.0]
    s0 = E.select_targets(np.array([[0.9], [0.2]]), 0, activation="sigmoid")
    assert s0.sign.tolist() == [-1.0, -1.0] and s0.description == "class 0"
    r = E.select_targets(np.array([[3.0], [-2.0]]), activation="linear")
    assert r.sign.tolist() == [1.0, 1.0] and r.description == "the regression output"
    with pytest.raises(ValueError, match="--target must be a class index"):
        E.select_targets(p, "cat")


def test_rank_correlation_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 40))
    b = a + rng.normal(size=(5, 40))
    a[0, :10] = 0  # ties
    ours = E.rank_correlation(a, b)
    ref = [spearmanr(a[i], b[i]).statistic for i in range(5)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_ranks_match_scipy_with_ties_in_every_row():
    from scipy.stats import rankdata

    rng = np.random.default_rng(1)
    for trial in range(50):
        n, m = rng.integers(1, 6), rng.integers(1, 40)
        a = rng.integers(0, 4, (n, m)).astype(float) if trial % 2 else rng.normal(size=(n, m))
        np.testing.assert_array_equal(_rank(a), rankdata(a, axis=-1) - 1)
    assert _rank(np.zeros((3, 5))).tolist() == [[2.0] * 5] * 3  # one tie group per row: the mean rank


def test_ground_truth_scores_and_informative_samples():
    mask = np.zeros((2, 10), bool)
    mask[:, [2, 5]] = True
    imp = np.zeros((2, 10))
    imp[0, [2, 5]] = [3, -1]   # both planted positions on top
    imp[1, [2, 7]] = [1, 5]    # one of two
    s = E.ground_truth_scores(imp, mask)
    assert s["top_k_precision"] == pytest.approx(0.75)
    assert s["mass_share"] == pytest.approx(np.median([1.0, 1 / 6]))
    only_first = E.ground_truth_scores(imp, mask, np.array([True, False]))
    assert only_first["top_k_precision"] == 1.0 and only_first["scored_samples"] == 1
    assert E.informative_samples(np.array([1.0, 1.0]), np.array([0.2, 0.95])).tolist() == [True, False]


def test_json_round_makes_metrics_json_safe():
    out = E.json_round({"a": np.float32(0.1234567891), "b": [np.int64(3), np.bool_(True)], "c": float("nan")})
    assert out == {"a": 0.123457, "b": [3, True], "c": None}
