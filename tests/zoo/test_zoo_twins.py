"""Each planted-fault twin shows its fault by the raw measurement named in the issue.

Measured here directly (TensorFlow gradients, activations, weight counts), never through the
analyzers in plugins/, so a broken analyzer cannot hide a broken twin or the reverse.
"""

from __future__ import annotations

import numpy as np
import pytest


def _tf_gradients(model, x, y, loss_fn):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=False))
    return dict(zip((v.path for v in model.trainable_variables), tape.gradient(loss, model.trainable_variables)))


def _outputs(keras, model, x, names):
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    return dict(zip(names, probe.predict(x, batch_size=len(x), verbose=0)))


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, batch_size=512, verbose=0).argmax(1) == y))


def test_cnn_overfit_gap(load_model, dataset, meta):
    model, d = load_model("cnn_overfit"), dataset("cnn_overfit")
    train, val = _accuracy(model, d["x_train"], d["y_train"]), _accuracy(model, d["x_val"], d["y_val"])
    assert train >= 0.99, f"train accuracy {train}"
    assert train - val >= 0.15, f"train {train:.3f} - val {val:.3f} < 0.15"
    assert meta("cnn_overfit")["fault"]["value"] == pytest.approx(train - val, abs=1e-6)


def test_mlp_vanishing_gradients(load_model, dataset, keras_tf):
    model, d = load_model("mlp_vanishing"), dataset("mlp_vanishing")
    grads = _tf_gradients(model, d["x_val"], d["y_val"][:, None].astype(np.float32),
                          keras_tf.losses.BinaryCrossentropy())
    dense = [layer for layer in model.layers if hasattr(layer, "kernel")]
    first, last = (float(np.linalg.norm(grads[layer.kernel.path])) for layer in (dense[0], dense[-1]))
    assert last > 0 and first / last < 1e-3, f"first {first:.3g} / last {last:.3g}"


def test_lstm_exploding_gradients(load_model, dataset, keras_tf):
    model, d = load_model("lstm_exploding"), dataset("lstm_exploding")
    assert all(np.isfinite(w).all() for w in model.get_weights()), "the weights themselves are finite"
    grads = _tf_gradients(model, d["x_val"][:128], d["y_val"][:128], keras_tf.losses.SparseCategoricalCrossentropy())
    with np.errstate(over="ignore", invalid="ignore"):
        norm = float(np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64))) for g in grads.values())))
    assert not np.isfinite(norm) or norm > 1e3, f"global gradient norm {norm:.3g}"


def test_cnn_dead_relu(load_model, dataset, keras_tf):
    model, d = load_model("cnn_dead_relu"), dataset("cnn_dead_relu")
    acts = _outputs(keras_tf, model, d["x_val"], ["conv1", "conv2", "conv3", "dense"])
    dead = {k: float(np.mean(v.reshape(-1, v.shape[-1]).max(0) <= 0)) for k, v in acts.items()}
    assert max(dead.values()) > 0.5, f"dead fractions {dead}"
    # The healthy twin trained at a sane learning rate keeps most units alive in every layer.
    healthy = _outputs(keras_tf, load_model("cnn"), d["x_val"], list(dead))
    assert max(float(np.mean(v.reshape(-1, v.shape[-1]).max(0) <= 0)) for v in healthy.values()) < 0.5


def test_gan_collapsed(load_model):
    gen, cnn = load_model("gan_collapsed"), load_model("cnn")
    z = np.random.default_rng(0).standard_normal((1000, gen.inputs[0].shape[-1])).astype(np.float32)
    labels = cnn.predict(gen.predict(z, batch_size=1000, verbose=0), batch_size=1000, verbose=0).argmax(1)
    hist = np.bincount(labels, minlength=10)
    top2 = np.sort(hist)[-2:].sum() / hist.sum()
    assert top2 >= 0.9, f"the two most frequent classes hold only {top2:.0%}: {hist.tolist()}"


def test_mlp_nan_weights(load_model):
    for fmt in ("keras", "h5"):
        weights = load_model("mlp_nan", fmt).get_weights()
        assert sum(int(np.isnan(w).sum()) for w in weights) > 0


def test_mlp_saturated(load_model, dataset, keras_tf):
    model, d = load_model("mlp_saturated"), dataset("mlp_saturated")
    acts = _outputs(keras_tf, model, d["x_val"], ["dense1", "dense2"])
    saturated = {k: float(np.mean(np.abs(v) >= 0.99)) for k, v in acts.items()}
    assert all(layer.activation.__name__ == "tanh" for layer in model.layers if layer.name.startswith("dense"))
    assert max(saturated.values()) > 0.5, saturated


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_mlp_logits_compiled_with_logits_loss_on_softmax(load_model, dataset, meta, fmt):
    model, d = load_model("mlp_logits", fmt), dataset("mlp_logits")
    assert model.layers[-1].activation.__name__ == "softmax"
    loss = model.loss
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    assert config.get("from_logits") is True, f"loss saved as {loss!r} {config}"
    # Applied as written to the probabilities, the loss cannot fall below log(1 + e^-1).
    probs = model.predict(d["x_train"], batch_size=512, verbose=0)
    as_written = float(np.mean(loss(d["y_train"], probs)))
    assert as_written >= np.log1p(np.exp(-1.0)) - 1e-6
    assert meta("mlp_logits")["final_metrics"]["train_loss"] >= np.log1p(np.exp(-1.0)) - 1e-4
