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
    # two checkpoints of a run for the sweep: the stale running statistics, then re-estimated ones
    (d / "ckpt").mkdir()
    model.save(d / "ckpt" / "bn_net.epoch01.keras")
    stale.moving_mean.assign(a_stale.mean(axis=0))
    stale.moving_variance.assign(a_stale.var(axis=0))
    model.save(d / "ckpt" / "bn_net.epoch02.keras")
    return d


@pytest.fixture(scope="module")
def bn_run(bn_model, tmp_path_factory):
    """`diagnose` run once with the plugin installed through a real entry point, writing every output."""
    from diagnostics.testing import installed_plugin

    out = tmp_path_factory.mktemp("bn-report")
    mlflow_env = {"MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}", "MLFLOW_EXPERIMENT_NAME": "bn"}
    # installed from its own source file through a real entry point, as a third party's plugin would be
    with installed_plugin("bn_statistics", source=PLUGIN.read_text(), version="0.1.0"):
        proc = run_diagnose(bn_model / "bn_net.keras", "--data", bn_model / "data.npz", "--only", "bn.statistics",
                            "--out", out / "report", "--junit-xml", out / "junit.xml", "--mlflow", env=mlflow_env)
        sweep = run_diagnose("sweep", *sorted((bn_model / "ckpt").glob("*.keras")), "--only", "bn.statistics",
                             "--out", out / "sweeps" / "bn")
    return {"proc": proc, "out": out, "report": out / "report", "uri": mlflow_env["MLFLOW_TRACKING_URI"], "sweep": sweep}


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
    ratios = {v["where"]: (round(v["value"], 1), v["outcome"]) for v in ratio["values"]}
    assert ratios == {"bn_ok": (1.0, "passed"), "bn_stale": (0.1, "doubtful")}  # 1/9 (with BatchNorm's epsilon)
    assert sorted((f["code"], f["severity"], f["where"]) for f in rec["findings"]) == [
        ("bn.statistics.mean_shift", "error", "bn_stale"), ("bn.statistics.variance_ratio", "warning", "bn_stale")]
    assert (bn_run["report"] / shift["chart"]).read_bytes()[:4] == b"\x89PNG"


def test_it_is_in_the_html_report(bn_run):
    html = (bn_run["report"] / "report.html").read_text()
    assert "Validation mean − running mean" in html and "running std" in html
    assert "bn_stale" in html and "Validation variance / running variance" in html


def test_it_is_in_junit(bn_run):
    root = ET.parse(bn_run["out"] / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase") if c.get("classname") == "bn.statistics"}
    assert sorted(cases) == ["bn.statistics.mean_shift", "bn.statistics.variance_ratio"], sorted(cases)
    failed = cases["bn.statistics.mean_shift"].find("failure")
    assert failed is not None and "bn_stale" in failed.get("message", "") + (failed.text or "")
    # the variance ratio is a warning, under --fail-on error: a case that passes
    assert cases["bn.statistics.variance_ratio"].find("failure") is None


def test_it_is_in_mlflow(bn_run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=bn_run["uri"])
    [run] = client.search_runs([client.get_experiment_by_name("bn").experiment_id])
    report = json.loads((bn_run["report"] / "report.json").read_text())
    rec = next(a for a in report["analyzers"] if a["name"] == "bn.statistics")
    expected = {f"{m['code']}/{v['where']}": v["value"] for m in rec["measures"] for v in m["values"]}
    assert {k: v for k, v in run.data.metrics.items() if k.startswith("bn.statistics.")} == expected


def test_it_is_in_the_sweep_index_and_on_the_sweep_page(bn_run, open_app):
    proc = bn_run["sweep"]
    assert proc.returncode == 1, proc.stderr[-3000:]  # the first checkpoint's stale statistics are an error
    index = json.loads((bn_run["out"] / "sweeps" / "bn" / "sweep.json").read_text())
    meta = index["catalogue"]["bn.statistics.mean_shift"]
    assert (meta["title"], meta["unit"], meta["scope"]) == ("Validation mean − running mean", "running std", "layer")
    shifts = [e["measures"]["bn.statistics.mean_shift"] for e in index["checkpoints"]]
    assert sorted(shifts[0]) == ["bn_ok", "bn_stale"] and shifts[0]["bn_stale"] > 2.0 > shifts[1]["bn_stale"]
    at = open_app(bn_run["out"] / "sweeps", "sweep")
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Validation mean − running mean (running std)" in titles, titles
    assert "Validation variance / running variance" in titles, titles


def test_it_is_on_the_dashboards_health_page(bn_run, open_app):
    at = open_app(bn_run["report"], "health", {"analyzer": "bn.statistics"})
    from diagnostics_dashboard.reports import md_line

    assert md_line("bn.statistics") in at.radio(key="analyzer").options
    headings = [m.value for m in at.markdown if m.value.startswith("####")]
    assert headings == [f"#### {md_line('Validation mean − running mean (running std)')}",
                        f"#### {md_line('Validation variance / running variance')}"]
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                 if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Validation mean"))
    bars = {t["name"]: t["x"] for t in chart["data"] if t["type"] == "bar"}
    assert bars == {"passed": ["bn_ok"], "error": ["bn_stale"]}
