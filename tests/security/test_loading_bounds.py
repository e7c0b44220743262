"""Bounds while a worker loads a model the pre-scan admitted: --load-timeout stops a load that never
ends, --max-worker-memory turns an allocation past the ceiling into a clean refusal. The slow and
hungry layers are custom classes a plugin registered (the only way code runs without --trust)."""

from __future__ import annotations

import pytest

from diagnostics import ExitCode

from tests.core.conftest import install_plugin

from . import hostile
from .conftest import run_measured

LAYERS = '''
import keras


class Spin(keras.layers.Layer):
    @classmethod
    def from_config(cls, config):
        while True:  # a load that never ends, at 100% CPU
            pass


class Hungry(keras.layers.Layer):
    @classmethod
    def from_config(cls, config):
        import numpy as np
        cls.kept = np.ones((3 << 30) // 8)  # 3 GiB
        return cls(**config)
'''

PLUGIN = '''
import diagnostics


@diagnostics.hookimpl
def register_custom_objects(register):  # import paths: keras is imported in the worker only
    register("acme>Spin", "acme_bounds_layers:Spin")
    register("acme>Hungry", "acme_bounds_layers:Hungry")
'''


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "acme_bounds_layers.py").write_text(LAYERS)
    return install_plugin(site, "acme_bounds", PLUGIN)


def _with(plain, tmp_path, cls):
    layer = {"module": "acme_bounds_layers", "class_name": cls, "registered_name": f"acme>{cls}", "name": "x",
             "config": {"name": "x"}, "inbound_nodes": []}
    return hostile.with_layer(plain["keras"], tmp_path / f"{cls.lower()}.keras", layer)


@pytest.mark.slow
def test_load_timeout_stops_a_load_that_never_ends(plain, acme, tmp_path):
    path = _with(plain, tmp_path, "Spin")
    run = run_measured(path, "--only", "architecture", "--load-timeout", "5", "--out", tmp_path / "o", env=acme, timeout=300)
    lines = [l for l in run["stderr"].splitlines() if l.strip() and not l.startswith("loading ")]
    assert run["rc"] == int(ExitCode.MODEL_REFUSED), run["stderr"]
    assert lines == ["diagnose: model refused: loading the model took longer than 5 s (--load-timeout) while loading the model"]


@pytest.mark.slow
def test_worker_memory_ceiling_refuses_cleanly(plain, acme, tmp_path):
    path = _with(plain, tmp_path, "Hungry")
    run = run_measured(path, "--only", "architecture", "--max-worker-memory", "1GiB", "--out", tmp_path / "o", env=acme, timeout=300)
    assert run["rc"] == int(ExitCode.MODEL_REFUSED), run["stderr"]
    assert "diagnose: model refused: hungry.keras could not be loaded: MemoryError" in run["stderr"]
    assert run["peak_rss_mib"] < 1536, run
