"""Malformed and oversized files: every one is refused (exit 4, ModelRefused) with one line naming
the file, the part and the problem — never an internal error, a hang or an allocation."""

from __future__ import annotations

import dataclasses
import json
import struct
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from diagnostics import ExitCode
from diagnostics._limits import DEFAULT, LoadLimits
from diagnostics.safety import ModelRefused, scan

from . import hostile
from .conftest import run_measured

REFUSED = int(ExitCode.MODEL_REFUSED)
#: CPU seconds a refused file may cost the CLI's whole process tree (a refusal costs 1-3 s). Each bomb here
#: costs minutes of CPU or gigabytes when unbounded (docs/security.md's attack catalogue); CPU, not wall,
#: since a loaded machine stretches the wall clock of the same work several times over
MAX_CPU_S = 30


def _zip(path: Path, entries: list[tuple[str, bytes]], **kw) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, **kw) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def _patch_all(data: bytes, signature: bytes, offset: int, fmt: str, value) -> bytes:
    """Set a field of every local header / central directory record (found by signature)."""
    out = bytearray(data)
    at = out.find(signature)
    while at >= 0:
        struct.pack_into(fmt, out, at + offset, value)
        at = out.find(signature, at + 4)
    return bytes(out)


def _entries(plain) -> dict[str, bytes]:
    return hostile.read_keras(plain["keras"])[1]


def build(name: str, plain, d: Path) -> Path:
    """One malformed file per case, from the real plain model."""
    config, entries = hostile.read_keras(plain["keras"])
    keras_path = d / f"{name}.keras"
    h5_path = d / f"{name}.h5"
    if name == "deep_json":
        return hostile.write_keras(keras_path, None, entries, raw_config=b"[" * 200_000 + b"]" * 200_000)
    if name == "deep_json_h5":
        h5_path.write_bytes(plain["h5"].read_bytes())
        with h5py.File(h5_path, "a") as f:
            f.attrs["model_config"] = "[" * 200_000 + "]" * 200_000
        return h5_path
    if name == "deep_objects":
        deep: dict = {"name": "d"}
        for _ in range(150):
            deep = {"wrap": deep}
        config["config"]["layers"][1]["config"]["units"] = deep
        return hostile.write_keras(keras_path, config, entries)
    if name == "compile_config_list":
        config["compile_config"] = [1, 2]
        return hostile.write_keras(keras_path, config, entries)
    if name == "config_is_array":
        return hostile.write_keras(keras_path, None, entries, raw_config=b"[1, 2, 3]")
    if name in ("model_config_int", "model_config_string_array", "model_config_float_array"):
        h5_path.write_bytes(plain["h5"].read_bytes())
        with h5py.File(h5_path, "a") as f:
            del f.attrs["model_config"]
            f.attrs["model_config"] = {"model_config_int": np.int64(5),
                                       "model_config_string_array": np.array([b"{}", b"{}"]),
                                       "model_config_float_array": np.zeros(3)}[name]
        return h5_path
    if name == "metadata_nan_version":
        entries["metadata.json"] = b'{"keras_version": NaN, "date_saved": "x"}'
        return hostile.write_keras(keras_path, config, entries)
    if name == "metadata_list":
        entries["metadata.json"] = b"[]"
        return hostile.write_keras(keras_path, config, entries)
    if name == "unknown_compression":
        data = _zip(keras_path, list(entries.items())).read_bytes()
        data = _patch_all(data, b"PK\x03\x04", 8, "<H", 99)
        keras_path.write_bytes(_patch_all(data, b"PK\x01\x02", 10, "<H", 99))
        return keras_path
    if name == "encrypted_flag":
        data = _zip(keras_path, list(entries.items())).read_bytes()
        data = _patch_all(data, b"PK\x03\x04", 6, "<H", 1)
        keras_path.write_bytes(_patch_all(data, b"PK\x01\x02", 8, "<H", 1))
        return keras_path
    if name == "corrupt_deflate":
        big = json.dumps({**config, "padding": list(range(5000))}).encode()
        entries["config.json"] = big
        data = bytearray(_zip(keras_path, list(entries.items())).read_bytes())
        at = data.find(b"config.json") + len("config.json") + 40  # inside config.json's deflate stream
        data[at:at + 64] = bytes(64)
        keras_path.write_bytes(bytes(data))
        return keras_path
    if name == "duplicate_entry":
        return _zip(keras_path, [*entries.items(), ("config.json", b'{"class_name": "Sequential", "config": {}}')])
    if name == "symlink_entry":
        with zipfile.ZipFile(keras_path, "w") as zf:
            for n, b in entries.items():
                if n == "model.weights.h5":
                    info = zipfile.ZipInfo(n)
                    info.external_attr = (0o120777 << 16)
                    zf.writestr(info, b"/etc/passwd")
                else:
                    zf.writestr(n, b)
        return keras_path
    if name == "unsafe_backslash_path":
        return _zip(keras_path, [*entries.items(), ("..\\..\\evil", b"x")])
    if name == "truncated_directory":
        data = plain["keras"].read_bytes()
        keras_path.write_bytes(data[:-10])
        return keras_path
    raise KeyError(name)


