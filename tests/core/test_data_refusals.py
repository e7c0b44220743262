"""Data that cannot fit the model are refused before any worker starts, from what the model file declares.

The CLI reads the declared inputs and outputs from the config the pre-scan parsed (``config.json`` in a
``.keras`` archive, the ``model_config`` attribute of an ``.h5``), without importing Keras: a misfit is refused
with one line naming the key, what the model expects, what was received and how to fix it, exit code 5.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from diagnostics.analyzer import Data
from diagnostics._data import DataRefused, precheck
from diagnostics._exitcodes import ExitCode
from diagnostics.loading import LoadingLine
from diagnostics.modelinfo import declared_model
from diagnostics._runner import Progress
from diagnostics.safety import scan
from tests.conftest import ZOO_DIR, run_diagnose

CNN = {fmt: ZOO_DIR / f"cnn.{fmt}" for fmt in ("h5", "keras")}
MLP = ZOO_DIR / "mlp.keras"


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _images(n=20, shape=(28, 28, 1)):
    return np.zeros((n, *shape), "float32")


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory, keras_tf):
    from diagnostics.testing import multi_input_case

    d = tmp_path_factory.mktemp("refusals_two_inputs")
    multi_input_case().model.save(d / "model.keras")
    return d / "model.keras"


# -- exact messages and exit codes -------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["h5", "keras"])
@pytest.mark.parametrize("x, message", [
    (_images(shape=(28, 28)),
     "x_val has shape (n, 28, 28); the model expects (None, 28, 28, 1): add the missing axis of size 1 "
     "(x_val[..., np.newaxis])"),
    (_images(shape=(32, 32, 1)),
     "x_val has shape (n, 32, 32, 1); the model expects (None, 28, 28, 1): save x_val with samples of shape (28, 28, 1)"),
    (_images(shape=(28, 28, 1, 1)),
     "x_val has shape (n, 28, 28, 1, 1); the model expects (None, 28, 28, 1): drop the extra axis of size 1 "
     "(x_val[..., 0])"),
], ids=["missing-axis", "wrong-size", "extra-axis"])
def test_a_wrong_shape_is_refused_naming_key_expected_received_and_fix(fmt, x, message, tmp_path):
    data = _npz(tmp_path / "bad.npz", x_val=x, y_val=np.zeros(len(x), "int64"))
    proc = run_diagnose(CNN[fmt], "--data", data, "--out", tmp_path / "out")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert proc.stderr == f"diagnose: data refused: {message}\n"
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_wrong_number_of_inputs_is_refused(two_inputs, tmp_path):
    one = _npz(tmp_path / "one.npz", x_val=_images(8, (8, 8, 1)), y_val=np.zeros(8, "int64"))
    proc = run_diagnose(two_inputs, "--data", one, "--out", tmp_path / "o1")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert proc.stderr == ("diagnose: data refused: the model has 2 inputs (image, stats) and x_val is one array of shape "
                           "(n, 8, 8, 1): give one array per input under the keys x_val.image, x_val.stats\n")
    two = _npz(tmp_path / "two.npz", **{"x_val.a": _images(), "x_val.b": _images()})
    proc = run_diagnose(CNN["keras"], "--data", two, "--out", tmp_path / "o2")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert proc.stderr == "diagnose: data refused: x_val holds several inputs (a, b); the model has one: give x_val\n"
    stats = _npz(tmp_path / "stats.npz", **{"x_val.image": _images(8, (8, 8, 1)), "x_val.stats": np.zeros((8, 4), "float32")})
    proc = run_diagnose(two_inputs, "--data", stats, "--out", tmp_path / "o3")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert proc.stderr == ("diagnose: data refused: x_val.stats has shape (n, 4); the model expects (None, 3): save "
                           "x_val.stats with samples of shape (3,)\n")


@pytest.mark.parametrize("model, y, message", [
    (CNN["h5"], np.arange(20) % 13,
     "y_val holds labels in [0, 12]; the model has 10 classes (0..9): give class ids from 0 to 9 (check that the "
     "labels are for this model)"),
    (CNN["keras"], np.arange(20) % 10 + 1,
     "y_val holds labels in [1, 10]; the model has 10 classes (0..9): give class ids from 0 to 9 (subtract 1 from y_val)"),
    (CNN["keras"], np.eye(3, dtype="float32")[np.arange(20) % 3],
     "y_val has shape (20, 3); the model outputs 10 value(s) per sample: give one class id per sample, or one-hot rows "
     "of width 10"),
    (MLP, np.arange(20) % 3,
     "y_val must hold 0/1 labels for this sigmoid output; found values [0, 1, 2]: map the two classes to 0 and 1"),
], ids=["out-of-range", "counted-from-1", "one-hot-width", "sigmoid-not-binary"])
def test_labels_that_do_not_fit_the_output_are_refused(model, y, message, tmp_path):
    x = _images() if model != MLP else np.zeros((20, 30), "float32")
    data = _npz(tmp_path / "labels.npz", x_val=x, y_val=y)
    proc = run_diagnose(model, "--data", data, "--out", tmp_path / "out")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert proc.stderr == f"diagnose: data refused: {message}\n"


# -- before any worker: no process spawned, no framework imported -------------------------------------
#: Runs the real CLI in a fresh interpreter with the worker process class replaced by a spy that records
#: the backend and stops the run (so that a run that would start one says so at once, and cheaply).
SPY = r"""
import json, sys
import diagnostics._executors as executors
from diagnostics._cli import main

