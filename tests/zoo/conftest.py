"""Fixtures of the zoo tests: the shipped artifacts and their datasets, loaded once per session.

The tests measure faults with TensorFlow directly (``tf.GradientTape``), so they run under the
TensorFlow backend; the TF -> torch parity test starts its own torch subprocess.
"""

from __future__ import annotations

import functools
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

import diagnostics_zoo as zoo  # noqa: E402


@functools.lru_cache(maxsize=None)
def _dataset(name: str, seed: int):
    return zoo.DATASETS[name](seed)


@functools.lru_cache(maxsize=None)
def _model(stem: str, fmt: str):
    import keras

    return keras.saving.load_model(zoo.ARTIFACT_DIR / f"{stem}.{fmt}", custom_objects=zoo.custom_objects())


def meta_of(stem: str) -> dict:
    return json.loads((zoo.ARTIFACT_DIR / f"{stem}.meta.json").read_text())


@pytest.fixture(scope="session")
def meta():
    """``meta(stem)``: a shipped artifact's sidecar, as a dict."""
    return meta_of


@pytest.fixture(scope="session")
def keras_tf():
    """keras, under the TensorFlow backend (the tests that measure gradients need it)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip(f"the zoo's measurement tests run under KERAS_BACKEND=tensorflow, not {keras.backend.backend()}")
    return keras


@pytest.fixture(scope="session")
def load_model(keras_tf):
    """``load_model(stem, fmt="keras")``: a shipped artifact, loaded once per session."""
    return lambda stem, fmt="keras": _model(stem, fmt)


@pytest.fixture(scope="session")
def dataset():
    """``dataset(stem)``: the dataset named by a shipped artifact's sidecar, at its split seed."""

    def get(stem: str):
        meta = meta_of(stem)
        return _dataset(meta["dataset"], meta["split_seed"])

    return get
