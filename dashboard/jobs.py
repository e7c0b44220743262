"""Running a diagnosis from the browser: uploads checked by content, each run in a process of its own.

The run itself is :func:`diagnostics._runner.run_file` — the same safe loading, worker processes and
report as the CLI — with ``trust=False`` always: the browser has no way to allow code in a model.

Why a process and not a thread of the server: a run can then be cancelled (the process is interrupted
as Ctrl-C interrupts the CLI: its workers are stopped and its half-written output removed), it can never
outlive the server (it reads its stdin and stops when that closes), and the worker processes it spawns
start from a plain ``python -c`` main module. Spawned from the server instead, they re-ran the page
script that Streamlit installs as ``__main__`` — in bare mode, which printed the ``missing
ScriptRunContext`` warnings and made a ``/tmp/diagnostics-dashboard-*`` folder per worker.

This module imports no Streamlit: the page passes in what it knows of its browser session.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import datetime
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from diagnostics._exitcodes import ExitCode
from diagnostics.report import REPORT_JSON, Report
from diagnostics._runner import Outcome, Progress, RunConfig
from diagnostics.safety import HDF5_SIGNATURE, ZIP_SIGNATURE

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class UploadRefused(ValueError):
    """An uploaded file is not what it must be; the message says what was received."""


def private_dir(prefix: str) -> Path:
    """A new directory only this user can enter (mode 0700, as ``mkdtemp`` creates it)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o700)
    return d


def _safe_stem(name: str, default: str) -> str:
    stem = _SAFE_NAME.sub("_", Path(name or "").name.split(".")[0]).strip("._")[:60]
    return stem or default


def model_suffix(head: bytes) -> str:
    """``.keras`` for a zip archive, ``.h5`` for HDF5 — decided by the bytes, never by the file name."""
    if head[:8] == HDF5_SIGNATURE:
        return ".h5"
    if head[:4] == ZIP_SIGNATURE:
        return ".keras"
    raise UploadRefused(
        f"not a Keras model file: a .keras model is a zip archive (starts with {ZIP_SIGNATURE!r}) and a .h5 model is "
        f"HDF5 (starts with {HDF5_SIGNATURE!r}); this file starts with {head[:8]!r}")


def data_suffix(head: bytes) -> str:
    """``.npz`` for a zip archive, ``.csv`` for UTF-8 text without NUL bytes."""
    if head[:4] == ZIP_SIGNATURE:
        return ".npz"
    if b"\x00" not in head:
        try:  # incremental: a multi-byte character cut at the end of the sample is not an error
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
            return ".csv"
        except UnicodeDecodeError:
            pass
    raise UploadRefused("not a data file: expected an .npz archive (zip) or a UTF-8 CSV text file; "
                        f"this file starts with {head[:8]!r}")


def save_upload(content: bytes, name: str, directory: Path, kind: str) -> Path:
    """Write an uploaded file into ``directory`` (mode 0600) under a name whose suffix matches its content."""
    head = bytes(content[:65536])
    suffix = model_suffix(head) if kind == "model" else data_suffix(head)
    path = Path(directory) / (_safe_stem(name, kind) + suffix)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    return path


def zoo_models() -> dict[str, Path]:
    """Trained zoo models shipped beside the ``diagnostics_zoo`` package (located, not imported)."""
    spec = importlib.util.find_spec("diagnostics_zoo")
    if spec is None or spec.origin is None:
        return {}
    art = Path(spec.origin).parent / "artifacts"
    if not art.is_dir():
        return {}
    found = {}
    for p in sorted(art.iterdir()):
        if p.suffix in (".keras", ".h5") and p.is_file():
            found.setdefault(p.name.split(".")[0], p)
    return found


#: Seconds a run's browser tab may stay disconnected (closed, or its connection lost) before the run is
#: cancelled: Streamlit reconnects a tab after a network blip within a few seconds, under the same session.
ORPHAN_GRACE_S = 10.0
#: Seconds a cancelled run has to stop its workers and remove its half-written output before it is killed.
CANCEL_GRACE_S = 30.0
#: The fields of a RunConfig that travel to the run's process (as JSON); any other must keep its default.
_WIRE_FIELDS = ("model_path", "out_dir", "data_path", "only", "skip", "fail_on", "timeout_s", "seed", "options",
                "label_column", "deadline_s")
