"""Weight spectra: the alpha fit against weightwatcher on the same matrices, and the analyzer's verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics_plugins.health_spectra import alpha_interval, as_matrix, eigenvalues, powerlaw_alpha, stable_rank


def weightwatcher_alphas(matrices):
    """weightwatcher's alpha for each (fan_in, units) matrix, read through plain torch Linear layers."""
    import logging

    import torch
    import weightwatcher

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    layers = []
    for m in matrices:
        lin = torch.nn.Linear(m.shape[0], m.shape[1], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(np.ascontiguousarray(m.T), dtype=torch.float32))
        layers.append(lin)
    df = weightwatcher.WeightWatcher(model=torch.nn.Sequential(*layers)).analyze(plot=False)
    return [float(a) for a in df.sort_values("layer_id")["alpha"]]


def test_alpha_agrees_with_weightwatcher_within_0_05(keras_tf):
    keras = keras_tf
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    conv = keras.layers.Conv2D(64, 3)
    conv.build((None, 12, 12, 32))
    matrices = [
        rng.standard_t(3, size=(300, 120)),           # heavy-tailed entries
        rng.normal(size=(200, 64)),                    # Marchenko–Pastur bulk
        rng.standard_t(2.5, size=(576, 64)) * 0.1,
        as_matrix(conv.kernel.numpy()),                # a conv kernel folded to (3*3*32, 64)
    ]
    matrices = [m.astype(np.float32) for m in matrices]
    ours = [powerlaw_alpha(eigenvalues(m))["alpha"] for m in matrices]
    theirs = weightwatcher_alphas(matrices)
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        assert abs(a - b) <= 0.05, (ours, theirs)


def test_too_few_eigenvalues_are_insufficient_not_guessed():
    ev = eigenvalues(np.random.default_rng(0).normal(size=(30, 10)))
    assert powerlaw_alpha(ev, min_eigenvalues=20) == {"alpha": None, "insufficient": 10}


def test_stable_rank_known_answers():
    assert stable_rank(eigenvalues(np.eye(7))) == pytest.approx(7.0)
    assert stable_rank(eigenvalues(np.outer([1, 2, 3], [4, 5]))) == pytest.approx(1.0)


HIGH = ("the layer looks close to its random initialisation, so it has learnt little — train longer or with a larger "
        "learning rate, or shrink it")
LOW = ("a very heavy tail, typical of over-training or a too-large learning rate — regularise (weight decay), lower the "
       "learning rate, or stop earlier")
BAND = "Martin & Mahoney 2021: well-trained layers have 2 <= alpha <= 6"


