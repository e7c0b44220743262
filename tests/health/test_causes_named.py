"""Cause before symptom on the zoo's twins, through the CLI (issue 25): a symptom that a data analyzer's
finding explains leads with that cause, so the user reads the fault in the data before the advice the
symptom alone would give (a lower learning rate, regularisation, shuffled labels)."""

from __future__ import annotations

from tests.conftest import ZOO_DIR, read_report, run_diagnose


def _findings(out) -> dict[str, list[dict]]:
    got: dict[str, list[dict]] = {}
    for a in read_report(out)["analyzers"]:
        for f in a["findings"]:
            got.setdefault(f["code"], []).append(f)
    return got


def test_unscaled_inputs_are_named_before_the_gradients_and_the_gap(tmp_path):
    """cnn_unscaled: trained on [-1, 1], validated on raw [0, 255]. The gradient norm and the accuracy gap
    are real measurements on those inputs; the missing preprocessing is why."""
    proc = run_diagnose(ZOO_DIR / "cnn_unscaled.keras", "--only", "data.drift", "--only", "health.gradients",
                        "--only", "health.overfitting", "--out", tmp_path, "-q")
    assert proc.returncode == 1, proc.stderr[-2000:]
    got = _findings(tmp_path)
    [norm] = got["health.gradients.grad_norm"]
    assert norm["severity"] == "error"
    assert norm["message"].startswith(
        "likely cause: these gradients were measured on validation inputs that were not preprocessed as the training "
        "inputs were (a step is missing): fix the inputs first, the learning rate may be fine (data.drift found "
        "data.drift.range_mismatch at inputs). What health.gradients measured: Global gradient norm ")
    [gap] = got["health.overfitting.gap"]
    assert gap["message"].startswith(
        "likely cause: the validation inputs are distributed unlike the training inputs, so what differs between the "
        "splits may come from the data rather than from the model fitting its training set's noise")
    assert "(data.drift found data.drift.range_mismatch at inputs, " in gap["message"]
    # the cause itself is not led by anything
    assert got["data.drift.range_mismatch"][0]["message"].startswith("the validation inputs lie in [0, 255], the "
                                                                     "training inputs in [-1, 1]")


def test_an_imbalanced_model_at_chance_level_is_named_as_imbalance(tmp_path):
    """mlp_imbalance (97/3, the rare class never predicted): the chance-level finding said shuffled labels or a
    learning rate; it now leads with the imbalance predictions.quality measured."""
    proc = run_diagnose(ZOO_DIR / "mlp_imbalance.keras", "--only", "predictions.quality", "--only",
                        "health.overfitting", "--out", tmp_path, "-q")
    assert proc.returncode == 1, proc.stderr[-2000:]
    [chance] = _findings(tmp_path)["health.overfitting.chance_level"]
    assert chance["message"].startswith(
        "likely cause: the classes are imbalanced and the rare class is hardly ever predicted, not shuffled labels or "
        "a learning rate: weight the classes (class_weight) or resample them (predictions.quality found "
        "predictions.quality.minority_recall at ")


def test_explainers_are_not_blamed_for_an_output_that_sees_one_position(keras_tf, run_health):
    """The issue's transformer: a causal mask with first-position pooling, trained on a label its first token
    decides. Every map piles up on step 0 whatever the weights, so saliency's maps correlate 1.00 with the
    randomised model's and it fails; the failure leads with the model's fault that health.temporal found."""
    import numpy as np

    from tests.health.conftest import one_position_model

    model = one_position_model(keras_tf)
    x = np.random.default_rng(0).integers(1, 20, (400, 12)).astype(np.int32)
    y = (x[:, 0] > 10).astype(np.int32)
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y, epochs=30, verbose=0)
    data = {"x_train": x[:300], "y_train": y[:300], "x_val": x[300:], "y_val": y[300:]}
    records = run_health(model, data, only=("health.temporal", "explain.gradients"))
    assert [f.code for f in records["health.temporal"].findings if f.severity.value == "error"] == [
        "health.temporal.focus"]
    failed = [f for f in records["explain.gradients"].findings if f.code.endswith(".failed")]
    assert "explain.gradients.saliency.failed" in [f.code for f in failed]
    for f in failed:
        assert f.severity.value == "warning"  # the gate still holds; the message names the model
        assert f.message.startswith(
            "likely cause: the model's output depends on one input position, so a map that puts its attribution there "
            "is right whatever the weights"), f.message
        assert "the fault is the model's, not the explainer's" in f.message
        assert "(health.temporal found health.temporal.focus at attention, step 0)" in f.message
    # run alone, the explainer's own reason stands
    alone = run_health(model, data, only=("explain.gradients",))["explain.gradients"]
    (f,) = [f for f in alone.findings if f.code == "explain.gradients.saliency.failed"]
    assert f.message.startswith("saliency failed: maps barely change when the weights are randomised")