#: The runs of this server, by id: every tab's page polls them (they outlive reruns, reconnections and tabs).
REGISTRY: dict[str, "Job"] = {}
_START_LOCK = threading.Lock()  # one run at a time per server: a run uses every core
_CHILD = "from diagnostics_dashboard.jobs import child_main; child_main()"


class Busy(RuntimeError):
    """Another run is in progress (``job``); one runs at a time."""

    def __init__(self, job: "Job"):
        super().__init__(f"a run is already in progress ({job.label}, started {job.started_at:%H:%M:%S})")
        self.job = job


class BrowserProgress:
    """What the run's process reported, for the page to show: its lines (what the CLI would print) and
    where the analyzers are."""

    def __init__(self):
        self.lines: list[str] = []
        self.current: tuple[str, int, int, str] | None = None
        self.total = 0
        self.done = 0

    def apply(self, msg: dict[str, Any]) -> None:
        self.total = int(msg.get("total", self.total) or 0)
        self.done = int(msg.get("done", self.done) or 0)
        if "say" in msg:
            self.lines.append(str(msg["say"]))
        if "step" in msg and isinstance(msg["step"], list) and len(msg["step"]) == 4:
            name, done, total, message = msg["step"]
            self.current = (str(name), int(done), int(total), str(message))

    @property
    def fraction(self) -> float:
        if self.total <= 0:
            return 0.0
        part = 0.0
        if self.current and self.current[2] > 0:
            part = min(self.current[1], self.current[2]) / self.current[2]
        return min(1.0, (self.done + part) / self.total)


@dataclasses.dataclass
class Job:
    """One run. ``owner`` is the browser session that started it; ``cancelled`` says why it was cancelled
    (set the moment it is asked to stop), ``cancelled_by`` which session asked (None: the server, because
    the owner's tab went away)."""

    id: str
    label: str
    config: RunConfig
    progress: BrowserProgress
    started: float
    started_at: datetime.datetime
    model: str = ""
    owner: str | None = None
    thread: threading.Thread | None = None  #: ends when the run has ended and its leftovers are removed
    process: subprocess.Popen | None = None
    outcome: Outcome | None = None
    error: str | None = None
    finished: float | None = None
    cancelled: str | None = None
    cancelled_by: str | None = None
    cancel_asked: float | None = None

    @property
    def running(self) -> bool:
        return self.outcome is None and self.error is None

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def active(registry: dict[str, Job]) -> Job | None:
    """The run in progress, if any (there is at most one)."""
    return next((j for j in list(registry.values()) if j.running), None)


def new_run_dir(root: Path, stem: str) -> Path:
    """``root/<stem>-<YYYYmmdd-HHMMSS>``, a path that does not exist yet (``-2``, ``-3``… if it does)."""
    base = f"{_safe_stem(stem, 'model')}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = Path(root) / base, 1
    while path.exists():
        n += 1
        path = Path(root) / f"{base}-{n}"
    return path


