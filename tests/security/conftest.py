"""Fixtures of the red-team suite: a real plain model to mutate, and a CLI runner that measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import DIAGNOSE

# Runs the command as a child and reports the peak RSS of every process it waited for (the CLI and
# the pre-scan's HDF5 child; RUSAGE_CHILDREN takes the largest), the CPU seconds of that whole tree
# (RUSAGE_CHILDREN sums them: what a hostile file costs, which a loaded machine does not stretch),
# and the wall time (which it does).
_MEASURE = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    t = time.perf_counter()
    p = subprocess.run(sys.argv[2:], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=float(sys.argv[1]))
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rc": p.returncode, "stderr": p.stderr, "stdout": p.stdout, "wall_s": time.perf_counter() - t,
                      "cpu_s": u.ru_utime + u.ru_stime, "peak_rss_mib": u.ru_maxrss / 1024}))
""")


def run_measured(*args, timeout: float = 600, env: dict | None = None) -> dict:
    """``diagnose ARGS`` in a fresh process tree; returns rc, stderr, stdout, wall_s, cpu_s and peak_rss_mib.
    ``timeout`` is a ceiling for a hung run only (a loaded start takes tens of seconds): bound ``cpu_s``."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(timeout), DIAGNOSE, *map(str, args)],
                         capture_output=True, text=True, env=full_env, timeout=timeout + 30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def plain(tmp_path_factory, keras_tf):
    """A plain Functional model saved by Keras as .keras and .h5: the base every attack edits."""
    keras = keras_tf
    d = tmp_path_factory.mktemp("plain")
    i = keras.Input((4,), name="x")
    model = keras.Model(i, keras.layers.Dense(2, name="dense")(i), name="plain")
    model.save(d / "plain.keras")
    model.save(d / "plain.h5")
    return {"dir": d, "keras": d / "plain.keras", "h5": d / "plain.h5"}
