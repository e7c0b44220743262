"""The overfitting analyzer, and the statistics it rests on, against known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics.health import auc, bootstrap_diff_ci, thresholds
from diagnostics._thresholds import ThresholdError
from diagnostics_plugins.health_overfitting import baseline_comparison, expected_calibration_error, history_turn, load_history


def test_auc_known_answers():
    """The membership AUC the analyzer and HealthCallback share."""
    assert auc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auc([0, 1], [2, 3]) == 0.0
    assert auc([1, 1], [1, 1]) == 0.5  # ties count half
    assert auc([1, 3], [2, 0]) == 0.75  # 3 of 4 (pos, neg) pairs ordered


def test_ece_known_answers():
    # Confidence 0.8 on every sample, right 8 times in 10: perfectly calibrated.
    probs = np.tile([0.8, 0.2], (10, 1))
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0)
    # Confidence 0.9 but always wrong: ECE = 0.9.
    assert expected_calibration_error(np.tile([0.9, 0.1], (5, 1)), np.ones(5, int)) == pytest.approx(0.9)


def test_bootstrap_interval_covers_the_difference():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1, 400), rng.normal(0.0, 1, 400)
    d, lo, hi = bootstrap_diff_ci(a, b, 2000, seed=0)
    assert d == pytest.approx(a.mean() - b.mean())
    assert lo < d < hi and lo < 1.0 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(2 / 400), rel=0.15)


def test_history_turn_known_answer():
    val = [1.0, 0.8, 0.6, 0.5, 0.52, 0.56, 0.6, 0.7, 0.8]
    t = history_turn(val, tolerance=0.05)
    assert t["best_epoch"] == 4
    assert t["turn_epoch"] == 6  # 0.56 > 0.5 * 1.05 and never back below
    assert t["epochs_past_best"] == 5
    assert history_turn([None, None], 0.05)["best_epoch"] is None


def test_csv_and_json_histories_read_alike(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,loss,val_loss\n0,1.0,1.1\n1,0.5,0.9\n")
    (tmp_path / "h.json").write_text(json.dumps({"history": {"loss": [1.0, 0.5], "val_loss": [1.1, 0.9]}}))
    assert load_history(tmp_path / "log.csv") == load_history(tmp_path / "h.json") == {"loss": [1.0, 0.5], "val_loss": [1.1, 0.9]}
    with pytest.raises(ValueError, match="does not exist"):
        load_history(tmp_path / "missing.csv")


def test_thresholds_file_and_option_override(tmp_path):
    (tmp_path / "t.toml").write_text("[gradients]\nvanishing_warning = 1e-9\n")
    t = thresholds({"health_thresholds": str(tmp_path / "t.toml"), "exploding_error": "5000"}, "gradients")
    assert t["vanishing_warning"] == 1e-9 and t["exploding_error"] == 5000.0 and t["exploding_warning"] == 100.0
    (tmp_path / "bad.json").write_text(json.dumps({"gradients": {"vanishing": 1}}))
    with pytest.raises(ThresholdError, match="unknown threshold 'vanishing'"):
        thresholds({"health_thresholds": str(tmp_path / "bad.json")}, "gradients")


def test_overfit_model_gap_memorisation_and_history(models, run_health, codes, tmp_path):
    over, data, hist = models["overfit"], models["overfit_data"], models["overfit_history"]
    rec = run_health(over, data, only=("health.overfitting",), history=hist)["health.overfitting"]
    assert rec.status == "ok", rec.reason
    assert {"health.overfitting.gap", "health.overfitting.memorisation", "health.overfitting.epochs_past_best"} <= codes(rec)
    gap = rec.metrics["gap"]
    assert gap["train"] == 1.0 and gap["ci95"][0] >= 0.05 and gap["ci95"][0] <= gap["gap"] <= gap["ci95"][1]
    probs = over(data["x_val"]).numpy()
    assert gap["val"] == pytest.approx(float(np.mean(probs.argmax(1) == data["y_val"])))
    # the section carries the same number and interval, judged on the interval's lower end
    (judged,) = rec.measure("gap").values
    assert (judged.value, judged.interval) == (gap["gap"], tuple(gap["ci95"]))
    assert judged.outcome == ("failed" if gap["ci95"][0] >= 0.20 else "doubtful")
    assert rec.metrics["membership_auc"] > 0.7 and rec.measure("memorisation").value() == rec.metrics["membership_auc"]
    h = rec.metrics["history"]
    best = int(np.argmin(hist["val_loss"])) + 1
    assert h["best_epoch"] == best and h["source"] == "the run"
    assert h["epochs_past_best"] == len(hist["val_loss"]) - best == rec.measure("epochs_past_best").value()
    (f,) = [f for f in rec.findings if f.code == "health.overfitting.epochs_past_best"]
    assert f.severity == "warning" and f.where == "" and f.message == (
        f"Epochs trained past the lowest validation loss {h['epochs_past_best']} epochs, at or above the warning "
        f"threshold 5 (Prechelt 1998; judged once validation loss has turned up, staying turn_tolerance above its "
        f"minimum): validation loss was lowest at epoch {best} ({h['best_val_loss']:.4g}), turned up at epoch "
        f"{h['turn_epoch']} and ended at {hist['val_loss'][-1]:.4g} (history from the run) — use "
        f"EarlyStopping(monitor='val_loss', restore_best_weights=True)")
    # the history is epoch-scoped values (1-based epochs, as the report's chart draws them), not metrics
    loss = rec.measure("loss")
    assert loss.scope == "epoch" and loss.direction == "neutral" and loss.chart
    assert [v.value for v in loss.values if v.series == "validation"] == pytest.approx(hist["val_loss"])
    assert [v.where for v in loss.values if v.series == "train"] == [str(e) for e in range(1, len(hist["loss"]) + 1)]
    assert {v.series for v in rec.measure("metrics").values} == {"train accuracy", "validation accuracy"}
    assert "val_loss" not in h and not rec.artifacts  # the host draws the curves; no learning_curves.png
    calibration = rec.measure("calibration")
    assert calibration.value(series="validation") == rec.metrics["ece"]["val"]
    assert calibration.value(series="train") == rec.metrics["ece"]["train"]
    assert [v.outcome for v in calibration.values if v.series == "train"] == ["passed"]  # shown, never judged


def test_history_alone_gives_a_gap_without_interval_at_most_a_warning(models, run_health):
    """No data: the last epoch's accuracy gap (0.30, above the 0.20 error threshold) is only a warning,
    and validation loss that never turned up is shown but not judged, however long training went on."""
    history = {"loss": [0.9, 0.5, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1], "val_loss": [1.0, 0.8, 0.6, 0.6, 0.61, 0.6, 0.62, 0.61],
               "accuracy": [0.5, 0.7, 0.8, 0.9, 0.95, 0.95, 0.95, 0.95], "val_accuracy": [0.5, 0.6, 0.6, 0.65] + [0.65] * 4,
               "health/membership_auc": [0.5] * 8}
    rec = run_health(models["healthy"], None, only=("health.overfitting",), history=history)["health.overfitting"]
    assert rec.status == "ok", rec.reason
    assert [(f.code, f.severity.value, f.where) for f in rec.findings] == [("health.overfitting.gap", "warning", "")]
    assert rec.findings[0].message == (
        "Train − validation accuracy 0.300, at or above the warning threshold 0.05 (the lower end of its 95% bootstrap "
        "interval is judged, so a small validation set cannot raise it): at the last epoch of the training history "
        "(the run) accuracy was 0.950 on training batches vs 0.650 on validation; no data given, so no confidence "
        "interval and at most a warning — get more data or augment it, add dropout or weight decay, use a smaller "
        "model, or stop training earlier")
    past = rec.measure("epochs_past_best")
    assert past.value() == 5 and past.worst == "passed"  # lowest at epoch 3, never 5% above it after
    assert rec.metrics["history"]["turn_epoch"] is None
    # the callback's health/ records belong to the analyzers of those quantities
    assert {v.series for v in rec.measure("metrics").values} == {"train accuracy", "validation accuracy"}
    # the course of the loss is read too (shown here: no spike, no plateau)
    assert [s.measure for s in rec.measures] == ["gap", "epochs_past_best", "loss_spike", "plateau", "loss", "metrics"]
    assert rec.measure("loss_spike").worst == rec.measure("plateau").worst == "passed"


def test_healthy_model_has_no_overfitting_error(models, tabular, run_health, codes):
    rec = run_health(models["healthy"], tabular, only=("health.overfitting",))["health.overfitting"]
    assert rec.status == "ok"
    assert "health.overfitting.gap" not in codes(rec)
    assert 0.4 < rec.metrics["membership_auc"] < 0.7
    assert rec.measure("memorisation").worst == "passed"


def test_skips_with_a_reason_without_labels_or_history(models, tabular, run_health):
    rec = run_health(models["healthy"], {"x_val": tabular["x_val"]}, only=("health.overfitting",))["health.overfitting"]
    assert rec.status == "skipped" and "training and validation splits" in rec.reason


def test_validation_labels_alone_give_the_baseline_but_no_gap(models, tabular, run_health, codes):
    rec = run_health(models["healthy"], {"x_val": tabular["x_val"], "y_val": tabular["y_val"]},
                     only=("health.overfitting",))["health.overfitting"]
    assert rec.status == "ok" and "gap" not in rec.metrics and rec.measures == ()
    b = rec.metrics["baseline"]
    assert b["train"] is None and b["diagnosis"] is None and b["reference_labels"] == "validation split"
    assert b["val"]["accuracy_lift"] > 0.05 and b["val"]["skill"] > 0.05 and "health.overfitting.chance_level" not in codes(rec)


# -- trivial baselines (health.overfitting.chance_level) -----------------------------------------------------
def test_baseline_comparison_known_answers():
    y_train = np.array([0] * 30 + [1] * 10)
    y = np.array([0, 0, 0, 1])
    # a model that outputs the smoothed prior for every sample scores exactly the prior's cross-entropy
    prior = np.array([31 / 42, 11 / 42])
    b = baseline_comparison(np.tile(prior, (4, 1)), y, "softmax", y_train)
    assert b["task"] == "classification" and b["majority_class"] == 0
    assert b["accuracy"] == b["majority_accuracy"] == 0.75 and b["accuracy_lift"] == 0
    assert b["cross_entropy"] == pytest.approx(b["prior_cross_entropy"]) and b["skill"] == pytest.approx(0, abs=1e-12)
    # one sigmoid unit: p(class 1); a perfect model has skill close to 1
    sure = baseline_comparison(np.array([[0.0], [0.0], [0.0], [1.0]]), y, "sigmoid", y_train)
    assert sure["accuracy"] == 1.0 and sure["skill"] > 0.99
    # regression: predicting the training mean gives R^2 <= 0 on other data, a perfect fit R^2 = 1
    yr = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    assert baseline_comparison(np.full((4, 1), 2.5), yr, None)["r2"] == pytest.approx(0.0)
    assert baseline_comparison(yr[:, None], yr, "linear")["r2"] == 1.0
    assert baseline_comparison(np.zeros((4, 3)), np.zeros((4, 3)), "sigmoid") is None  # multi-label


def test_chance_level_underfitting_vs_overfitting(keras_tf, tabular, run_health):
    """Shuffled labels: both splits at chance (underfitting). Memorised noise: training beats the
    baseline, validation does not (overfitting). A real model: neither."""
    keras = keras_tf
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x_tr, x_va = tabular["x_train"][:120], tabular["x_val"]
    y_noise = rng.integers(0, 2, len(x_tr)).astype(np.int32)

    def fit(y, epochs, hidden):
        inp = keras.Input((30,))
        m = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(hidden, activation="relu")(inp)))
        m.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(1e-2))
        # the epochs as one pass over repeated copies: the same steps without Keras' per-epoch overhead
        m.fit(np.tile(x_tr, (epochs, 1)), np.tile(y, epochs), batch_size=40, epochs=1, shuffle=False, verbose=0)
        return m

    data = {"x_train": x_tr, "x_val": x_va, "y_val": rng.integers(0, 2, len(x_va)).astype(np.int32)}
    memoriser = fit(y_noise, 300, 256)  # fits its random training labels, knows nothing of the validation ones
    rec = run_health(memoriser, {**data, "y_train": y_noise}, only=("health.overfitting",))["health.overfitting"]
    (f,) = [f for f in rec.findings if f.code == "health.overfitting.chance_level"]
    assert f.severity == "error" and f.where == "validation split" and rec.metrics["baseline"]["diagnosis"] == "overfitting"
    assert "memorisation or a shortcut" in f.message and "(see health.overfitting.gap and explain.shortcut)" in f.message and rec.metrics["baseline"]["train"]["accuracy"] > 0.9

    blind = fit(y_noise, 1, 2)  # one epoch on noise labels: nothing learnt anywhere
    rec = run_health(blind, {**data, "y_train": y_noise}, only=("health.overfitting",))["health.overfitting"]
    (f,) = [f for f in rec.findings if f.code == "health.overfitting.chance_level"]
    assert rec.metrics["baseline"]["diagnosis"] == "underfitting" and "underfitting" in f.message
    assert "no better than a trivial predictor" in f.message and "for always predicting class" in f.message


def test_chance_level_on_imbalanced_classes_names_the_imbalance_first(tmp_path):
    """Cause before symptom (issue 25): mlp_imbalance (97 / 3) sits at the majority's accuracy because it never
    predicts its rare class; its chance-level finding says so before suggesting shuffled labels. mlp_chance
    (63 / 37, shuffled labels) is not called imbalanced."""
    from tests.conftest import ZOO_DIR, read_report, run_diagnose

    messages = {}
    for name in ("mlp_imbalance", "mlp_chance"):
        proc = run_diagnose(ZOO_DIR / f"{name}.keras", "--only", "health.overfitting", "--out", tmp_path / name,
                            "--fail-on", "never", "-q")
        assert proc.returncode == 0, proc.stderr
        (a,) = [a for a in read_report(tmp_path / name)["analyzers"] if a["name"] == "health.overfitting"]
        (f,) = [f for f in a["findings"] if f["code"] == "health.overfitting.chance_level"]
        messages[name] = f["message"]
    assert "the classes are imbalanced (class 0 holds 97.0%" in messages["mlp_imbalance"]
    assert "class_weight" in messages["mlp_imbalance"] and "predictions.quality.minority_recall" in messages["mlp_imbalance"]
    assert "imbalanced" not in messages["mlp_chance"] and "shuffled or misjoined" in messages["mlp_chance"]
