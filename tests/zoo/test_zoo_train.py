"""The retraining command reproduces the shipped artifacts (deterministic training)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import diagnostics_zoo as zoo


def test_unknown_entry_is_refused(keras_tf, capsys):
    from diagnostics_zoo import train

    with pytest.raises(SystemExit) as exc:
        train.main(["no_such_model"])
    assert exc.value.code == 2 and "unknown zoo entries ['no_such_model']" in capsys.readouterr().err
    assert set(train.RECIPES) == set(zoo.ZOO)


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["mlp", "mlp_vanishing"])
def test_retraining_reproduces_the_shipped_artifact(stem, tmp_path, load_model):
    """Same seed, same data, same weights. Exact on the machine that trained the zoo; another CPU
    (other vector instructions) may differ in the last bits, hence the small tolerance."""
    subprocess.run([sys.executable, "-m", "diagnostics_zoo.train", stem, "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=600)
    import keras

    fresh = keras.saving.load_model(tmp_path / f"{stem}.keras")
    for a, b in zip(fresh.get_weights(), load_model(stem).get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    new, old = (json.loads(p.read_text()) for p in (tmp_path / f"{stem}.meta.json", zoo.ARTIFACT_DIR / f"{stem}.meta.json"))
    assert new["final_metrics"]["val_accuracy"] == old["final_metrics"]["val_accuracy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{stem}{s}" for s in (".h5", ".keras", ".meta.json"))
