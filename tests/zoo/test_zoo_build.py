"""Every zoo model builds from its definition, trains one step and round-trips .keras and .h5."""

from __future__ import annotations

import numpy as np
import pytest

import diagnostics_zoo as zoo


def _batch(stem: str, n: int = 8):
    """A small (x, y, loss) batch that fits the model named ``stem``."""
    rng = np.random.default_rng(0)
    if stem in ("gan", "gan_collapsed"):
        return rng.standard_normal((n, 32)).astype(np.float32), rng.random((n, 28, 28, 1)).astype(np.float32), "binary_crossentropy"
    if stem.endswith("_discriminator"):
        return rng.random((n, 28, 28, 1)).astype(np.float32), np.ones((n, 1), np.float32), "binary_crossentropy"
    if stem == "cnn_shortcut":
        return rng.random((n, 28, 28, 1)).astype(np.float32), np.arange(n) % 2, "sparse_categorical_crossentropy"
    if stem == "rnn_vanishing":
        return rng.standard_normal((n, 120, 1)).astype(np.float32), (np.arange(n) % 2)[:, None], "binary_crossentropy"
    if stem == "mlp_regression":
        return rng.standard_normal((n, 10)).astype(np.float32), rng.standard_normal((n, 1)).astype(np.float32), "mean_squared_error"
    if stem in ("mlp_leak", "mlp_label_copy"):
        return rng.standard_normal((n, 31)).astype(np.float32), (np.arange(n) % 2)[:, None], "binary_crossentropy"
    if stem == "mlp_underfit":
        return rng.random((n, 28, 28, 1)).astype(np.float32), np.arange(n) % 10, "sparse_categorical_crossentropy"
    if stem == "mlp_imbalance":
        return rng.standard_normal((n, 12)).astype(np.float32), (np.arange(n) % 2)[:, None], "binary_crossentropy"
    if stem.startswith("cnn") or stem == "resnet":
        return rng.random((n, 28, 28, 1)).astype(np.float32), np.arange(n) % 10, "sparse_categorical_crossentropy"
    if stem.startswith("lstm") or stem == "conv_gru":
        return rng.standard_normal((n, 50, 4)).astype(np.float32), np.arange(n) % 3, "sparse_categorical_crossentropy"
    if stem == "transformer":
        return rng.integers(1, 30, (n, 24)).astype(np.int32), (np.arange(n) % 2)[:, None], "binary_crossentropy"
    if stem == "mlp_logits":
        return rng.standard_normal((n, 30)).astype(np.float32), np.arange(n) % 2, "sparse_categorical_crossentropy"
    return rng.standard_normal((n, 30)).astype(np.float32), (np.arange(n) % 2)[:, None], "binary_crossentropy"


def test_every_artifact_has_a_builder():
    from diagnostics_zoo.architectures import BUILDERS

    assert set(BUILDERS) == set(zoo.artifact_stems())


@pytest.mark.parametrize("stem", zoo.artifact_stems())
def test_build_train_step_and_round_trip(stem, keras_tf, tmp_path):
    keras = keras_tf
    from diagnostics_zoo.architectures import BUILDERS

    keras.utils.set_random_seed(0)
    model = BUILDERS[stem]()
    x, y, loss = _batch(stem)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    before = [w.copy() for w in model.get_weights()]
    step_loss = model.train_on_batch(x, y)
    assert np.isfinite(step_loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "one step changed no weight"
    expected = model.predict(x, verbose=0)
    for fmt in ("keras", "h5"):
        path = tmp_path / f"{stem}.{fmt}"
        model.save(path)
        # No custom_objects: the zoo's layers are registered serialisable on import.
        again = keras.saving.load_model(path)
        np.testing.assert_allclose(again.predict(x, verbose=0), expected, atol=1e-6, err_msg=f"{stem}.{fmt}")
        assert again.get_config()["name"] == model.get_config()["name"]
