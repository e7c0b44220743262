"""Twins whose fault lies in the data (issue 25): covariate shift in two features, a column that copies the
label in both splits, and validation images that missed the training split's scaling. Imported at the
bottom of :mod:`diagnostics_zoo.train`, whose ``recipe`` registry and helpers they use;
``python -m diagnostics_zoo.train mlp_shift`` trains one.

Each recipe measures its raw fault with numpy and the model's own predictions (never through the
analyzers), and records it in the sidecar's ``fault`` beside the ``expected_findings`` that ``data.drift``
or ``data.leakage`` should report.
"""

from __future__ import annotations

import keras
import numpy as np

from . import architectures as A
from .datasets import DATASETS, LABEL_COPY_FEATURE, SHIFT_FEATURES
from .train import SEED, Artifact, Context, finding, fit, recipe, sidecar


def _accuracy(model, x, y) -> float:
    p = model.predict(x, batch_size=512, verbose=0)
    pred = (p[:, 0] >= 0.5).astype(int) if p.shape[1] == 1 else p.argmax(1)
    return float(np.mean(pred == y))


@recipe("mlp_shift")
def train_mlp_shift(ctx: Context) -> list[Artifact]:
    data = DATASETS["breast_cancer_shift"](SEED)
    names = [str(n) for n in data["feature_names"]]
    model = A.BUILDERS["mlp_shift"]()
    # The mlp's recipe (25 epochs): trained on unshifted training data, scored on the shifted validation split.
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 25, 32)
    # The shift undone: the validation rows as the training site would have reported them.
    x_fixed = data["x_val"].copy()
    per_feature = {}
    for name, (kind, amount) in SHIFT_FEATURES.items():
        j = names.index(name)
        x_fixed[:, j] = x_fixed[:, j] - amount if kind == "offset" else x_fixed[:, j] / amount
        t, v = data["x_train"][:, j].astype(np.float64), data["x_val"][:, j].astype(np.float64)
        per_feature[name] = {"change": f"{kind} {amount:g}", "train_mean": float(t.mean()), "val_mean": float(v.mean()),
                             "train_std": float(t.std()), "val_std": float(v.std()),
                             "standardised_mean_difference": float((v.mean() - t.mean()) / t.std()),
                             "std_ratio": float(v.std() / t.std())}
    acc_fixed = _accuracy(model, x_fixed, data["y_val"])
    lost = acc_fixed - final["val_accuracy"]
    shown = "; ".join(f"{n}: validation mean {f['val_mean']:+.2f} vs training {f['train_mean']:+.2f}, std "
                      f"{f['val_std']:.2f} vs {f['train_std']:.2f}" for n, f in per_feature.items())
    return [Artifact("mlp_shift", model, sidecar(
        "mlp_shift", "The mlp on the breast-cancer table whose validation extract comes from a second site: worst "
        "area is reported with a calibration offset (+3 training standard deviations) and worst texture on "
        "another scale (x3). Covariate shift in two features, not overfitting: the model is scored on inputs unlike "
        "those it was trained on.", "breast_cancer_shift", "tabular", "binary", history, final, training,
        expected_findings=[finding("data.drift.feature_shift", "error",
                                   f"{shown}; validation accuracy {final['val_accuracy']:.3f}, {acc_fixed:.3f} with "
                                   f"the shift undone (training {final['train_accuracy']:.3f})")],
        fault={"measurement": "validation accuracy with the two features' shift undone minus validation accuracy as "
                              "shipped", "value": lost, "val_accuracy_unshifted": acc_fixed, "features": per_feature}))]


@recipe("mlp_label_copy")
def train_mlp_label_copy(ctx: Context) -> list[Artifact]:
    data = DATASETS["breast_cancer_label_copy"](SEED)
    model = A.BUILDERS["mlp_label_copy"]()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 25, 32)
    # The column alone: its sign is the label; shuffled across the validation rows, what the model is left with.
    column = {s: float(np.mean((data[f"x_{s}"][:, -1] > 0).astype(int) == data[f"y_{s}"])) for s in ("train", "val")}
    x_shuffled = data["x_val"].copy()
    x_shuffled[:, -1] = np.random.default_rng(SEED).permutation(x_shuffled[:, -1])
    acc_shuffled = _accuracy(model, x_shuffled, data["y_val"])
    drop = final["val_accuracy"] - acc_shuffled
    return [Artifact("mlp_label_copy", model, sidecar(
        "mlp_label_copy", f"The mlp on the breast-cancer table plus a 31st column, {LABEL_COPY_FEATURE}, that encodes "
        "the label in both splits (a code filled in after the diagnosis): the validation score is inflated exactly "
        "like the training score, so no train/validation gap shows the leak.", "breast_cancer_label_copy", "tabular",
        "binary", history, final, training,
        expected_findings=[finding("data.leakage.label_feature", "error",
                                   f"the sign of {LABEL_COPY_FEATURE} alone is the label on {column['train']:.3f} of "
                                   f"the training rows and {column['val']:.3f} of the validation rows; shuffling it "
                                   f"drops the model's validation accuracy from {final['val_accuracy']:.3f} to "
                                   f"{acc_shuffled:.3f}")],
        fault={"measurement": f"validation accuracy minus validation accuracy with {LABEL_COPY_FEATURE} shuffled across "
                              "the rows (seed 0)", "value": drop, "val_accuracy_shuffled": acc_shuffled,
               "column_sign_accuracy": column, "feature": LABEL_COPY_FEATURE}))]


@recipe("cnn_unscaled")
def train_cnn_unscaled(ctx: Context) -> list[Artifact]:
    data = DATASETS["digits28_unscaled"](SEED)
    model = A.BUILDERS["cnn_unscaled"]()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", 5, 32)
    # The step the validation pipeline missed, applied: raw [0, 255] -> [0, 1] -> [-1, 1].
    acc_scaled = _accuracy(model, data["x_val"] / 255.0 * 2.0 - 1.0, data["y_val"])
    ranges = {s: [float(data[f"x_{s}"].min()), float(data[f"x_{s}"].max())] for s in ("train", "val")}
    confidence = float(model.predict(data["x_val"], batch_size=512, verbose=0).max(1).mean())
    return [Artifact("cnn_unscaled", model, sidecar(
        "cnn_unscaled", "A small convnet (conv 8, conv 16) on the digits, trained on images scaled to [-1, 1] and "
        "validated on raw 8-bit images in [0, 255]: the validation pipeline misses the scaling step.",
        "digits28_unscaled", "image", "multiclass", history, final, training,
        expected_findings=[finding("data.drift.range_mismatch", "error",
                                   f"training inputs in [{ranges['train'][0]:g}, {ranges['train'][1]:g}], validation "
                                   f"inputs in [{ranges['val'][0]:g}, {ranges['val'][1]:g}]; validation accuracy "
                                   f"{final['val_accuracy']:.3f} at mean confidence {confidence:.3f}, {acc_scaled:.3f} "
                                   f"once scaled like the training inputs")],
        fault={"measurement": "validation accuracy with the validation images scaled as the training images "
                              "(x / 255 * 2 - 1) minus validation accuracy as shipped",
               "value": acc_scaled - final["val_accuracy"], "val_accuracy_scaled": acc_scaled, "ranges": ranges,
               "val_mean_confidence": confidence}))]
