"""LIME, SHAP and captum's non-gradient methods: known answers, additivity, and the traps of Keras
models under captum (channels-last Grad-CAM, DeepLift equal to input x gradient)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from diagnostics import explain as E
from diagnostics_plugins.explain_lime import lime_image
from tests.conftest import run_diagnose


def test_lime_tokens_and_time_segments_recover_a_known_linear_rule():
    """On a model that only reads positions 3 and 7 (with weights 2 and -1), LIME's weights are
    largest there, with the right signs, and its local fit is near perfect."""
    from diagnostics_plugins.explain_lime import lime_features

    w = np.zeros(10)
    w[3], w[7] = 2.0, -1.0

    def predict(batch):
        logit = batch.reshape(len(batch), 10, -1).sum(2) @ w
        p = 1 / (1 + np.exp(-logit))
        return np.stack([1 - p, p], 1)

    x = np.ones((10, 1), np.float32)
    weights, r2 = lime_features(predict, x, 1, np.zeros((10, 1), np.float32), np.arange(10), 10, 1000, 0, 0.25)
    assert set(np.argsort(-np.abs(weights))[:2]) == {3, 7}
    assert weights[3] > 0 > weights[7]
    assert r2 > 0.9
    # time segments: two positions per feature, the weight is shared by both steps of a segment
    seg, _ = lime_features(predict, x, 1, np.zeros((10, 1), np.float32), np.arange(10) // 2, 5, 1000, 0, 0.25)
    assert seg[2] == seg[3] and seg[6] == seg[7] and seg[3] > 0 > seg[7]


def _lime_predict(model, batch_size):
    """LIME's classifier on the model's view, counting the compiled predict calls it makes."""
    from diagnostics import ModelView
    from diagnostics_plugins.explain_lime import classifier

    view = ModelView(model, "image", batch_size=batch_size)
    calls = []
    real = view.model.predict_on_batch
    view.model = type("Spy", (), {"predict_on_batch": lambda self, b: calls.append(len(b)) or real(b),
                                  "inputs": model.inputs, "outputs": model.outputs})()
    return classifier(view), calls


def test_lime_image_makes_one_compiled_call_per_image_and_finds_the_digit(zoo_model):
    import diagnostics_zoo as zoo

    model = zoo_model("cnn")
    x = zoo.DATASETS["digits28"](0)["x_val"][:2]
    predict, calls = _lime_predict(model, 1000)
    for img in x:
        before = len(calls)
        weights, label, r2 = lime_image(predict, img, None, num_samples=1000, seed=0)
        assert len(calls) - before == 1  # all 1,000 perturbations in one batched call
        assert label == int(model.predict(img[None], verbose=0).argmax())
        assert weights.shape == (28, 28) and np.isfinite(weights).all() and 0 < r2 <= 1
        # the positive evidence lies on the ink, not on the empty border
        ink = img[..., 0] > 0.2
        assert weights[ink].mean() > weights[~ink].mean()


def test_our_vectorised_lime_image_equals_the_lime_package_for_the_same_seed(zoo_model):
    from lime import lime_image as li

    import diagnostics_zoo as zoo

    model = zoo_model("cnn")
    img = zoo.DATASETS["digits28"](0)["x_val"][5]
    predict, _ = _lime_predict(model, 500)
    ours, label, r2 = lime_image(predict, img, None, num_samples=500, seed=3)
    exp = li.LimeImageExplainer(random_state=3).explain_instance(
        img[..., 0].astype(np.float64), predict, top_labels=1, hide_color=0, num_samples=500, batch_size=500,
        segmentation_fn=E.grid_segments, random_seed=3)
    assert exp.top_labels[0] == label
    theirs = np.zeros((28, 28))
    for segment, weight in exp.local_exp[label]:
        theirs[exp.segments == segment] = weight
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)
    assert r2 == pytest.approx(exp.score, rel=1e-6)


def test_shap_on_the_zoo_mlp_is_additive_with_a_global_importance(zoo_path, tmp_path):
    where = Path(os.environ.get("NUMBA_CACHE_DIR") or Path(os.environ["DIAGNOSTICS_CACHE_DIR"]) / "numba")
    cached_before = sorted(where.rglob("*")) if where.exists() else []
    # at most 16 audited samples: permutation SHAP's stability sits near its threshold on this model, and the
    # looks would go on to 64; the randomisation check is skipped when the budget runs short
    proc = run_diagnose(zoo_path("mlp"), "--only", "explain.shap", "--option", "samples=6", "--option",
                        "check_samples=16", "--out", tmp_path, "-q", "--timeout", "1200")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    rec = next(a for a in json.loads((tmp_path / "report.json").read_text())["analyzers"] if a["name"] == "explain.shap")
    assert rec["status"] == "ok", rec
    (section,) = rec["explanations"]
    checks = {c["name"]: c for c in section["checks"]}
    assert section["method"] == "permutation_shap" and section["space"] == "input"
    assert checks["additivity"]["detail"]["max_relative_gap"] < 1e-4  # permutation SHAP is exactly additive
    assert checks["randomisation"]["outcome"] == "passed"
    vals = np.load(tmp_path / section["artifacts"]["attributions"])
    # samples=6 explains at least 6: up to the look boundary above (8), or more while a check is undecided
    assert vals.shape[1] == 30 and vals.shape[0] == len(section["sample_indices"]) in (8, 16)
    assert (tmp_path / rec["artifacts"]["global importance"]).is_file()
    codes = [f["code"] for f in rec["findings"] if f["code"].startswith("explain.shap.permutation_shap.")]
    assert codes == ([] if section["verdict"] == "trusted" else [f"explain.shap.permutation_shap.{section['verdict']}"])
    # The confined worker compiled SHAP's masker kernels in memory and wrote nothing to the kernel cache, which
    # later runs would load as code (plugins/explain_shap.py: a model must not plant code for them)
    assert (sorted(where.rglob("*")) if where.exists() else []) == cached_before


TORCH_CHECKS = textwrap.dedent("""
    import json, os, sys
    import numpy as np, torch, keras
    from captum.attr import DeepLift, InputXGradient, LayerGradCam
    from diagnostics_plugins.explain_captum import gradcam_channels_last
    import diagnostics_zoo as zoo

    out = {}
    # Grad-CAM on a CAM architecture (conv -> global average pooling -> dense) is CAM itself
    # (Selvaraju et al. 2017, sec. 3.1): ReLU(sum_k w[k, c] A_k) / (H W).
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 10, 3))
    conv = keras.layers.Conv2D(5, 3, activation="relu", name="conv")(inp)
    gap = keras.layers.GlobalAveragePooling2D()(conv)
    model = keras.Model(inp, keras.layers.Dense(4, name="head")(gap))
    x = torch.tensor(np.random.default_rng(0).normal(size=(3, 12, 10, 3)).astype("float32"))
    t = torch.tensor([0, 2, 3])
    _, cam = gradcam_channels_last(lambda z: model(z), model.get_layer("conv"), x, t)
    acts = keras.Model(inp, conv)(x).detach().numpy()             # (3, 10, 8, 5)
    w = keras.ops.convert_to_numpy(model.get_layer("head").kernel)  # (5, 4)
    ref = np.maximum(np.einsum("nhwk,kn->nhw", acts, w[:, t.numpy()]), 0) / (10 * 8)
    out["cam_max_err"] = float(np.abs(cam - ref).max())
    out["cam_scale"] = float(np.abs(ref).max())
    out["captum_gradcam_shape"] = list(LayerGradCam(lambda z: model(z), model.get_layer("conv")).attribute(x, target=t).shape)
    # captum DeepLift on a Keras ReLU network degrades to input x gradient
    cnn = keras.saving.load_model(sys.argv[1], custom_objects=zoo.custom_objects())
    xs = torch.tensor(zoo.DATASETS["digits28"](0)["x_val"][:4])
    dl = DeepLift(cnn).attribute(xs, baselines=torch.zeros_like(xs), target=1).detach().numpy()
    ixg = InputXGradient(cnn).attribute(xs, target=1).detach().numpy()
    out["deeplift_vs_ixg_max_err"] = float(np.abs(dl - ixg).max())
    out["deeplift_scale"] = float(np.abs(dl).max())
    print(json.dumps(out))
