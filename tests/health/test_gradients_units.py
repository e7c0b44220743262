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


GRAD_REF = "Glorot & Bengio 2010; healthy nets stay within two orders of magnitude"
VANISHING_ADVICE = ("the early layers barely learn: use ReLU-family activations with He initialisation, add batch "
                    "normalisation or residual connections, or make the network shallower")


def test_deep_sigmoid_network_has_vanishing_gradients_and_the_healthy_one_not(models, tabular, run_health, codes):
    from diagnostics import Scope, Severity

    rec = run_health(models["vanishing"], tabular)["health.gradients"]
    assert rec.status == "ok", rec.reason
    layers = {l["layer"]: l for l in rec.metrics["layers"]}
    first, last = layers["dense1"]["kernel_grad_norm"], layers["out"]["kernel_grad_norm"]
    section = rec.measure("health.gradients.first_last_ratio")
    assert section.scope is Scope.MODEL and section.thresholds == {"warning": 1e-3, "error": 1e-5}
    ratio = section.value("dense1")
    assert 0 < ratio < 1e-5 and ratio == pytest.approx(first / last, rel=1e-6) == rec.metrics["first_last_ratio"]
    [f] = [f for f in rec.findings if f.code == "health.gradients.first_last_ratio"]
    assert (f.where, f.severity) == ("dense1", Severity.ERROR)
    assert f.message == (f"First ÷ last layer kernel-gradient norm {ratio:.1e}, below the error threshold 1e-05 ({GRAD_REF}): "
                         f"the first layer's kernel gradient (dense1: {first:.3g}) over the last layer's (out: {last:.3g}) "
                         f"on 200 validation samples — {VANISHING_ADVICE}")
    # every layer's norm and update ratio is a value of its own measure, the ones in metrics
    norms = rec.measure("layer_grad_norm")
    assert norms.scope is Scope.LAYER and [v.where for v in norms.values] == list(layers)
    for name, l in layers.items():
        assert norms.value(name) == l["grad_norm"]
        assert rec.measure("update_ratio").value(name) == l["grad_weight_ratio"]
    assert rec.measure("loss").value() == rec.metrics["loss_value"]
    assert rec.metrics["inputs"] == "200 validation samples"
    assert "gradient norms" not in rec.artifacts  # the host draws the per-layer chart
    assert rec.measure("layer_grad_norm").chart
    healthy = run_health(models["healthy"], tabular)
    assert codes(healthy["health.gradients"]) == set()
    assert codes(healthy["health.units"], "error") == set()


def test_exploding_gradients_are_flagged_with_the_global_norm(models, tabular, run_health, codes):
    rec = run_health(models["exploding"], tabular)["health.gradients"]
    norm = rec.metrics["global_grad_norm"]
    assert norm >= 100 and rec.measure("grad_norm").values[0].value == norm
    top = max(rec.metrics["layers"], key=lambda l: l["grad_norm"])
    [f] = [f for f in rec.findings if f.code == "health.gradients.grad_norm"]
    level, threshold = ("error", "1000") if norm >= 1000 else ("warning", "100")
    assert (f.where, f.severity.value) == (top["layer"], level)
    assert f.message == (
        f"Global gradient norm {norm:.3g} L2 norm, at or above the {level} threshold {threshold} (Pascanu, Mikolov & "
        f"Bengio 2013; trained nets give < 10, clipping defaults are 1-5): on 200 validation samples; largest in "
        f"{top['layer']}: {top['grad_norm']:.3g} — updates this large overshoot and training diverges: clip gradients "
        f"(clipnorm=1.0), lower the learning rate, and for RNNs use tanh cells and orthogonal recurrent initialisation")


def test_nan_weights_are_reported_not_raised(models, tabular, run_health, codes):
    recs = run_health(models["nan"], tabular, only=("health.gradients", "health.units", "health.overfitting"))
    assert {r.status for r in recs.values()} == {"ok"}, {n: r.reason for n, r in recs.items()}
    g = recs["health.gradients"]
    [f] = [f for f in g.findings if f.code == "health.gradients.grad_norm"]
    bad = [l for l in g.metrics["layers"] if l["nonfinite"]]
    n = sum(l["nonfinite"] for l in bad)
    assert f.severity.value == "error" and f.where == ", ".join(l["layer"] for l in bad) == "dense1, dense2, out"
    assert f.message.startswith(f"{n} gradient values are NaN or Inf (dense1, dense2, out) on 200 validation samples (loss ")
    assert g.metrics["global_grad_norm"] is None  # JSON has no NaN
    # shown as n/a, never judged: the NaN finding says it all
    assert [v.value for v in g.measure("grad_norm").values] == [None]
    assert all(v.value is None for v in g.measure("update_ratio").values)
    assert "health.units.dead_fraction" not in codes(recs["health.units"], "info")
    from diagnostics.codes import canonical

    assert "health.overfitting.nonfinite_outputs" in {n for c in codes(recs["health.overfitting"], "error") for n in canonical(c)}


