"""The data-free analyzers ``weights`` and ``architecture``: known answers on real Keras models whose
weights and wiring are set by hand, read from their findings and their typed measure sections."""

from __future__ import annotations

import numpy as np
import pytest

ZERO_UNITS = ("All-zero (dead) units {share}, at or above the warning threshold 0.1 (a unit whose incoming weights are "
              "all zero outputs its bias whatever the input): {dead} of {units} units/filters have all-zero incoming "
              "weights and compute nothing — check pruning, initialisation, or an over-strong L1 penalty")


def test_weights_zero_units_nonfinite_and_norms(keras_tf, run_health):
    """2 of 10 units zeroed (20%: warning), 1 of 20 (5%: under the 10% threshold, no finding), one NaN."""
    keras = keras_tf
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10, name="sparse"), keras.layers.Dense(20, name="few"),
                              keras.layers.Dense(3, activation="softmax", name="out")], name="w")
    rng = np.random.default_rng(0)
    sparse = rng.normal(size=(4, 10)).astype("float32")
    sparse[:, [3, 7]] = 0.0
    few = rng.normal(size=(10, 20)).astype("float32")
    few[:, 0] = 0.0
    out = rng.normal(size=(20, 3)).astype("float32")
    out[5, 1] = np.nan
    for name, kernel in (("sparse", sparse), ("few", few), ("out", out)):
        layer = model.get_layer(name)
        layer.set_weights([kernel, np.zeros(kernel.shape[1], "float32")])
    rec = run_health(model, None, only=("weights",))["weights"]
    assert (rec.status, rec.category) == ("ok", "health")
    assert [(f.code, f.severity, f.where) for f in rec.findings] == [
        ("weights.nonfinite", "error", "out/kernel"), ("weights.zero_units", "warning", "sparse")]
    assert rec.findings[0].message == ("1 of 60 weights are NaN or Inf: every output that depends on them is NaN — "
                                       "retrain with a lower learning rate or gradient clipping, or restore a checkpoint")
    assert rec.findings[1].message == ZERO_UNITS.format(share="20%", dead=2, units=10)
    zero = rec.measure("zero_units")
    assert (zero.code, zero.scope, zero.thresholds) == ("weights.zero_units", "layer", {"warning": 0.1})
    assert [(v.where, v.value, v.outcome) for v in zero.values] == [
        ("sparse", 0.2, "doubtful"), ("few", 0.05, "passed"), ("out", 0.0, "passed")]
    norm = rec.measure("norm")
    assert (norm.scale, norm.direction, norm.thresholds) == ("log", "neutral", {})
    assert norm.value("sparse") == pytest.approx(float(np.sqrt(np.sum(sparse.astype(np.float64) ** 2))))
    finite = np.where(np.isfinite(out), out, 0.0).astype(np.float64)
    assert norm.value("out") == pytest.approx(float(np.sqrt(np.sum(finite ** 2))))
    assert norm.values[2].note == "1 non-finite weights left out"
    assert rec.metrics["nonfinite_total"] == 1
    # one chart per measure, drawn by the host; the analyzer draws none of its own
    assert zero.chart and norm.chart and not rec.artifacts


def test_weights_of_a_recurrent_layer_stay_apart(keras_tf, run_health):
    """An LSTM holds two kernels under one layer name: each is its own value, named by its path in the layer."""
    keras = keras_tf
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.LSTM(3, name="lstm"),
                              keras.layers.Dense(2, activation="softmax", name="out")])
    rec = run_health(model, None, only=("weights",))["weights"]
    assert [(v.where, v.series) for v in rec.measure("norm").values] == [
        ("lstm", "lstm_cell/kernel"), ("lstm", "lstm_cell/recurrent_kernel"), ("out", "")]
    lstm = model.get_layer("lstm")
    assert rec.measure("norm").value("lstm", "lstm_cell/recurrent_kernel") == pytest.approx(
        float(np.linalg.norm(np.asarray(lstm.cell.recurrent_kernel.numpy(), np.float64))))


@pytest.mark.parametrize("activation, loss, code, severity, message", [
    ("softmax", "from_logits=True", "architecture.softmax_logits_loss", "error",
     "the output applies softmax but the loss is SparseCategoricalCrossentropy(from_logits=True): the loss treats "
     "probabilities as logits, squashing them twice, so gradients are tiny and calibration is wrong — use "
     "from_logits=False, or remove the output activation"),
    (None, "from_logits=False", "architecture.logits_without_from_logits", "warning",
     "the output is linear (logits) but the loss is SparseCategoricalCrossentropy(from_logits=False): set from_logits=True"),
    ("softmax", "from_logits=False", None, None, None),
])
def test_architecture_flags_an_output_that_contradicts_its_loss(keras_tf, run_health, activation, loss, code, severity,
                                                                 message):
    keras = keras_tf
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
                              keras.layers.Dense(3, activation=activation, name="head")], name="a")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=loss == "from_logits=True"))
    rec = run_health(model, None, only=("architecture",))["architecture"]
    assert (rec.status, rec.category) == ("ok", "model")
    assert [(f.code, f.severity, f.where, f.message) for f in rec.findings] == (
        [(code, severity, "head", message)] if code else [])
    params = rec.measure("parameters")
    assert [(v.where, v.value, v.outcome) for v in params.values] == [("hidden", 40.0, "passed"), ("head", 27.0, "passed")]
    assert (params.code, params.scale, params.direction) == ("architecture.parameters", "log", "neutral")
    assert rec.metrics["n_params"] == 67 and params.chart