CASES = {
    "deep_json": "deep_json.keras: config.json is nested too deeply to parse",
    "deep_json_h5": "deep_json_h5.h5: the model_config attribute is nested too deeply to parse",
    "deep_objects": "deep_objects.keras: config.json at $.config.layers[1].config.units",
    "compile_config_list": "compile_config_list.keras: config.json: compile_config is a list, not an object",
    "config_is_array": "config_is_array.keras: config.json is a list, not an object",
    "model_config_int": "model_config_int.h5: the model_config attribute is int64",
    "model_config_string_array": "model_config_string_array.h5: the model_config attribute is ndarray(2,), not a JSON string",
    "model_config_float_array": "model_config_float_array.h5: the model_config attribute is ndarray(3,), not a JSON string",
    "metadata_nan_version": "metadata_nan_version.keras: keras_version is nan, not a version string",
    "metadata_list": "metadata_list.keras: metadata.json is a list, not an object",
    "unknown_compression": "unknown_compression.keras: archive entry 'metadata.json' uses compression method 99",
    "encrypted_flag": "encrypted_flag.keras: archive entry 'metadata.json' is encrypted",
    "corrupt_deflate": "corrupt_deflate.keras: config.json cannot be read (",
    "duplicate_entry": "duplicate_entry.keras has two archive entries named 'config.json': ambiguous archive",
    "symlink_entry": "symlink_entry.keras: archive entry 'model.weights.h5' is a symbolic link: ambiguous archive",
    "unsafe_backslash_path": "unsafe_backslash_path.keras has an archive entry with an unsafe path",
    "truncated_directory": "truncated_directory.keras is not a readable .keras archive",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_file_refused_naming_file_part_problem(name, plain, tmp_path):
    path = build(name, plain, tmp_path)
    with pytest.raises(ModelRefused) as e:
        scan(path)
    assert CASES[name] in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["deep_json", "model_config_string_array", "metadata_nan_version", "corrupt_deflate"])
def test_malformed_file_exits_4_in_one_line(name, plain, tmp_path):
    path = build(name, plain, tmp_path)
    run = run_measured(path, "--out", tmp_path / "out")
    lines = [l for l in run["stderr"].splitlines() if l.strip()]
    assert run["rc"] == REFUSED and len(lines) == 1, run["stderr"]
    assert lines[0].startswith("diagnose: model refused: ") and CASES[name] in lines[0]


# -- bombs: tiny files that would ask for gigabytes --------------------------------------------------
def _fill_only_h5(plain, path: Path, names: int) -> Path:
    """The plain .h5 with a 1 GiB dataset that is never written (fill value only: a few bytes on disk),
    named ``names`` times in weight_names."""
    path.write_bytes(plain["h5"].read_bytes())
    with h5py.File(path, "a") as f:
        g = f["model_weights/dense"]
        g.create_dataset("big", shape=(1 << 28,), dtype="float32")
        g.attrs["weight_names"] = np.array([b"big"] * names)
    return path


