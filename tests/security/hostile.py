"""Generators of hostile model files, rebuilt from the red-team report of issue 10.

Every generator starts from a *real* Keras file (``plain.keras`` / ``plain.h5``, saved by Keras) and
edits its config the way an attacker would, so the files are what Keras itself would read. Where the
attack has an effect, it points at a canary path: the test asserts the canary never appears.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py


def fn(module: str, name: str) -> dict:
    """A serialized function reference, as Keras writes it."""
    return {"module": module, "class_name": "function", "config": name, "registered_name": name}


def op_layer(name: str, cls: str, args: list, kwargs: dict | None = None, module: str = "keras.src.ops.core") -> dict:
    """A Keras *operation* placed in a Functional model's layer list, called with constants from the file."""
    return {"module": module, "class_name": cls, "config": {"name": name}, "registered_name": None, "name": name,
            "inbound_nodes": [{"args": args, "kwargs": kwargs or {}}]}


def switch_gadget(name: str, function: dict, operands: list) -> dict:
    """``keras.ops.switch(0, [function], *operands)``: with no tensor among its arguments it runs at load time."""
    return op_layer(name, "Switch", [0, [function], *operands])


def plot_gallery_gadget(canary: Path) -> dict:
    """Writes a PNG to ``canary`` through keras.visualization.plot_image_gallery."""
    images = {"class_name": "__numpy__", "config": {"value": [[[[0, 0, 0]] * 2] * 2], "dtype": "uint8"}}  # one 2x2 RGB image
    return switch_gadget("gallery", fn("keras.visualization", "plot_image_gallery"),
                         [images, None, None, None, 1, 1, [0, 255], 1, str(canary)])


def tfsm_gadget(saved_model_dir: Path) -> dict:
    """TFSMLayer as a *function* operand: loads a SavedModel from elsewhere and runs its initializers."""
    return switch_gadget("tfsm", fn("keras.layers", "TFSMLayer"), [str(saved_model_dir)])


def while_loop_gadget() -> dict:
    """keras.ops.while_loop with a never-false condition: spins forever at load time."""
    return switch_gadget("spin", fn("keras.ops", "while_loop"), [fn("keras.ops", "ones_like"), fn("keras.ops", "abs"), [1.0]])


# -- editing real files ----------------------------------------------------------------------------
def read_keras(path: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    return json.loads(entries["config.json"]), entries


def write_keras(path: Path, config, entries: dict[str, bytes], raw_config: bytes | None = None) -> Path:
    entries = dict(entries)
    entries["config.json"] = raw_config if raw_config is not None else json.dumps(config).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    return path


def with_layer(base: Path, out: Path, layer: dict) -> Path:
    """``base`` (.keras or .h5) with ``layer`` appended to its Functional layer list."""
    if base.suffix == ".keras":
        config, entries = read_keras(base)
        config["config"]["layers"].append(layer)
        return write_keras(out, config, entries)
    out.write_bytes(base.read_bytes())
    with h5py.File(out, "a") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"].append(layer)
        f.attrs["model_config"] = json.dumps(config)
    return out


def edit_config(base: Path, out: Path, edit) -> Path:
    """``base`` with ``edit(config)`` applied to its model config (``edit`` returns the new config)."""
    if base.suffix == ".keras":
        config, entries = read_keras(base)
        return write_keras(out, edit(config), entries)
    out.write_bytes(base.read_bytes())
    with h5py.File(out, "a") as f:
        f.attrs["model_config"] = json.dumps(edit(json.loads(f.attrs["model_config"])))
    return out
