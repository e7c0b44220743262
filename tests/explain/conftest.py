"""Fixtures of the explanation tests: zoo models (the shipped artifacts, or trained once per session
when the zoo has not been built in this checkout) and small models whose right answer is known."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from tests.conftest import ZOO_DIR  # noqa: E402


@pytest.fixture(scope="session")
def zoo_path(tmp_path_factory):
    """``zoo_path(name)`` -> path of ``<name>.keras`` (with its sidecar beside it)."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name in built:
            return built[name]
        out = tmp_path_factory.mktemp(f"zoo-{name}")
        shipped = ZOO_DIR / f"{name}.keras"
        if shipped.is_file() and (ZOO_DIR / f"{name}.meta.json").is_file():
            # a private copy: several worker processes load it, and the zoo may be rebuilt meanwhile
            for suffix in (".keras", ".meta.json"):
                shutil.copyfile(ZOO_DIR / f"{name}{suffix}", out / f"{name}{suffix}")
            built[name] = out / f"{name}.keras"
        else:
            subprocess.run([sys.executable, "-m", "diagnostics_zoo.train", name, "--out", str(out)], check=True,
                           capture_output=True, timeout=900)
            built[name] = out / f"{name}.keras"
        return built[name]

    return get


@pytest.fixture(scope="session")
def zoo_model(zoo_path, keras_tf):
    """``zoo_model(name)`` -> the loaded zoo model under TensorFlow (cached)."""
    import diagnostics_zoo as zoo

    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = keras_tf.saving.load_model(zoo_path(name), custom_objects=zoo.custom_objects())
        return cache[name]

    return get


@pytest.fixture(scope="module")
def linear(keras_tf):
    """A linear model with 3 outputs on 5 features: every attribution has a closed form."""
    import numpy as np

    keras = keras_tf
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    w, b = model.layers[0].get_weights()
    return model, w.astype(np.float64), b