def test_fill_only_dataset_named_three_times(plain, tmp_path):
    path = _fill_only_h5(plain, tmp_path / "fill3.h5", 3)
    assert path.stat().st_size < 100_000
    run = run_measured(path, "--out", tmp_path / "out")
    assert run["rc"] == REFUSED, run["stderr"]
    assert "fill3.h5: group /model_weights/dense: weight_names lists 'big' more than once" in run["stderr"]
    assert run["peak_rss_mib"] < 1536 and run["cpu_s"] < MAX_CPU_S


def test_fill_only_dataset_is_an_allocation_bomb(plain, tmp_path):
    path = _fill_only_h5(plain, tmp_path / "fill1.h5", 1)
    with pytest.raises(ModelRefused, match=r"fill1.h5: its weights (hold more than|declare 1,073,741,8\d\d bytes, far more than)"):
        scan(path)


def test_dataset_linked_twice(plain, tmp_path):
    path = tmp_path / "twice.h5"
    path.write_bytes(plain["h5"].read_bytes())
    with h5py.File(path, "a") as f:
        f["model_weights/again"] = f["model_weights/dense/dense/kernel"]  # a second hard link
    with pytest.raises(ModelRefused, match=r"twice.h5: the HDF5 object at /model_weights/\S+ is also linked at /model_weights/\S+"):
        scan(path)


def test_soft_link_refused(plain, tmp_path):
    path = tmp_path / "soft.h5"
    path.write_bytes(plain["h5"].read_bytes())
    with h5py.File(path, "a") as f:
        f["model_weights/alias"] = h5py.SoftLink("/model_weights/dense")
    with pytest.raises(ModelRefused, match="soft.h5 has an HDF5 soft link at /model_weights/alias"):
        scan(path)


def test_huge_model_config_attribute(plain, tmp_path):
    path = tmp_path / "bigattr.h5"
    path.write_bytes(plain["h5"].read_bytes())
    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        config["padding"] = "x" * (60 << 20)
        f.attrs["model_config"] = json.dumps(config)
    run = run_measured(path, "--out", tmp_path / "out")
    assert run["rc"] == REFUSED, run["stderr"]
    assert "bigattr.h5: the model_config attribute is 62,9" in run["stderr"] and "over the 16,777,216-byte limit" in run["stderr"]
    assert run["peak_rss_mib"] < 1536 and run["cpu_s"] < MAX_CPU_S, run


def test_config_declaring_huge_dense_kernels(plain, tmp_path):
    def edit(config):
        layers = config["config"]["layers"]
        for i, units in enumerate((65536, 65536)):
            layers.append({"module": "keras.layers", "class_name": "Dense", "name": f"huge{i}", "registered_name": None,
                           "config": {"name": f"huge{i}", "units": units}, "build_config": {"input_shape": [None, 4096]},
                           "inbound_nodes": []})
        return config
    path = hostile.edit_config(plain["keras"], tmp_path / "kernels.keras", edit)
    assert path.stat().st_size < 20_000
    run = run_measured(path, "--out", tmp_path / "out")
    assert run["rc"] == REFUSED, run["stderr"]
    assert "kernels.keras: config.json: its layers declare 537,001,994 weights, over the 200,000,000 limit" in run["stderr"]
    assert run["peak_rss_mib"] < 1536 and run["cpu_s"] < MAX_CPU_S


def test_embedding_declared_against_file_size(plain, tmp_path):
    def edit(config):
        config["config"]["layers"].append({"module": "keras.layers", "class_name": "Embedding", "name": "e", "registered_name": None,
                                           "config": {"name": "e", "input_dim": 10_000_000, "output_dim": 8}, "inbound_nodes": []})
        return config
    path = hostile.edit_config(plain["keras"], tmp_path / "emb.keras", edit)
    with pytest.raises(ModelRefused, match=r"emb.keras: config.json: its layers declare 80,000,010 weights \(305.2 MiB as float32\), far more than"):
        scan(path)


