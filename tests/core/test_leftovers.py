"""Nothing left behind: each path a user takes, run for real through the `diagnose` executable, with the
temporary folder and the working folder listed before and after. Only the output folder the user named
(and, for MLflow, the folder of the database the user named) may gain files.

Every test gets a private TMPDIR (other people's runs write to /tmp at the same time), which the CLI and
everything it starts inherits; Ray actors get it forwarded by the driver (diagnostics._ray_executor).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from diagnostics import ExitCode, Report

from ..conftest import CHECKPOINTS, DIAGNOSE, ZOO_DIR, run_diagnose
from .conftest import analyzer_source, install_plugin

CNN = ZOO_DIR / "cnn.keras"


def listing(root: Path) -> set[str]:
    """Every path under ``root`` (files and folders, links not followed), relative to it."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


class Places:
    """The private temporary folder and the working folder of one test, with their listings at the start."""

    def __init__(self, tmp_path: Path, monkeypatch):
        self.tmp = tmp_path / "tmp"
        self.cwd = tmp_path / "work"
        self.tmp.mkdir()
        self.cwd.mkdir()
        (self.cwd / "notes.txt").write_text("the user's own file\n")
        (self.cwd / "reports").mkdir()  # a folder that was there before: never removed, even when empty
        monkeypatch.setenv("TMPDIR", str(self.tmp))
        self.before = {"tmp": listing(self.tmp), "cwd": listing(self.cwd)}

    def new(self, which: str, allowed: tuple[str, ...] = ()) -> list[str]:
        """What appeared in ``which`` ("tmp" or "cwd") since the start, outside the ``allowed`` folders."""
        root = self.tmp if which == "tmp" else self.cwd
        added = listing(root) - self.before[which]
        return sorted(p for p in added if not any(p == a or p.startswith(a + os.sep) for a in allowed))

    def assert_clean(self, *allowed: str) -> None:
        assert self.new("tmp") == [], f"left in TMPDIR: {self.new('tmp')}"
        assert self.new("cwd", allowed) == [], f"left in the working folder: {self.new('cwd', allowed)}"
        assert (self.cwd / "reports").is_dir() and (self.cwd / "notes.txt").is_file()


@pytest.fixture
def places(tmp_path, monkeypatch) -> Places:
    return Places(tmp_path, monkeypatch)


def test_a_run_refused_for_its_data_leaves_no_report_folder(places):
    bad = places.tmp.parent / "bad.npz"
    np.savez(bad, x_val=np.zeros((8, 28, 28), "float32"), y_val=np.zeros(8, "int64"))  # the cnn wants (28, 28, 1)
    proc = run_diagnose(CNN, "--data", bad, "--only", "weights", cwd=places.cwd)
    assert proc.returncode == ExitCode.DATA_REFUSED, proc.stderr
    assert not (places.cwd / "reports" / "cnn").exists()
    places.assert_clean()


def test_refused_models_leave_no_report_folder(places, keras_tf):
    keras = keras_tf
    inputs = keras.Input((4,))
    hostile = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs))
    models = places.tmp.parent / "models"
    models.mkdir()
    hostile.save(models / "hostile.keras")
    (models / "junk.keras").write_bytes(b"not a zip archive")
    for name, code in (("hostile", ExitCode.MODEL_REFUSED), ("junk", ExitCode.MODEL_REFUSED)):
        proc = run_diagnose(models / f"{name}.keras", "--only", "weights", cwd=places.cwd)
        assert proc.returncode == code, proc.stderr
        assert not (places.cwd / "reports" / name).exists(), name
    # a nested --out that did not exist: every folder the run created goes again, the existing one stays
    proc = run_diagnose(models / "junk.keras", "--only", "weights", "--out", "reports/deep/er/out", cwd=places.cwd)
    assert proc.returncode == ExitCode.MODEL_REFUSED, proc.stderr
    assert not (places.cwd / "reports" / "deep").exists()
    proc = run_diagnose(models / "missing.keras", "--only", "weights", cwd=places.cwd)
    assert (proc.returncode, proc.stderr.strip()) == (
        ExitCode.MODEL_REFUSED, f"diagnose: model refused: no such file: {models / 'missing.keras'}")
    places.assert_clean()


def test_a_refused_run_keeps_an_output_folder_that_was_there(places):
    out = places.cwd / "mine"
    out.mkdir()
    (places.tmp.parent / "junk.keras").write_bytes(b"junk")
    proc = run_diagnose(places.tmp.parent / "junk.keras", "--only", "weights", "--out", out, cwd=places.cwd)
    assert proc.returncode == ExitCode.MODEL_REFUSED, proc.stderr
    assert out.is_dir() and list(out.iterdir()) == []
    places.assert_clean("mine")


