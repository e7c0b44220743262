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


def test_rnn_vanishing_through_time(load_model, dataset, meta, keras_tf):
    """The loss gradient w.r.t. the first 12 of 120 input steps is orders of magnitude below the last
    12's, and the model is no better than a coin on the validation split."""
    import tensorflow as tf

    model, d = load_model("rnn_vanishing"), dataset("rnn_vanishing")
    x = tf.constant(d["x_val"][:256])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(keras_tf.losses.binary_crossentropy(d["y_val"][:256, None].astype(np.float32), model(x)))
    g = tape.gradient(loss, x).numpy()
    profile = np.sqrt((g.astype(np.float64) ** 2).sum(-1)).mean(0)
    ratio = profile[:12].mean() / profile[-12:].mean()
    assert ratio < 1e-5, f"early/late input-gradient ratio {ratio:.2e}"
    assert meta("rnn_vanishing")["fault"]["value"] == pytest.approx(ratio, rel=1e-3)
    p = model.predict(d["x_val"], batch_size=512, verbose=0)[:, 0]
    assert abs(float(np.mean((p >= 0.5) == d["y_val"])) - 0.5) < 0.06
    val_loss = float(-np.mean(np.log(np.where(d["y_val"] == 1, p, 1 - p))))
    assert abs(val_loss - np.log(2)) < 0.05, val_loss


def test_mlp_chance_no_better_than_the_majority_class(load_model, dataset):
    model, d = load_model("mlp_chance"), dataset("mlp_chance")
    p = model.predict(d["x_val"], batch_size=512, verbose=0)[:, 0]
    majority = int(np.bincount(d["y_train"]).argmax())
    assert float(np.mean((p >= 0.5) == d["y_val"])) <= float(np.mean(d["y_val"] == majority))
    prior = np.bincount(d["y_train"]) / len(d["y_train"])
    ce = float(-np.mean(np.log(np.clip(np.where(d["y_val"] == 1, p, 1 - p), 1e-7, 1))))
    assert ce >= float(-np.mean(np.log(prior[d["y_val"]]))), "beats the label prior's cross-entropy"
    # the same architecture on the true labels is far better (the healthy mlp)
    healthy = load_model("mlp").predict(d["x_val"], batch_size=512, verbose=0)[:, 0]
    assert float(np.mean((healthy >= 0.5) == d["y_val"])) > 0.9


def test_cnn_shortcut_reads_the_mark(load_model, dataset, meta):
    from diagnostics_zoo import datasets as ds

    model, d = load_model("cnn_shortcut"), dataset("cnn_shortcut")
    train = _accuracy(model, d["x_train"], d["y_train"])
    erased = _accuracy(model, ds.plant_mark(d["x_train"], d["y_train"], False), d["y_train"])
    val = _accuracy(model, d["x_val"], d["y_val"])
    assert train >= 0.95 and train - erased >= 0.15, (train, erased)
    assert train - val >= 0.15, (train, val)
    # planting the mark on every validation image sends most predictions to class 1 (half are class 0)
    planted = d["x_val"].copy()
    planted[:, slice(*ds.MARK_ROWS), slice(*ds.MARK_COLS)] = ds.MARK_VALUE
    flipped = float(np.mean(model.predict(planted, batch_size=512, verbose=0).argmax(1) == 1))
    assert flipped >= 0.75, flipped
    box = meta("cnn_shortcut")["fault"]["mark_box"]
    assert (box["top"], box["left"], box["bottom"] + 1, box["right"] + 1) == (*ds.MARK_ROWS[:1], ds.MARK_COLS[0],
                                                                             ds.MARK_ROWS[1], ds.MARK_COLS[1])


def test_mlp_leak_reads_the_leaked_column(load_model, dataset):
    model, d = load_model("mlp_leak"), dataset("mlp_leak")
    rng = np.random.default_rng(0)

    def acc(x, y):
        return float(np.mean((model.predict(x, batch_size=512, verbose=0)[:, 0] >= 0.5) == y))

    def shuffled(x):
        x = x.copy()
        x[:, -1] = rng.permutation(x[:, -1])
        return x

    train, val = acc(d["x_train"], d["y_train"]), acc(d["x_val"], d["y_val"])
    assert train - acc(shuffled(d["x_train"]), d["y_train"]) >= 0.15
    assert abs(val - acc(shuffled(d["x_val"]), d["y_val"])) < 0.1
    assert train - val >= 0.2