def test_spectra_analyzer_reports_alpha_and_insufficient_layers(keras_tf, run_health, codes):
    keras = keras_tf
    keras.utils.set_random_seed(0)
    # 256 filters over 64 channels: a tail of 26 eigenvalues, enough for alpha's interval to clear the band
    model = keras.Sequential([keras.Input((12, 12, 64)), keras.layers.Conv2D(256, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(5, name="head")], name="spec")
    rec = run_health(model, None, only=("health.spectra",))["health.spectra"]
    assert rec.status == "ok", rec.reason
    layers = {l["layer"]: l for l in rec.metrics["layers"]}
    conv = layers["conv"]
    assert conv["matrix_shape"] == [576, 256] and conv["eigenvalues"] == 256
    fit = powerlaw_alpha(eigenvalues(as_matrix(model.get_layer("conv").kernel.numpy())))
    assert conv["alpha"] == pytest.approx(fit["alpha"])
    assert layers["head"]["alpha"] is None and layers["head"]["insufficient"] == 5
    # The report's typed section carries the same numbers, judged against the 2-6 band.
    alpha = rec.measure("alpha")
    assert (alpha.code, alpha.scope, alpha.direction, alpha.thresholds) == ("health.spectra.alpha", "layer", "band",
                                                                              {"warning": [2.0, 6.0]})
    assert alpha.value("conv") == conv["alpha"] and alpha.value("head") is None
    assert rec.measure("stable_rank").value("conv") == pytest.approx(conv["stable_rank"])
    [info] = [f for f in rec.findings if f.code == "health.spectra.insufficient"]
    assert (info.severity, info.where) == ("info", "head")
    assert info.message == ("1 layer(s) have fewer than 20 eigenvalues, too few for a power-law fit, so no alpha is "
                            "reported for them: head (5)")
    # A freshly initialised layer is a random matrix: alpha above 6 says it has learnt nothing.
    assert conv["alpha"] > 6
    [high] = [f for f in rec.findings if f.code == "health.spectra.alpha"]
    assert (high.severity, high.where) == ("warning", "conv")
    lo, hi = alpha_interval(conv["alpha"], fit["tail"])
    assert lo > 6  # the interval decides, not the point
    assert high.message == (f"Power-law exponent alpha of the weight spectrum {conv['alpha']:.2f} (95% CI {lo:.2f}–{hi:.2f}), "
                            f"outside the healthy band 2–6 ({BAND}): fitted on {fit['tail']} of 256 eigenvalues; {HIGH}")


def test_a_heavy_tailed_layer_is_below_the_band_and_the_band_is_an_option(keras_tf, run_health):
    """Cauchy-distributed weights give a very heavy-tailed spectrum (alpha 1.37 on this seed): below the
    band, a warning; with --option alpha_low=1 the same value passes."""
    keras = keras_tf
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, name="heavy"), keras.layers.Dense(2, name="out")])
    kernel = np.random.default_rng(0).standard_cauchy(size=(64, 32)).astype(np.float32)
    model.get_layer("heavy").set_weights([kernel, np.zeros(32, np.float32)])
    fit = powerlaw_alpha(eigenvalues(as_matrix(kernel)))
    assert fit["alpha"] == pytest.approx(1.368, abs=1e-3)
    rec = run_health(model, None, only=("health.spectra",))["health.spectra"]
    assert [(f.code, f.severity, f.where) for f in rec.findings] == [
        ("health.spectra.insufficient", "info", "out"), ("health.spectra.alpha", "warning", "heavy")]
    lo, hi = alpha_interval(fit["alpha"], fit["tail"])
    assert rec.findings[1].message == (f"Power-law exponent alpha of the weight spectrum {fit['alpha']:.2f} (95% CI "
                                       f"{lo:.2f}–{hi:.2f}), outside the healthy band 2–6 ({BAND}): fitted on "
                                       f"{fit['tail']} of 32 eigenvalues; {LOW}")
    rec = run_health(model, None, only=("health.spectra",),
                     options={"health.spectra": {"alpha_low": 1.0}})["health.spectra"]
    assert [f.code for f in rec.findings] == ["health.spectra.insufficient"]
    assert rec.measure("alpha").thresholds == {"warning": [1.0, 6.0]}
    assert rec.measure("alpha").value("heavy") == pytest.approx(fit["alpha"])


def test_alpha_agrees_with_weightwatcher_on_the_zoo_cnn(keras_tf):
    from tests.conftest import ZOO_DIR

    from diagnostics_plugins.health_spectra import kernel_layers

    model = keras_tf.saving.load_model(ZOO_DIR / "cnn.keras", compile=False)
    matrices = {l.name: as_matrix(l.kernel.numpy()).astype(np.float32) for l in kernel_layers(model)}
    both = {n: m for n, m in matrices.items() if min(m.shape) >= 20}  # the layers both fit (conv2, conv3, dense)
    assert sorted(both) == ["conv2", "conv3", "dense"]
    ours = [powerlaw_alpha(eigenvalues(m))["alpha"] for m in both.values()]
    for a, b in zip(ours, weightwatcher_alphas(list(both.values()))):
        assert abs(a - b) <= 0.05, (ours, b)


def test_alpha_interval_is_the_mle_standard_error_and_a_small_tail_does_not_cross_the_band(keras_tf, run_health):
    """Clauset, Shalizi & Newman (2009), eq. 3.2: the MLE's standard error is (alpha - 1) / sqrt(n). The healthy
    zoo resnet's block2_conv2 (32 eigenvalues, a tail of 32) fits 1.78, below the band's 2 as a point; its
    interval reaches past 2, so it is not a finding (it was a warning before alpha had an interval)."""
    from tests.conftest import ZOO_DIR

    assert alpha_interval(3.0, 16) == pytest.approx((3.0 - 1.96 * 0.5, 3.0 + 1.96 * 0.5))
    model = keras_tf.saving.load_model(ZOO_DIR / "resnet.keras", compile=False)
    fit = powerlaw_alpha(eigenvalues(as_matrix(model.get_layer("block2_conv2").kernel.numpy())))
    lo, hi = alpha_interval(fit["alpha"], fit["tail"])
    assert fit["alpha"] < 2 < hi and fit["tail"] == 32
    rec = run_health(model, None, only=("health.spectra",))["health.spectra"]
    assert rec.measure("alpha").value("block2_conv2") == pytest.approx(fit["alpha"])
    assert [f for f in rec.findings if f.code == "health.spectra.alpha"] == []
