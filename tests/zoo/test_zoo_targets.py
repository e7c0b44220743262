"""The shipped healthy models meet their accuracy targets on held-out data, in both formats."""

from __future__ import annotations

import numpy as np
import pytest

TARGETS = {"cnn": 0.97, "mlp": 0.95, "lstm": 0.95, "transformer": 0.95, "conv_gru": 0.95, "resnet": 0.97}
GAN_MIN_CLASSES = 8


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    pred = (probs[:, 0] >= 0.5).astype(int) if probs.shape[1] == 1 else probs.argmax(1)
    return float(np.mean(pred == y))


@pytest.mark.parametrize("stem", sorted(TARGETS))
def test_accuracy_target(stem, load_model, dataset, meta):
    d = dataset(stem)
    accs = {}
    for fmt in ("keras", "h5"):
        probs = load_model(stem, fmt).predict(d["x_val"], batch_size=512, verbose=0)
        accs[fmt] = _accuracy(probs, d["y_val"])
    assert accs["keras"] == accs["h5"]
    assert accs["keras"] >= TARGETS[stem], f"{stem}: held-out accuracy {accs['keras']:.4f} < {TARGETS[stem]}"
    # The sidecar reports what the artifact does.
    assert meta(stem)["final_metrics"]["val_accuracy"] == pytest.approx(accs["keras"], abs=1e-6)


def _generated_histogram(generator, classifier, n=1000, seed=0, confidence=0.9):
    z = np.random.default_rng(seed).standard_normal((n, generator.inputs[0].shape[-1])).astype(np.float32)
    probs = classifier.predict(generator.predict(z, batch_size=n, verbose=0), batch_size=n, verbose=0)
    confident = probs.max(1) >= confidence
    return np.bincount(probs.argmax(1)[confident], minlength=10), probs.argmax(1)


def test_gan_covers_digit_classes(load_model, meta):
    hist, _ = _generated_histogram(load_model("gan"), load_model("cnn"))
    covered = int(np.sum(hist > 0))
    assert covered >= GAN_MIN_CLASSES, f"gan: {covered} classes among confident samples, histogram {hist.tolist()}"
    assert meta("gan")["final_metrics"]["class_histogram"] == hist.tolist()


def test_gan_discriminator_tells_real_from_generated(load_model, dataset):
    d = dataset("gan_discriminator")
    disc = load_model("gan_discriminator")
    real = disc.predict(d["x_val"], batch_size=512, verbose=0)
    assert real.shape == (len(d["x_val"]), 1) and np.all((real >= 0) & (real <= 1))