def test_a_run_with_out_writes_only_there(places):
    proc = run_diagnose(CNN, "--only", "weights", "--out", "out", cwd=places.cwd)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert (places.cwd / "out" / "report.json").is_file() and (places.cwd / "out" / "report.html").is_file()
    assert not [p for p in listing(places.cwd / "out") if Path(p).name.startswith((".staging-", ".old-"))]
    places.assert_clean("out")


def test_mlflow_into_a_sqlite_store_keeps_its_artifacts_beside_the_database(places):
    from mlflow.tracking import MlflowClient  # the mlflow extra is part of the test install: missing, this fails

    store = places.tmp.parent / "tracking"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    proc = run_diagnose(CNN, "--only", "weights", "--out", "out", "--mlflow", "-q", cwd=places.cwd,
                        env={"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "leftovers"})
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "mlflow: logged to run " in proc.stderr
    places.assert_clean("out")  # no ./mlruns
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("leftovers")
    [run] = client.search_runs([experiment.experiment_id])
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(store / "mlartifacts")
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "diagnostics")) == [
        "diagnostics/report.html", "diagnostics/report.json"]
    # without an experiment name: the Default experiment of the fresh database is beside it too
    second = places.tmp.parent / "second"
    second.mkdir()
    proc = run_diagnose(CNN, "--only", "weights", "--out", "out2", "--mlflow", "-q", cwd=places.cwd,
                        env={"MLFLOW_TRACKING_URI": f"sqlite:///{second / 'mlflow.db'}"})
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert (second / "mlartifacts" / "0").is_dir()
    places.assert_clean("out", "out2")


def test_a_ray_sweep_leaves_no_actor_folder(ray_address, places, tmp_path):
    """Two checkpoints on the session's Ray instance; a throwaway analyzer overruns its budget on the first,
    so its actor is killed (no clean-up runs in a killed actor) and replaced, and on the second says where
    its actor's folder was: in the private TMPDIR, which nothing is left in."""
    body = ("import os, time\nif context.metadata.get('epoch') == 1:\n    time.sleep(3600)\n"
            "return Result(metrics={'tmpdir': os.environ.get('TMPDIR', '')})")
    env = install_plugin(tmp_path / "site", "overrun", analyzer_source("overrun", body))
    picked = sorted(CHECKPOINTS.glob("*.keras"))[:2]
    proc = run_diagnose("sweep", *picked, "--only", "overrun,weights", "--timeout", "3", "--out", "sweep",
                        "--executor", "ray", "--ray-address", ray_address, cwd=places.cwd, env=env)
    assert proc.returncode == ExitCode.ANALYZER_FAILED, proc.stderr
    first, second = (Report.load(places.cwd / "sweep" / "checkpoints" / p.stem) for p in picked)
    assert first.record("overrun").status == "timed_out"
    # the worker's scratch is inside its actor's folder, which was made in the driver's TMPDIR
    scratch = Path(second.record("overrun").metrics["tmpdir"])
    assert scratch.is_relative_to(places.tmp) and scratch.relative_to(places.tmp).parts[0].startswith("diagnostics-ray-")
    places.assert_clean("sweep")


def test_an_interrupted_ray_sweep_leaves_no_actor_folder(ray_address, places, tmp_path):
    """Ctrl-C while an actor is busy: the actor cannot run its own clean-up (it is inside the job), so the
    driver kills it and removes its folder once its process is gone, before the CLI exits."""
    body = "import time\n(context.artifact_dir / 'held').touch()\ntime.sleep(3600)\nreturn Result()"
    env = install_plugin(tmp_path / "site", "hold", analyzer_source("hold", body))
    picked = sorted(CHECKPOINTS.glob("*.keras"))[:2]
    proc = subprocess.Popen([DIAGNOSE, "sweep", *map(str, picked), "--only", "hold", "--out", "sweep", "--executor",
                             "ray", "--ray-address", ray_address], cwd=places.cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    try:
        ceiling = time.monotonic() + 600  # only for a run that hangs elsewhere: the loop ends on the file
        while not any(places.tmp.rglob("held")):  # the actor's work folder is in the private TMPDIR
            assert proc.poll() is None, f"the sweep ended before the hold: {proc.communicate()[1][-3000:]}"
            assert time.monotonic() < ceiling, "the hold did not start within 600 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=300)  # a ceiling for a hung exit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    places.assert_clean("sweep")
