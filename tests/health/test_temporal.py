"""Temporal gradient health: the loss gradient reaching each input time step.

Known answers for the summary, the compiled primitive against a plain GradientTape, both backends on
the same zoo twin through the CLI, and the token path (differentiated at the embedding's output).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ZOO_DIR, read_report, run_diagnose


def test_summary_of_a_geometric_profile():
    from diagnostics_plugins.health_temporal import temporal_summary

    steps = 100
    profile = 0.5 ** np.arange(steps)[::-1]  # the last step gets 1, each step back half as much
    s = temporal_summary(np.tile(profile, (3, 1)), edge_fraction=0.1, memory_floor=0.01)
    assert s["edge_steps"] == 10 and s["steps"] == steps
    assert s["early_late_ratio"] == pytest.approx(profile[:10].mean() / profile[-10:].mean(), rel=1e-12)
    # 0.5**k >= 0.01 for k <= 6: the last 7 steps are within the memory
    assert s["memory_length"] == 7 and s["first_step_above_floor"] == 93
    flat = temporal_summary(np.ones((2, 40)))
    assert flat["early_late_ratio"] == 1.0 and flat["memory_length"] == 40
    broken = temporal_summary(np.array([[np.inf, 1.0, 1.0]]))
    assert not broken["finite"] and broken["early_late_ratio"] is None


def test_primitive_matches_a_gradient_tape_per_sample_and_ignores_padding(keras_tf):
    import tensorflow as tf

    from diagnostics.backends import tensorflow as backend

    keras = keras_tf
    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 2))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.GRU(5)(inp)))
    x = np.random.default_rng(0).normal(size=(7, 12, 2)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0], np.int32)
    loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    losses, grads = backend.input_loss_gradients(model, x, y, loss, batch_size=3)  # 3 + 3 + 1 padded to 3
    for i in range(len(x)):
        xi = tf.constant(x[i:i + 1])
        with tf.GradientTape() as tape:
            tape.watch(xi)
            li = loss(y[i:i + 1], model(xi))[0]
        np.testing.assert_allclose(grads[i], tape.gradient(li, xi).numpy()[0], rtol=1e-4, atol=1e-7)
        assert losses[i] == pytest.approx(float(li), rel=1e-5)


def test_token_models_are_differentiated_at_the_embedding(keras_tf, run_health):
    keras = keras_tf
    keras.utils.set_random_seed(0)
    inp = keras.Input((16,), dtype="int32")
    h = keras.layers.Embedding(20, 8, name="embed")(inp)
    h = keras.layers.GRU(8, name="gru")(h)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(h))
    x = np.random.default_rng(0).integers(1, 20, (64, 16)).astype(np.int32)
    y = (x[:, -1] > 10).astype(np.int32)
    rec = run_health(model, (x, y), only=("health.temporal",))["health.temporal"]
    assert rec.status == "ok", rec.reason
    m = rec.metrics
    assert m["differentiated"] == "embedding output (embed)" and m["steps"] == 16 and m["layer"] == "gru"
    assert len(m["profile"]) == 16 and all(v > 0 for v in m["profile"])
    # the profile is a measure with one value per step (where = the step, 0 = the first)
    steps = rec.measure("step_grad_norm")
    assert steps.scope.value == "feature" and [v.where for v in steps.values] == [str(i) for i in range(16)]
    assert [v.value for v in steps.values] == m["profile"]
    assert rec.measure("memory_length").value() == m["memory_length"]


@pytest.mark.slow
def test_rnn_vanishing_found_under_both_backends_with_the_same_profile(tmp_path):
    profiles = {}
    for backend in ("tensorflow", "torch"):
        out = tmp_path / backend
        proc = run_diagnose(ZOO_DIR / "rnn_vanishing.keras", "--only", "health.temporal", "--backend", backend,
                            "--out", out, "-q")
        assert proc.returncode == 1, proc.stderr  # an error-level finding
        (rec,) = read_report(out)["analyzers"]
        assert rec["backend"] == backend
        (f,) = rec["findings"]
        assert (f["code"], f["severity"]) == ("health.temporal.early_late_ratio", "error")
        assert f["where"].startswith("rnn1, steps 0-") and "LSTM/GRU" in f["message"]
        assert rec["metrics"]["early_late_ratio"] < 1e-5 and rec["metrics"]["steps"] == 120
        (section,) = [s for s in rec["measures"] if s["measure"] == "early_late_ratio"]
        assert section["values"][0]["value"] == rec["metrics"]["early_late_ratio"]
        assert section["values"][0]["outcome"] == "failed" and section["values"][0]["where"] == f["where"]
        assert (out / rec["artifacts"]["gradient through time"]).is_file()
        profiles[backend] = np.array(rec["metrics"]["profile"])
    # the last steps carry most of the gradient; there the backends agree to float32 round-off
    np.testing.assert_allclose(profiles["torch"][-30:], profiles["tensorflow"][-30:], rtol=1e-3)


TEMPORAL_REF = ("Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013: the product of step Jacobians shrinks "
                "or grows geometrically with the distance back in time")
TEMPORAL_ADVICE = (
    "below the band almost no gradient reaches the early steps through the recurrence, so whatever they carry cannot be "
    "learnt: use LSTM/GRU cells instead of SimpleRNN, fewer stacked recurrent layers, attention or a Conv1D front end, or "
    "shorter sequences (truncate, pool, or reverse them if the signal is early); above it the backward signal grows at "
    "every step back (recurrent Jacobian with spectral radius above 1) and training diverges: clip gradients "
    "(clipnorm=1.0), use tanh/sigmoid-gated cells with orthogonal recurrent initialisation, and lower the learning rate")


def _stacked_rnn(keras, steps=60):
    keras.utils.set_random_seed(1)
    inp = keras.Input((steps, 1))
    h = inp
    for i in range(3):
        h = keras.layers.SimpleRNN(8, return_sequences=i < 2, name=f"rnn{i + 1}")(h)
    return keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(h))


def test_vanishing_through_time_is_one_band_value_and_a_threshold_override_turns_it_off(keras_tf, run_health):
    keras = keras_tf
    model = _stacked_rnn(keras)
    x = np.random.default_rng(0).normal(size=(64, 60, 1)).astype(np.float32) * 3
    y = (x[:, 0, 0] > 0).astype(np.int32)
    rec = run_health(model, (x, y), only=("health.temporal",))["health.temporal"]
    m = rec.metrics
    ratio = m["early_late_ratio"]
    section = rec.measure("early_late_ratio")
    assert section.direction.value == "band" and section.thresholds == {"warning": [1e-3, 1e3], "error": [1e-5, 1e5]}
    (value,) = section.values
    assert value.value == ratio < 1e-3
    (f,) = rec.findings
    level, band = ("error", "1e-05–100000") if ratio < 1e-5 else ("warning", "0.001–1000")
    first = m["steps"] - m["memory_length"]
    dead = f"steps 0-{first - 1}" if first else "steps 0-5"
    assert (f.code, f.severity.value, f.where) == ("health.temporal.early_late_ratio", level, f"rnn1, {dead}")
    memory = (f"; its effective memory is the last {m['memory_length']} steps (the gradient at steps 0-{first - 1} is "
              f"under 1% of its peak)") if first else ""
    assert f.message == (
        f"Early ÷ late input-gradient norm {ratio:.1e}, outside the healthy band {band} ({TEMPORAL_REF}): the loss "
        f"gradient w.r.t. the input at the first 6 of 60 steps is {ratio:.1e} times that at the last 6 on 64 validation "
        f"samples{memory} — {TEMPORAL_ADVICE}")
    quiet = run_health(model, (x, y), only=("health.temporal",),
                       options={"health.temporal": {"vanishing_warning": ratio / 10, "vanishing_error": ratio / 100}})
    assert quiet["health.temporal"].findings == ()
    assert quiet["health.temporal"].measure("early_late_ratio").values[0].outcome.value == "passed"


def test_the_band_judges_exactly_as_the_two_one_sided_checks_did():
    """vanishing: ratio < vanishing_*; exploding: ratio > exploding_* (strict on both sides); the edges pass."""
    from diagnostics.health import DEFAULT_THRESHOLDS
    from diagnostics._measures import Measurements, judge, thresholds_of
    from diagnostics_plugins.health_temporal import TemporalGradientHealth as T
    from diagnostics import Value

    t = DEFAULT_THRESHOLDS["temporal"]

    def old(r):
        if r < t["vanishing_warning"]:
            return "error" if r < t["vanishing_error"] else "warning"
        if r > t["exploding_warning"]:
            return "error" if r > t["exploding_error"] else "warning"
        return None

    for r in (1e-9, 1e-5 * 0.999, 1e-5, 5e-4, 1e-3 * 0.999, 1e-3, 1.0, 1e3, 1e3 * 1.001, 1e5, 1e5 * 1.001, 1e9):
        result = judge(T, Measurements(values=[Value("early_late_ratio", r, where="rnn, steps 0-1")]), thresholds_of(T, {}))
        assert [f.severity.value for f in result.findings] == ([old(r)] if old(r) else []), r


def test_an_output_that_sees_one_position_is_a_model_finding(keras_tf, run_health):
    """Issue 25: a causal mask with first-position pooling lets the output see only the first token, so the
    gradient reaches step 0 and nothing else. The early/late ratio has no late gradient to divide by and said
    nothing; the focus (the share of the profile on its largest step) names it as the model's fault."""
    from tests.health.conftest import one_position_model

    model = one_position_model(keras_tf)
    x = np.random.default_rng(0).integers(1, 20, (64, 12)).astype(np.int32)
    y = (x[:, 0] > 10).astype(np.int32)
    rec = run_health(model, (x, y), only=("health.temporal",))["health.temporal"]
    assert rec.status == "ok", rec.reason
    assert rec.metrics["profile"][0] > 0 and rec.metrics["profile"][1:] == [0.0] * 11
    (f,) = [f for f in rec.findings if f.code == "health.temporal.focus"]
    assert (f.severity.value, f.where) == ("error", "attention, step 0")
    assert ("Share of the input gradient on its largest step 100%, at or above the error threshold 0.99" in f.message
            and "step 0 gets 100% and the other 11 share the rest: the output depends on that one position" in f.message
            and "a causal mask with first-position pooling lets the output see only the first token" in f.message)


