"""Every shipped artifact is diagnosable with ``diagnose FILE`` alone: its sidecar names data that fits it.

The cheap checks (default suite) validate each sidecar's dataset against its model, as the host does
before any analyzer runs, and pin the known answers of the regression entry and the discriminators'
real/fake datasets; the slow walk runs ``diagnose`` on every artifact.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import diagnostics_zoo as zoo
from diagnostics import ExitCode, Report

from ..conftest import run_diagnose
from .conftest import meta_of

STEMS = zoo.artifact_stems()


def test_every_sidecar_dataset_fits_its_model(load_model, dataset):
    from diagnostics._data import from_arrays, validate
    from diagnostics.modelinfo import inspect_model

    problems = {}
    for stem in STEMS:
        meta = meta_of(stem)
        model = load_model(stem)
        info = inspect_model(model, kind_hint=meta.get("model_kind"))
        arrays = dataset(stem)
        try:
            validate(from_arrays(arrays, source=meta["dataset"]), info)
        except Exception as e:  # noqa: BLE001 - collect every misfit, not just the first
            problems[stem] = str(e)
    assert problems == {}


@pytest.mark.parametrize("gen", ["gan", "gan_collapsed"])
def test_discriminator_dataset_is_real_against_generated(gen, load_model, dataset):
    """Real digits are labelled 1, the shipped generator's samples 0, drawn as the training run drew the
    samples it measured: the discriminator's accuracy on each half is what its sidecar recorded."""
    stem = f"{gen}_discriminator"
    d = dataset(stem)
    assert d["y_val"].tolist() == [1] * 450 + [0] * 450
    assert np.array_equal(d["x_val"][:450], zoo.DATASETS["digits28"](0)["x_val"])
    p = load_model(stem).predict(d["x_val"], batch_size=512, verbose=0).ravel()
    final = meta_of(stem)["final_metrics"]
    assert np.mean(p[:450] >= 0.5) == pytest.approx(final["d_real_accuracy_val"], abs=1e-9)
    assert np.mean(p[450:] < 0.5) == pytest.approx(final["d_fake_accuracy"], abs=1 / 450)


def test_regression_entry_meets_its_target(load_model, dataset):
    d = dataset("mlp_regression")
    r2 = {}
    for fmt in ("keras", "h5"):
        pred = load_model("mlp_regression", fmt).predict(d["x_val"], verbose=0).ravel()
        r2[fmt] = 1 - np.sum((pred - d["y_val"]) ** 2) / np.sum((d["y_val"] - d["y_val"].mean()) ** 2)
    assert r2["keras"] == pytest.approx(r2["h5"], abs=1e-6)
    assert r2["keras"] >= 0.5
    assert meta_of("mlp_regression")["final_metrics"]["val_r2"] == pytest.approx(r2["keras"], abs=1e-5)
    assert meta_of("mlp_regression")["task"] == "regression"


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_diagnose_file_alone(stem, tmp_path):
    """``diagnose models/artifacts/STEM.keras`` with no other argument: no refusal, no analyzer failed or timed
    out, and a healthy entry (no expected findings) gets no error."""
    path = zoo.ARTIFACT_DIR / f"{stem}.keras"
    proc = run_diagnose(path, "--out", tmp_path / "out")
    assert proc.returncode in (ExitCode.OK, ExitCode.FINDINGS), proc.stderr[-3000:]
    report = Report.load(tmp_path / "out")
    bad = {r.name: r.reason for r in report.analyzers if r.status not in ("ok", "skipped")}
    assert bad == {}
    if not meta_of(stem)["expected_findings"] and stem != "mlp_nan":
        errors = [f.code for r in report.analyzers for f in r.findings if f.severity.value == "error"]
        assert errors == [], errors
