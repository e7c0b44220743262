"""Twins whose fault lies in the predictions and the training run (issue 25): a network below a linear model,
a classifier that never predicts its rare class, and a diverged run. Imported at the bottom of :mod:`diagnostics_zoo.train`, whose
``recipe`` registry and helpers they use; ``python -m diagnostics_zoo.train mlp_underfit`` trains one.

Each recipe measures its raw fault with scikit-learn and numpy only (never through the analyzers), and
records it in the sidecar's ``fault`` beside the ``expected_findings`` that ``predictions.quality`` should
report.
"""

from __future__ import annotations

import keras
import numpy as np

from . import architectures as A
from .datasets import DATASETS, RARE_SHARE, RARE_SHIFT
from .train import SEED, Artifact, Context, finding, fit, recipe, sidecar


def logistic_regression_accuracy(data: dict, class_weight=None) -> tuple[float, np.ndarray]:
    """Validation accuracy and predictions of scikit-learn's logistic regression on the flattened inputs,
    standardised with the training split's statistics: the simple model a network should not fall far below."""
    from sklearn.linear_model import LogisticRegression

    xt = data["x_train"].reshape(len(data["x_train"]), -1).astype(np.float64)
    xv = data["x_val"].reshape(len(data["x_val"]), -1).astype(np.float64)
    mean, std = xt.mean(0), xt.std(0)
    std[std == 0] = 1.0
    model = LogisticRegression(max_iter=1000, class_weight=class_weight).fit((xt - mean) / std, data["y_train"])
    pred = model.predict((xv - mean) / std)
    return float(np.mean(pred == data["y_val"])), pred


@recipe("mlp_underfit")
def train_mlp_underfit(ctx: Context) -> list[Artifact]:
    data = DATASETS["digits28"](SEED)
    model = A.BUILDERS["mlp_underfit"]()
    # Ten epochs as the cnn: the 2-unit linear bottleneck, not the schedule, caps it (training accuracy stays
    # as low as validation accuracy: underfitting, not overfitting).
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", 10, 32)
    lr_acc, _ = logistic_regression_accuracy(data)
    gap = lr_acc - final["val_accuracy"]
    majority = float(np.mean(data["y_val"] == np.bincount(data["y_train"]).argmax()))
    return [Artifact("mlp_underfit", model, sidecar(
        "mlp_underfit", "A dense network on the flattened digits28 images whose 32 ReLU units feed a linear bottleneck "
        "of 2 units before the softmax over 10 classes: it underfits, far below logistic regression on the same "
        "pixels, yet far above the majority class, so no trivial-predictor check sees it.", "digits28", "image",
        "multiclass", history, final, training,
        expected_findings=[finding("predictions.quality.baseline_gap", "error",
                                   f"logistic regression on the standardised pixels reaches {lr_acc:.3f} on validation, "
                                   f"the network {final['val_accuracy']:.3f} (training {final['train_accuracy']:.3f}); "
                                   f"the majority class {majority:.3f}")],
        fault={"measurement": "validation accuracy of logistic regression (scikit-learn, L2, C=1, max_iter 1000) on the "
                              "flattened inputs standardised with the training statistics, minus the network's",
               "value": gap, "logistic_regression_val_accuracy": lr_acc, "majority_accuracy": majority}))]


@recipe("mlp_imbalance")
def train_mlp_imbalance(ctx: Context) -> list[Artifact]:
    data = DATASETS["imbalanced_table"](SEED)
    model = A.BUILDERS["mlp_imbalance"]()
    # The mlp's recipe, unweighted: at 97 / 3 the cross-entropy is lowest by predicting class 0 almost everywhere.
    # Ten epochs: it finds none of the 45 rare validation rows (4 predicted as class 1, all wrongly); after 25 it
    # has begun to memorise a few training rows of class 1 (1 of 45 found, 12 predicted).
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 10, 32)
    pred = (model.predict(data["x_val"], batch_size=512, verbose=0)[:, 0] >= 0.5).astype(int)
    rare = data["y_val"] == 1
    recall = float(np.mean(pred[rare] == 1))
    balanced = float((np.mean(pred[~rare] == 0) + recall) / 2)
    _, weighted = logistic_regression_accuracy(data, class_weight="balanced")
    weighted_recall = float(np.mean(weighted[rare] == 1))
    counts = np.bincount(data["y_train"])
    return [Artifact("mlp_imbalance", model, sidecar(
        "mlp_imbalance", f"The mlp on a 12-feature table whose class 1 is {RARE_SHARE:.0%} of each split (its first "
        f"three features shifted by {RARE_SHIFT}), trained without class weights: its accuracy equals always "
        "predicting class 0 and it all but never predicts class 1.", "imbalanced_table", "tabular", "binary", history,
        final, training,
        expected_findings=[finding("predictions.quality.minority_recall", "error",
                                   f"recall of class 1 {recall:.3f} ({int(np.sum(pred[rare]))} of {int(rare.sum())} "
                                   f"validation samples; {int(pred.sum())} predicted as class 1 in all), balanced "
                                   f"accuracy {balanced:.3f}, accuracy {final['val_accuracy']:.3f}")],
        fault={"measurement": "recall of the rare class (1) on the validation split at threshold 0.5",
               "value": recall, "predicted_rare": int(pred.sum()), "balanced_accuracy": balanced,
               "train_counts": [int(c) for c in counts],
               "weighted_logistic_regression_recall": weighted_recall}))]


@recipe("mlp_diverged")
def train_mlp_diverged(ctx: Context) -> list[Artifact]:
    import math

    data = DATASETS["breast_cancer"](SEED)
    model = A.BUILDERS["mlp_diverged"]()
    # The mlp's recipe at a learning rate 3,000 times its own: the first epoch's steps throw the weights far
    # out (training loss 2.5e3), and the run never recovers: the loss then sits flat near ln 2.
    history, final, training = fit(model, data, keras.optimizers.Adam(3.0), "binary_crossentropy", 10, 32)
    spike = history["loss"][0] / math.log(2)
    p = model.predict(data["x_val"], batch_size=512, verbose=0)[:, 0]
    majority = float(np.mean(data["y_val"] == np.bincount(data["y_train"]).argmax()))
    return [Artifact("mlp_diverged", model, sidecar(
        "mlp_diverged", "The mlp trained with Adam at learning rate 3.0: its training loss spikes to thousands in the "
        "first epoch and then stays flat near a uniform prediction's ln 2, the output barely depending on the input "
        "(a diverged run).", "breast_cancer", "tabular", "binary", history, final, training,
        expected_findings=[finding("health.overfitting.loss_spike", "error",
                                   f"training loss {history['loss'][0]:.4g} at epoch 1, {spike:.0f} times ln 2; "
                                   f"{history['loss'][-1]:.3f} at the last epoch; validation accuracy "
                                   f"{final['val_accuracy']:.3f} against the majority class's {majority:.3f}")],
        fault={"measurement": "the first epoch's training loss divided by ln 2 (a uniform prediction's binary "
                              "cross-entropy)", "value": spike, "first_epoch_loss": history["loss"][0],
               "final_loss": history["loss"][-1], "val_output_std": float(np.std(p)),
               "majority_accuracy": majority}))]
