"""Keras 2 (tf.keras) files: genuine ones, written by tf-keras from tests/fixtures/make_keras2_fixtures.py.

What Keras 3 can load once a stale config key is dropped loads through the keras2_compat plugin,
without --trust, and predicts what tf.keras predicted; what it cannot load is refused with exit 4
and a message that says what it is and how to convert it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diagnostics import ExitCode, Report

from ..conftest import REPO, run_diagnose

FIXTURES = REPO / "tests" / "fixtures" / "keras2"
SCRIPT = REPO / "tests" / "fixtures" / "make_keras2_fixtures.py"


@pytest.mark.parametrize("name", ["cnn", "lstm", "mobilenet_style"])
def test_keras2_file_loads_and_predicts_what_tf_keras_predicted(name, keras_tf):
    from diagnostics.loading import load_model
    from diagnostics._plugin_manager import PluginHost

    host = PluginHost().load()
    model = load_model(FIXTURES / f"{name}.h5", custom_objects=host.custom_objects, trust=False)
    expected = np.load(FIXTURES / "expected.npz")
    got = np.asarray(model(expected[f"x_{name}"], training=False))
    np.testing.assert_allclose(got, expected[f"y_{name}"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, layer, key", [("lstm", "LSTM", "time_major"), ("mobilenet_style", "DepthwiseConv2D", "groups")])
def test_without_the_compat_plugin_keras2_file_is_refused(name, layer, key, keras_tf):
    from diagnostics.loading import load_model
    from diagnostics._plugin_manager import PluginHost
    from diagnostics.safety import ModelRefused

    host = PluginHost(disabled={"keras2_compat"}).load()
    with pytest.raises(ModelRefused) as e:
        load_model(FIXTURES / f"{name}.h5", custom_objects=host.custom_objects, trust=False)
    assert layer in str(e.value) and key in str(e.value)


@pytest.mark.parametrize("name", [pytest.param("lstm", marks=pytest.mark.slow), "mobilenet_style"])
def test_keras2_file_is_diagnosed_with_data(name, tmp_path):
    expected = np.load(FIXTURES / "expected.npz")
    x = expected[f"x_{name}"]
    data = tmp_path / "data.npz"
    np.savez(data, x_val=x, y_val=expected[f"y_{name}"].argmax(axis=1))
    out = tmp_path / "out"
    proc = run_diagnose(FIXTURES / f"{name}.h5", "--data", data, "--out", out,
                        "--only", "architecture", "--only", "health.gradients", "--only", "explain.gradients")
    assert proc.returncode in (ExitCode.OK, ExitCode.FINDINGS), proc.stderr
    report = Report.load(out)
    assert {r.name: r.status for r in report.analyzers} == {
        "architecture": "ok", "health.gradients": "ok", "explain.gradients": "ok"}


def test_tfoplambda_is_refused_with_how_to_convert(tmp_path):
    proc = run_diagnose(FIXTURES / "tfoplambda.h5", "--out", tmp_path)
    assert proc.returncode == ExitCode.MODEL_REFUSED
    assert proc.stderr.strip().splitlines()[-1] == (
        "diagnose: model refused: tfoplambda.h5: layer 'tf.math.abs' is a Keras 2 TFOpLambda (the raw TensorFlow op "
        "tf.math.abs in a functional model), which Keras 3 cannot load: rebuild the model in Keras 3 with keras.ops in "
        "place of the TensorFlow op, load the weights with model.load_weights('tfoplambda.h5') and save it with "
        "model.save('model.keras')")


def test_savedmodel_directory_is_refused_with_how_to_convert(tmp_path):
    proc = run_diagnose("savedmodel", "--out", tmp_path / "out", cwd=FIXTURES)
    assert proc.returncode == ExitCode.MODEL_REFUSED
    assert proc.stderr.strip().splitlines()[-1] == (
        "diagnose: model refused: savedmodel is a TensorFlow SavedModel directory, which Keras 3 cannot load as a "
        "model: if tf.keras saved it, convert it with tf-keras (TF_USE_LEGACY_KERAS=1 python -c \"import tf_keras; "
        "tf_keras.models.load_model('savedmodel').save('model.h5')\") and diagnose model.h5")


def test_plain_directory_is_still_refused_as_a_directory(tmp_path):
    proc = run_diagnose(tmp_path, "--out", tmp_path / "out")
    assert proc.returncode == ExitCode.MODEL_REFUSED
    assert "is a directory" in proc.stderr and "SavedModel directory" not in proc.stderr


@pytest.mark.slow
def test_keras2_fixture_script_regenerates_loadable_files(tmp_path, keras_tf):
    """The committed fixtures come from the committed script: it still runs (tf-keras, own process) and its
    output loads through the compat plugin and predicts what it recorded."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from diagnostics.loading import load_model
    from diagnostics._plugin_manager import PluginHost

    host = PluginHost().load()
    expected = np.load(tmp_path / "expected.npz")
    for name in ("cnn", "lstm", "mobilenet_style"):
        model = load_model(tmp_path / f"{name}.h5", custom_objects=host.custom_objects)
        np.testing.assert_allclose(np.asarray(model(expected[f"x_{name}"])), expected[f"y_{name}"], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "savedmodel" / "saved_model.pb").is_file()
