"""The data-fault twins of issue 25 show their fault by a raw measurement: the inputs themselves and the
model's own predictions, never the analyzers in plugins/."""

from __future__ import annotations

import numpy as np
import pytest


def _accuracy(model, x, y):
    p = model.predict(x, batch_size=512, verbose=0)
    return float(np.mean(((p[:, 0] >= 0.5).astype(int) if p.shape[1] == 1 else p.argmax(1)) == y))


def test_mlp_shift_two_features_moved_and_the_shift_costs_accuracy(load_model, dataset, meta):
    from diagnostics_zoo.datasets import SHIFT_FEATURES

    model, d = load_model("mlp_shift"), dataset("mlp_shift")
    names = [str(n) for n in d["feature_names"]]
    xt, xv = d["x_train"].astype(np.float64), d["x_val"].astype(np.float64)
    smd = (xv.mean(0) - xt.mean(0)) / xt.std(0)
    ratio = xv.std(0) / xt.std(0)
    area, texture = names.index("worst area"), names.index("worst texture")
    assert smd[area] > 2.5 and 2.5 < ratio[texture] < 3.5, (smd[area], ratio[texture])
    # every other column, and the training split, is the plain table's
    import diagnostics_zoo as zoo

    plain = zoo.DATASETS["breast_cancer"](0)
    others = [j for j in range(len(names)) if j not in (area, texture)]
    assert np.array_equal(d["x_val"][:, others], plain["x_val"][:, others])
    assert np.array_equal(d["x_train"], plain["x_train"])
    fixed = d["x_val"].copy()
    for name, (kind, amount) in SHIFT_FEATURES.items():
        j = names.index(name)
        fixed[:, j] = fixed[:, j] - amount if kind == "offset" else fixed[:, j] / amount
    shipped, unshifted = _accuracy(model, d["x_val"], d["y_val"]), _accuracy(model, fixed, d["y_val"])
    assert unshifted - shipped >= 0.03, (shipped, unshifted)
    assert meta("mlp_shift")["fault"]["value"] == pytest.approx(unshifted - shipped, abs=1e-6)


def test_mlp_label_copy_column_is_the_label_in_both_splits(load_model, dataset, meta):
    model, d = load_model("mlp_label_copy"), dataset("mlp_label_copy")
    assert str(d["feature_names"][-1]) == "diagnosis_code"
    for split in ("train", "val"):
        assert np.array_equal((d[f"x_{split}"][:, -1] > 0).astype(int), d[f"y_{split}"]), split
    # the honest features alone: the best single-threshold rule on any of them stays well below the copy's 1.0
    best = 0.0
    for j in range(d["x_val"].shape[1] - 1):
        f, y = d["x_val"][:, j], d["y_val"]
        cuts = np.unique(f)
        acc = max(max(np.mean((f > c) == y), np.mean((f <= c) == y)) for c in cuts)
        best = max(best, float(acc))
    assert best < 0.97, best
    # the model reads it: shuffling the column across the validation rows costs accuracy
    x = d["x_val"].copy()
    x[:, -1] = np.random.default_rng(0).permutation(x[:, -1])
    shipped, shuffled = _accuracy(model, d["x_val"], d["y_val"]), _accuracy(model, x, d["y_val"])
    assert shipped - shuffled >= 0.03, (shipped, shuffled)
    assert meta("mlp_label_copy")["fault"]["value"] == pytest.approx(shipped - shuffled, abs=1e-6)


def test_cnn_unscaled_validation_images_miss_the_scaling(load_model, dataset, meta):
    model, d = load_model("cnn_unscaled"), dataset("cnn_unscaled")
    assert (d["x_train"].min(), d["x_train"].max()) == (-1.0, 1.0)
    assert (d["x_val"].min(), d["x_val"].max()) == (0.0, 255.0)
    shipped = _accuracy(model, d["x_val"], d["y_val"])
    scaled = _accuracy(model, d["x_val"] / 255.0 * 2.0 - 1.0, d["y_val"])
    assert scaled >= 0.9 and scaled - shipped >= 0.05, (shipped, scaled)
    assert meta("cnn_unscaled")["fault"]["value"] == pytest.approx(scaled - shipped, abs=1e-6)
