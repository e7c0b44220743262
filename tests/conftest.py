"""Shared fixtures: the real ``diagnose`` executable, and small real Keras models saved to disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DIAGNOSE = str(Path(sys.executable).parent / "diagnose")
ZOO_DIR = REPO / "models" / "artifacts"


# A test runner started in the background by a script (`cmd &`, nohup, some CI agents) inherits SIGINT
# ignored, and so does every process it starts: the tests that Ctrl-C a run would then wait out their
# ceilings on a run that never heard the signal. Python's own handler here is reset to the default in
# every child at exec, so `diagnose` and its workers answer SIGINT as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_diagnose(*args: str, env: dict | None = None, cwd: str | Path | None = None, timeout: float = 600,
                 user: int | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``diagnose`` console script as a user would; returns the completed process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [DIAGNOSE, *map(str, args)]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session", autouse=True)
def _dataset_cache(tmp_path_factory):
    """Generated datasets are cached for this session only, not in the user's ~/.cache (the processes the
    tests start inherit the variable)."""
    os.environ["DIAGNOSTICS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(autouse=True)
def _no_memory_notes_from_earlier_tests():
    """The memory planner keeps its notes per process until a job takes them: a test that reads them must
    not see those an earlier test's in-process run left behind (the CI run that failed on 4 notes for 3)."""
    from diagnostics import memory

    memory.take_notes()
    yield


@pytest.fixture(scope="session")
def diagnose_cli():
    return run_diagnose


@pytest.fixture(scope="session")
def keras_tf():
    """keras under the TensorFlow backend, imported once for the session (~8 s)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    assert keras.backend.backend() == "tensorflow", "tests expect the TensorFlow backend in the pytest process"
    return keras


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, keras_tf):
    """A small softmax classifier on 4 features saved as .keras and .h5, with an .npz of data for it."""
    keras = keras_tf
    d = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")], name="tiny")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(d / "tiny.keras")
    model.save(d / "tiny.h5")
    np.savez(d / "data.npz", x_train=x[:48], y_train=y[:48], x_val=x[48:], y_val=y[48:])
    return {"dir": d, "keras": d / "tiny.keras", "h5": d / "tiny.h5", "data": d / "data.npz", "model": model}


def interrupt_when(proc: subprocess.Popen, arrived, what: str) -> tuple[str, str]:
    """Ctrl-C ``proc`` once ``arrived()`` is true (a file the run writes when it is where the test wants it),
    then wait for it to exit; returns its (stdout, stderr). The waits are ceilings for a hung run only: on a
    loaded machine a start can take minutes, and the loop ends on the signal, not on the clock."""
    import time

    try:
        ceiling = time.monotonic() + 600
        while not arrived():
            assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()[1][-3000:]}"
            assert time.monotonic() < ceiling, f"{what} did not happen within 600 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=300)  # the exit takes seconds
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture
def open_app(monkeypatch):
    """``open_app(path, page=None, query=None)``: the real dashboard script under Streamlit's AppTest, started
    on ``path`` (as `diagnose dashboard PATH` would), with the URL's ``query`` and switched to
    ``views/<page>.py``; each script run checked for exceptions. 300 s is a ceiling per script run (seconds
    alone, a minute or more on a loaded machine)."""
    from streamlit.testing.v1 import AppTest

    def start(path, page: str | None = None, query: dict | None = None):
        monkeypatch.setenv("DIAGNOSTICS_DASHBOARD_REPORT", str(path))
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=300)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        at.query_params.update(query or {})  # as a link to the page with ?KEY=VALUE sets them
        if page:
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, [e.value for e in at.exception]
        return at

    return start


def read_report(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / "report.json").read_text())


#: The zoo's checkpoints of one training run (diagnostics_zoo.checkpoints), for `diagnose sweep`.
CHECKPOINTS = ZOO_DIR / "checkpoints" / "cnn_overfit"


@pytest.fixture(scope="session")
def zoo_sweep(tmp_path_factory):
    """``diagnose sweep`` of the zoo's seven checkpoints with the default (data-cheap) analyzers: the
    completed process and the sweep directory (sweep.json, checkpoints/<name>/report.json)."""
    out = tmp_path_factory.mktemp("sweep") / "cnn_overfit"
    proc = run_diagnose("sweep", CHECKPOINTS, "--out", out, timeout=900)
    return proc, out


# A real local Ray instance (2 CPUs, no dashboard, loopback only), started once per test session the first time a
# test asks for it: in-process (RayExecutor finds Ray already initialised) and from the CLI through --ray-address.
@pytest.fixture(scope="session")
def ray_address():
    from diagnostics._ray_executor import connect

    started = connect(num_cpus=2)  # before this process imports ray: it decides the addresses at import
    import ray

    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), f"the test instance must listen on loopback only, got {address}"
    yield address
    if started:
        ray.shutdown()
