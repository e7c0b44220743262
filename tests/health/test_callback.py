"""HealthCallback: records indicators into the History during fit, and diagnose reports how they developed."""

from __future__ import annotations

import math

import numpy as np
import pytest


def _clone(keras, model):
    c = keras.models.clone_model(model)
    c.set_weights(model.get_weights())
    c.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(1e-4), metrics=["accuracy"])
    return c


def test_callback_records_into_history_and_diagnose_reports_the_development(keras_tf, models, tabular, run_health, codes):
    keras = keras_tf
    from diagnostics import backends
    from diagnostics.callbacks import HealthCallback

    model = _clone(keras, models["dead"])
    xb, yb = tabular["x_train"][:128], tabular["y_train"][:128].reshape(-1, 1).astype("float32")
    cb = HealthCallback(xb, yb, validation=(tabular["x_val"][:128], tabular["y_val"][:128].reshape(-1, 1).astype("float32")))
    hist = model.fit(tabular["x_train"], tabular["y_train"], epochs=3, batch_size=64, verbose=0,
                     validation_data=(tabular["x_val"], tabular["y_val"]), callbacks=[cb])
    h = hist.history
    for key in ("health/grad_norm", "health/first_last_ratio", "health/dead/dense1", "health/dead_max",
                "health/membership_auc", "health/grad_norm/dense1"):
        assert len(h[key]) == 3, key
    assert h["health/dead/dense1"] == [0.5, 0.5, 0.5]  # 16 of 32 units have bias -1000
    # The last record is the gradient of the loss on the fixed batch with the final weights.
    _, grads = backends.get("tensorflow").loss_gradients(model, xb, yb, keras.losses.get("binary_crossentropy"))
    assert h["health/grad_norm"][-1] == pytest.approx(math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())), rel=1e-4)
    assert 0 <= h["health/membership_auc"][-1] <= 1
    rec = run_health(model, tabular, history=hist)
    dead = [f for f in rec["health.units"].findings if f.code == "health.units.dead_fraction"]
    assert dead and "; during training the dead share went from 50% (epoch 1) to 50% (epoch 3), first above 25% at " \
        "epoch 1; 16 of its 16 dead units would fire on at least 10% of these samples but for their bias" in dead[0].message
    assert dead[0].message.endswith("— they get no gradient and stay dead: lower the learning rate, or use LeakyReLU/He "
                                    "initialisation with zero biases")
    assert rec["health.gradients"].metrics["during_training"]["grad_norm"] == pytest.approx(h["health/grad_norm"])
    # the recorded curves are epoch-scoped measures: one value per epoch (a line per layer for the dead share)
    grad = rec["health.gradients"].measure("grad_norm_during_training")
    assert [v.where for v in grad.values] == ["1", "2", "3"]
    assert [v.value for v in grad.values] == pytest.approx(h["health/grad_norm"])
    dead_curve = rec["health.units"].measure("dead_fraction_during_training")
    assert [(v.series, v.where, v.value) for v in dead_curve.values if v.series == "dense1"] == [
        ("dense1", "1", 0.5), ("dense1", "2", 0.5), ("dense1", "3", 0.5)]


def test_callback_every_and_argument_errors(keras_tf, models, tabular):
    keras = keras_tf
    from diagnostics.callbacks import HealthCallback

    with pytest.raises(ValueError, match="every must be >= 1"):
        HealthCallback(tabular["x_train"], tabular["y_train"], every=0)
    with pytest.raises(ValueError, match="same length"):
        HealthCallback(tabular["x_train"], tabular["y_train"][:3])
    model = _clone(keras, models["healthy"])
    cb = HealthCallback(tabular["x_train"][:64], tabular["y_train"][:64].reshape(-1, 1).astype("float32"), every=2)
    hist = model.fit(tabular["x_train"], tabular["y_train"], epochs=4, verbose=0, callbacks=[cb])
    assert [r["epoch"] for r in cb.records] == [1, 2, 4]
    g = hist.history["health/grad_norm"]
    assert len(g) == 4 and math.isnan(g[2]) and all(math.isfinite(v) for v in (g[0], g[1], g[3]))


@pytest.mark.slow
def test_callback_under_the_torch_backend(tmp_path):
    """The same callback in a torch process (the pytest process runs TensorFlow)."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "fit.py"
    script.write_text(
        "import json, keras, numpy as np\n"
        "from diagnostics.callbacks import HealthCallback\n"
        "from diagnostics import backends\n"
        "keras.utils.set_random_seed(0)\n"
        "rng = np.random.default_rng(0); x = rng.normal(size=(300, 10)).astype('float32'); y = (x[:, 0] > 0).astype('int32')\n"
        "inp = keras.Input((10,)); h = keras.layers.Dense(16, activation='relu', name='h')(inp)\n"
        "m = keras.Model(inp, keras.layers.Dense(2, activation='softmax', name='out')(h))\n"
        "m.compile(loss='sparse_categorical_crossentropy', optimizer='adam')\n"
        "cb = HealthCallback(x[:100], y[:100], validation=(x[200:], y[200:]))\n"
        "hist = m.fit(x[:200], y[:200], epochs=3, verbose=0, callbacks=[cb])\n"
        "_, g = backends.get().loss_gradients(m, x[:100], y[:100], keras.losses.SparseCategoricalCrossentropy())\n"
        "norm = float(np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in g.values())))\n"
        "print(json.dumps({'backend': keras.backend.backend(), 'history': hist.history, 'norm': norm}))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "torch"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "torch"
    h = out["history"]
    for key in ("health/grad_norm", "health/grad_norm/h", "health/first_last_ratio", "health/dead/h", "health/membership_auc"):
        assert len(h[key]) == 3 and all(math.isfinite(v) for v in h[key]), key
    assert h["health/grad_norm"][-1] == pytest.approx(out["norm"], rel=1e-4)
