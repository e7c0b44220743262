"""Checkpoints of one training run, for ``diagnose sweep``: ``python -m diagnostics_zoo.checkpoints``.

A small convnet (about 14k parameters, so each checkpoint is ~90 kB) trained like the ``cnn_overfit``
twin: no regularisation, 40 epochs on the 50 training digits of ``digits28_small``, where the gap
between training and validation accuracy opens as it memorises them. It saves a checkpoint at a
few epochs, named as Keras' ``ModelCheckpoint`` names them with
``filepath="cnn_overfit_small.{epoch:02d}-{val_loss:.2f}.keras"``, each with a sidecar (dataset,
epoch, optimizer step, the history so far) so a sweep can diagnose it with data.

Written to ``artifacts/checkpoints/cnn_overfit/`` (a folder of its own: the zoo's artifacts are not
touched), each file through a temporary name and a rename. Deterministic, as the zoo's training.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402

from . import ARTIFACT_DIR  # noqa: E402
from .datasets import DATASETS  # noqa: E402

NAME = "cnn_overfit_small"
OUT = ARTIFACT_DIR / "checkpoints" / "cnn_overfit"
#: The epochs (1-based, as ModelCheckpoint counts them) at which a checkpoint is saved.
EPOCHS_SAVED = (1, 3, 6, 10, 16, 25, 40)
EPOCHS = 40
BATCH_SIZE = 16
FILEPATH = NAME + ".{epoch:02d}-{val_loss:.2f}.keras"


def build(name: str = NAME):
    """Two small conv blocks and a 32-unit dense layer; Glorot initialisation, no regularisation."""
    layers = keras.layers
    inputs = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="dense")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


class SaveAt(keras.callbacks.Callback):
    """``ModelCheckpoint``'s file naming, but only at :data:`EPOCHS_SAVED` (the shipped run stays small)."""

    def __init__(self, out: pathlib.Path, steps_per_epoch: int, dataset: str):
        super().__init__()
        self.out, self.steps_per_epoch, self.dataset = out, steps_per_epoch, dataset
        self.history: dict[str, list[float]] = {}
        self.written: list[pathlib.Path] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))
        number = epoch + 1
        if number not in EPOCHS_SAVED:
            return
        path = self.out / FILEPATH.format(epoch=number, **logs)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        try:
            self.model.save(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {"schema": 1, "name": path.name, "dataset": self.dataset, "split_seed": 0, "model_kind": "image",
                "task": "multiclass", "epoch": number, "step": number * self.steps_per_epoch,
                "history": {k: list(v) for k, v in self.history.items()}, "backend": keras.backend.backend(),
                "description": f"checkpoint of {NAME} after epoch {number} of {EPOCHS} (see diagnostics_zoo.checkpoints)"}
        side = path.with_name(path.name[: -len(".keras")] + ".meta.json")
        tmp = side.with_name(f".tmp-{os.getpid()}-{side.name}")
        tmp.write_text(json.dumps(meta, sort_keys=True, indent=2) + "\n")
        os.replace(tmp, side)
        self.written += [path, side]


def train(out: pathlib.Path = OUT) -> list[pathlib.Path]:
    from .train import SEED, _enable_op_determinism, seed_everything

    _enable_op_determinism()
    seed_everything(SEED)
    out.mkdir(parents=True, exist_ok=True)
    data = DATASETS["digits28_small"](SEED)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    saver = SaveAt(out, math.ceil(len(data["x_train"]) / BATCH_SIZE), "digits28_small")
    model.fit(data["x_train"], data["y_train"], epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=True,
              validation_data=(data["x_val"], data["y_val"]), verbose=0, callbacks=[saver])
    return saver.written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diagnostics_zoo.checkpoints", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for p in train(args.out):
        print(f"wrote {p} ({p.stat().st_size} bytes)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