def start(config: RunConfig, label: str, registry: dict[str, Any], *, owner: str | None = None,
          owner_alive: Callable[[], bool] | None = None, cleanup: tuple[Path, ...] = (), model: str = "") -> Job:
    """Start ``run_file(config)`` in a process of its own; the page polls the returned job.

    ``owner_alive``: tells whether the session that started it is still connected; once it has not been for
    :data:`ORPHAN_GRACE_S`, the run is cancelled. ``cleanup``: folders (the uploads) removed when the run
    ends. Raises :class:`Busy` while another run of ``registry`` is in progress.
    """
    if config.trust:  # never from the browser
        raise ValueError("the dashboard never runs a model with trust=True")
    defaults = RunConfig(model_path="", out_dir=Path())
    odd = [f.name for f in dataclasses.fields(RunConfig) if f.name not in _WIRE_FIELDS
           and getattr(config, f.name) != getattr(defaults, f.name)]
    if odd:
        raise ValueError(f"the dashboard runs a model in a process of its own and cannot pass it {', '.join(odd)}; "
                         f"leave {'it' if len(odd) == 1 else 'them'} at the default")
    out = Path(config.out_dir).absolute()
    made = []  # the folders this run creates, removed again if it leaves no report
    d = out
    while not d.exists() and d != d.parent:
        made.append(d)
        d = d.parent
    request = {"config": {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                          for k, v in ((k, getattr(config, k)) for k in _WIRE_FIELDS)},
               "cleanup": [str(p) for p in cleanup], "made": [str(p) for p in made]}
    request["config"]["out_dir"] = str(out)
    with _START_LOCK:
        busy = active(registry)
        if busy is not None:
            raise Busy(busy)
        job = Job(id=uuid.uuid4().hex[:12], label=label, config=config, progress=BrowserProgress(),
                  started=time.monotonic(), started_at=datetime.datetime.now(), owner=owner,
                  model=model or Path(config.model_path).name)
        # A session of its own, so that a cancel that times out can kill the run's workers with it; its
        # stdin stays open while this server runs, and the run stops itself when it closes.
        job.process = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                                       start_new_session=True, close_fds=True)
        job.process.stdin.write(json.dumps(request) + "\n")
        job.process.stdin.flush()
        registry[job.id] = job
    tail: collections.deque[str] = collections.deque(maxlen=20)
    threading.Thread(target=_drain, args=(job.process.stderr, tail), name=f"diagnose-{job.id}-stderr", daemon=True).start()
    job.thread = threading.Thread(target=_follow, args=(job, tail, made, tuple(Path(p) for p in cleanup)),
                                  name=f"diagnose-{job.id}", daemon=True)
    job.thread.start()
    threading.Thread(target=_watch, args=(job, owner_alive), name=f"diagnose-{job.id}-watch", daemon=True).start()
    return job


def cancel(job: Job, why: str, by: str | None = None) -> bool:
    """Ask the run to stop, as Ctrl-C stops the CLI; False if it had already ended or been cancelled."""
    if not job.running or job.cancelled is not None:
        return False
    job.cancelled, job.cancelled_by, job.cancel_asked = why, by, time.monotonic()
    try:
        job.process.stdin.write("cancel\n")
        job.process.stdin.flush()
    except (OSError, ValueError):  # its stdin is closed: it is ending anyway; make sure
        _signal(job, signal.SIGINT)
    return True


