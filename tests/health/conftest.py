"""Small real models with known faults for the health analyzers, built once per session."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tabular():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 30)).astype("float32")
    y = (x[:, 0] + x[:, 1] + 0.3 * rng.normal(size=600) > 0).astype("int32")
    return {"x_train": x[:400], "y_train": y[:400], "x_val": x[400:], "y_val": y[400:]}


@pytest.fixture(scope="session")
def models(keras_tf, tabular):
    """Each model is built with its fault visible in the construction, compiled with its loss."""
    keras = keras_tf
    keras.utils.set_random_seed(0)
    out = {}

    def mlp(name, hidden, activation, init="glorot_uniform", output="sigmoid"):
        inp = keras.Input((30,), name="features")
        h = inp
        for i, u in enumerate(hidden):
            h = keras.layers.Dense(u, activation=activation, kernel_initializer=init, name=f"dense{i + 1}")(h)
        units = 1 if output == "sigmoid" else 2
        m = keras.Model(inp, keras.layers.Dense(units, activation=output, name="out")(h), name=name)
        m.compile(loss="binary_crossentropy" if output == "sigmoid" else "sparse_categorical_crossentropy",
                  optimizer="adam", metrics=["accuracy"])
        return m

    healthy = mlp("healthy", (16, 8), "relu")
    healthy.fit(tabular["x_train"], tabular["y_train"], epochs=10, verbose=0)
    out["healthy"] = healthy
    out["vanishing"] = mlp("vanishing", (16,) * 12, "sigmoid")
    out["saturated"] = mlp("saturated", (64, 64), "tanh", keras.initializers.RandomNormal(stddev=2.0, seed=7))
    dead = mlp("dead", (32, 16), "relu")
    w, b = dead.get_layer("dense1").get_weights()
    b[:16] = -1e3  # exactly half of dense1's units can never fire on these inputs
    dead.get_layer("dense1").set_weights([w, b])
    out["dead"] = dead
    exploding = mlp("exploding", (32, 16), "relu")
    for name in ("dense1", "dense2", "out"):
        layer = exploding.get_layer(name)
        layer.set_weights([v * 30 for v in layer.get_weights()])
    out["exploding"] = exploding
    nan = mlp("nan", (32, 16), "relu")
    # a NaN in the output layer's kernel, behind a dense2 unit that fires: a NaN inside the hidden stack can
    # vanish on some CPUs (oneDNN's ReLU maps NaN to 0, and 0·NaN may be dropped), one at the output cannot
    w1, b1 = nan.get_layer("dense1").get_weights()
    w2, b2 = nan.get_layer("dense2").get_weights()
    h2 = np.maximum(np.maximum(tabular["x_val"] @ w1 + b1, 0) @ w2 + b2, 0)
    w, b = nan.get_layer("out").get_weights()
    w[int(np.argmax((h2 > 0).sum(axis=0))), 0] = np.nan
    nan.get_layer("out").set_weights([w, b])
    out["nan"] = nan
    small = {k: v[:40] if k.endswith("train") else v for k, v in tabular.items()}
    over = mlp("overfit", (256,), "relu", output="softmax")
    hist = over.fit(small["x_train"], small["y_train"], epochs=120, verbose=0,
                    validation_data=(small["x_val"], small["y_val"]))
    out["overfit"] = over
    out["overfit_history"] = hist.history
    out["overfit_data"] = small
    # built last: each model draws its initial weights from the global seed in turn
    dead_weights = mlp("dead_weights", (32, 16), "relu")
    w, b = dead_weights.get_layer("dense1").get_weights()
    w[:, :16], b[:16] = 0.0, 0.0  # half of dense1 is 0 on every input, and its biases are not the cause
    dead_weights.get_layer("dense1").set_weights([w, b])
    out["dead_weights"] = dead_weights
    return out


def one_position_model(keras):
    """The issue's transformer in miniature (issue 25): token embedding, self-attention under a causal mask, and
    first-position pooling, so the output sees only the first of its 12 tokens. Seeded; untrained."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((12,), dtype="int32")
    h = keras.layers.Embedding(20, 8, name="embed")(inp)
    h = keras.layers.MultiHeadAttention(2, 4, name="attention")(h, h, use_causal_mask=True)
    h = keras.layers.Flatten()(keras.layers.Cropping1D((0, 11), name="first_token")(h))
    return keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(h))


@pytest.fixture(scope="session")
def run_health(tmp_path_factory):
    """Run analyzers on an in-memory model through the public API; returns {analyzer: record}."""
    import diagnostics

    def run(model, data=None, only=("health.gradients", "health.units"), **kw):
        out = tmp_path_factory.mktemp("report")
        report = diagnostics.diagnose(model, data, out_dir=out, only=tuple(only), **kw)
        return {r.name: r for r in report.analyzers}

    return run


def finding_codes(record, at_least="warning"):
    """The codes of a record's findings at least as severe as ``at_least``."""
    from diagnostics import Severity

    level = Severity(at_least).rank
    return {f.code for f in record.findings if f.severity.rank >= level}


@pytest.fixture(scope="session")
def codes():
    return finding_codes
