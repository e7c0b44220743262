"""Explanations on the zoo models, end to end: sanity checks, ground truth, and captum agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics import explain as E
from tests.conftest import run_diagnose


def _record(out_dir, name):
    report = json.loads((out_dir / "report.json").read_text())
    rec = next(a for a in report["analyzers"] if a["name"] == name)
    assert rec["status"] == "ok", rec
    return rec


def test_randomisation_fails_an_edge_detector_and_passes_ig_on_the_zoo_cnn(zoo_model, keras_tf):
    """Adebayo et al. (2018): a "saliency" that ignores the model (image edges) must fail the
    model-parameter randomisation check; IG on the trained zoo CNN must pass it."""
    import diagnostics_zoo as zoo

    from diagnostics.backends import get

    keras = keras_tf
    model = zoo_model("cnn")
    data = zoo.DATASETS["digits28"](0)
    idx = E.select_samples(len(data["x_val"]), 12, 0)
    x = data["x_val"][idx]
    targets = model.predict(x, verbose=0).argmax(1)
    keras.utils.set_random_seed(99)
    randomised = keras.models.clone_model(model)
    before = [w.copy() for w in model.get_weights()]
    backend = get()

    def ig_map(m):
        def grad_fn(xb, tb):
            return backend.input_gradients(m, xb, tb, batch_size=len(xb))

        r = E.integrated_gradients(grad_fn, x, np.zeros_like(x), targets, steps=32, max_steps=32)
        return E.feature_map(r.attributions, (3,))

    ig = E.randomisation_check(ig_map(model), ig_map(randomised))
    edges = E.feature_map(E.edge_map(x)[..., None], (3,))
    edge = E.randomisation_check(edges, edges.copy(), absolute=True)  # the edge map ignores the weights
    assert edge["status"] == E.FAILED and edge["rank_correlation"] == pytest.approx(1.0)
    assert ig["passed"] and ig["rank_correlation"] < E.RANDOMISATION_DOUBTFUL, ig
    assert E.verdict(randomisation=edge)[0] == E.FAILED
    # the trained model was not touched by cloning
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.fixture(scope="module")
def cnn_run(zoo_path, tmp_path_factory):
    """One diagnose run on the zoo CNN with both the gradient family (TF) and captum (torch), on the
    same 16 samples; captum runs only its IG here (the reference)."""
    out = tmp_path_factory.mktemp("cnn-explain")
    proc = run_diagnose(zoo_path("cnn"), "--only", "explain.gradients", "--only", "explain.captum",
                        "--option", "samples=16", "--option", "explain.captum.methods=integrated_gradients",
                        "--option", "explain.captum.steps=64", "--out", out, "-q")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return out


def test_gradient_family_on_the_zoo_cnn_gives_every_method_a_verdict_and_maps(cnn_run):
    rec = _record(cnn_run, "explain.gradients")
    m = rec["metrics"]
    assert set(m["verdicts"]) == {"integrated_gradients", "saliency", "smoothgrad", "input_x_gradient",
                                  "expected_gradients"}
    assert all(v in ("trusted", "doubtful", "failed") for v in m["verdicts"].values())
    codes = {f["code"] for f in rec["findings"]}
    for method, verdict in m["verdicts"].items():
        assert f"explain.{method}.{verdict}" in codes
    ig = m["checks"]["integrated_gradients"]
    assert ig["completeness"]["converged_fraction"] == 1.0
    assert ig["completeness"]["max_relative_gap"] < 0.01
    assert ig["randomisation"]["passed"]
    assert ig["faithfulness"]["deletion_margin"] > 0 and ig["faithfulness"]["insertion_margin"] > 0
    assert m["verdicts"]["integrated_gradients"] == "trusted"
    assert m["checks"]["expected_gradients"]["additivity"]["within_tolerance_fraction"] >= 0.9
    art = cnn_run / rec["artifacts"]["integrated_gradients attributions"]
    a = np.load(art)
    assert a.shape == (16, 28, 28, 1) and np.isfinite(a).all()
    assert (cnn_run / rec["artifacts"]["overlays"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_our_ig_agrees_with_captum_ig_on_the_zoo_cnn(cnn_run):
    ours = _record(cnn_run, "explain.gradients")
    theirs = _record(cnn_run, "explain.captum")
    assert theirs["backend"] == "torch" and ours["backend"] == "tensorflow"
    assert ours["metrics"]["sample_indices"] == theirs["metrics"]["sample_indices"]
    assert ours["metrics"]["targets"] == theirs["metrics"]["targets"]
    a = np.load(cnn_run / ours["artifacts"]["integrated_gradients attributions"]).reshape(16, -1)
    b = np.load(cnn_run / theirs["artifacts"]["integrated_gradients attributions"]).reshape(16, -1)
    corr = E.pearson(a, b)
    assert corr.min() >= 0.99, corr


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_ig_finds_the_planted_positions(name, zoo_path, tmp_path):
    proc = run_diagnose(zoo_path(name), "--only", "explain.gradients", "--option", "methods=integrated_gradients",
                        "--option", "samples=32", "--out", tmp_path, "-q")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    rec = _record(tmp_path, "explain.gradients")
    gt = rec["metrics"]["checks"]["integrated_gradients"]["ground_truth"]
    assert gt["scored_samples"] >= 8, gt
    assert gt["top_k_precision"] >= 0.8, gt
    assert gt["mass_share"] > 3 * gt["planted_fraction"], gt
    strips = rec["artifacts"]["heat strips"]
    assert (tmp_path / strips).is_file()
