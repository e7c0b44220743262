"""predictions.quality: the per-class statistics against known answers, and the analyzer through the CLI on
the zoo (the healthy models get no error; the underfit and imbalanced twins are named by their cause)."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics_plugins.predictions_quality import (balanced_accuracy, inverse_frequency_weights, most_confused,
                                                     paired_bootstrap_diff, per_class_quality, wilson_interval)
from tests.conftest import ZOO_DIR, read_report, run_diagnose


@pytest.mark.parametrize("successes, n, low, high", [
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score, no continuity correction)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_newcombe_1998(successes, n, low, high):
    lo, hi = wilson_interval(successes, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_per_class_quality_known_answer():
    # class 0: 8 of 10 right, 2 called 1; class 1: 5 of 10 right, 5 called 0
    y = np.array([0] * 10 + [1] * 10)
    pred = np.array([0] * 8 + [1] * 2 + [1] * 5 + [0] * 5)
    q = per_class_quality(y, pred, 2, n_boot=200, seed=0)
    assert q["confusion_matrix"].tolist() == [[8, 2], [5, 5]]
    assert q["support"] == [10, 10] and q["predicted"] == [13, 7]
    assert q["recall"]["value"] == [0.8, 0.5]
    assert q["precision"]["value"] == pytest.approx([8 / 13, 5 / 7])
    assert q["f1"]["value"] == pytest.approx([16 / 23, 10 / 17])
    # recall of class 0 is 8 of 10: Wilson's 0.4902-0.9433; precision of class 1 is 5 of 7
    assert [round(v, 4) for v in q["recall"]["interval"][0]] == [0.4902, 0.9433]
    assert q["precision"]["interval"][1] == pytest.approx(wilson_interval(5, 7))
    lo, hi = q["f1"]["interval"][0]
    assert lo < 16 / 23 < hi
    assert most_confused(q["confusion_matrix"]) == [
        {"true": 1, "predicted": 0, "count": 5, "support": 10, "share": 0.5, "interval": list(wilson_interval(5, 10))},
        {"true": 0, "predicted": 1, "count": 2, "support": 10, "share": 0.2, "interval": list(wilson_interval(2, 10))}]
    b, lo, hi = balanced_accuracy(y, pred, 2, n_boot=200)
    assert b == pytest.approx(0.65) and lo < b < hi


def test_a_never_predicted_class_has_no_precision_and_recall_zero():
    y = np.array([0] * 97 + [1] * 3)
    q = per_class_quality(y, np.zeros(100, int), 2, n_boot=50)
    assert q["precision"]["value"][1] is None and q["recall"]["value"][1] == 0.0
    assert q["recall"]["interval"][1] == pytest.approx(wilson_interval(0, 3))


def test_inverse_frequency_weights_are_scikit_learns_balanced_weights():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 90 + [1] * 10)
    w = inverse_frequency_weights(np.bincount(y))
    assert w == pytest.approx({0: 100 / 180, 1: 5.0})
    assert list(w.values()) == pytest.approx(compute_class_weight("balanced", classes=np.array([0, 1]), y=y))


def test_paired_bootstrap_of_identical_predictions_is_zero():
    a = np.array([1.0, 0.0, 1.0, 1.0])
    assert paired_bootstrap_diff(a, a, 100) == (0.0, 0.0, 0.0)


def _quality(name, out):
    proc = run_diagnose(ZOO_DIR / f"{name}.keras", "--only", "predictions.quality", "--out", out, "--fail-on", "never",
                        "-q")
    assert proc.returncode == 0, proc.stderr
    (a,) = [a for a in read_report(out)["analyzers"] if a["name"] == "predictions.quality"]
    assert a["status"] == "ok", a
    return a


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_healthy_models_get_no_error(name, tmp_path):
    a = _quality(name, tmp_path)
    assert not [f for f in a["findings"] if f["severity"] == "error"], a["findings"]
    assert a["metrics"]["baseline"]["ci95"][0] < 0.05  # the network is not below logistic regression
    assert set(a["artifacts"]) == {"confusion matrix", "reliability diagram"}
    assert all((tmp_path / p).is_file() for p in a["artifacts"].values())


def test_underfit_twin_is_named_underfitting_against_logistic_regression(tmp_path):
    a = _quality("mlp_underfit", tmp_path)
    (f,) = [f for f in a["findings"] if f["code"] == "predictions.quality.baseline_gap"]
    assert f["severity"] == "error"
    for words in ("underfit", "logistic regression", "not overfitting", "'bottleneck', has 2 units for 10 classes"):
        assert words in f["message"], f["message"]
    b = a["metrics"]["baseline"]
    assert b["baseline_val"] >= 0.95 and b["network_val"] <= 0.7 and b["ci95"][0] >= 0.15


def test_imbalance_twin_is_named_imbalance_with_the_class_weights_to_try(tmp_path):
    a = _quality("mlp_imbalance", tmp_path)
    (f,) = [f for f in a["findings"] if f["code"] == "predictions.quality.minority_recall"]
    assert f["severity"] == "error" and f["where"] == "class 1"
    # 2,910 and 90 training rows: n / (2 × count) is 0.515 and 16.7
    for words in ("imbalance", "class_weight={0: 0.515, 1: 16.7}", "balanced accuracy", "finds 0 of its 45"):
        assert words in f["message"], f["message"]
    # the underfit finding is not what speaks here: the network is as good as logistic regression
    assert not [g for g in a["findings"] if g["code"] == "predictions.quality.baseline_gap"]


def test_label_issues_finds_the_flipped_labels_of_a_confident_model():
    from diagnostics_plugins.predictions_quality import PredictionQuality

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.025)
    probs[np.arange(300), truth] = 0.95
    labels = truth.copy()
    flipped = [7, 120, 251]
    labels[flipped] = (truth[flipped] + 1) % 3
    values, metrics = [], {}
    PredictionQuality._label_issues(None, probs, labels, np.arange(1000, 1300), "validation", values, metrics)
    found = metrics["label_issues"]
    assert sorted(d["sample"] for d in found["first"]) == [1007, 1120, 1251] and found["count"] == 3
    (v,) = values
    assert v.value == pytest.approx(0.01) and v.interval == pytest.approx(wilson_interval(3, 300))


def test_the_baseline_keeps_the_highest_variance_features_of_a_wide_input():
    from diagnostics_plugins.predictions_quality import fit_baseline

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (300, 20, 20, 3)).astype(np.float32)  # 1,200 features, all quiet ...
    x[:, 5, 7, 1] = rng.normal(0, 3, 300)  # ... but one, which decides the label
    y = (x[:, 5, 7, 1] > 0).astype(int)
    fitted = fit_baseline(x, y, max_features=16, max_iter=100)
    assert fitted["described"]["features"] == 16 and "16 of their 1200 features" in fitted["described"]["inputs"]
    assert float(np.mean(fitted["predict"](x) == y)) >= 0.95
    tokens = fit_baseline(np.array([[1, 1, 2], [3, 3, 2], [1, 2, 1], [3, 2, 3]]), np.array([0, 1, 0, 1]), 8, 100,
                          token=True)
    assert tokens["described"]["inputs"] == "token counts (8 buckets of the ids)"
    assert tokens["predict"](np.array([[1, 1, 1], [3, 3, 3]])).tolist() == [0, 1]
