"""Hostile and malformed model files: each refused with a clear one-line message, exit code 4,
before TensorFlow or torch is imported, and with no side effect (the payload's canary never appears)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from diagnostics import ExitCode
from diagnostics.safety import ModelRefused, parse_size, scan

REFUSED = int(ExitCode.MODEL_REFUSED)


def _canary_lambda(keras, canary: Path):
    # Python code the file would run on loading: it creates the canary file. The path is a constant
    # of the code object (Keras stores the bytecode, not default arguments or globals).
    payload = eval(f"lambda t: (__import__('pathlib').Path({str(canary)!r}).touch(), t)[1]")
    return keras.layers.Lambda(payload, name="payload")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, keras_tf):
    keras = keras_tf
    d = tmp_path_factory.mktemp("hostile")
    canary = d / "canary"
    files = {}
    m = keras.Sequential([keras.Input((4,)), _canary_lambda(keras, canary), keras.layers.Dense(2)], name="lam")
    m.save(d / "lambda.keras")
    m.save(d / "lambda.h5")
    files["lambda.keras"] = d / "lambda.keras"
    files["lambda.h5"] = d / "lambda.h5"
    inner = keras.Sequential([keras.Input((4,)), _canary_lambda(keras, canary)], name="inner")
    outer_in = keras.Input((4,))
    outer = keras.Model(outer_in, keras.layers.Dense(2)(inner(outer_in)), name="outer")
    outer.save(d / "nested.keras")
    files["nested.keras"] = d / "nested.keras"
    if canary.exists():
        canary.unlink()  # building the models above ran the lambdas once; only loading matters below
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")], name="plain")
    plain.save(d / "plain.keras")
    plain.save(d / "plain.h5")
    # A config that names os.system as the layer's activation.
    with zipfile.ZipFile(d / "plain.keras") as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(entries["config.json"])
    dense = next(l for l in config["config"]["layers"] if l["class_name"] == "Dense")
    dense["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(d / "ossystem.keras", "w") as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    files["ossystem.keras"] = d / "ossystem.keras"
    # An HDF5 model with a dataset stored in an external file, and one with an external link.
    secret = d / "secret.bin"
    secret.write_bytes(np.arange(10, dtype="<f4").tobytes())
    shutil.copy(d / "plain.h5", d / "external_dataset.h5")
    with h5py.File(d / "external_dataset.h5", "a") as f:
        f.create_dataset("model_weights/leak", shape=(10,), dtype="<f4", external=[(str(secret), 0, 40)])
    files["external_dataset.h5"] = d / "external_dataset.h5"
    shutil.copy(d / "plain.h5", d / "external_link.h5")
    with h5py.File(d / "external_link.h5", "a") as f:
        f["model_weights/elsewhere"] = h5py.ExternalLink(str(d / "plain.h5"), "/")
    files["external_link.h5"] = d / "external_link.h5"
    # Truncated files, weights-only files, wrong extensions.
    for name in ("plain.keras", "plain.h5"):
        data = (d / name).read_bytes()
        (d / f"truncated_{name}").write_bytes(data[: len(data) // 2])
        files[f"truncated_{name}"] = d / f"truncated_{name}"
    plain.save_weights(d / "plain.weights.h5")
    files["plain.weights.h5"] = d / "plain.weights.h5"
    shutil.copy(d / "plain.weights.h5", d / "renamed_weights.h5")
    files["renamed_weights.h5"] = d / "renamed_weights.h5"
    shutil.copy(d / "plain.keras", d / "model.pt")
    files["model.pt"] = d / "model.pt"
    (d / "model.onnx").write_bytes(b"\x08\x07onnx")
    files["model.onnx"] = d / "model.onnx"
    (d / "not_a_zip.keras").write_bytes(b"hello, I am text")
    files["not_a_zip.keras"] = d / "not_a_zip.keras"
    return {"dir": d, "canary": canary, "files": files}


CASES = {
    "lambda.keras": "the file holds code that would run on loading: Lambda layer (Python bytecode stored in the file) at model > lam > payload. Pass --trust only if you trust its author",
    "lambda.h5": "the file holds code that would run on loading: Lambda layer (Python bytecode stored in the file) at model > lam > payload. Pass --trust only if you trust its author",
    "nested.keras": "the file holds code that would run on loading: Lambda layer (Python bytecode stored in the file) at model > outer > inner > payload. Pass --trust only if you trust its author",
    "ossystem.keras": "the file holds code that would run on loading: function os.system from outside Keras at model > plain > dense. Pass --trust only if you trust its author",
    "external_dataset.h5": "external_dataset.h5 has an HDF5 dataset /model_weights/leak stored in external file(s) [",
    "external_link.h5": "external_link.h5 has an HDF5 external link at /model_weights/elsewhere to ",
    "truncated_plain.keras": "truncated_plain.keras is not a readable .keras archive (File is not a zip file): the file is truncated or corrupt",
    "truncated_plain.h5": "truncated_plain.h5 cannot be opened as HDF5 (",
    "plain.weights.h5": "plain.weights.h5 is a weights-only file: diagnose needs a full model saved with model.save('model.keras')",
    "renamed_weights.h5": "renamed_weights.h5 holds weights only (no model_config): diagnose needs a full model saved with model.save(), not model.save_weights()",
    "model.pt": "model.pt: unsupported model format '.pt'; diagnose reads Keras .keras and .h5 files",
    "model.onnx": "model.onnx: unsupported model format '.onnx'; diagnose reads Keras .keras and .h5 files",
    "not_a_zip.keras": "not_a_zip.keras is not a .keras archive (no zip signature): the file is truncated, corrupt or not a Keras model",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file_refused_by_cli_with_one_line_and_no_side_effect(hostile, name, tmp_path, diagnose_cli):
    out = tmp_path / "out"
    proc = diagnose_cli(hostile["files"][name], "--out", out)
    assert proc.returncode == REFUSED, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("diagnose: model refused: ")
    assert CASES[name] in lines[0]
    assert not hostile["canary"].exists(), "the payload ran"
    assert not (out / "report.json").exists()
    assert proc.stdout == ""


@pytest.mark.parametrize("target,message", [
    ("https://example.com/m.keras", "refusing 'https://example.com/m.keras': only local .keras and .h5 files are accepted"),
    ("hf://org/model", "refusing 'hf://org/model': only local .keras and .h5 files are accepted"),
    ("DIR", "is a directory: diagnose needs a .keras or .h5 model file"),
    ("missing.keras", "no such file: missing.keras"),
])
def test_non_files_refused(target, message, tmp_path, diagnose_cli):
    if target == "DIR":
        target = str(tmp_path)
    proc = diagnose_cli(target, "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == REFUSED
    assert message in proc.stderr


def test_refusals_happen_before_any_framework_import(hostile, tmp_path):
    # The CLI process itself: run the refusal in-process and look at sys.modules afterwards.
    import subprocess
    import sys

    code = (
        "import sys\nfrom diagnostics._cli import main\n"
        f"try:\n    main([{str(hostile['files']['lambda.keras'])!r}, '--out', {str(tmp_path / 'o')!r}])\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print(code, sorted(m for m in ('tensorflow', 'torch', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == f"{REFUSED} []", out.stderr


def test_size_cap(hostile, tmp_path, diagnose_cli):
    proc = diagnose_cli(hostile["dir"] / "plain.keras", "--max-model-size", "1KiB", "--out", tmp_path / "o")
    assert proc.returncode == REFUSED
    assert "over the 1.0 KiB limit; raise it with --max-model-size if you trust the file" in proc.stderr


def test_zip_bomb_and_path_traversal_refused(tmp_path):
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"\0" * (64 << 20))
    with pytest.raises(ModelRefused, match=r"entry 'model.weights.h5' expands \d+x, over the 200x limit"):
        scan(bomb)
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../etc/cron.d/x", "boom")
    with pytest.raises(ModelRefused, match="unsafe path '../../etc/cron.d/x'"):
        scan(evil)


def test_unknown_custom_class_is_named(tmp_path, hostile, diagnose_cli):
    with zipfile.ZipFile(hostile["dir"] / "plain.keras") as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(entries["config.json"])
    dense = next(l for l in config["config"]["layers"] if l["class_name"] == "Dense")
    dense.update({"module": "acme.layers", "class_name": "FancyDense", "registered_name": "acme>FancyDense"})
    entries["config.json"] = json.dumps(config).encode()
    path = tmp_path / "custom.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    proc = diagnose_cli(path, "--out", tmp_path / "o")
    assert proc.returncode == REFUSED
    assert "unknown custom class acme>FancyDense (module acme.layers); install the plugin that registers it" in proc.stderr


def test_trust_lists_the_code_then_runs_it(hostile, tmp_path, diagnose_cli):
    """--trust lifts the scan, not the sandbox: the stored code runs, and its write outside the output folder
    is denied; only with --no-sandbox as well does it land."""
    proc = diagnose_cli(hostile["files"]["lambda.keras"], "--trust", "--only", "architecture", "--out", tmp_path / "o")
    listed = proc.stderr.index("--trust: loading this model will run code stored in the file:")
    assert proc.stderr.index("  - Lambda layer (Python bytecode stored in the file) at model > lam > payload") > listed
    assert proc.returncode == 0, proc.stderr  # the payload swallows its own error
    assert not hostile["canary"].exists()
    proc = diagnose_cli(hostile["files"]["lambda.keras"], "--trust", "--no-sandbox", "--only", "architecture",
                        "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert hostile["canary"].exists(), "with --trust the stored code really runs (and only then)"
    hostile["canary"].unlink()


def test_clean_files_scan_without_risks(hostile):
    for name in ("plain.keras", "plain.h5"):
        result = scan(hostile["dir"] / name)
        assert result.risks == [] and result.custom_classes == []
        assert result.format == ("keras" if name.endswith("keras") else "h5")
        assert len(result.sha256) == 64


@pytest.mark.parametrize("text,expected", [("1GiB", 1 << 30), ("500MB", 500 << 20), ("2048", 2048), ("1.5k", 1536)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected
