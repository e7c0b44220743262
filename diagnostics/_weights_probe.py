"""How far each layer's weights moved between two model files, read in a child process confined to
reading the two files (issue 26's weights comparison): ``diagnose compare`` never parses a model's HDF5
in its own process, as the pre-scan never does (:mod:`diagnostics._h5probe`).

Run as a script, ``python -I _weights_probe.py REQUEST`` (REQUEST: JSON with ``a``, ``b`` and
``memory``), it prints JSON: ``{"layers": {layer: [relative change, arrays, weights] | "nonfinite"}}``,
or ``{"shapes": [...]}`` when the weight arrays differ, or ``{"error": ...}``. Like ``_h5probe`` it
does not import the ``diagnostics`` package; the sandbox is loaded by path.
"""

from __future__ import annotations

import json
import sys


def read_weights(path: str) -> dict:
    """Every weight array of a ``.keras`` or ``.h5`` file by its path in the file (optimizer state left out)."""
    import io
    import zipfile

    import h5py

    out: dict = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.startswith(("optimizer", "optimizer_weights")):
            out[name] = obj[()]

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            f.visititems(visit)
    else:
        with h5py.File(path, "r") as f:
            (f["model_weights"] if "model_weights" in f else f).visititems(visit)
    return out


def layer_of(name: str) -> str:
    """``layers/dense/vars/0`` -> ``dense``; ``conv1/conv1/kernel`` -> ``conv1``."""
    parts = name.split("/")
    if parts[0] == "layers" and "vars" in parts:
        return "/".join(parts[1:parts.index("vars")])
    return parts[0]


def distances(a_path: str, b_path: str) -> dict:
    import numpy as np

    wa, wb = read_weights(a_path), read_weights(b_path)
    shapes_a = {k: tuple(np.shape(v)) for k, v in wa.items()}
    shapes_b = {k: tuple(np.shape(v)) for k, v in wb.items()}
    if shapes_a != shapes_b:
        differ = sorted(set(shapes_a.items()) ^ set(shapes_b.items()))[:3]
        return {"shapes": [f"{k} {s}" for k, s in differ]}
    layers: dict = {}
    for k in sorted(wa):
        layers.setdefault(layer_of(k), []).append(k)
    out = {}
    for layer, keys in layers.items():
        a = np.concatenate([np.ravel(wa[k]).astype(np.float64) for k in keys])
        b = np.concatenate([np.ravel(wb[k]).astype(np.float64) for k in keys])
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            out[layer] = "nonfinite"
            continue
        norm = float(np.linalg.norm(a))
        rel = float(np.linalg.norm(b - a)) / norm if norm > 0 else float(np.linalg.norm(b))
        out[layer] = [rel, len(keys), int(a.size)]
    return {"layers": out}


def confine(paths: tuple) -> None:
    """Read only the two files (and Python) from here on, where the kernel offers a sandbox."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_diagnostics_sandbox", Path(__file__).with_name("_sandbox.py"))
    sandbox = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sandbox)
    if sandbox.unavailable_reason() is None:
        sandbox.confine(sandbox.Policy(read=paths))


def main(argv: list) -> int:
    request = json.loads(argv[1])
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (int(request["memory"]), int(request["memory"])))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on Linux
        pass
    confine((request["a"], request["b"]))
    try:
        result = distances(request["a"], request["b"])
    except MemoryError:
        result = {"error": f"reading the weights needs more than {int(request['memory']):,} bytes of memory"}
    except (OSError, KeyError, ValueError) as e:
        result = {"error": f"cannot read the weights: {type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
