"""Gradient health and unit activity on small models whose faults are planted in their construction."""

from __future__ import annotations

import numpy as np
import pytest


def test_loss_gradients_match_the_analytic_gradient_of_a_linear_model(keras_tf):
    """For y_hat = xW + b and MSE, dL/dW = 2/(n*k) x^T (y_hat - y): the compiled primitive must give exactly that,
    whatever the batching."""
    keras = keras_tf
    from diagnostics import backends

    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)).astype("float32")
    y = rng.normal(size=(50, 2)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="lin")])
    lin = model.get_layer("lin")
    w, b = lin.get_weights()
    r = x @ w + b - y
    loss_fn = keras.losses.MeanSquaredError(reduction=None)
    for batch_size in (50, 7):
        loss, grads = backends.get("tensorflow").loss_gradients(model, x, y, loss_fn, batch_size=batch_size)
        assert loss == pytest.approx(float(np.mean(r ** 2)), rel=1e-5)
        np.testing.assert_allclose(grads[lin.kernel.path], 2 * x.T @ r / r.size, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(grads[lin.bias.path], 2 * r.sum(axis=0) / r.size, rtol=1e-4, atol=1e-6)


def test_deep_sigmoid_network_has_vanishing_gradients_and_the_healthy_one_not(models, tabular, run_health, codes):
    rec = run_health(models["vanishing"], tabular)["health.gradients"]
    assert rec.status == "ok", rec.reason
    assert "gradients.vanishing" in codes(rec)
    ratio = rec.metrics["first_last_ratio"]
    assert 0 < ratio < 1e-3
    layers = {l["layer"]: l for l in rec.metrics["layers"]}
    assert ratio == pytest.approx(layers["dense1"]["kernel_grad_norm"] / layers["out"]["kernel_grad_norm"], rel=1e-6)
    assert rec.metrics["inputs"] == "200 validation samples"
    healthy = run_health(models["healthy"], tabular)
    assert codes(healthy["health.gradients"]) == set()
    assert codes(healthy["health.units"], "error") == set()


def test_exploding_gradients_are_flagged_with_the_global_norm(models, tabular, run_health, codes):
    rec = run_health(models["exploding"], tabular)["health.gradients"]
    assert "gradients.exploding" in codes(rec)
    assert rec.metrics["global_grad_norm"] >= 100
    [f] = [f for f in rec.findings if f.code == "gradients.exploding"]
    assert f"global gradient norm {rec.metrics['global_grad_norm']:.3g}" in f.message
    assert "clip" in f.message


def test_nan_weights_are_reported_not_raised(models, tabular, run_health, codes):
    recs = run_health(models["nan"], tabular, only=("health.gradients", "health.units", "health.overfitting"))
    assert {r.status for r in recs.values()} == {"ok"}, {n: r.reason for n, r in recs.items()}
    g = recs["health.gradients"]
    [f] = [f for f in g.findings if f.code == "gradients.exploding"]
    assert f.severity.value == "error" and "NaN or Inf" in f.message
    assert g.metrics["global_grad_norm"] is None  # JSON has no NaN
    assert "overfitting.nonfinite_outputs" in codes(recs["health.overfitting"], "error")


def test_exactly_half_dead_units_are_counted(models, tabular, run_health, codes):
    rec = run_health(models["dead"], tabular)["health.units"]
    layers = {l["layer"]: l for l in rec.metrics["layers"]}
    assert layers["dense1"]["dead_fraction"] == 0.5  # the 16 units whose bias is -1000
    [f] = [f for f in rec.findings if f.code == "units.dead"]
    assert f.where == "dense1" and f.severity.value == "warning"
    assert f.message.startswith("layer dense1: 50% of 32 ReLU units never activate on 200 validation samples")
    assert "LeakyReLU" in f.message


def test_saturated_tanh_units_are_flagged_but_not_the_output_sigmoid(models, tabular, run_health, codes):
    rec = run_health(models["saturated"], tabular)["health.units"]
    flagged = {f.where for f in rec.findings if f.code == "units.saturated"}
    assert flagged == {"dense1", "dense2"}
    assert all(l["layer"] != "out" for l in rec.metrics["layers"])
    a = models["saturated"].get_layer("dense1")(tabular["x_val"]).numpy()
    layers = {l["layer"]: l for l in rec.metrics["layers"]}
    assert layers["dense1"]["saturated_fraction"] == pytest.approx(float(np.mean(np.abs(a) >= 0.99)))


def test_synthetic_inputs_are_used_and_said_without_data(models, run_health, codes):
    rec = run_health(models["vanishing"])["health.gradients"]
    assert rec.status == "ok"
    assert rec.metrics["inputs"].startswith("512 synthetic inputs drawn from the input spec")
    assert rec.metrics["targets"] == "the model's own predicted classes"


def test_lstm_gate_saturation_matches_keras_lstm(keras_tf):
    """The numpy recomputation of the gates must reproduce the LSTM's own output sequence."""
    keras = keras_tf
    from diagnostics_plugins.health_gradients import _lstm_gate_saturation

    keras.utils.set_random_seed(3)
    layer = keras.layers.LSTM(5, return_sequences=True)
    x = np.random.default_rng(3).normal(size=(4, 7, 3)).astype("float32")
    expected = layer(x).numpy()
    gates, states = _lstm_gate_saturation(layer, x, return_states=True)
    np.testing.assert_allclose(states, expected, rtol=1e-4, atol=1e-5)
    big = [w * 40 for w in layer.get_weights()]
    layer.set_weights(big)
    np.testing.assert_allclose(_lstm_gate_saturation(layer, x, return_states=True)[1], layer(x).numpy(), rtol=1e-4, atol=1e-5)
    gates = _lstm_gate_saturation(layer, x)
    assert set(gates) == {"input", "forget", "output"}
    assert all(0 <= v <= 1 for v in gates.values())
    assert max(gates.values()) > 0.5  # weights x40: gates pinned at 0 or 1


def test_logits_view_gives_the_true_gradient_of_a_saturated_softmax(keras_tf):
    """Cross-entropy through clipped probabilities has zero gradient once p == 1.0 in float32; through the
    logits view the head bias gradient is the analytic mean(p - onehot(y)), and unsaturated models are unchanged."""
    keras = keras_tf
    from diagnostics import backends
    from diagnostics.health import logits_view

    keras.utils.set_random_seed(5)
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.Dense(8, name="h")(inp)))
    x = np.random.default_rng(5).normal(size=(32, 4)).astype("float32")
    y = np.random.default_rng(6).integers(0, 3, 32).astype("int32")
    loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    prim = backends.get("tensorflow")
    view, view_loss = logits_view(model, loss)
    assert view is not model and view_loss.get_config()["from_logits"] is True
    _, g0 = prim.loss_gradients(model, x, y, loss)
    _, g1 = prim.loss_gradients(view, x, y, view_loss)
    assert set(g0) == set(g1)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-4, atol=1e-7)
    head = model.get_layer("head")
    head.set_weights([w * 1e4 for w in head.get_weights()])  # saturate
    z = model.get_layer("h")(x).numpy() @ head.kernel.numpy() + head.bias.numpy()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = (p - np.eye(3)[y]).mean(0)
    _, g2 = prim.loss_gradients(view, x, y, view_loss)
    np.testing.assert_allclose(g2[head.bias.path], expected, rtol=1e-4, atol=1e-6)
    unchanged = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu")])
    assert logits_view(unchanged, loss)[0] is unchanged


def test_a_thresholds_file_changes_the_verdict_and_a_bad_one_is_named(models, tabular, run_health, codes, tmp_path):
    (tmp_path / "t.toml").write_text("[gradients]\nvanishing_warning = 1e-12\nvanishing_error = 1e-13\n")
    rec = run_health(models["vanishing"], tabular, only=("health.gradients",),
                     options={"*": {"health_thresholds": str(tmp_path / "t.toml")}})["health.gradients"]
    assert rec.status == "ok" and "gradients.vanishing" not in codes(rec, "info")
    (tmp_path / "bad.toml").write_text("[gradient]\nvanishing_warning = 1\n")
    rec = run_health(models["vanishing"], tabular, only=("health.gradients",),
                     options={"*": {"health_thresholds": str(tmp_path / "bad.toml")}})["health.gradients"]
    assert rec.status == "failed"
    assert "thresholds file bad.toml: unknown section(s) ['gradient']" in rec.reason
