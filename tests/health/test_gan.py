"""health.gan against known answers: a generator, a judge and a discriminator built so that every
measure's value is known from their construction (the zoo's GANs are in test_zoo.py).

The generator makes near-constant bright 8×8 images (sigmoid(3 + a small function of z)); the real
samples are dark noise. The judge puts every image in class 3 with probability 0.9996. The
discriminator thresholds the mean pixel: ``sign=+1`` calls the bright (generated) images real and the
dark (real) ones generated — accuracy 0, fooled; ``sign=-1`` gets every sample right — accuracy 1, wins.
"""

from __future__ import annotations

import numpy as np
import pytest

JUDGE, DISC = "judge.keras", "disc.keras"


@pytest.fixture(scope="module")
def gan(keras_tf, tmp_path_factory):
    keras = keras_tf
    keras.utils.set_random_seed(0)
    init = keras.initializers
    z = keras.Input((4,))
    dense = keras.layers.Dense(64, activation="sigmoid", kernel_initializer=init.RandomNormal(0.0, 0.1, seed=1),
                               bias_initializer=init.Constant(3.0))
    g = keras.Model(z, keras.layers.Reshape((8, 8, 1))(dense(z)), name="bright")
    folder = tmp_path_factory.mktemp("gan")
    img = keras.Input((8, 8, 1))
    bias = np.zeros(10, np.float32)
    bias[3] = 10.0
    judge = keras.Model(img, keras.layers.Dense(10, activation="softmax", kernel_initializer="zeros",
                                                bias_initializer=init.Constant(bias))(keras.layers.Flatten()(img)))
    judge.save(folder / JUDGE)
    discs = {}
    for sign in (1, -1):
        mean = keras.layers.GlobalAveragePooling2D()(img)
        d = keras.Model(img, keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init.Constant(40.0 * sign),
                                                bias_initializer=init.Constant(-20.0 * sign))(mean))
        d.save(folder / f"{sign}{DISC}")
        discs[sign] = folder / f"{sign}{DISC}"
    real = np.random.default_rng(1).uniform(0, 0.1, (200, 8, 8, 1)).astype(np.float32)
    return {"g": g, "judge": folder / JUDGE, "discs": discs, "real": real}


def run_gan(gan, sign, history, tmp_path):
    import diagnostics

    options = {"health.gan": {"classifier": str(gan["judge"]), "discriminator": str(gan["discs"][sign])}}
    report = diagnostics.diagnose(gan["g"], {"x_val": gan["real"]}, out_dir=tmp_path, only=("health.gan",),
                                  options=options, history=history)
    rec = report.record("health.gan")
    assert rec.status == "ok", rec.reason
    return rec


def message(rec, code):
    (f,) = [f for f in rec.findings if f.code == code]
    return f.severity.value, f.where, f.message


