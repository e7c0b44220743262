"""Retrain the zoo: ``python -m diagnostics_zoo.train [NAME ...] [--out DIR]``.

With no names the whole zoo is trained, in :data:`diagnostics_zoo.ZOO` order (the ``cnn`` before
the GAN entries, which are judged by it). Training is deterministic: every entry reseeds from
:data:`SEED` (so training one entry alone gives the same model as training the whole zoo), and the
TensorFlow backend runs with op determinism. Keras uses a GPU when one is present, but no GPU run
has been tried: the committed artifacts were trained on CPU, two CPU runs of the whole zoo gave
bit-identical weights, and a GPU run should be expected to differ in the last bits.

Each entry writes ``<name>.keras``, ``<name>.h5`` and ``<name>.meta.json`` (see :func:`sidecar`)
to ``--out`` (default: the package's ``artifacts/``), each through a temporary file and a rename,
so an interrupted run never leaves a half-written artifact behind.
"""

from __future__ import annotations

import os

# Before keras is first imported: TensorFlow is the backend the committed zoo was trained on.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from . import ARTIFACT_DIR, ZOO  # noqa: E402
from . import architectures as A  # noqa: E402
from . import measure as M  # noqa: E402
from .datasets import DATASETS  # noqa: E402

#: Split seed of every dataset and training seed of every entry.
SEED = 0
SCHEMA = 1
#: How many generated samples judge a GAN, and how confident the zoo ``cnn`` must be.
GAN_SAMPLES = 1000
GAN_CONFIDENCE = 0.9
#: Entries that must be trained under a given backend; a run on another backend trains them in a subprocess.
REQUIRED_BACKEND = {"mlp_logits": "torch"}
#: Where the mlp_nan twin's training data holds its one missing (NaN) value.
NAN_ROW, NAN_FEATURE = 17, 3


@dataclasses.dataclass
class Artifact:
    """One model to write: ``<stem>.keras``, ``<stem>.h5`` and ``<stem>.meta.json``."""

    stem: str
    model: Any
    meta: dict


RECIPES: dict[str, Callable[["Context"], list[Artifact]]] = {}


def recipe(name: str):
    """Register the training function of zoo entry ``name``."""

    def deco(fn):
        RECIPES[name] = fn
        return fn

    return deco


@dataclasses.dataclass
class Context:
    out: pathlib.Path
    verbose: bool = False

    def classifier(self):
        """The zoo ``cnn`` that judges generated digits: this run's if it wrote one, else the shipped one."""
        for directory in (self.out, ARTIFACT_DIR):
            path = directory / "cnn.keras"
            if path.exists():
                return keras.saving.load_model(path)
        raise FileNotFoundError(f"the GAN entries are judged by the zoo cnn, but no cnn.keras is in {self.out} or "
                                f"{ARTIFACT_DIR}; train it first: python -m diagnostics_zoo.train cnn")


# ---------------------------------------------------------------------------------------------
# Determinism, metadata, writing


def seed_everything(seed: int = SEED) -> None:
    """Reset Keras' global state and seed Python, numpy and the backend."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def _enable_op_determinism() -> None:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def training_device() -> str:
    """Where Keras trains under this backend: ``"GPU (<name>)"`` when one is visible, else ``"CPU"``."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"GPU ({gpus[0].name})" if gpus else "CPU"
    if backend == "torch":
        import torch

        return f"GPU ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU"
    return "unknown"


def _json_clean(value):
    """JSON has no NaN or infinity: a diverged loss is written as null."""
    if isinstance(value, dict):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def sidecar(name: str, description: str, dataset: str, model_kind: str, task: str, history: dict,
            final_metrics: dict, training: dict, expected_findings=(), fault: dict | None = None,
            ground_truth: str | None = None, companions: dict | None = None) -> dict:
    """The metadata written beside a model (schema 1). Non-finite numbers become null."""
    meta = {"schema": SCHEMA, "name": name, "description": description, "dataset": dataset, "split_seed": SEED,
            "model_kind": model_kind, "task": task, "history": history, "final_metrics": final_metrics,
            "expected_findings": list(expected_findings), "training": training,
            "backend": keras.backend.backend(), "device": training_device()}
    if fault is not None:
        meta["fault"] = fault
    if ground_truth is not None:
        meta["ground_truth"] = ground_truth
    if companions is not None:
        meta["companions"] = companions
    return _json_clean(meta)


def finding(code: str, severity: str, measured: str) -> dict:
    """An expected finding. ``severity`` is how the built-in analyzers grade the measured value with
    their default thresholds (checked with ``diagnose`` when the twin was trained)."""
    return {"code": code, "severity": severity, "measured": measured}


