"""A new health check written as one class with its measures (tests/health/bn_statistics.py: BatchNorm
running statistics against the validation batch statistics) appears in the JSON and HTML reports,
JUnit, MLflow, the sweep index, the Sweep page and the dashboard with no view edited.

The model has two BatchNormalization layers whose running statistics are set to known values: ``bn_ok``
holds the statistics of the data it normalises (healthy), ``bn_stale`` a running mean 3 running standard
deviations off and a running variance 9 times the data's (the planted fault: an error on the shift, a
warning on the variance ratio).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_report, run_diagnose

PLUGIN = Path(__file__).with_name("bn_statistics.py")


@pytest.fixture(scope="module")
def bn_model(tmp_path_factory, keras_tf):
    keras = keras_tf
    d = tmp_path_factory.mktemp("bn")
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, name="dense")(inp)
    h = keras.layers.BatchNormalization(name="bn_ok")(h)
    h = keras.layers.Dense(8, activation="tanh", name="dense2")(h)
    h = keras.layers.BatchNormalization(name="bn_stale")(h)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(h), name="bn_net")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    probe = keras.Model(inp, [model.get_layer("bn_ok").input, model.get_layer("bn_stale").input])
    a_ok, a_stale = (np.asarray(a, np.float64) for a in probe.predict(x[200:], verbose=0))
    ok, stale = model.get_layer("bn_ok"), model.get_layer("bn_stale")
    ok.moving_mean.assign(a_ok.mean(axis=0))
    ok.moving_variance.assign(a_ok.var(axis=0))
    # the running variance 9 times the data's (running std 3 times), the running mean 9 data std = 3 running std off
    stale.moving_mean.assign(a_stale.mean(axis=0) + 9 * a_stale.std(axis=0))
    stale.moving_variance.assign(a_stale.var(axis=0) * 9)
    model.save(d / "bn_net.keras")
    np.savez(d / "data.npz", x_train=x[:200], y_train=y[:200], x_val=x[200:], y_val=y[200:])
    return d


@pytest.fixture(scope="module")
def bn_run(bn_model, tmp_path_factory):
    """`diagnose` run once with the plugin installed through a real entry point, writing every output."""
    from diagnostics.testing import installed_plugin

    out = tmp_path_factory.mktemp("bn-report")
    # installed from its own source file through a real entry point, as a third party's plugin would be
    with installed_plugin("bn_statistics", source=PLUGIN.read_text(), version="0.1.0"):
        proc = run_diagnose(bn_model / "bn_net.keras", "--data", bn_model / "data.npz", "--only", "bn.statistics",
                            "--out", out / "report", "--junit-xml", out / "junit.xml")
    return {"proc": proc, "out": out, "report": out / "report"}


def test_the_host_judges_it_and_names_its_findings(bn_run):
    proc = bn_run["proc"]
    assert proc.returncode == 1, proc.stderr  # an error finding
    rec = next(a for a in read_report(bn_run["report"])["analyzers"] if a["name"] == "bn.statistics")
    assert rec["status"] == "ok" and rec["category"] == "health"
    shift, ratio = rec["measures"]
    assert (shift["code"], shift["scope"], shift["unit"], shift["thresholds"]) == (
        "bn.statistics.mean_shift", "layer", "running std", {"warning": 0.5, "error": 2.0})
    values = {v["where"]: (round(v["value"], 1), v["outcome"]) for v in shift["values"]}
    assert values == {"bn_ok": (0.0, "passed"), "bn_stale": (3.0, "failed")}
    ratios = {v["where"]: (round(v["value"], 2), v["outcome"]) for v in ratio["values"]}
    assert ratios == {"bn_ok": (1.0, "passed"), "bn_stale": (0.11, "doubtful")}
    assert sorted((f["code"], f["severity"], f["where"]) for f in rec["findings"]) == [
        ("bn.statistics.mean_shift", "error", "bn_stale"), ("bn.statistics.variance_ratio", "warning", "bn_stale")]
    assert (bn_run["report"] / shift["chart"]).read_bytes()[:4] == b"\x89PNG"


def test_it_is_in_the_html_report(bn_run):
    html = (bn_run["report"] / "report.html").read_text()
    assert "Validation mean − running mean" in html and "running std" in html
    assert "bn_stale" in html and "Validation variance / running variance" in html


def test_it_is_in_junit(bn_run):
    root = ET.parse(bn_run["out"] / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert "bn.statistics.mean_shift" in cases, sorted(cases)
    assert cases["bn.statistics.mean_shift"].find("failure") is not None or cases["bn.statistics.mean_shift"].find("error") is not None