spawned = []

class WorkerSpawned(BaseException):
    pass

def spy(self, backend, *args, **kwargs):
    spawned.append(backend)
    raise WorkerSpawned(backend)

executors._Worker.__init__ = spy
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
except WorkerSpawned:
    code = "a worker was started"
frameworks = sorted(m for m in ("keras", "tensorflow", "torch", "jax") if m in sys.modules)
print("SPY " + json.dumps({"code": code, "spawned": spawned, "frameworks": frameworks}))
"""


def _spy(*args) -> dict:
    proc = subprocess.run([sys.executable, "-c", SPY, *map(str, args)], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("SPY ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {**json.loads(lines[-1][4:]), "stderr": proc.stderr}


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_the_refusal_comes_before_any_worker_starts_or_framework_is_imported(fmt, tmp_path):
    bad = _npz(tmp_path / "bad.npz", x_val=_images(shape=(28, 28)), y_val=np.zeros(20, "int64"))
    labels = _npz(tmp_path / "labels.npz", x_val=_images(), y_val=np.full(20, 10))
    for data in (bad, labels):
        seen = _spy(CNN[fmt], "--data", data, "--out", tmp_path / "out", "--only", "architecture")
        assert seen["code"] == ExitCode.DATA_REFUSED, seen["stderr"]
        assert seen["spawned"] == [] and seen["frameworks"] == [], seen
    # the spy does see a worker when the data fit: the run goes on to start one
    good = _npz(tmp_path / "good.npz", x_val=_images(), y_val=np.arange(20) % 10)
    seen = _spy(CNN[fmt], "--data", good, "--out", tmp_path / "out", "--only", "architecture")
    assert seen["code"] == "a worker was started" and seen["spawned"] == ["tensorflow"], seen
    assert seen["frameworks"] == [], "the CLI process itself imports no framework before the worker loads"


# -- what is left to the worker ----------------------------------------------------------------------
def _config(cls="Functional", **inner):
    return {"class_name": cls, "config": {"name": "m", "layers": [], **inner}}


def test_declarations_that_are_not_plain_are_left_to_the_worker():
    subclassed = {"class_name": "MyModel", "module": "acme", "config": {"units": 3}}
    dict_inputs = _config(layers=[{"class_name": "InputLayer", "name": "a", "config": {"name": "a", "batch_shape": [None, 3]}}],
                          input_layers={"a": ["a", 0, 0]}, output_layers={"out": ["a", 0, 0]})
    no_shape = _config(layers=[{"class_name": "InputLayer", "name": "a", "config": {"name": "a"}}],
                       input_layers=["a", 0, 0], output_layers=["a", 0, 0])
    for config in (subclassed, dict_inputs, no_shape, None, [], {"class_name": "Sequential", "config": {"layers": []}}):
        assert declared_model(config) is None, config
    x = Data(x_val=np.zeros((4, 7), "float32"), y_val=np.full(4, 99))
    precheck(x, None)  # nothing declared: nothing refused here


def test_a_generator_whose_output_the_config_hides_is_not_guessed():
    # a one-dimensional input and an output layer whose shape the config does not give: it may be a generator,
    # whose data are real samples shaped like its output, so only same-rank inputs are checked here
    layers = [{"class_name": "InputLayer", "name": "z", "config": {"name": "z", "batch_shape": [None, 8]}},
              {"class_name": "Mystery", "name": "g", "config": {"name": "g"}, "inbound_nodes": []}]
    declared = declared_model(_config(layers=layers, input_layers=[["z", 0, 0]], output_layers=[["g", 0, 0]]))
    assert declared is not None and declared.kind is None and declared.first_output_shape is None
    precheck(Data(x_val=np.zeros((4, 16, 16, 1), "float32")), declared)  # perhaps real samples: the worker decides
    with pytest.raises(DataRefused, match=r"x_val has shape \(n, 5\); the model expects \(None, 8\)"):
        precheck(Data(x_val=np.zeros((4, 5), "float32")), declared)


@pytest.mark.parametrize("path", [*CNN.values(), MLP, ZOO_DIR / "lstm.h5", ZOO_DIR / "gan.keras"])
def test_the_declaration_is_read_from_what_the_pre_scan_parsed(path):
    result = scan(path)
    declared = declared_model(result.config, None)
    expected = {"cnn": ((28, 28, 1), (None, 10), "softmax", "image"), "mlp": ((30,), (None, 1), "sigmoid", "tabular"),
                "lstm": ((50, 4), (None, 3), "softmax", "sequence"), "gan": ((32,), (None, None, None, 1), None, "generator")}
    shape, out, activation, kind = expected[path.name.split(".")[0]]
    assert declared.input_shapes == ((None, *shape),)
    assert (declared.first_output_shape, declared.output_activation, declared.kind) == (out, activation, kind)


# -- progress while loading --------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_loading_progress_is_one_line_rewritten_on_a_terminal_and_plain_lines_elsewhere():
    tty = Progress(stream=_Terminal())
    with LoadingLine(tty, "cnn.h5", "tensorflow", tick_s=3600) as line:
        for phase in ("importing tensorflow", "reading the file", "building layers", "loading weights"):
            line.phase(phase)
    text = tty.stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    drawn = [part for part in text.split("\r\033[K") if part]
    assert [d.split(": ", 1)[1].rsplit("…", 1)[0] for d in drawn[:-1]] == [
        "starting the worker", "importing tensorflow", "reading the file", "building layers", "loading weights"]
    assert drawn[-1].startswith("loaded cnn.h5 (tensorflow backend) in ") and drawn[-1].endswith(" s\n")

    plain = Progress(stream=io.StringIO())
    with LoadingLine(plain, "cnn.h5", "tensorflow") as line:
        line.phase("building layers")
    lines = plain.stream.getvalue().splitlines()
    assert lines[0] == "loading cnn.h5 (tensorflow backend)…"
    assert lines[1].startswith("loading cnn.h5: building layers (") and lines[2].startswith("loading cnn.h5: loaded in ")

    quiet = Progress(stream=_Terminal(), quiet=True)
    with LoadingLine(quiet, "cnn.h5", "tensorflow") as line:
        line.phase("building layers")
    assert quiet.stream.getvalue() == ""


def test_a_run_shows_the_phases_the_worker_reports_in_order(tiny, tmp_path):
    proc = run_diagnose(tiny["h5"], "--only", "architecture", "--out", tmp_path / "out")
    assert proc.returncode == ExitCode.OK, proc.stderr
    phases = [l.split(": ", 1)[1].rsplit(" (", 1)[0] for l in proc.stderr.splitlines() if l.startswith("loading tiny.h5: ")]
    assert phases == ["importing tensorflow", "loading plugins", "reading the file", "building layers", "loading weights",
                      phases[-1]], proc.stderr
    assert phases[-1].startswith("loaded in ")
