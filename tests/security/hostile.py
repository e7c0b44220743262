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


# -- issue 22: the scan trusts classes, not names ---------------------------------------------------
def tensor_ref(layer: str, shape: list, dtype: str = "float32") -> dict:
    """A serialized tensor reference (``__keras_tensor__``), as Keras writes a layer call's input."""
    return {"class_name": "__keras_tensor__", "config": {"shape": shape, "dtype": dtype, "keras_history": [layer, 0, 0]}}


def call_layer(name: str, cls: str, config: dict, args: list, *, module: str = "keras.layers",
               registered_name: str | None = None, build_config: dict | None = None) -> dict:
    """A layer node of a Functional model, called with ``args``, as Keras 3 writes it."""
    node = {"module": module, "class_name": cls, "config": {"name": name, **config}, "registered_name": registered_name,
            "name": name, "inbound_nodes": [{"args": args, "kwargs": {}}]}
    if build_config is not None:
        node["build_config"] = build_config
    return node


def nested_model(name: str, layers: list) -> dict:
    """A serialized Functional model, as Keras rebuilds whatever a layer call's arguments hold."""
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": name, "trainable": True, "layers": layers, "input_layers": [], "output_layers": []}}


def lstm_carrying(payload: dict, **node) -> dict:
    """An ordinary-looking LSTM (a name the keras2_compat plugin registers) whose call argument is ``payload``."""
    return call_layer("lstm", "LSTM", {"units": 2}, [payload], **node)


def numpy_constant(value, dtype: str) -> dict:
    return {"class_name": "__numpy__", "config": {"value": value, "dtype": dtype}}


def chunk_names(h5_path: Path, group: str, attr: str, names: list[str], chunks: int = 2) -> Path:
    """Replace ``group``'s ``attr`` list with ``attr0``, ``attr1``... (the chunked form Keras also reads)."""
    with h5py.File(h5_path, "a") as f:
        g = f[group] if group != "/" else f
        del g.attrs[attr]
        step = -(-len(names) // chunks)
        for i in range(chunks):
            g.attrs[f"{attr}{i}"] = names[i * step:(i + 1) * step]
    return h5_path


def zip64_lie(base: Path, out: Path, entries: int) -> Path:
    """``base`` with a zip64 end record (and its locator) before the classic end record, declaring ``entries``
    directory entries and a directory of ``entries * 46`` bytes, where the classic record declares the real
    few. zipfile believes the zip64 record."""
    import struct

    data = base.read_bytes()
    assert data[-22:-18] == b"PK\x05\x06", "the base archive has a comment"
    body, eocd = data[:-22], data[-22:]
    cd_offset = struct.unpack("<I", eocd[16:20])[0]
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, entries * 46, cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(body), 1)
    out.write_bytes(body + record + locator + eocd)
    return out


def zeros_archive(base: Path, out: Path, count: int, size: int = 1 << 20) -> Path:
    """``base`` plus ``count`` entries of ``size`` zero bytes, each about 1 KB deflated. The entries are written
    by hand from one deflated stream, so the file takes a second to build, not the minutes deflating
    gigabytes would."""
    import struct
    import zlib

    _, entries = read_keras(base)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = packer.compress(bytes(size)) + packer.flush()
    crc = zlib.crc32(bytes(size))
    files = [(n, zlib.compress(b, 9)[2:-4], zlib.crc32(b), len(b)) for n, b in entries.items()]
    files += [(f"assets/zeros{i:05d}.bin", zeros, crc, size) for i in range(count)]
    local, central = bytearray(), bytearray()
    for name, blob, crc_, full in files:
        raw = name.encode()
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc_, len(blob), full,
                               len(raw), 0, 0, 0, 0, 0, len(local)) + raw
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc_, len(blob), full, len(raw), 0) + raw + blob
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(files), len(files), len(central), len(local), 0)
    out.write_bytes(bytes(local) + bytes(central) + end)
    return out