def _signal(job: Job, sig: int) -> None:
    try:
        os.killpg(job.process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _drain(stream, tail) -> None:
    for line in stream:
        if line.strip():
            tail.append(line.rstrip())


def _watch(job: Job, owner_alive: Callable[[], bool] | None) -> None:
    """Cancels the run once its tab has been gone for ORPHAN_GRACE_S, and kills a cancelled run that does
    not stop within CANCEL_GRACE_S."""
    gone_since = None
    while job.running:
        now = time.monotonic()
        if owner_alive is not None and job.cancelled is None:
            try:
                alive = bool(owner_alive())
            except Exception:  # noqa: BLE001 - the server is shutting down: its stdin closes anyway
                alive = True
            if alive:
                gone_since = None
            elif gone_since is None:
                gone_since = now
            elif now - gone_since >= ORPHAN_GRACE_S:
                cancel(job, "its browser tab was closed")
        if job.cancel_asked is not None and now - job.cancel_asked > CANCEL_GRACE_S and job.process.poll() is None:
            _signal(job, signal.SIGKILL)
        time.sleep(0.5)


def _remove_unpublished(out: Path, made: list[Path]) -> None:
    """Nothing published in ``out``: remove it and the folders made for it (``made``, deepest first)."""
    if (out / REPORT_JSON).is_file():
        return
    for d in made:
        if d == out:
            shutil.rmtree(d, ignore_errors=True)
        else:
            try:
                d.rmdir()
            except OSError:  # not empty: another run's folder is in it
                break


def _follow(job: Job, tail, made: list[Path], cleanup: tuple[Path, ...]) -> None:
    result: dict[str, Any] = {}
    for raw in job.process.stdout:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        if "outcome" in msg or "error" in msg:
            result = msg
        else:
            job.progress.apply(msg)
    code = job.process.wait()
    outcome, error = None, None
    out = Path(job.config.out_dir)
    o = result.get("outcome")
    if isinstance(o, dict):
        report = None
        if o.get("report"):
            try:
                report = Report.load(out)
            except (OSError, ValueError, KeyError, TypeError) as e:
                error = f"the run wrote a report that cannot be read: {e}"
        message = str(o.get("message", ""))
        if report is None and job.cancelled:
            message = f"cancelled: {job.cancelled}"
        outcome = Outcome(report, ExitCode(int(o.get("exit_code", ExitCode.INTERNAL_ERROR))), message)
    elif job.cancelled:
        outcome = Outcome(None, ExitCode.INTERRUPTED, f"cancelled: {job.cancelled}")
    elif "error" in result:
        error = str(result["error"])
    else:
        error = f"the run's process ended without a result (exit status {code})" + \
                (f"; its last output: {' | '.join(tail)}" if tail else "")
    for d in cleanup:
        shutil.rmtree(d, ignore_errors=True)
    _remove_unpublished(out, made)
    try:
        job.process.stdin.close()
    except OSError:
        pass
    job.finished = time.monotonic()
    if error is not None:
        job.error = error
    else:
        job.outcome = outcome


# -- the run's own process ------------------------------------------------------------------------------
class _Relay(Progress):
    """The runner's progress, as JSON lines to the dashboard (one per message, with the counts)."""

    def __init__(self, out):
        super().__init__(stream=io.StringIO(), quiet=False)
        self.tty = False
        self.out = out

    def send(self, msg: dict[str, Any]) -> None:
        with self._lock:
            try:
                self.out.write(json.dumps({**msg, "done": self.done, "total": self.total}) + "\n")
                self.out.flush()
            except (OSError, ValueError):  # the dashboard is gone: stdin closes too, and the run stops
                pass

    def say(self, text: str) -> None:
        self.send({"say": text})

    def live(self, text: str) -> None:
        self.send({"say": text})

    def step(self, name: str, done: int, total: int, message: str = "") -> None:
        self.send({"step": [name, done, total, message]})


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def child_main() -> None:
    """Run the request on stdin; report on stdout (JSON lines); stop as if interrupted on ``cancel`` or
    when stdin closes (the dashboard went away)."""
    from diagnostics._runner import run_file

    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything else that prints (a framework, a plugin) cannot corrupt the messages
    request = json.loads(sys.stdin.readline())
    cfg = request["config"]
    config = RunConfig(**{**cfg, "out_dir": Path(cfg["out_dir"]), "only": tuple(cfg["only"]), "skip": tuple(cfg["skip"])})
    relay = _Relay(proto)
    ended = threading.Event()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "cancel":
                break
        if not ended.is_set():  # SIGINT, so that the runner's commit holds it off as it does for Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()
        outcome = run_file(config, relay)
        msg = {"outcome": {"exit_code": int(outcome.exit_code), "message": outcome.message,
                           "report": outcome.report is not None}}
    except KeyboardInterrupt:
        msg = {"outcome": {"exit_code": int(ExitCode.INTERRUPTED), "message": "interrupted", "report": False}}
    except Exception as e:  # noqa: BLE001 - shown on the page, as the thread used to
        msg = {"error": f"{type(e).__name__}: {e}"}
    finally:
        ended.set()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for d in request.get("cleanup", ()):
            shutil.rmtree(d, ignore_errors=True)
        # here too, for a dashboard that is gone (its stdin closed): it cannot clean up after this run
        _remove_unpublished(Path(cfg["out_dir"]), [Path(p) for p in request.get("made", ())])
    relay.send(msg)
