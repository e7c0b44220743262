"""No false refusals: every zoo model, the healthy test models and a compiled model using each
allowlisted slot pass the pre-scan (and the CLI loads one of each format)."""

from __future__ import annotations

import pytest

from diagnostics._plugin_manager import PluginHost
from diagnostics.safety import scan
from tests.conftest import ZOO_DIR


@pytest.fixture(scope="module")
def registered():
    return set(PluginHost().load().custom_objects)


ZOO = sorted(p for p in ZOO_DIR.iterdir() if p.suffix in (".keras", ".h5"))


def test_every_zoo_model_passes_the_pre_scan(registered):
    assert len(ZOO) >= 30
    for path in ZOO:
        result = scan(path, registered=registered)
        assert result.risks == [] and result.custom_classes == [], path.name


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, keras_tf):
    """Function losses and metrics, a schedule, a regularizer, a constraint, wrappers, recurrent cells."""
    import numpy as np

    keras = keras_tf
    d = tmp_path_factory.mktemp("compiled")
    i = keras.Input((4,))
    x = keras.layers.Dense(3, activation=keras.activations.relu, kernel_initializer=keras.initializers.HeNormal(seed=1))(i)
    x = keras.layers.Bidirectional(keras.layers.LSTM(2))(keras.layers.Reshape((3, 1))(x))
    o = keras.layers.Dense(2, activation="softmax", kernel_regularizer=keras.regularizers.L2(0.01),
                           kernel_constraint=keras.constraints.MaxNorm(2))(x)
    m = keras.Model(i, o)
    m.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)),
              loss=keras.losses.sparse_categorical_crossentropy,
              metrics=[keras.metrics.sparse_categorical_accuracy, keras.metrics.SparseTopKCategoricalAccuracy(k=1), "accuracy"])
    m.fit(np.zeros((8, 4)), np.zeros(8), verbose=0)
    s = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(10, 4), keras.layers.GRU(3),
                          keras.layers.Dense(1, activation="sigmoid")])
    s.compile(loss="binary_crossentropy", optimizer="adam", metrics=["auc"])
    paths = []
    for name, model in (("functional", m), ("sequential", s)):
        for ext in ("keras", "h5"):
            model.save(d / f"{name}.{ext}")
            paths.append(d / f"{name}.{ext}")
    return paths


def test_compiled_models_using_every_slot_pass(compiled):
    for path in compiled:
        result = scan(path)
        assert result.risks == [] and result.custom_classes == [], path.name


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image", "sequence", "token", "tabular", "generator"])
def test_healthy_test_models_pass(kind, tmp_path, keras_tf):
    from diagnostics.testing.models import tiny_case

    case = tiny_case(kind)
    models = {"model": case.model, **{r: m for r, m in (case.companions or {}).items() if hasattr(m, "save")}}
    for role, model in models.items():
        for ext in ("keras", "h5"):
            path = tmp_path / f"{role}.{ext}"
            model.save(path)
            result = scan(path)
            assert result.risks == [] and result.custom_classes == [], path.name
