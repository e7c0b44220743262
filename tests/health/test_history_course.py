"""health.overfitting reads the history as a course: a NaN or a spike in the training loss is divergence, a
flat loss at a uniform prediction's is a plateau (issue 25). Known answers, then the diverged twin through the CLI."""

from __future__ import annotations

import math

import pytest

from diagnostics_plugins.health_overfitting import loss_course
from tests.conftest import ZOO_DIR, read_report, run_diagnose

LN2 = math.log(2)


def test_a_first_epoch_spike_is_read_against_a_uniform_prediction_and_the_flat_tail_as_a_plateau():
    c = loss_course([2463.7, 12.7, 0.768, 0.699, 0.663, 0.647, 0.652, 0.655, 0.654, 0.655], LN2)
    assert (c["spike_epoch"], c["nonfinite_epoch"]) == (1, None)
    assert c["spike"] == pytest.approx(2463.7 / LN2)
    assert c["flat"] and c["plateau"] == pytest.approx(0.655 / LN2)


def test_a_later_spike_is_read_against_the_best_epoch_before_it():
    c = loss_course([0.6, 0.3, 0.2, 4.0, 0.25], LN2)
    assert (c["spike_epoch"], c["spike"]) == (4, pytest.approx(20.0))
    assert not c["flat"]


def test_a_loss_near_zero_is_floored_so_noise_is_no_spike():
    # the zoo transformer's loss: 1e-5 then 6e-4 is sixty times its best, but 1% of ln 2 is the floor
    c = loss_course([0.053, 0.001, 0.00001, 0.0006], LN2)
    assert c["spike"] < 1


def test_nan_is_named_by_its_epoch_and_a_regression_loss_has_no_plateau():
    c = loss_course([0.9, 0.7, None, float("nan")], None)
    # no uniform-prediction loss for a regression: the first epoch has no reference, the second is 0.7 / 0.9
    assert c["nonfinite_epoch"] == 3 and c["plateau"] is None and c["spike"] == pytest.approx(0.7 / 0.9)


def test_the_diverged_twin_is_named_divergence_through_the_cli(tmp_path):
    proc = run_diagnose(ZOO_DIR / "mlp_diverged.keras", "--only", "health.overfitting", "--out", tmp_path,
                        "--fail-on", "never", "-q")
    assert proc.returncode == 0, proc.stderr
    (a,) = [a for a in read_report(tmp_path)["analyzers"] if a["name"] == "health.overfitting"]
    found = {f["code"]: f for f in a["findings"]}
    spike = found["health.overfitting.loss_spike"]
    assert spike["severity"] == "error" and spike["where"] == "epoch 1"
    for words in ("diverged", "learning rate", "clipnorm", "ln k"):
        assert words in spike["message"], spike["message"]
    assert found["health.overfitting.plateau"]["severity"] == "warning"


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_healthy_histories_are_neither_diverged_nor_stalled(name, tmp_path):
    proc = run_diagnose(ZOO_DIR / f"{name}.keras", "--only", "health.overfitting", "--out", tmp_path, "--fail-on",
                        "never", "-q")
    assert proc.returncode == 0, proc.stderr
    (a,) = [a for a in read_report(tmp_path)["analyzers"] if a["name"] == "health.overfitting"]
    assert not [f for f in a["findings"] if f["code"].endswith((".loss_spike", ".plateau"))]
    course = a["metrics"]["history"]["course"]
    assert course["spike"] < 1.5 and course["plateau"] < 0.1