def test_collapsed_generator_fooled_discriminator_and_dominant_generator(gan, tmp_path):
    history = {"g_loss": [1, 1, 1, 1, 1, 1, 4, 4], "d_loss": [1, 1, 1, 1, 1, 1, 0.5, 0.5]}  # last quarter: 4 / 0.5
    rec = run_gan(gan, 1, history, tmp_path)
    hist = [0, 0, 0, 1000, 0, 0, 0, 0, 0, 0]
    advice = ("lower the generator's learning rate or steps per discriminator step, use minibatch discrimination, "
              "a Wasserstein loss with gradient penalty, or spectral normalisation")
    assert message(rec, "health.gan.coverage") == ("error", "", (
        "Share of the judge's classes with a confident generated sample 10%, below the error threshold 0.5 "
        "(classifier-based mode counting, Srivastava et al. 2017 (VEEGAN), Metz et al. 2017): 1000 of 1000 generated "
        f"samples are classified by {JUDGE} with confidence >= 0.9; they cover 1 of 10 classes (histogram {hist}): "
        f"the generator produces a few modes only — {advice}"))
    assert message(rec, "health.gan.top2_share") == ("error", "", (
        "Share of confident generated samples in the two most frequent classes 100%, at or above the error threshold "
        f"0.6 (20% for ten balanced classes; Metz et al. 2017): the two most frequent of the 10 classes hold 100% of "
        f"the 1000 generated samples {JUDGE} classifies with confidence >= 0.9 (histogram {hist}): the generator "
        f"produces a few modes only — {advice}"))
    classes = rec.measure("class_histogram")
    assert [(v.where, v.value) for v in classes.values] == [(str(i), float(c)) for i, c in enumerate(hist)]
    assert classes.scope == "class" and classes.direction == "neutral" and classes.chart  # the host drew it

    acc = rec.measure("discriminator_accuracy")
    assert {v.series: v.value for v in acc.values} == {"generated": 0.0, "real": 0.0, "all": 0.0}
    assert message(rec, "health.gan.discriminator_separation") == ("warning", "", (
        "Discriminator's separation of real from generated samples 1.00 on 1200 samples, at or above the warning "
        "threshold 0.9 (the larger of its accuracy and 1 − accuracy: near 0.5 is balance; Goodfellow et al. 2014): "
        f"1disc.keras is right on only 0% of real and generated samples (real 0.00, generated 0.00): it no longer "
        "tells them apart the right way round, so it gives the generator no useful signal — typical after the "
        "generator outran it; give the discriminator more steps or a higher learning rate"))
    assert message(rec, "health.gan.loss_ratio") == ("warning", "", (
        "Larger over smaller mean loss of generator and discriminator, last quarter of training 8.00, at or above the "
        "warning threshold 5 (one network dominates, and the other learns little): over the last 2 epochs the "
        "generator's loss averaged 8.00 times the discriminator's (generator over discriminator 8) — rebalance "
        "their learning rates or update steps"))
    loss = rec.measure("loss")
    assert loss.scope == "epoch" and len(loss.values) == 16
    assert loss.value("7", "generator") == 4.0 and loss.value("8", "discriminator") == 0.5

    # diversity: the mean pairwise distance of the same 256 draws (seed 0), over that of the real samples
    z = np.random.default_rng(0).standard_normal((1000, 4)).astype(np.float32)
    fake = np.asarray(gan["g"].predict(z[:256], verbose=0), np.float64).reshape(256, -1)
    real = gan["real"].astype(np.float64).reshape(200, -1)
    pairwise = lambda f: np.mean([np.linalg.norm(f[i] - f[j]) for i in range(len(f)) for j in range(i + 1, len(f))])
    assert rec.measure("diversity").value() == pytest.approx(pairwise(fake) / pairwise(real), rel=1e-4)

    grads = rec.measure("grad_norm")
    # wrong on every sample, the discriminator gets a gradient; the generator, whose samples it already calls
    # real with probability 1 in float32, gets none
    assert grads.value("discriminator") > 0 and grads.value("generator") == 0.0
    assert {v.series for v in rec.measure("layer_grad_norm").values} == {"generator", "discriminator"}
    assert {f.code for f in rec.findings} == {"health.gan.coverage", "health.gan.top2_share", "health.gan.diversity",
                                              "health.gan.discriminator_separation", "health.gan.loss_ratio"}
    assert "samples" in rec.artifacts


def test_winning_discriminator_and_a_dominant_discriminator(gan, tmp_path):
    # last quarter: 1 / 5 = 0.2, exactly 1/loss_ratio_warning: a warning, as the old `ratio <= 1/5` gave
    history = {"g_loss": [3, 3, 3, 1], "d_loss": [1, 1, 1, 5]}
    rec = run_gan(gan, -1, history, tmp_path)
    acc = rec.measure("discriminator_accuracy")
    assert {v.series: v.value for v in acc.values} == {"generated": 1.0, "real": 1.0, "all": 1.0}
    severity, where, text = message(rec, "health.gan.discriminator_separation")
    assert (severity, where) == ("warning", "")
    assert text.startswith("Discriminator's separation of real from generated samples 1.00 on 1200 samples, at or above "
                           "the warning threshold 0.9") and (
        "-1disc.keras tells real from generated samples with accuracy 1.00 (real 1.00, generated 1.00): the "
        "generator's gradient vanishes when the discriminator is this sure — balance the learning rates, add label "
        "smoothing or instance noise") in text
    assert message(rec, "health.gan.loss_ratio")[2].split(": ", 1)[1] == (
        "over the last 1 epochs the discriminator's loss averaged 5.00 times the generator's (generator over "
        "discriminator 0.2) — rebalance their learning rates or update steps")
    assert rec.measure("loss_ratio").value() == 5.0


def test_a_balanced_history_and_no_companions(gan, tmp_path):
    import diagnostics

    report = diagnostics.diagnose(gan["g"], {"x_val": gan["real"]}, out_dir=tmp_path, only=("health.gan",),
                                  history={"g_loss": [1.0, 2.0], "d_loss": [1.0, 1.0]})
    rec = report.record("health.gan")
    assert rec.status == "ok", rec.reason
    assert rec.measure("loss_ratio").value() == 2.0 and rec.measure("loss_ratio").worst == "passed"
    assert [s.measure for s in rec.measures] == ["diversity", "loss_ratio", "loss"]  # no judge, no discriminator
    assert [m.split(":")[0] for m in rec.metrics["not_measured"]] == ["no classifier", "no discriminator"]