def test_exactly_half_dead_units_are_counted(models, tabular, run_health, codes):
    rec = run_health(models["dead"], tabular)["health.units"]
    layers = {l["layer"]: l for l in rec.metrics["layers"]}
    assert layers["dense1"]["dead_fraction"] == 0.5  # the 16 units whose bias is -1000
    section = rec.measure("dead_fraction")
    assert section.value("dense1") == 0.5 and section.value("dense2") == layers["dense2"]["dead_fraction"]
    [f] = [f for f in rec.findings if f.code == "health.units.dead_fraction"]
    assert f.where == "dense1" and f.severity.value == "warning"
    assert f.message == (
        "Dead ReLU units 50%, at or above the warning threshold 0.25 (Lu et al. 2019, Dying ReLU; a quarter is capacity "
        "lost, over half a broken layer): of 32 units, those <= 0 on all 200 validation samples; 16 of its 16 dead "
        "units would fire on at least 10% of these samples but for their bias (median 51%; median bias of the dead "
        "units -1e+03, of the live ones 0): the biases hold them off, so reset this layer's biases to zero (bias_initializer='zeros') and check how "
        "they were initialised — they get no gradient and stay dead: lower the learning rate, or use LeakyReLU/He "
        "initialisation with zero biases")
    assert "dead and saturated units" not in rec.artifacts and section.chart


def test_dead_units_the_weights_keep_off_are_not_blamed_on_their_biases(models, tabular, run_health):
    """Issue 25 (cause before symptom): the dead-unit finding says whether the biases hold the units off. Here
    half of dense1's kernel columns are zero and their biases too: x·W + b is 0 on every input, so the units are
    dead and a zero bias would not wake them."""
    rec = run_health(models["dead_weights"], tabular)["health.units"]
    [f] = [f for f in rec.findings if f.code == "health.units.dead_fraction" and f.where == "dense1"]
    assert ("; with a zero bias 0 of its 16 dead units would fire on at least 10% of these samples: their weights, "
            "not their biases, keep them off — they get no gradient") in f.message
    assert "but for their bias" not in f.message


def test_saturated_tanh_units_are_flagged_but_not_the_output_sigmoid(models, tabular, run_health, codes):
    rec = run_health(models["saturated"], tabular)["health.units"]
    found = {f.where: f for f in rec.findings if f.code == "health.units.saturated_fraction"}
    assert set(found) == {"dense1", "dense2"}
    assert all(l["layer"] != "out" for l in rec.metrics["layers"])
    a = models["saturated"].get_layer("dense1")(tabular["x_val"]).numpy()
    frac = rec.measure("saturated_fraction").value("dense1")
    assert frac == pytest.approx(float(np.mean(np.abs(a) >= 0.99)))
    level, threshold = ("error", "0.8") if frac >= 0.8 else ("warning", "0.5")
    assert found["dense1"].severity.value == level
    assert found["dense1"].message == (
        f"Saturated sigmoid/tanh outputs {frac:.0%}, at or above the {level} threshold {threshold} (Glorot & Bengio "
        f"2010: within 1% of the asymptote the derivative is below 0.02): tanh outputs on 200 validation samples within "
        f"1% of ±1 — scale the inputs, use Glorot initialisation, or add batch normalisation")


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


def test_saturated_lstm_gates_are_one_value_per_layer_the_worst_gate(keras_tf, run_health):
    """Weights x40 pin the gates at 0 or 1: the layer's value is its worst gate's share, as the recomputation gives."""
    keras = keras_tf
    from diagnostics_plugins.health_gradients import _lstm_gate_saturation

    keras.utils.set_random_seed(3)
    inp = keras.Input((7, 3))
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(keras.layers.LSTM(5, name="lstm")(inp)))
    lstm = model.get_layer("lstm")
    lstm.set_weights([w * 40 for w in lstm.get_weights()])
    x = np.random.default_rng(3).normal(size=(64, 7, 3)).astype("float32")
    y = (x[:, 0, 0] > 0).astype("int32")
    rec = run_health(model, (x, y), only=("health.units",))["health.units"]
    gates = _lstm_gate_saturation(lstm, x)
    worst = max(gates, key=gates.get)
    assert rec.measure("gate_saturation").value("lstm") == gates[worst] >= 0.9
    [f] = rec.findings
    assert (f.code, f.where, f.severity.value) == ("health.units.gate_saturation", "lstm", "warning")
    assert f.message == (
        f"Saturated LSTM gate values (the worst gate) {gates[worst]:.0%}, at or above the warning threshold 0.9 (a gate "
        f"value below 0.01 or above 0.99 passes almost no gradient; forget gates near 1 are often intended, 90% of all "
        f"values stuck is not): its {worst} gate on 64 validation samples, values below 0.01 or above 0.99 (input "
        f"{gates['input']:.0%}, forget {gates['forget']:.0%}, output {gates['output']:.0%}) — the gate is stuck open or "
        f"shut: scale the inputs, clip gradients, and keep the default orthogonal recurrent initialisation")


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
    assert rec.status == "ok" and "health.gradients.first_last_ratio" not in codes(rec, "info")
    assert rec.measure("first_last_ratio").thresholds == {"warning": 1e-12, "error": 1e-13}
    (tmp_path / "bad.toml").write_text("[gradient]\nvanishing_warning = 1\n")
    rec = run_health(models["vanishing"], tabular, only=("health.gradients",),
                     options={"*": {"health_thresholds": str(tmp_path / "bad.toml")}})["health.gradients"]
    assert rec.status == "failed"
    assert "thresholds file bad.toml: unknown section(s) ['gradient']" in rec.reason