def test_a_focus_that_vanishing_through_time_explains_is_shown_not_judged(keras_tf, run_health):
    """Cause before symptom: when the gradient vanishes through time it piles up on the last steps; the
    early/late ratio is the finding, and the focus it makes is a value beside it, capped at info."""
    keras = keras_tf
    model = _stacked_rnn(keras)
    x = np.random.default_rng(0).normal(size=(64, 60, 1)).astype(np.float32) * 3
    y = (x[:, 0, 0] > 0).astype(np.int32)
    strict = {"focus_warning": 0.1, "focus_error": 0.12}  # this model's focus (0.148) is past both
    rec = run_health(model, (x, y), only=("health.temporal",), options={"health.temporal": strict})["health.temporal"]
    ratio = rec.metrics["early_late_ratio"]
    assert ratio < 1e-3
    (value,) = rec.measure("focus").values
    assert value.value > 0.12 and value.where == "rnn1, step 57"  # of 0-59: the late end
    assert value.outcome.value == "passed" and "the early/late ratio outside its band is why" in value.note
    assert [f.code for f in rec.findings] == ["health.temporal.early_late_ratio"]
    # the same focus with the ratio inside its band is judged
    widened = dict(strict, vanishing_warning=ratio / 10, vanishing_error=ratio / 100)
    rec = run_health(model, (x, y), only=("health.temporal",), options={"health.temporal": widened})["health.temporal"]
    assert [(f.code, f.severity.value) for f in rec.findings] == [("health.temporal.focus", "error")]
