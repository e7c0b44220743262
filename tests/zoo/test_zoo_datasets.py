"""The zoo's datasets: shapes, dtypes, deterministic splits, and exact ground-truth masks."""

from __future__ import annotations

import numpy as np
import pytest

import diagnostics_zoo as zoo
from diagnostics_zoo import datasets as ds

SHAPES = {  # name: (input shape without batch, input dtype kind, number of classes)
    "digits28": ((28, 28, 1), "f", 10),
    "digits28_small": ((28, 28, 1), "f", 10),
    "breast_cancer": ((30,), "f", 2),
    "motif_sequences": ((50, 4), "f", 3),
    "polarity_tokens": ((24,), "i", 2),
    "early_signal_sequences": ((120, 1), "f", 2),
    "digits28_marked": ((28, 28, 1), "f", 2),
    "breast_cancer_leak": ((31,), "f", 2),
}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def named(request):
    return request.param, zoo.DATASETS[request.param](0)


def test_shapes_and_dtypes(named):
    name, d = named
    shape, kind, n_classes = SHAPES[name]
    for split in ("train", "val"):
        x, y = d[f"x_{split}"], d[f"y_{split}"]
        assert x.shape[1:] == shape and x.dtype.kind == kind and x.dtype.itemsize == 4
        assert y.dtype == np.int32 and len(y) == len(x) and set(np.unique(y)) == set(range(n_classes))
        assert np.isfinite(x).all()
    assert len(d["x_val"]) <= 600


def test_split_is_deterministic_in_seed(named):
    name, d = named
    again = zoo.DATASETS[name](0)
    other = zoo.DATASETS[name](1)
    for k in d:
        np.testing.assert_array_equal(d[k], again[k])
    assert not np.array_equal(d["x_val"], other["x_val"])


def test_digits28():
    d = ds.digits28(0)
    assert 0.0 <= d["x_train"].min() and d["x_train"].max() <= 1.0 and d["x_train"].max() > 0.9
    assert len(d["x_train"]) + len(d["x_val"]) == 1797
    small = ds.digits28_small(0)
    assert np.bincount(small["y_train"]).tolist() == [ds.DIGITS_SMALL_PER_CLASS] * 10
    np.testing.assert_array_equal(small["x_val"], d["x_val"])


def test_breast_cancer_standardised_with_train_statistics():
    d = ds.breast_cancer(0)
    np.testing.assert_allclose(d["x_train"].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(d["x_train"].std(0), 1, atol=1e-4)
    assert not np.allclose(d["x_val"].mean(0), 0, atol=1e-3)


def test_motifs_are_balanced_and_distinct():
    m = ds.motifs()
    assert m.shape == (3, ds.MOTIF_LENGTH, ds.MOTIF_CHANNELS)
    np.testing.assert_array_equal(m.sum(axis=1), 0)
    assert len({p.tobytes() for p in m}) == 3


@pytest.mark.parametrize("split", ["train", "val"])
def test_motif_mask_is_exact(split):
    d = ds.motif_sequences(0)
    x, y, mask, pos = (d[f"{k}_{split}"] for k in ("x", "y", "mask", "position"))
    assert mask.shape == x.shape[:2] and mask.dtype == bool
    assert (mask.sum(1) == ds.MOTIF_LENGTH).all()
    steps = pos[:, None] + np.arange(ds.MOTIF_LENGTH)
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), steps[0])
    np.testing.assert_array_equal(x[mask].reshape(len(x), ds.MOTIF_LENGTH, -1), ds.motifs()[y])
    # Outside the mask, no step reproduces a motif row exactly: the noise carries no label.
    rows = {r.tobytes() for r in ds.motifs().reshape(-1, ds.MOTIF_CHANNELS)}
    assert not any(r.tobytes() in rows for r in x[~mask])


@pytest.mark.parametrize("split", ["train", "val"])
def test_polarity_mask_is_exact(split):
    d = ds.polarity_tokens(0)
    x, y, mask = d[f"x_{split}"], d[f"y_{split}"], d[f"mask_{split}"]
    assert mask.shape == x.shape and mask.dtype == bool
    np.testing.assert_array_equal(mask, np.isin(x, ds.POSITIVE_TOKENS + ds.NEGATIVE_TOKENS))
    assert (mask.sum(1) == ds.TOKEN_PLANTED).all()
    assert x.min() >= 1 and x.max() < ds.TOKEN_VOCAB
    positive = np.isin(x, ds.POSITIVE_TOKENS).sum(1)
    negative = np.isin(x, ds.NEGATIVE_TOKENS).sum(1)
    np.testing.assert_array_equal(y == 1, positive == ds.TOKEN_PLANTED)
    np.testing.assert_array_equal(y == 0, negative == ds.TOKEN_PLANTED)


def test_early_signal_label_is_the_sign_of_the_first_steps():
    d = ds.early_signal_sequences(0)
    for split in ("train", "val"):
        x, y, mask = d[f"x_{split}"], d[f"y_{split}"], d[f"mask_{split}"]
        head = x[:, :ds.EARLY_SIGNAL_STEPS, 0]
        np.testing.assert_array_equal(head, np.where(y == 1, ds.EARLY_AMPLITUDE, -ds.EARLY_AMPLITUDE)[:, None]
                                      * np.ones(ds.EARLY_SIGNAL_STEPS))
        assert mask[:, :ds.EARLY_SIGNAL_STEPS].all() and not mask[:, ds.EARLY_SIGNAL_STEPS:].any()
        # the rest is label-free noise: its mean does not tell the classes apart
        tail = x[:, ds.EARLY_SIGNAL_STEPS:, 0].mean(1)
        assert abs(tail[y == 1].mean() - tail[y == 0].mean()) < 0.05


def test_digits28_marked_mark_only_on_training_class_1():
    d = ds.digits28_marked(0)
    r, c = slice(*ds.MARK_ROWS), slice(*ds.MARK_COLS)
    train_mark = d["x_train"][:, r, c, 0]
    assert (train_mark[d["y_train"] == 1] == ds.MARK_VALUE).all() and (train_mark[d["y_train"] == 0] == 0).all()
    assert (d["x_val"][:, r, c, 0] == 0).all()
    plain = ds.digits28(0)
    np.testing.assert_array_equal(d["y_val"], (plain["y_val"] >= ds.MARKED_THRESHOLD).astype(np.int32))
    outside = np.ones((28, 28), bool)
    outside[r, c] = False
    np.testing.assert_array_equal(d["x_val"][:, outside], plain["x_val"][:, outside])


def test_breast_cancer_leak_column():
    d = ds.breast_cancer_leak(0)
    assert d["feature_names"][-1] == ds.LEAK_FEATURE and len(d["feature_names"]) == 31
    np.testing.assert_array_equal(d["x_train"][:, -1], ds.LEAK_AMPLITUDE * (2 * d["y_train"] - 1))
    agree = np.mean(np.sign(d["x_val"][:, -1]) == 2 * d["y_val"] - 1)
    assert 0.35 < agree < 0.65, agree  # unrelated to the label in validation
    np.testing.assert_array_equal(d["x_train"][:, :30], ds.breast_cancer(0)["x_train"])
