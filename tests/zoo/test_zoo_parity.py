"""A zoo model saved under TensorFlow predicts the same under torch (atol 1e-5).

One torch subprocess loads every shipped ``.keras`` file (without custom_objects: the zoo's layers
register themselves on import) and compares with the TensorFlow predictions written by this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diagnostics_zoo as zoo

ATOL = 1e-5
#: Compared by weights, not predictions: mlp_nan's NaN activations go through ReLU, which TensorFlow's
#: fused graph kernels turn into 0 (so it predicts the majority class) while torch keeps NaN.
WEIGHTS_ONLY = {"mlp_nan"}

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    import diagnostics_zoo
    import diagnostics_zoo.layers  # registers the zoo's custom layers, as the core's plugin loading does
    assert keras.backend.backend() == "torch", keras.backend.backend()
    data = np.load(sys.argv[1])
    failures = []
    for stem in sys.argv[2:]:
        model = keras.saving.load_model(diagnostics_zoo.ARTIFACT_DIR / f"{stem}.keras")
        if stem in %(weights_only)r:
            got = np.concatenate([np.ravel(w) for w in model.get_weights()])
        else:
            got = model.predict(data[f"{stem}:x"], batch_size=len(data[f"{stem}:x"]), verbose=0)
        want = data[f"{stem}:y"]
        if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=%(atol)r, equal_nan=True):
            diff = np.nanmax(np.abs(got - want)) if got.shape == want.shape else got.shape
            failures.append(f"{stem}: max |torch - tf| = {diff}")
    print("\\n".join(failures) or "all equal")
    sys.exit(1 if failures else 0)
""") % {"atol": ATOL, "weights_only": tuple(sorted(WEIGHTS_ONLY))}


def _inputs(stem: str, meta: dict) -> np.ndarray:
    if meta["model_kind"] == "generator":
        return np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    return zoo.DATASETS[meta["dataset"]](meta["split_seed"])["x_val"][:64]


@pytest.mark.slow
def test_tf_to_torch_parity_every_artifact(load_model, meta, tmp_path):
    _parity(zoo.artifact_stems(), load_model, meta, tmp_path)


def test_tf_to_torch_parity_custom_layers(load_model, meta, tmp_path):
    """The fast subset: the model with custom layers and the convnet."""
    _parity(("transformer", "cnn"), load_model, meta, tmp_path)


def _parity(stems, load_model, meta, tmp_path):
    arrays = {}
    for stem in stems:
        x = _inputs(stem, meta(stem))
        arrays[f"{stem}:x"] = x
        model = load_model(stem)
        if stem in WEIGHTS_ONLY:
            arrays[f"{stem}:y"] = np.concatenate([np.ravel(w) for w in model.get_weights()])
        else:
            arrays[f"{stem}:y"] = model.predict(x, batch_size=len(x), verbose=0)
    path = tmp_path / "tf_predictions.npz"
    np.savez(path, **arrays)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), *stems], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
