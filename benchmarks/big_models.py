"""Diagnose the large networks users bring, with default options, and report wall time and peak memory
per analyzer: ``python benchmarks/big_models.py [resnet50|mobilenetv2 ...] [--out DIR]``.

Builds ``keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=10)`` and
``MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)`` (weights=None downloads nothing),
saves each with 64 random validation images and labels, runs ``diagnose`` on it, and prints one line
per analyzer: status, wall seconds, peak resident memory of its worker. Used by the slow test
``tests/memory/test_big_models.py``; run the models one at a time on a shared machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODELS = {
    "resnet50": ("ResNet50", (224, 224, 3)),
    "mobilenetv2": ("MobileNetV2", (96, 96, 3)),
}
N_IMAGES = 64


def build(name: str, out: Path) -> tuple[Path, Path]:
    """Save the model and its data under ``out`` (in a subprocess, so this process stays free of keras)."""
    out.mkdir(parents=True, exist_ok=True)
    model_path, data_path = out / f"{name}.keras", out / f"{name}_data.npz"
    if model_path.exists() and data_path.exists():
        return model_path, data_path
    cls, shape = MODELS[name]
    code = (
        "import numpy as np, keras\n"
        "keras.utils.set_random_seed(0)\n"
        f"m = keras.applications.{cls}(weights=None, input_shape={shape!r}, classes=10)\n"
        f"m.save({str(model_path)!r})\n"
        "rng = np.random.default_rng(0)\n"
        f"np.savez({str(data_path)!r}, x_val=rng.uniform(0, 1, size=({N_IMAGES}, *{shape!r})).astype('float32'),"
        f" y_val=rng.integers(0, 10, {N_IMAGES}))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    return model_path, data_path


def diagnose(name: str, out: Path, *extra: str) -> dict:
    model_path, data_path = build(name, out)
    diagnose_exe = str(Path(sys.executable).parent / "diagnose")
    t0 = time.perf_counter()
    proc = subprocess.run([diagnose_exe, str(model_path), "--data", str(data_path), "--out", str(out / f"{name}_report"),
                           *extra], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    report = json.loads((out / f"{name}_report" / "report.json").read_text()) if proc.returncode in (0, 1, 3) else None
    return {"name": name, "exit": proc.returncode, "wall_s": round(wall, 1), "stderr": proc.stderr[-2000:], "report": report}


def main(argv: list[str]) -> int:
    out = Path("/tmp/diagnostics-big-models")
    if "--out" in argv:
        i = argv.index("--out")
        out = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    for name in argv or list(MODELS):
        r = diagnose(name, out)
        print(f"{name}: exit {r['exit']}, wall {r['wall_s']} s")
        if r["report"] is None:
            print(r["stderr"])
            continue
        for a in r["report"]["analyzers"]:
            print(f"  {a['name']:<20} {a['status']:<9} {a['duration_s']:>7.1f} s  peak {a.get('peak_memory_mb')} MiB  "
                  f"{'; '.join(a.get('resource_notes') or [])} {a['reason'][:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
