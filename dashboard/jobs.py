"""Running a diagnosis from the browser: uploads checked by content, runs in a background thread.

The run itself is :func:`diagnostics.runner.run_file` — the same safe loading, worker processes and
report as the CLI — with ``trust=False`` always: the browser has no way to allow code in a model.
"""

from __future__ import annotations

import codecs
import dataclasses
import importlib.util
import io
import os
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from diagnostics.runner import Outcome, Progress, RunConfig, run_file
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


class BrowserProgress(Progress):
    """Collects what the CLI would print, for the page to show (the run happens in another thread)."""

    def __init__(self):
        super().__init__(stream=io.StringIO(), quiet=False)
        self.tty = False
        self.lines: list[str] = []
        self.current: tuple[str, int, int, str] | None = None

    def say(self, text: str) -> None:
        with self._lock:
            self.lines.append(text)

    def step(self, name: str, done: int, total: int, message: str = "") -> None:
        self.current = (name, done, total, message)

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
    id: str
    label: str
    config: RunConfig
    progress: BrowserProgress
    started: float
    thread: threading.Thread | None = None
    outcome: Outcome | None = None
    error: str | None = None
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.outcome is None and self.error is None

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started


def start(config: RunConfig, label: str, registry: dict[str, Any]) -> Job:
    """Start ``run_file(config)`` in a daemon thread; the page polls the returned job."""
    if config.trust:  # never from the browser
        raise ValueError("the dashboard never runs a model with trust=True")
    job = Job(id=uuid.uuid4().hex[:12], label=label, config=config, progress=BrowserProgress(), started=time.monotonic())

    def work():
        try:
            job.outcome = run_file(config, job.progress)
        except Exception as e:  # noqa: BLE001 - shown on the page, the server goes on
            job.error = f"{type(e).__name__}: {e}"
        finally:
            job.finished = time.monotonic()

    job.thread = threading.Thread(target=work, name=f"diagnose-{job.id}", daemon=True)
    registry[job.id] = job
    job.thread.start()
    return job
