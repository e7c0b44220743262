"""Gradient health gives the same numbers under TensorFlow and torch (the same analyzer, two workers)."""

from __future__ import annotations

import pytest

from tests.conftest import ZOO_DIR, read_report, run_diagnose


def test_gradient_norms_agree_per_layer_under_tensorflow_and_torch_on_the_zoo_cnn(tmp_path):
    layers = {}
    for backend in ("tensorflow", "torch"):
        out = tmp_path / backend
        proc = run_diagnose(ZOO_DIR / "cnn.keras", "--only", "health.gradients", "--only", "health.units",
                            "--backend", backend, "--out", out, "--fail-on", "never", "-q")
        assert proc.returncode == 0, proc.stderr
        recs = {a["name"]: a for a in read_report(out)["analyzers"]}
        assert recs["health.gradients"]["backend"] == backend
        layers[backend] = (recs["health.gradients"]["metrics"], recs["health.units"]["metrics"])
    (tf_g, tf_u), (pt_g, pt_u) = layers["tensorflow"], layers["torch"]
    assert [l["layer"] for l in tf_g["layers"]] == [l["layer"] for l in pt_g["layers"]] == ["conv1", "conv2", "conv3", "dense", "probs"]
    for a, b in zip(tf_g["layers"], pt_g["layers"]):
        for key in ("grad_norm", "kernel_grad_norm", "weight_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-3), (a["layer"], key, a[key], b[key])
    assert pt_g["loss_value"] == pytest.approx(tf_g["loss_value"], rel=1e-3)
    assert pt_g["first_last_ratio"] == pytest.approx(tf_g["first_last_ratio"], rel=1e-3)
    # Unit counts are thresholded, so they must match exactly.
    assert [l["dead_fraction"] for l in pt_u["layers"]] == [l["dead_fraction"] for l in tf_u["layers"]]
