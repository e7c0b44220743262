"""The zoo's package contract with the core: cheap import, names, artifacts and their sidecars."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

import diagnostics_zoo as zoo
from diagnostics.codes import is_alias

MODEL_KINDS = {"image", "sequence", "token", "tabular", "generator"}
TWIN_CODES = {
    "cnn_overfit": "overfitting.gap",
    "mlp_vanishing": "gradients.vanishing",
    "lstm_exploding": "gradients.exploding",
    "cnn_dead_relu": "units.dead",
    "gan_collapsed": "gan.mode_collapse",
    "mlp_nan": "weights.nonfinite",
    "mlp_saturated": "units.saturated",
    "mlp_logits": "architecture.softmax_logits_loss",
    "rnn_vanishing": "gradients.vanishing_through_time",
    "mlp_chance": "performance.chance_level",
    "cnn_shortcut": "explain.shortcut",
    "mlp_leak": "explain.shortcut",
    "mlp_underfit": "predictions.quality.baseline_gap",
    "mlp_imbalance": "predictions.quality.minority_recall",
    "mlp_diverged": "health.overfitting.loss_spike",
    "mlp_shift": "data.drift.feature_shift",
    "mlp_label_copy": "data.leakage.label_feature",
    "cnn_unscaled": "data.drift.range_mismatch",
}
#: artifacts a twin's recipe writes beside it that carry a fault of their own
COMPANION_TWIN_CODES = {"gan_collapsed_discriminator": "performance.chance_level"}
SYNTHETIC = {"motif_sequences", "polarity_tokens", "early_signal_sequences"}
MAX_ZOO_BYTES = 20 * 1024 * 1024


def test_import_does_not_import_keras():
    code = "import sys, diagnostics_zoo; assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entries():
    assert zoo.ZOO[0] == "cnn" and zoo.ZOO.index("cnn") < zoo.ZOO.index("gan") < zoo.ZOO.index("gan_collapsed")
    assert set(zoo.TWINS) == set(TWIN_CODES)
    assert {"digits28", "breast_cancer", "motif_sequences", "polarity_tokens"} <= set(zoo.DATASETS)


def test_custom_objects_keys():
    objs = zoo.custom_objects()
    for name in ("PositionalEmbedding", "TransformerEncoder"):
        assert objs[name] is objs[f"diagnostics_zoo>{name}"]


def test_sidecar_path():
    assert zoo.sidecar_path("x/cnn.h5") == zoo.sidecar_path("x/cnn.keras") == pathlib.Path("x/cnn.meta.json")


def _refuse_constant(name):
    raise ValueError(f"sidecars must be strict JSON; found {name}")


@pytest.mark.parametrize("stem", zoo.artifact_stems())
def test_artifacts_shipped_with_sidecar(stem):
    for suffix in (".keras", ".h5", ".meta.json"):
        assert (zoo.ARTIFACT_DIR / f"{stem}{suffix}").is_file(), f"{stem}{suffix} missing: run python -m diagnostics_zoo.train"
    text = (zoo.ARTIFACT_DIR / f"{stem}.meta.json").read_text()
    meta = json.loads(text, parse_constant=_refuse_constant)
    assert text == json.dumps(meta, sort_keys=True, indent=2) + "\n", "sidecars are written with sorted keys, indent 2"
    assert meta["schema"] == 1 and meta["name"] == stem and meta["description"]
    assert meta["dataset"] in zoo.DATASETS and isinstance(meta["split_seed"], int)
    assert meta["model_kind"] in MODEL_KINDS
    assert meta["task"] in {"multiclass", "binary", "generation", "regression"}
    assert meta["history"] and all(isinstance(v, list) and v for v in meta["history"].values())
    assert meta["final_metrics"]
    if meta["task"] == "regression":
        assert {"loss", "val_loss"} <= set(meta["history"])
    elif meta["model_kind"] != "generator":
        assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(meta["history"]) or "d_loss" in meta["history"]
    if meta["dataset"] in SYNTHETIC:
        assert meta["ground_truth"] == "mask_val"


@pytest.mark.parametrize("stem", zoo.artifact_stems())
def test_expected_findings(stem):
    meta = json.loads((zoo.ARTIFACT_DIR / f"{stem}.meta.json").read_text())
    codes = {**TWIN_CODES, **COMPANION_TWIN_CODES}
    if stem in codes:
        assert [f["code"] for f in meta["expected_findings"]] == [codes[stem]]
        # the sidecars keep the codes they were recorded with: an old one must be a documented alias
        # (diagnostics.codes.ALIASES, matched to its replacement), a current one an analyzer's own
        for f in meta["expected_findings"]:
            assert is_alias(f["code"]) or f["code"].split(".")[0] in {"weights", "architecture", "predictions", "data", "health"}, f["code"]
        assert all(f["severity"] in {"info", "warning", "error"} and f["measured"] for f in meta["expected_findings"])
        assert meta["fault"]["measurement"] and "value" in meta["fault"]
    else:
        assert meta["expected_findings"] == []
        assert "fault" not in meta


@pytest.mark.parametrize("gen", ["gan", "gan_collapsed"])
def test_gan_companions(gen):
    g = json.loads((zoo.ARTIFACT_DIR / f"{gen}.meta.json").read_text())
    d = json.loads((zoo.ARTIFACT_DIR / f"{gen}_discriminator.meta.json").read_text())
    assert g["model_kind"] == "generator"
    assert g["companions"] == {"discriminator": f"{gen}_discriminator.keras", "classifier": "cnn.keras"}
    assert d["companions"] == {"generator": f"{gen}.keras"}
    assert {"d_loss", "g_loss"} <= set(g["history"])
    assert len(g["history"]["d_loss"]) == len(g["history"]["g_loss"]) == g["training"]["epochs"]


def test_zoo_size():
    total = sum(p.stat().st_size for p in zoo.ARTIFACT_DIR.iterdir() if p.is_file())
    assert total < MAX_ZOO_BYTES, f"the committed zoo is {total / 2**20:.1f} MiB, over the 20 MiB budget"
    stray = [p.name for p in zoo.ARTIFACT_DIR.iterdir()  # checkpoints/: diagnostics_zoo.checkpoints' training run
             if (p.name.split(".", 1)[0] not in zoo.artifact_stems() or p.name.startswith(".tmp"))
             and not (p.is_dir() and p.name == "checkpoints")]
    assert not stray, f"files in artifacts/ that belong to no zoo entry: {stray}"