def test_too_many_layers(plain, tmp_path):
    def edit(config):
        config["config"]["layers"] += [{"module": "keras.layers", "class_name": "Dropout", "name": f"d{i}", "registered_name": None,
                                        "config": {"name": f"d{i}", "rate": 0.1}, "inbound_nodes": []} for i in range(3000)]
        return config
    path = hostile.edit_config(plain["keras"], tmp_path / "layers.keras", edit)
    with pytest.raises(ModelRefused, match=r"layers.keras: config.json at \$.config.layers\[\d+\]: more than 1000 layers"):
        scan(path)


def _central_directory_bomb(plain, path: Path, records: int) -> Path:
    """A real archive followed by ``records`` extra central-directory records (all naming one entry)."""
    base = plain["keras"].read_bytes()
    eocd_at = base.rfind(b"PK\x05\x06")
    _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<HHHHIIH", base[eocd_at + 4:eocd_at + 22])
    first = base[cd_offset:cd_offset + 46]
    name_len, extra_len, comment_len = struct.unpack("<HHH", first[28:34])
    record = base[cd_offset:cd_offset + 46 + name_len + extra_len + comment_len]
    directory = base[cd_offset:cd_offset + cd_size] + record * records
    total = entries + records
    zip64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, total, total, len(directory), cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, cd_offset + len(directory), 1)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(base[:cd_offset] + directory + zip64 + locator + eocd)
    return path


def test_central_directory_bomb_refused_before_reading(plain, tmp_path):
    path = _central_directory_bomb(plain, tmp_path / "cd.keras", 20_000)
    with pytest.raises(ModelRefused, match=r"cd.keras has 20,003 archive entries, over the limit of 10,000"):
        scan(path)
    with pytest.raises(ModelRefused, match=r"cd.keras: its archive directory is .* over the 64.0 KiB limit"):
        scan(path, limits=LoadLimits(max_zip_entries=10 ** 9, max_zip_directory_bytes=64 << 10))


@pytest.mark.slow
def test_two_million_directory_records(plain, tmp_path):
    path = _central_directory_bomb(plain, tmp_path / "cd2m.keras", 2_000_000)
    run = run_measured(path, "--out", tmp_path / "out")
    assert run["rc"] == REFUSED and "cd2m.keras has 2,000,003 archive entries" in run["stderr"]
    assert run["peak_rss_mib"] < 1536 and run["cpu_s"] < MAX_CPU_S, run


def _inflation_bomb(plain, path: Path, inflated: int) -> Path:
    """A .keras whose weights entry inflates ~190:1 (under the ratio limit): zeros with a little noise."""
    rng = np.random.default_rng(0)
    block = bytearray(1 << 20)
    block[:5500] = rng.bytes(5500)  # ~0.5% incompressible: about 190:1 overall
    entries = _entries(plain)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, b in entries.items():
            if n != "model.weights.h5":
                zf.writestr(n, b)
        info = zipfile.ZipInfo("model.weights.h5", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as out:
            for _ in range(inflated >> 20):
                out.write(bytes(block))
    return path


def test_inflation_bomb_stream_checked(plain, tmp_path):
    path = _inflation_bomb(plain, tmp_path / "inflate.keras", 48 << 20)
    info = zipfile.ZipFile(path).getinfo("model.weights.h5")
    assert 100 < info.file_size / info.compress_size < 200  # under the ratio limit: the stream cap is what stops it
    limits = dataclasses.replace(DEFAULT, max_params=4 << 20)  # weights capped at 4 x 4 Mi + 16 MiB = 32 MiB
    with pytest.raises(ModelRefused, match=r"inflate.keras: model.weights.h5 is 48.0 MiB, over the 32.0 MiB limit"):
        scan(path, limits=limits)


@pytest.mark.slow
def test_inflation_bomb_full_size(plain, tmp_path):
    path = _inflation_bomb(plain, tmp_path / "inflate2g.keras", 2 << 30)
    run = run_measured(path, "--out", tmp_path / "out")
    assert run["rc"] == REFUSED and "inflate2g.keras: model.weights.h5 is 2.0 GiB, over the" in run["stderr"], run["stderr"]
    assert run["peak_rss_mib"] < 1536 and run["cpu_s"] < MAX_CPU_S, run
