"""Hostile sidecars, data files and sweep folders through the real ``diagnose``: each is refused in one
line that names the file and the problem, with the data/model exit code — never an internal error
(exit 70), a traceback, or a parse that costs gigabytes. Bounds: :class:`diagnostics._limits.DataLimits`."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from diagnostics import ExitCode
from diagnostics._limits import DATA_DEFAULT, MiB
from tests.conftest import CHECKPOINTS, ZOO_DIR, run_diagnose

DATA = int(ExitCode.DATA_REFUSED)
MODEL = int(ExitCode.MODEL_REFUSED)
#: the zoo's tabular model (30 features, sigmoid) and its sidecar: real files to mutate
MLP = ZOO_DIR / "mlp.h5"


def _one_line(proc, code: int, *needles: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _model(tmp_path: Path, sidecar: str | bytes | None = None) -> Path:
    d = tmp_path / "m"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(MLP, d / "mlp.h5")
    if sidecar is not None:
        side = d / "mlp.meta.json"
        side.write_bytes(sidecar.encode() if isinstance(sidecar, str) else sidecar)
    return d / "mlp.h5"


def _zoo_meta() -> dict:
    return json.loads((ZOO_DIR / "mlp.meta.json").read_text())


def _run(model: Path, tmp_path: Path, *args):
    return run_diagnose(model, "--out", tmp_path / "out", "--only", "architecture", *args, timeout=300)


# -- sidecars ------------------------------------------------------------------------------------------
def test_sidecar_nested_100k_deep(tmp_path):
    model = _model(tmp_path, "[" * 100_000 + "]" * 100_000)
    _one_line(_run(model, tmp_path), DATA, "mlp.meta.json", "nested more than 100 levels")


def test_sidecar_deep_inside_an_object(tmp_path):
    model = _model(tmp_path, json.dumps({**_zoo_meta(), "notes": json.loads("[" * 500 + "]" * 500)}))
    _one_line(_run(model, tmp_path), DATA, "mlp.meta.json", "nested more than 100 levels")


def test_split_seed_not_an_integer(tmp_path):
    model = _model(tmp_path, json.dumps({**_zoo_meta(), "split_seed": "abc"}))
    _one_line(_run(model, tmp_path), DATA, "mlp.meta.json", "'split_seed' must be an integer", '"abc"')


def test_dataset_not_a_string(tmp_path):
    model = _model(tmp_path, json.dumps({**_zoo_meta(), "dataset": ["breast_cancer"]}))
    _one_line(_run(model, tmp_path), DATA, "mlp.meta.json", "'dataset' must be a string, not an array")


def test_sidecar_a_json_list(tmp_path):
    model = _model(tmp_path, "[1, 2]")
    _one_line(_run(model, tmp_path), DATA, "mlp.meta.json", "must be a JSON object, not an array")


def test_sidecar_over_the_size_bound(tmp_path):
    history = {"loss": [0.5] * (DATA_DEFAULT.max_sidecar_bytes // 4)}  # "0.5, " per value: ~5 MiB
    model = _model(tmp_path, json.dumps({**_zoo_meta(), "history": history}))
    _one_line(_run(model, tmp_path), DATA, "mlp.meta.json", "over the 4.0 MiB limit")


def test_sidecar_link_out_of_the_folder_never_tells_whether_its_target_exists(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps(_zoo_meta()))
    lines = []
    for target in (outside / "secret.json", outside / "missing.json"):
        run_dir = tmp_path / target.stem
        model = _model(run_dir)
        (model.parent / "mlp.meta.json").symlink_to(target)
        lines.append(_one_line(_run(model, run_dir), DATA, "mlp.meta.json", "symbolic link out of the model's folder"))
    assert lines[0] == lines[1]


# -- CSV -----------------------------------------------------------------------------------------------
HEADER = ",".join(f"f{i}" for i in range(30)) + ",label\n"
ROW = ",".join(["0.5"] * 30) + ",1\n"


def test_csv_field_over_the_csv_module_limit(tmp_path):
    data = tmp_path / "wide.csv"
    data.write_text(HEADER + "1" * 200_000 + ROW[3:])
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "wide.csv", "line 2", "131,072 characters")


def test_csv_field_over_our_limit(tmp_path):
    data = tmp_path / "wide.csv"
    data.write_text(HEADER + "1" * 5000 + ROW[3:])
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "wide.csv", "line 2", "4,096-character limit")


def test_csv_in_latin_1(tmp_path):
    data = tmp_path / "latin.csv"
    data.write_bytes((HEADER.replace("f0", "temp\u00e9rature") + ROW).encode("latin-1"))
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "latin.csv", "not UTF-8", "0xe9")


def test_csv_over_the_size_bound_is_refused_before_parsing(tmp_path):
    data = tmp_path / "big.csv"
    data.write_text(HEADER + ROW * (DATA_DEFAULT.max_csv_bytes // len(ROW) + 10))
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "big.csv", "over the 16.0 MiB limit", ".npz")


def test_csv_ragged_row(tmp_path):
    data = tmp_path / "ragged.csv"
    data.write_text(HEADER + ROW + "1,2\n")
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "ragged.csv", "line 3", "2 values for 31 columns")


# -- .npz ----------------------------------------------------------------------------------------------
def _npy_header(descr: str, shape: tuple) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


def test_npz_compression_bomb(tmp_path):
    """80 MiB of zeros deflated to ~80 KB: over 200 times the file, refused from the zip directory."""
    data = tmp_path / "bomb.npz"
    rows = 80 * MiB // (30 * 4)
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("x_val.npy", "w", force_zip64=True) as fh:
        fh.write(_npy_header("<f4", (rows, 30)))
        zeros = bytes(1 << 20)
        left = rows * 30 * 4
        while left > 0:
            fh.write(zeros[:min(left, len(zeros))])
            left -= len(zeros)
    assert data.stat().st_size < MiB
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "bomb.npz", "over 200 times its size")


def test_npz_declaring_more_than_the_size_bound(tmp_path):
    """A small member whose directory entry declares 2 GiB inflated: refused before a byte is inflated."""
    data = tmp_path / "liar.npz"
    x = np.zeros((4, 30), "<f4")
    buf = io.BytesIO()
    np.save(buf, x)
    with zipfile.ZipFile(data, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("x_val.npy", buf.getvalue())
    raw = bytearray(data.read_bytes())
    at = raw.rfind(b"PK\x01\x02")
    raw[at + 24:at + 28] = struct.pack("<I", 2 << 30)  # the central directory's uncompressed size
    data.write_bytes(bytes(raw))
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "liar.npz", "over the 1.0 GiB limit")


def test_npz_subarray_dtype_allocation_bomb(tmp_path):
    """40 bytes whose dtype "(20000,20000)f4" would make numpy allocate 1.6 GB per element."""
    data = tmp_path / "sub.npz"
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr("x_val.npy", _npy_header("(20000,20000)f4", (1,)) + bytes(40))
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "sub.npz", "'x_val.npy'", "plain numeric arrays")


def test_npz_header_shape_larger_than_its_bytes(tmp_path):
    data = tmp_path / "shape.npz"
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr("x_val.npy", _npy_header("<f4", (100_000_000, 30)) + bytes(120))
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "shape.npz", "truncated or forged")


def test_npz_with_pickled_objects(tmp_path):
    data = tmp_path / "pickle.npz"
    np.savez(data, x_val=np.array([{"a": 1}, None], dtype=object))
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "pickle.npz", "pickled Python objects")


def test_npz_member_that_is_not_an_array(tmp_path):
    data = tmp_path / "extra.npz"
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 30), "<f4"))
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr("x_val.npy", buf.getvalue())
        zf.writestr("run.py", "print('hello')")
    _one_line(_run(_model(tmp_path), tmp_path, "--data", data), DATA, "extra.npz", "'run.py' is not a .npy array")


# -- sweeps --------------------------------------------------------------------------------------------
def test_sweep_refuses_links_out_and_a_list_sidecar_and_runs_the_rest(tmp_path):
    """A link to an outside file and a dangling link get the same line (no existence oracle); a checkpoint
    whose sidecar is a JSON list is refused by its own run; the good checkpoint still gets its report."""
    folder, outside = tmp_path / "ckpts", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    good, bad = sorted(CHECKPOINTS.glob("*.keras"))[:2]
    for src in (good, bad):
        shutil.copy(src, folder / src.name)
    shutil.copy(good.with_name(good.name[:-len(".keras")] + ".meta.json"), folder)
    (folder / (bad.name[:-len(".keras")] + ".meta.json")).write_text("[1, 2]")
    shutil.copy(good, outside / "real.keras")
    (folder / "linked.05.keras").symlink_to(outside / "real.keras")
    (folder / "ghost.06.keras").symlink_to(outside / "missing.keras")
    out = tmp_path / "sweep"
    proc = run_diagnose("sweep", folder, "--out", out, "--only", "architecture", timeout=600)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == DATA, proc.stderr  # the worst: the list sidecar's data refusal
    index = {e["checkpoint"]: e for e in json.loads((out / "sweep.json").read_text())["checkpoints"]}
    assert set(index) == {good.name, bad.name, "linked.05.keras", "ghost.06.keras"}
    assert index[good.name]["verdict"] not in ("refused", "failed") and index[good.name]["exit_code"] in (0, 1)
    assert index[bad.name]["exit_code"] == DATA and "must be a JSON object" in index[bad.name]["message"]
    links = [index[n] for n in ("linked.05.keras", "ghost.06.keras")]
    assert all(e["exit_code"] == MODEL and e["verdict"] == "refused" for e in links)
    assert links[0]["message"] == links[1]["message"] and "symbolic link out of the sweep's folder" in links[0]["message"]
    lines = [line for line in proc.stderr.splitlines() if "symbolic link" in line]
    assert len(lines) == 2 and len({line.split(": refused: ", 1)[1] for line in lines}) == 1, lines
    assert str(outside) not in proc.stderr + proc.stdout + (out / "sweep.json").read_text()
    assert not (out / "checkpoints" / "linked.05").exists()