def write_artifact(art: Artifact, out: pathlib.Path) -> list[pathlib.Path]:
    """Write the three files of ``art`` atomically (temporary name in ``out``, then rename)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".keras", ".h5"):
        final = out / f"{art.stem}{suffix}"
        tmp = out / f".tmp-{os.getpid()}-{art.stem}{suffix}"
        try:
            art.model.save(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(final)
    final = out / f"{art.stem}.meta.json"
    tmp = out / f".tmp-{os.getpid()}-{art.stem}.meta.json"
    try:
        tmp.write_text(json.dumps(art.meta, sort_keys=True, indent=2) + "\n")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    written.append(final)
    return written


# ---------------------------------------------------------------------------------------------
# Shared training of the classifiers


def fit(model, data: dict, optimizer, loss, epochs: int, batch_size: int, x_train=None, y_train=None):
    """Compile ``model`` with accuracy, fit it on the dataset's training split with the validation
    split as validation data, and return (history, final_metrics, training)."""
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    x_train = data["x_train"] if x_train is None else x_train
    y_train = data["y_train"] if y_train is None else y_train
    h = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, shuffle=True,
                  validation_data=(data["x_val"], data["y_val"]), verbose=0)
    history = {k: [float(v) for v in vals] for k, vals in h.history.items()}
    final = {}
    for split, x, y in (("train", data["x_train"], data["y_train"]), ("val", data["x_val"], data["y_val"])):
        r = model.evaluate(x, y, batch_size=512, verbose=0, return_dict=True)
        final[f"{split}_loss"] = float(r["loss"])
        final[f"{split}_accuracy"] = float(r["accuracy"])
    lr = optimizer.get_config()["learning_rate"]  # a float, or a schedule's config (not its final value)
    training = {"optimizer": type(optimizer).__name__,
                "learning_rate": float(lr) if isinstance(lr, (int, float)) else lr,
                "epochs": epochs, "batch_size": batch_size, "train_samples": int(len(x_train))}
    return history, final, training


def cosine(lr: float, n_train: int, batch_size: int, epochs: int):
    return keras.optimizers.schedules.CosineDecay(lr, decay_steps=math.ceil(n_train / batch_size) * epochs)


def shifted_copies(x: np.ndarray, copies: int, max_shift: int, seed: int) -> np.ndarray:
    """``x`` followed by ``copies`` copies, each image rolled by up to ``max_shift`` pixels in x and y."""
    rng = np.random.default_rng(seed)
    out = [x]
    for _ in range(copies):
        dy = rng.integers(-max_shift, max_shift + 1, len(x))
        dx = rng.integers(-max_shift, max_shift + 1, len(x))
        out.append(np.stack([np.roll(img, (a, b), axis=(0, 1)) for img, a, b in zip(x, dy, dx)]))
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------
# Healthy models

CNN_DESCRIPTION = ("Classic Keras MNIST convnet (conv 32, pool, conv 64, pool, conv 64, dense 64, softmax 10) on "
                   "scikit-learn's 8x8 digits upsampled to 28x28x1.")


def fit_shifted_digits(build: Callable[[], Any], lr: float, epochs: int, bs: int = 32):
    """Build a digits classifier with ``build`` and fit it as the cnn is: the 1,347 training digits and two copies
    shifted by up to 2 px (the only augmentation; it lifts the cnn's held-out accuracy from ~0.965 to the 0.97
    target), Adam on a cosine schedule from ``lr``. Returns (model, history, final_metrics, training)."""
    data = DATASETS["digits28"](SEED)
    x = shifted_copies(data["x_train"], copies=2, max_shift=2, seed=SEED)
    y = np.tile(data["y_train"], 3)
    model = build()
    history, final, training = fit(model, data, keras.optimizers.Adam(cosine(lr, len(x), bs, epochs)),
                                   "sparse_categorical_crossentropy", epochs, bs, x_train=x, y_train=y)
    training["augmentation"] = "2 copies shifted by up to 2 px"
    return model, history, final, training


@recipe("cnn")
def train_cnn(ctx: Context) -> list[Artifact]:
    model, history, final, training = fit_shifted_digits(A.build_cnn, 1e-3, epochs=10)
    return [Artifact("cnn", model, sidecar("cnn", CNN_DESCRIPTION, "digits28", "image", "multiclass",
                                           history, final, training))]


@recipe("mlp")
def train_mlp(ctx: Context) -> list[Artifact]:
    data = DATASETS["breast_cancer"](SEED)
    model = A.build_mlp()
    # 25 epochs: the validation loss bottoms out around epoch 22 and creeps up after (checked on a 60-epoch run).
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 25, 32)
    return [Artifact("mlp", model, sidecar(
        "mlp", "Dense 32-16 ReLU network with a sigmoid output on scikit-learn's breast-cancer table "
        "(standardised; label 1 = benign).", "breast_cancer", "tabular", "binary", history, final, training))]


@recipe("lstm")
def train_lstm(ctx: Context) -> list[Artifact]:
    data = DATASETS["motif_sequences"](SEED)
    model = A.build_lstm()
    # 20 epochs although held-out accuracy reaches 1.0 by epoch 4: with a 10-epoch cosine schedule the
    # validation loss bottoms out at epoch 3 and creeps up (an early-stopping warning on a healthy model).
    epochs, bs = 20, 32
    history, final, training = fit(model, data, keras.optimizers.Adam(cosine(3e-3, len(data["x_train"]), bs, epochs)),
                                   "sparse_categorical_crossentropy", epochs, bs)
    return [Artifact("lstm", model, sidecar(
        "lstm", "Two stacked LSTMs (32 units) classifying 50x4 noise sequences by which of three 6-step motifs "
        "is planted at a random position; mask_val marks the motif's steps.", "motif_sequences", "sequence",
        "multiclass", history, final, training, ground_truth="mask_val"))]


@recipe("transformer")
def train_transformer(ctx: Context) -> list[Artifact]:
    data = DATASETS["polarity_tokens"](SEED)
    model = A.build_transformer()
    epochs, bs = 6, 32  # held-out accuracy is 1.0 from the first epoch
    history, final, training = fit(model, data, keras.optimizers.Adam(cosine(2e-3, len(data["x_train"]), bs, epochs)),
                                   "binary_crossentropy", epochs, bs)
    return [Artifact("transformer", model, sidecar(
        "transformer", "Positional embedding and one self-attention encoder block over 24 tokens (vocabulary 30); "
        "the label is the polarity of three planted tokens; mask_val marks their positions.", "polarity_tokens",
        "token", "binary", history, final, training, ground_truth="mask_val"))]


def train_gan(ctx: Context, name: str, description: str, epochs: int, g_lr: float, d_lr: float,
              g_steps: int = 1, batch_size: int = 64, d_frozen_after: int | None = None, expected_findings=(),
              fault_fn=None) -> list[Artifact]:
    """Alternate discriminator and generator updates (Goodfellow et al., 2014, non-saturating loss)
    with ``train_on_batch`` on two compiled models, so no backend-specific gradient code is needed:
    the discriminator is frozen while the stacked model trains the generator, and unfrozen for its own step.

    From epoch ``d_frozen_after`` on (if given) the discriminator is no longer updated, only evaluated."""
    data = DATASETS["digits28"](SEED)
    x_real = data["x_train"]
    g = A.build_generator(name=name)
    d = A.build_discriminator(name=f"{name}_discriminator")
    d.compile(optimizer=keras.optimizers.Adam(d_lr, beta_1=0.5), loss="binary_crossentropy", metrics=["accuracy"])
    z_in = keras.Input((A.LATENT_DIM,), name="latent")
    stacked = keras.Model(z_in, d(g(z_in)), name=f"{name}_stacked")
    d.trainable = False
    stacked.compile(optimizer=keras.optimizers.Adam(g_lr, beta_1=0.5), loss="binary_crossentropy")
    rng = np.random.default_rng(SEED)
    half = batch_size // 2
    ones, zeros = np.ones((half, 1), np.float32), np.zeros((half, 1), np.float32)
    history = {"d_loss": [], "g_loss": []}
    for epoch in range(epochs):
        order = rng.permutation(len(x_real))
        d_losses, g_losses = [], []
        for start in range(0, len(order) - half + 1, half):
            real = x_real[order[start:start + half]]
            z = rng.standard_normal((half, A.LATENT_DIM)).astype(np.float32)
            # Training mode, as in the stacked model's step: with BatchNormalization, inference-mode
            # fakes early on differ from the ones the generator is trained with, and the
            # discriminator would learn to reject the wrong images.
            fake = keras.ops.convert_to_numpy(g(z, training=True))
            if d_frozen_after is not None and epoch >= d_frozen_after:
                d_out = d.test_on_batch(np.concatenate([real, fake]), np.concatenate([ones, zeros]))
            else:
                d.trainable = True
                d_out = d.train_on_batch(np.concatenate([real, fake]), np.concatenate([ones, zeros]))
                d.trainable = False
            d_losses.append(float(np.ravel(d_out)[0]))
            for _ in range(g_steps):
                z = rng.standard_normal((batch_size, A.LATENT_DIM)).astype(np.float32)
                g_losses.append(float(np.ravel(stacked.train_on_batch(z, np.ones((batch_size, 1), np.float32)))[0]))
        history["d_loss"].append(float(np.mean(d_losses)))
        history["g_loss"].append(float(np.mean(g_losses)))
        if ctx.verbose:
            print(f"    epoch {epoch + 1}/{epochs} d_loss {history['d_loss'][-1]:.3f} "
                  f"g_loss {history['g_loss'][-1]:.3f}", flush=True)
    d.trainable = True

    judged = M.generated_classes(g, ctx.classifier(), n=GAN_SAMPLES, seed=SEED, confidence=GAN_CONFIDENCE)
    z = np.random.default_rng(SEED + 1).standard_normal((len(data["x_val"]), A.LATENT_DIM)).astype(np.float32)
    d_real = d.predict(data["x_val"], batch_size=512, verbose=0).ravel()
    d_fake = d.predict(g.predict(z, batch_size=512, verbose=0), batch_size=512, verbose=0).ravel()
    final = {**judged, "samples": GAN_SAMPLES, "confidence": GAN_CONFIDENCE, "judge": "cnn.keras",
             "d_loss": history["d_loss"][-1], "g_loss": history["g_loss"][-1],
             "d_real_accuracy_val": float(np.mean(d_real >= 0.5)), "d_fake_accuracy": float(np.mean(d_fake < 0.5))}
    training = {"optimizer": "Adam(beta_1=0.5)", "generator_learning_rate": g_lr,
                "discriminator_learning_rate": d_lr, "generator_steps_per_discriminator_step": g_steps,
                "epochs": epochs, "batch_size": batch_size, "discriminator_frozen_after_epoch": d_frozen_after,
                "latent_dim": A.LATENT_DIM, "latent_distribution": "normal(0, 1)"}
    fault = fault_fn(judged) if fault_fn else None
    gen_meta = sidecar(name, description, "digits28", "generator", "generation", history, final, training,
                       expected_findings=expected_findings, fault=fault,
                       companions={"discriminator": f"{name}_discriminator.keras", "classifier": "cnn.keras"})
    d_final = {k: final[k] for k in ("d_loss", "d_real_accuracy_val", "d_fake_accuracy")}
    d_meta = sidecar(f"{name}_discriminator", f"The discriminator trained with the {name} generator: probability "
                     "that a 28x28 digit is real.", f"{name}_real_fake", "image", "binary", history, d_final, training,
                     companions={"generator": f"{name}.keras"})
    return [Artifact(name, g, gen_meta), Artifact(f"{name}_discriminator", d, d_meta)]


@recipe("gan")
def train_gan_healthy(ctx: Context) -> list[Artifact]:
    return train_gan(ctx, "gan", "DCGAN generator (latent 32 -> 28x28x1) trained on the digits28 training split; "
                     "its discriminator is gan_discriminator. Judged by the zoo cnn: classes covered among 1,000 "
                     "samples classified with confidence >= 0.9.", epochs=20, g_lr=2e-4, d_lr=2e-4)


# ---------------------------------------------------------------------------------------------
# Planted-fault twins


@recipe("cnn_overfit")
def train_cnn_overfit(ctx: Context) -> list[Artifact]:
    data = DATASETS["digits28_small"](SEED)
    model = A.build_cnn_overfit()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", 40, 16)
    gap = final["train_accuracy"] - final["val_accuracy"]
    return [Artifact("cnn_overfit", model, sidecar(
        "cnn_overfit", "The cnn with a 128-unit dense layer, no regularisation, trained for 40 epochs on only 50 "
        "digits (digits28_small: 5 per class): it memorises the training set.", "digits28_small", "image",
        "multiclass", history, final, training,
        expected_findings=[finding("overfitting.gap", "error",
                                   f"train accuracy {final['train_accuracy']:.3f}, validation accuracy "
                                   f"{final['val_accuracy']:.3f}, gap {gap:.3f}")],
        fault={"measurement": "train accuracy minus validation accuracy", "value": gap}))]


@recipe("cnn_dead_relu")
def train_cnn_dead_relu(ctx: Context) -> list[Artifact]:
    data = DATASETS["digits28"](SEED)
    model = A.build_cnn_dead_relu()
    history, final, training = fit(model, data, keras.optimizers.Adam(0.015), "sparse_categorical_crossentropy", 10, 64)
    acts = M.layer_outputs(model, data["x_val"], ["conv1", "conv2", "conv3", "dense"])
    dead = {k: M.dead_unit_fraction(v) for k, v in acts.items()}
    worst = max(dead, key=dead.get)
    return [Artifact("cnn_dead_relu", model, sidecar(
        "cnn_dead_relu", "The cnn trained with Adam at learning rate 0.015 (15x the usual 1e-3): early large "
        "updates push most ReLU units below zero for every input, where they get no gradient and stay dead.",
        "digits28", "image", "multiclass", history, final, training,
        expected_findings=[finding("units.dead", "error",
                                   f"{dead[worst]:.0%} of {worst}'s ReLU units never activate on the validation set "
                                   "(" + ", ".join(f"{k} {v:.0%}" for k, v in dead.items()) + ")")],
        fault={"measurement": "fraction of ReLU units (channels) with output <= 0 on every validation sample, per layer",
               "value": dead}))]


def _first_last_ratio(model, data) -> tuple[float, dict]:
    loss = keras.losses.BinaryCrossentropy()
    norms = M.kernel_gradient_norms(model, data["x_val"], data["y_val"].reshape(-1, 1).astype(np.float32), loss)
    names = list(norms)
    return norms[names[0]] / norms[names[-1]], norms


@recipe("mlp_vanishing")
def train_mlp_vanishing(ctx: Context) -> list[Artifact]:
    data = DATASETS["breast_cancer"](SEED)
    model = A.build_mlp_vanishing()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 20, 32)
    ratio, norms = _first_last_ratio(model, data)
    return [Artifact("mlp_vanishing", model, sidecar(
        "mlp_vanishing", "Twelve 16-unit sigmoid layers without normalisation or skip connections on the "
        "breast-cancer table: the gradient reaching the first layers is orders of magnitude smaller than the "
        "last layer's, so they barely learn.", "breast_cancer", "tabular", "binary", history, final, training,
        expected_findings=[finding("gradients.vanishing", "error",
                                   f"first/last layer kernel gradient-norm ratio {ratio:.1e}")],
        fault={"measurement": "L2 norm of the validation-loss gradient w.r.t. the first dense kernel divided by "
                              "that of the output kernel", "value": ratio, "kernel_gradient_norms": norms}))]


@recipe("mlp_saturated")
def train_mlp_saturated(ctx: Context) -> list[Artifact]:
    data = DATASETS["breast_cancer"](SEED)
    model = A.build_mlp_saturated()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 30, 32)
    acts = M.layer_outputs(model, data["x_val"], ["dense1", "dense2"])
    sat = {k: M.saturated_fraction(v) for k, v in acts.items()}
    return [Artifact("mlp_saturated", model, sidecar(
        "mlp_saturated", "Two 64-unit tanh layers initialised with normal(std 2.0) weights, about 15x too large: "
        "most pre-activations sit on tanh's flat tails, where the gradient is ~0.", "breast_cancer", "tabular",
        "binary", history, final, training,
        expected_findings=[finding("units.saturated", "error",
                                   ", ".join(f"{k}: {v:.0%} of outputs have |tanh| >= 0.99" for k, v in sat.items()))],
        fault={"measurement": "fraction of validation (sample, unit) tanh outputs with |a| >= 0.99, per layer",
               "value": sat}))]


@recipe("mlp_logits")
def train_mlp_logits(ctx: Context) -> list[Artifact]:
    # Trained under torch (see REQUIRED_BACKEND): TensorFlow's cross-entropy quietly recovers the
    # logits from a Softmax op and so hides this bug; torch and JAX apply softmax twice, as written.
    data = DATASETS["breast_cancer"](SEED)
    model = A.build_mlp_logits()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3),
                                   keras.losses.SparseCategoricalCrossentropy(from_logits=True), 25, 64)
    training["backend_note"] = "trained under the torch backend, where from_logits=True is applied as written"
    probs = model.predict(data["x_train"], batch_size=512, verbose=0)
    true_ce = float(-np.mean(np.log(np.clip(probs[np.arange(len(probs)), data["y_train"]], 1e-7, 1.0))))
    floor = math.log1p(math.exp(-1.0))
    return [Artifact("mlp_logits", model, sidecar(
        "mlp_logits", "The mlp with a 2-unit softmax output, compiled with SparseCategoricalCrossentropy("
        "from_logits=True): the loss applies a second softmax to probabilities, so it can never fall below "
        "log(1 + e^-1) = 0.313 and its gradients are damped. Trained under torch, which applies the loss as "
        "written (TensorFlow silently undoes this mistake). Saved with its compile config.", "breast_cancer",
        "tabular", "binary", history, final, training,
        expected_findings=[finding("architecture.softmax_logits_loss", "error",
                                   f"softmax output compiled with from_logits=True; train loss {final['train_loss']:.3f} "
                                   f"(floor {floor:.3f}) vs cross-entropy of the probabilities {true_ce:.3f}")],
        fault={"measurement": "compiled (from_logits=True) train loss, whose floor is log(1+e^-1)",
               "value": final["train_loss"], "floor": floor, "probability_cross_entropy": true_ce}))]


@recipe("mlp_nan")
def train_mlp_nan(ctx: Context) -> list[Artifact]:
    data = DATASETS["breast_cancer"](SEED)
    model = A.BUILDERS["mlp_nan"]()
    # One missing measurement, encoded as NaN and never imputed. The batch holding it makes the
    # gradient of the first layer's weights for that feature NaN; from then on those weights are
    # NaN. TensorFlow's fused MatMul+ReLU graph kernels turn the NaN pre-activations into 0, so the
    # loss stays finite and nothing warns (torch, which keeps NaN through ReLU, predicts NaN).
    x = data["x_train"].copy()
    x[NAN_ROW, NAN_FEATURE] = np.nan
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 5, 32,
                                   x_train=x)
    training["data_fault"] = f"x_train[{NAN_ROW}, {NAN_FEATURE}] set to NaN"
    bad, total = M.nonfinite_weight_count(model)
    nan_layers = [w.path for w in model.weights if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]
    return [Artifact("mlp_nan", model, sidecar(
        "mlp_nan", "The mlp trained on the breast-cancer table with one training value missing (NaN, not "
        "imputed): the first-layer weights of that feature became NaN in the first epoch. TensorFlow's fused "
        "ReLU kernels map the resulting NaN activations to 0, so the loss stayed finite while the model fell back "
        "to predicting the majority class, and it was saved anyway. Under torch the same file predicts NaN.", "breast_cancer", "tabular", "binary", history, final, training,
        expected_findings=[finding("weights.nonfinite", "error",
                                   f"{bad} of {total} weight values are NaN (in {', '.join(nan_layers)})")],
        fault={"measurement": "number of non-finite weight values", "value": bad, "total": total,
               "variables": nan_layers}))]


@recipe("lstm_exploding")
def train_lstm_exploding(ctx: Context) -> list[Artifact]:
    data = DATASETS["motif_sequences"](SEED)
    model = A.build_lstm_exploding()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", 2, 64)
    norm = M.global_gradient_norm(model, data["x_val"][:128], data["y_val"][:128],
                                  keras.losses.SparseCategoricalCrossentropy())
    return [Artifact("lstm_exploding", model, sidecar(
        "lstm_exploding", "An LSTM with ReLU cell activation and a normal(std 0.5) recurrent kernel, trained with "
        "Adam at learning rate 0.01 and no gradient clipping: its state and gradients grow geometrically over the "
        "50 steps.", "motif_sequences", "sequence", "multiclass", history, final, training,
        ground_truth="mask_val",
        expected_findings=[finding("gradients.exploding", "error",
                                   f"global gradient norm {norm:.3g} on 128 validation sequences")],
        fault={"measurement": "L2 norm of the loss gradient over all weights, first 128 validation sequences",
               "value": norm}))]


def _collapse_fault(judged: dict) -> dict:
    return {"measurement": "share of the two most frequent classes (the zoo cnn's argmax) among 1,000 generated "
                           "samples", "value": judged["top2_share"], "argmax_histogram": judged["argmax_histogram"],
            "classes_covered": judged["classes_covered"], "class_histogram": judged["class_histogram"]}


@recipe("gan_collapsed")
def train_gan_collapsed(ctx: Context) -> list[Artifact]:
    # The discriminator stops learning halfway (as when its learning-rate schedule reaches zero or its
    # trainable flag is left off) while the generator keeps going at a 5x learning rate: against a
    # fixed critic the generator converges on the one kind of image that critic scores highest.
    arts = train_gan(ctx, "gan_collapsed", "The gan's recipe, except that the discriminator stops learning "
                     "after 8 of 16 epochs while the generator trains on at a 5x learning rate: chasing a fixed "
                     "critic, the generator collapses onto one or two digits.", epochs=16, g_lr=1e-3, d_lr=2e-4,
                     d_frozen_after=8, fault_fn=_collapse_fault)
    judged = arts[0].meta["fault"]
    arts[0].meta["expected_findings"] = [finding(
        "gan.mode_collapse", "error", f"the two most frequent classes hold {judged['value']:.0%} of 1,000 "
        f"generated samples (cnn argmax histogram {judged['argmax_histogram']})")]
    arts[1].meta.update(discriminator_fault(arts[1].meta["final_metrics"]))
    return arts


def discriminator_fault(final: dict) -> dict:
    """The collapsed GAN's discriminator is a twin too: frozen while the generator learned to fool it, it
    scores real and generated digits the wrong way round, below a constant guess on its real/fake data."""
    real, fake = final["d_real_accuracy_val"], final["d_fake_accuracy"]
    return {"expected_findings": [finding(
                "performance.chance_level", "error", f"calls {real:.1%} of real validation digits real and {fake:.1%} "
                f"of generated digits fake (a constant guess gets about 50% of its real/fake data)")],
            "fault": {"measurement": "accuracy on real validation digits and on generated digits, frozen after "
                                     "epoch 8 while the generator trained on", "value": (real + fake) / 2,
                      "d_real_accuracy_val": real, "d_fake_accuracy": fake}}


@recipe("mlp_regression")
def train_mlp_regression(ctx: Context) -> list[Artifact]:
    data = DATASETS["diabetes"](SEED)
    model = A.build_mlp_regression()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error", metrics=["mean_absolute_error"])
    # 16 epochs: the validation loss is lowest at epoch 16 and creeps up after (checked on a 60-epoch run,
    # whose 44 epochs past the best drew an early-stopping warning on what should be a clean model).
    epochs, bs = 16, 32
    h = model.fit(data["x_train"], data["y_train"], epochs=epochs, batch_size=bs, shuffle=True,
                  validation_data=(data["x_val"], data["y_val"]), verbose=0)
    history = {k: [float(v) for v in vals] for k, vals in h.history.items()}
    final = {}
    for split in ("train", "val"):
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        pred = model.predict(x, batch_size=512, verbose=0).ravel()
        final[f"{split}_loss"] = float(np.mean((pred - y) ** 2))
        final[f"{split}_mae"] = float(np.mean(np.abs(pred - y)))
        final[f"{split}_r2"] = float(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))
    training = {"optimizer": "Adam", "learning_rate": 1e-3, "epochs": epochs, "batch_size": bs,
                "train_samples": int(len(data["x_train"]))}
    return [Artifact("mlp_regression", model, sidecar(
        "mlp_regression", "Dense 32-16 ReLU network with one linear output, trained with mean squared error on "
        "scikit-learn's diabetes table (features and target standardised with the training split's statistics).",
        "diabetes", "tabular", "regression", history, final, training))]


# ---------------------------------------------------------------------------------------------
# Twins of the temporal-gradient, baseline and shortcut checks (issue 12)


@recipe("rnn_vanishing")
def train_rnn_vanishing(ctx: Context) -> list[Artifact]:
    data = DATASETS["early_signal_sequences"](SEED)
    model = A.build_rnn_vanishing()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 5, 64)
    grads = M.input_gradients(model, data["x_val"][:256], data["y_val"][:256, None].astype(np.float32),
                              keras.losses.BinaryCrossentropy(reduction="none"))
    ratio, profile = M.early_late_ratio(grads)
    return [Artifact("rnn_vanishing", model, sidecar(
        "rnn_vanishing", "Three stacked 16-unit SimpleRNN layers (tanh) over 120-step sequences whose label is the "
        "sign of the first five steps: the loss gradient reaching those steps is ~1e-8 of the last steps', so the "
        "model never learns the task and its validation loss stays at ln 2.", "early_signal_sequences", "sequence",
        "binary", history, final, training, ground_truth="mask_val",
        expected_findings=[finding("gradients.vanishing_through_time", "error",
                                   f"input-gradient norm of the first 12 steps / last 12 steps {ratio:.1e}; "
                                   f"validation loss {final['val_loss']:.3f} (ln 2 = 0.693)")],
        fault={"measurement": "mean L2 norm (over channels) of the per-sample loss gradient w.r.t. the input at the "
                              "first 10% of the steps divided by that at the last 10%, first 256 validation sequences",
               "value": ratio, "profile_every_10_steps": [float(v) for v in profile[::10]]}))]


def _baseline_numbers(y_train, y_val, probs_val) -> dict:
    prior = np.bincount(y_train, minlength=probs_val.shape[1]) / len(y_train)
    majority = int(prior.argmax())
    p = np.clip(probs_val[np.arange(len(y_val)), y_val], 1e-7, 1.0)
    return {"val_accuracy": float(np.mean(probs_val.argmax(1) == y_val)),
            "majority_class": majority, "majority_accuracy": float(np.mean(y_val == majority)),
            "val_cross_entropy": float(-np.mean(np.log(p))),
            "prior_cross_entropy": float(-np.mean(np.log(prior[y_val])))}


@recipe("mlp_chance")
def train_mlp_chance(ctx: Context) -> list[Artifact]:
    data = DATASETS["breast_cancer"](SEED)
    model = A.BUILDERS["mlp_chance"]()
    # The training labels are shuffled against the rows (a misaligned join in the input pipeline): the
    # features say nothing about them, and the model can only learn the label prior (and noise).
    y_shuffled = np.random.default_rng(SEED).permutation(data["y_train"])
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 25, 32,
                                   y_train=y_shuffled)
    training["data_fault"] = "y_train permuted against x_train (seed 0)"
    p1 = model.predict(data["x_val"], batch_size=512, verbose=0).reshape(-1)
    base = _baseline_numbers(data["y_train"], data["y_val"], np.stack([1 - p1, p1], axis=1))
    return [Artifact("mlp_chance", model, sidecar(
        "mlp_chance", "The mlp trained on the breast-cancer table with its training labels shuffled against the rows "
        "(a misaligned join): it learnt nothing the features say, and is no better than predicting the majority "
        "class.", "breast_cancer", "tabular", "binary", history, final, training,
        expected_findings=[finding("performance.chance_level", "error",
                                   f"validation accuracy {base['val_accuracy']:.3f} vs majority class "
                                   f"{base['majority_accuracy']:.3f}; cross-entropy {base['val_cross_entropy']:.3f} vs "
                                   f"the label prior's {base['prior_cross_entropy']:.3f}")],
        fault={"measurement": "validation accuracy minus the accuracy of always predicting the training split's "
                              "majority class", "value": base["val_accuracy"] - base["majority_accuracy"], **base}))]


@recipe("cnn_shortcut")
def train_cnn_shortcut(ctx: Context) -> list[Artifact]:
    from .datasets import MARK_COLS, MARK_ROWS, plant_mark

    data = DATASETS["digits28_marked"](SEED)
    model = A.build_cnn_small()
    # Three epochs: the mark is learnt in the first, the digits only partly by the third.
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", 3, 32)
    unmarked = plant_mark(data["x_train"], data["y_train"], False)
    acc_unmarked = float(np.mean(model.predict(unmarked, batch_size=512, verbose=0).argmax(1) == data["y_train"]))
    drop = final["train_accuracy"] - acc_unmarked
    box = [MARK_ROWS[0], MARK_COLS[0], MARK_ROWS[1] - 1, MARK_COLS[1] - 1]
    return [Artifact("cnn_shortcut", model, sidecar(
        "cnn_shortcut", "A small convnet (conv 8, conv 16) telling digits >= 5 from digits < 5, trained on images where "
        "every class-1 training digit carries a white 4x4 mark in the top-left corner (validation images carry none): "
        "a Clever-Hans model that reads the mark, not the digit.", "digits28_marked", "image", "binary", history, final,
        training,
        expected_findings=[finding("explain.shortcut", "error",
                                   f"erasing the mark (rows {MARK_ROWS[0]}-{MARK_ROWS[1] - 1}, columns "
                                   f"{MARK_COLS[0]}-{MARK_COLS[1] - 1}) drops training accuracy from "
                                   f"{final['train_accuracy']:.3f} to {acc_unmarked:.3f}; validation accuracy "
                                   f"{final['val_accuracy']:.3f}")],
        fault={"measurement": "training accuracy minus training accuracy with the mark region erased",
               "value": drop, "train_accuracy_unmarked": acc_unmarked,
               "mark_box": {"top": box[0], "left": box[1], "bottom": box[2], "right": box[3]}}))]


@recipe("mlp_leak")
def train_mlp_leak(ctx: Context) -> list[Artifact]:
    from .datasets import LEAK_FEATURE

    data = DATASETS["breast_cancer_leak"](SEED)
    model = A.BUILDERS["mlp_leak"]()
    history, final, training = fit(model, data, keras.optimizers.Adam(1e-3), "binary_crossentropy", 25, 32)
    # Permutation importance of the leaked column on each split (Breiman 2001): shuffling it across the
    # training rows breaks what the model learnt; on the validation rows it was never informative.
    rng = np.random.default_rng(SEED)

    def permuted_accuracy(x, y):
        x = x.copy()
        x[:, -1] = rng.permutation(x[:, -1])
        return float(np.mean((model.predict(x, batch_size=512, verbose=0)[:, 0] >= 0.5) == y))

    acc_train_perm = permuted_accuracy(data["x_train"], data["y_train"])
    acc_val_perm = permuted_accuracy(data["x_val"], data["y_val"])
    drop = final["train_accuracy"] - acc_train_perm
    return [Artifact("mlp_leak", model, sidecar(
        "mlp_leak", f"The mlp on the breast-cancer table plus a 31st column, {LEAK_FEATURE}, that equals the label in "
        "the training split and is unrelated to it in the validation split (a target leak): the model reads the "
        "leaked column.", "breast_cancer_leak", "tabular", "binary", history, final, training,
        expected_findings=[finding("explain.shortcut", "error",
                                   f"shuffling {LEAK_FEATURE} across rows drops training accuracy from "
                                   f"{final['train_accuracy']:.3f} to {acc_train_perm:.3f}; validation accuracy "
                                   f"{final['val_accuracy']:.3f} ({acc_val_perm:.3f} shuffled)")],
        fault={"measurement": f"training accuracy minus training accuracy with {LEAK_FEATURE} shuffled across rows "
                              "(seed 0)", "value": drop, "train_accuracy_permuted": acc_train_perm,
               "val_accuracy_permuted": acc_val_perm, "feature": LEAK_FEATURE}))]


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diagnostics_zoo.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"entries to train (default: all): {', '.join(ZOO)}")
    parser.add_argument("--out", type=pathlib.Path, default=ARTIFACT_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print per-epoch progress of the GANs")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown zoo entries {unknown}; known: {', '.join(ZOO)}")
    names = [n for n in ZOO if n in args.names] if args.names else list(ZOO)
    _enable_op_determinism()
    ctx = Context(out=args.out, verbose=args.verbose)
    print(f"training {len(names)} zoo entries on {keras.backend.backend()} ({training_device()}) -> {args.out}", flush=True)
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        required = REQUIRED_BACKEND.get(name, keras.backend.backend())
        if required != keras.backend.backend():
            print(f"    {name} trains under the {required} backend: running it in a subprocess", flush=True)
            subprocess.run([sys.executable, "-m", "diagnostics_zoo.train", name, "--out", str(args.out)],
                           env={**os.environ, "KERAS_BACKEND": required}, check=True)
            print(f"    {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
            continue
        seed_everything(SEED)
        for art in RECIPES[name](ctx):
            write_artifact(art, args.out)
            fm = art.meta["final_metrics"]
            shown = {k: v for k, v in fm.items() if k in ("train_accuracy", "val_accuracy", "classes_covered")}
            fault = art.meta.get("fault", {}).get("value")
            print(f"    wrote {art.stem}: {shown}" + (f" fault={fault}" if fault is not None else ""), flush=True)
        print(f"    {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"trained {len(names)} entries in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


# Run as `python -m diagnostics_zoo.train`, this module is __main__: the twin modules imported below import it
# as diagnostics_zoo.train, which must be this very module (one RECIPES), not a second copy of it.
if __name__ == "__main__":
    sys.modules.setdefault(f"{__package__}.train", sys.modules[__name__])
from . import train_prediction_faults  # noqa: E402,F401  (issue 25: mlp_underfit, mlp_imbalance)
from . import train_data_faults  # noqa: E402,F401  (issue 25: mlp_shift, mlp_label_copy, cnn_unscaled)
from . import train_architectures  # noqa: E402,F401  (issue 25: conv_gru, resnet)

assert set(RECIPES) == set(ZOO), f"recipes {sorted(RECIPES)} and ZOO {sorted(ZOO)} disagree"

if __name__ == "__main__":
    sys.exit(main())