""")


def test_captum_traps_on_keras_models_and_our_channels_last_gradcam(zoo_path, tmp_path):
    script = tmp_path / "torch_checks.py"
    script.write_text(TORCH_CHECKS)
    proc = subprocess.run([sys.executable, str(script), str(zoo_path("cnn"))], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "torch"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["cam_max_err"] <= 1e-5 * max(out["cam_scale"], 1.0), out
    assert out["cam_scale"] > 0
    # captum's own LayerGradCam reads the NHWC map as NCHW: its map is not (n, 1, H, W)
    assert out["captum_gradcam_shape"] != [3, 1, 10, 8]
    # the reason captum's DeepLift is not offered: on Keras it is input x gradient
    assert out["deeplift_vs_ixg_max_err"] <= 1e-5 * out["deeplift_scale"], out


@pytest.mark.slow
def test_every_explainer_runs_on_every_zoo_model_it_applies_to(zoo_path, tmp_path):
    """The whole explanation suite on the four zoo tasks: every analyzer ok, every method a verdict."""
    for name in ("cnn", "mlp", "lstm", "transformer"):
        out = tmp_path / name
        proc = run_diagnose(zoo_path(name), "--only", "explain.gradients", "--only", "explain.captum", "--only",
                            "explain.shap", "--only", "explain.lime", "--out", out, "-q", "--timeout", "600")
        assert proc.returncode in (0, 1), proc.stderr[-3000:]
        report = json.loads((out / "report.json").read_text())
        recs = {a["name"]: a for a in report["analyzers"]}
        for analyzer in ("explain.gradients", "explain.captum", "explain.shap", "explain.lime"):
            assert recs[analyzer]["status"] == "ok", (name, recs[analyzer])
            sections = recs[analyzer]["explanations"]
            assert sections and all(e["verdict"] in ("trusted", "undecided", "doubtful", "failed") or e["skipped"]
                                    for e in sections)
