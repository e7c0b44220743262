"""Dashboard fixtures: real reports written by the real ``diagnose`` CLI, and a hostile model file.

The main report comes from the zoo CNN when it has been trained (models/artifacts/cnn.h5), else from
a small CNN built here; a second report (a twin with dead filters) gives the Compare page something
to compare. Both runs go through the installed console script, in parallel.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
ZOO_DIR = REPO / "models" / "artifacts"
MAIN_ANALYZERS = ("architecture", "weights", "health.gradients", "health.units", "health.overfitting", "health.spectra",
                  "health.gan", "explain.gradients")
#: Four samples and three gradient methods: enough for the Explanations page, a minute on a busy 2-core machine.
EXPLAIN_OPTIONS = ("explain.gradients.samples=4", "explain.gradients.methods=integrated_gradients,saliency,input_x_gradient")


def _small_cnn(keras):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(name="flatten"), keras.layers.Dense(3, activation="softmax", name="out")],
                             name="small_cnn")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8, 8, 1)).astype("float32")
    y = (x[:, 2, 2, 0] > 0).astype("int64") + (x[:, 5, 5, 0] > 0.5).astype("int64")
    model.fit(x, y, epochs=2, verbose=0)
    return model, x, y


@pytest.fixture(scope="session")
def report_root(tmp_path_factory, diagnose_cli):
    """A folder with two real CLI reports: ``main`` (the zoo CNN, or a small CNN) and ``twin`` (it with zeroed filters)."""
    root = tmp_path_factory.mktemp("dashboard-reports")
    zoo_cnn = ZOO_DIR / "cnn.h5"
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    models = root.parent / (root.name + "-models")
    models.mkdir()
    if zoo_cnn.is_file():
        main_args = [zoo_cnn]
        model = keras.saving.load_model(ZOO_DIR / "cnn.keras" if (ZOO_DIR / "cnn.keras").is_file() else zoo_cnn, compile=False)
    else:
        model, x, y = _small_cnn(keras)
        model.save(models / "small_cnn.keras")
        np.savez(models / "data.npz", x_train=x[:64], y_train=y[:64], x_val=x[64:], y_val=y[64:])
        main_args = [models / "small_cnn.keras", "--data", models / "data.npz"]
    # The "after" report: the same model with half of its first conv layer's filters zeroed, a fault
    # whose right answer is known (weights.zero_units on that layer).
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    kernel, *rest = conv.get_weights()
    kernel[..., : kernel.shape[-1] // 2] = 0.0
    conv.set_weights([kernel, *rest])
    model.save(models / "zeroed_filters.keras")
    twin_args = [models / "zeroed_filters.keras"]
    # A full run on the zoo CNN takes minutes (SHAP, LIME, captum); the dashboard tests need one report
    # with every kind of view, so they run the cheaper analyzers, each where it is installed.
    listing = diagnose_cli("plugins", "--json", timeout=120)
    assert listing.returncode == 0, f"diagnose plugins --json exited {listing.returncode}: {listing.stderr[-2000:]}"
    installed = set(json.loads(listing.stdout)["analyzers"])
    assert set(MAIN_ANALYZERS) <= installed, f"analyzers missing from this install: {set(MAIN_ANALYZERS) - installed}"
    only = list(MAIN_ANALYZERS)
    jobs = {"main": [*main_args, "--out", root / "main", "--fail-on", "never", *[x for a in only for x in ("--only", a)],
                     *[x for o in EXPLAIN_OPTIONS for x in ("--option", o)]],
            "twin": [*twin_args, "--out", root / "twin", "--fail-on", "never", "--only", "architecture", "--only", "weights"]}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done = {k: pool.submit(diagnose_cli, *args, timeout=400) for k, args in jobs.items()}
        results = {k: f.result() for k, f in done.items()}
    for k, proc in results.items():
        assert proc.returncode == 0, f"diagnose ({k}) exited {proc.returncode}: {proc.stderr[-2000:]}"
        assert (root / k / "report.json").is_file()
    return root


@pytest.fixture(scope="session")
def hostile_model(tmp_path_factory):
    """A real .keras file with a Lambda layer: loading it would run stored code."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    d = tmp_path_factory.mktemp("hostile")
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(outputs), name="hostile")
    path = d / "innocent_looking.keras"
    model.save(path)
    return path
