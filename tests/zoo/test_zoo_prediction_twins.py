"""The prediction-fault twins (issue 25) show their fault by the raw measurement: scikit-learn and numpy on
the shipped model's predictions, never the analyzers in plugins/ (as tests/zoo/test_zoo_twins.py)."""

from __future__ import annotations

import numpy as np


def _logistic_regression(d, class_weight=None):
    from sklearn.linear_model import LogisticRegression

    xt = d["x_train"].reshape(len(d["x_train"]), -1).astype(np.float64)
    xv = d["x_val"].reshape(len(d["x_val"]), -1).astype(np.float64)
    mean, std = xt.mean(0), xt.std(0)
    std[std == 0] = 1
    return LogisticRegression(max_iter=1000, class_weight=class_weight).fit((xt - mean) / std, d["y_train"]).predict(
        (xv - mean) / std)


def test_imbalanced_table_is_97_to_3_in_both_splits_and_deterministic():
    from diagnostics_zoo import DATASETS

    d = DATASETS["imbalanced_table"](0)
    assert (len(d["y_train"]), int(d["y_train"].sum()), len(d["y_val"]), int(d["y_val"].sum())) == (3000, 90, 1500, 45)
    assert d["x_train"].shape == (3000, 12) and d["x_train"].dtype == np.float32 and d["y_train"].dtype == np.int32
    again, other = DATASETS["imbalanced_table"](0), DATASETS["imbalanced_table"](1)
    np.testing.assert_array_equal(d["x_val"], again["x_val"])
    assert not np.array_equal(d["x_val"], other["x_val"])


def test_mlp_underfit_is_far_below_logistic_regression(load_model, dataset):
    model, d = load_model("mlp_underfit"), dataset("mlp_underfit")
    assert model.get_layer("bottleneck").units == 2
    acc = lambda x, y: float(np.mean(model.predict(x, batch_size=512, verbose=0).argmax(1) == y))
    val, train = acc(d["x_val"], d["y_val"]), acc(d["x_train"], d["y_train"])
    baseline = float(np.mean(_logistic_regression(d) == d["y_val"]))
    assert baseline >= 0.95 and baseline - val >= 0.2, (baseline, val)
    assert train - val < 0.1, "underfitting: the network is as poor on its training data"
    assert val >= 0.3 + float(np.mean(d["y_val"] == np.bincount(d["y_train"]).argmax())), "far above the majority class"


def test_mlp_imbalance_never_predicts_its_rare_class(load_model, dataset):
    model, d = load_model("mlp_imbalance"), dataset("mlp_imbalance")
    pred = (model.predict(d["x_val"], batch_size=512, verbose=0)[:, 0] >= 0.5).astype(int)
    rare = d["y_val"] == 1
    assert pred[rare].sum() == 0 and pred.sum() <= 5, (pred[rare].sum(), pred.sum())  # none of the 45 found
    assert float(np.mean(pred == d["y_val"])) >= 0.96  # accuracy hides it: always predicting 0 scores 0.97
    # the cause is the imbalance, not the features: inverse-frequency weights find most of the rare class
    weighted = _logistic_regression(d, class_weight="balanced")
    assert float(np.mean(weighted[rare] == 1)) >= 0.6


def test_mlp_diverged_spiked_in_its_first_epoch_and_then_learnt_nothing(load_model, dataset, meta):
    model, d = load_model("mlp_diverged"), dataset("mlp_diverged")
    loss = meta("mlp_diverged")["history"]["loss"]
    assert loss[0] / np.log(2) >= 1000, loss[0]  # a uniform prediction's loss is ln 2
    assert abs(loss[-1] - np.log(2)) < 0.1 and max(loss[-5:]) - min(loss[-5:]) < 0.05 * np.mean(loss[-5:])
    acc = float(np.mean((model.predict(d["x_val"], batch_size=512, verbose=0)[:, 0] >= 0.5) == d["y_val"]))
    assert acc <= float(np.mean(d["y_val"] == np.bincount(d["y_train"]).argmax())) + 0.01, acc
