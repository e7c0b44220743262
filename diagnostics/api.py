"""The notebook API: ``diagnostics.diagnose(model_or_path, data=...) -> Report``."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import logging
import os
import shutil
import sys
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import Any, Mapping

from .analyzer import Data
from ._data import DataRefused, from_arrays
from ._exitcodes import ExitCode
from .report import REPORT_JSON, Report


class DiagnosisError(Exception):
    """A diagnosis could not produce a report; ``exit_code`` says why (as the CLI would exit)."""

    def __init__(self, message: str, exit_code: ExitCode):
        super().__init__(message)
        self.exit_code = exit_code


def diagnose(model: Any, data: Any = None, *, out_dir: str | os.PathLike | None = None, keep: bool = False, seed: int = 0,
             only: tuple[str, ...] = (), skip: tuple[str, ...] = (), fail_on: str = "error",
             options: Mapping[str, Mapping[str, Any]] | None = None, history: Any = None,
             metadata: Mapping[str, Any] | None = None, timeout_s: float = 300.0, trust: bool = False,
             quiet: bool | None = None) -> Report:
    """Diagnose a Keras model and return the :class:`Report`.

    ``model`` is an in-memory ``keras.Model`` (analyzers run in this process, on this backend: an analyzer
    that needs another backend, such as ``explain.captum`` on torch, is skipped and says how to run it) or
    the path of a ``.keras``/``.h5`` file (safe loading and worker processes, exactly as the CLI).
    ``data`` is a path (.npz/.csv), a :class:`Data`, a mapping of arrays (``x_val``, ``y_val``...),
    or an ``(x, y)`` tuple. ``history`` is a ``keras.callbacks.History`` or a dict of per-epoch lists.

    Where the report goes: ``report.json``, ``report.html`` and the artifacts are written to ``out_dir``,
    which is kept. Without ``out_dir`` they go to a temporary folder (``report.directory``), removed when
    the returned report is garbage-collected or when Python exits (a process killed outright leaves it);
    ``keep=True`` keeps it, and ``report.save(path)`` copies the report anywhere. A run that raises
    :class:`DiagnosisError` leaves no temporary folder.

    What it prints: in a Jupyter notebook, the progress as one display in the cell, updated in place;
    elsewhere nothing, or one line per analyzer on stderr with ``quiet=False`` (``quiet=True``: no progress
    anywhere). Python warnings raised during the run (a Keras ``UserWarning``) and what is written to
    stderr meanwhile (TensorFlow's C++ log lines, a library's progress bar) are captured into
    ``report.warnings`` instead of being printed; with ``quiet=False`` outside a notebook, only the
    Python warnings and Python-level writes are, since stderr is then where the progress goes.

    A report renders itself in a notebook (the verdicts, the warnings and errors, the explanation maps);
    ``report.show()`` displays it anywhere.
    """
    from .notebook import NotebookProgress, in_notebook
    from ._plugin_manager import PluginHost
    from ._runner import Progress, RunConfig, run_file, run_in_memory

    notebook = in_notebook()
    quiet = not notebook if quiet is None else quiet
    name = Path(model).name if isinstance(model, (str, os.PathLike)) else str(getattr(model, "name", "model"))
    progress_fd = None
    if notebook and not quiet:
        progress = NotebookProgress(f"diagnostics · {name}")
    elif not quiet and _stderr_is_fd2():
        # stderr is captured at the file-descriptor level below: the lines go to a copy of it
        progress_fd = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
        progress = Progress(stream=progress_fd)
    else:
        progress = Progress(quiet=quiet)
    temporary = out_dir is None
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="diagnostics-"))
    inputs = None  # a folder for in-memory data handed to a model file's run, removed at the end
    capture = _Capture()
    try:
        with capture:
            if isinstance(model, (str, os.PathLike)):
                data_path = None
                if data is not None and not isinstance(data, (str, os.PathLike)):
                    from ._data import save_npz

                    inputs = Path(tempfile.mkdtemp(prefix="diagnostics-input-"))
                    data_path = str(inputs / "input-data.npz")
                    save_npz(_as_data(data), Path(data_path))
                elif data is not None:
                    data_path = str(data)
                config = RunConfig(model_path=str(model), out_dir=out, data_path=data_path, only=tuple(only),
                                   skip=tuple(skip), fail_on=fail_on, timeout_s=timeout_s, seed=seed, trust=trust,
                                   options={k: dict(v) for k, v in (options or {}).items()}, caller="api")
                outcome = run_file(config, progress)
            else:
                host = PluginHost().load()
                if isinstance(data, (str, os.PathLike)):
                    from ._data import load_file

                    data = load_file(data)
                hist = getattr(history, "history", history)
                outcome = run_in_memory(model, _as_data(data) if data is not None else None, out_dir=out,
                                        seed=seed, only=only, skip=skip, fail_on=fail_on,
                                        options={k: dict(v) for k, v in (options or {}).items()},
                                        history=dict(hist) if hist else None, metadata=dict(metadata or {}), host=host,
                                        progress=progress)
    except BaseException:
        if temporary:
            shutil.rmtree(out, ignore_errors=True)
        _close(progress, "stopped: no report")
        raise
    finally:
        if inputs is not None:
            shutil.rmtree(inputs, ignore_errors=True)
        if progress_fd is not None:
            progress_fd.close()
    if outcome.report is None:
        if temporary:
            shutil.rmtree(out, ignore_errors=True)
        _close(progress, outcome.message)
        raise DiagnosisError(outcome.message, outcome.exit_code)
    report = outcome.report
    if capture.lines:
        report = dataclasses.replace(report, warnings=tuple(capture.lines))
        _replace_json(out, report)
    object.__setattr__(report, "directory", str(out))
    object.__setattr__(report, "temporary", temporary and not keep)
    if temporary and not keep:
        # the folder lives as long as the report that points at it (its images, report.save()); at the
        # latest it goes at interpreter exit, which weakref.finalize also covers
        weakref.finalize(report, shutil.rmtree, str(out), True)
    worst = report.worst.value if report.worst else "clean"
    _close(progress, f"verdict: {worst} (fail on {report.fail_on}) · exit {int(report.exit_code)} · "
                     f"{float(report.timings.get('total_s', 0.0)):.1f} s")
    return report


def _close(progress, line: str) -> None:
    if hasattr(progress, "close"):
        progress.close(line)


def _stderr_is_fd2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


def _replace_json(out: Path, report: Report) -> None:
    """Rewrite ``report.json`` in place, atomically (the run wrote it before the captured warnings were known)."""
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".json", dir=out)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(report.to_json())
        os.replace(tmp, out / REPORT_JSON)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: At most this many distinct captured lines are kept (the rest are counted), each cut to this length.
MAX_CAPTURED, MAX_LINE = 200, 1000


class _Capture:
    """Within the block: Python warnings recorded (the filters in force still decide which), ``sys.stderr``
    and the logging handlers that write to it sent to a buffer, and file descriptor 2 (where TensorFlow's
    C++ logging writes) sent to an unnamed temporary file. ``lines``: what was caught, one entry per
    distinct line, with a count when it repeated.

    Output of other threads of the process during the block is caught too; that is the price of catching
    the framework's: stderr is one per process.
    """

    def __init__(self):
        self.lines: list[str] = []
        self._stack: contextlib.ExitStack | None = None

    def __enter__(self) -> "_Capture":
        with contextlib.ExitStack() as stack:
            self._enter(stack)
            self._stack = stack.pop_all()
        return self

    def _enter(self, stack: contextlib.ExitStack) -> None:
        self._log = stack.enter_context(warnings.catch_warnings(record=True))
        self._buffer = io.StringIO()
        original = sys.stderr
        stack.enter_context(contextlib.redirect_stderr(self._buffer))
        for handler in _stream_handlers(original):
            handler.setStream(self._buffer)
            stack.callback(handler.setStream, original)
        self._file = None
        try:
            saved = os.dup(2)
        except OSError:  # no file descriptor 2 (a daemon): nothing to catch there
            saved = None
        if saved is not None:
            self._file = stack.enter_context(tempfile.TemporaryFile())
            with contextlib.suppress(Exception):
                original.flush()
            os.dup2(self._file.fileno(), 2)

            def restore() -> None:
                os.dup2(saved, 2)
                os.close(saved)

            stack.callback(restore)

    def __exit__(self, *exc) -> None:
        raw: list[str] = []
        for w in self._log:
            raw.append(f"{w.category.__name__}: {' '.join(str(w.message).split())} ({_short_path(w.filename)}:{w.lineno})")
        if self._file is not None:
            with contextlib.suppress(Exception):
                sys.__stderr__.flush()
            self._file.seek(0)
            raw += self._file.read().decode("utf-8", "replace").splitlines()
        raw += self._buffer.getvalue().splitlines()
        self._stack.close()
        counts = collections.Counter()
        for line in raw:
            line = line.replace("\r", "\n").rsplit("\n", 1)[-1].strip()  # a progress bar's last state
            if line:
                counts[line[:MAX_LINE]] += 1
        lines = [f"{line} (x{n})" if n > 1 else line for line, n in counts.items()]
        if len(lines) > MAX_CAPTURED:
            lines = lines[:MAX_CAPTURED] + [f"... and {len(lines) - MAX_CAPTURED} more distinct lines"]
        self.lines = lines


def _stream_handlers(stream) -> list[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) and h.stream is stream]


def _short_path(filename: str) -> str:
    """``keras/src/models/functional.py`` rather than the whole site-packages path."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _as_data(data: Any) -> Data:
    if isinstance(data, Data):
        return data
    if isinstance(data, Mapping):
        return from_arrays(data, source="in-memory arrays")
    if isinstance(data, tuple) and len(data) == 2:
        return from_arrays({"x_val": data[0], "y_val": data[1]}, source="in-memory arrays")
    raise DataRefused(f"data must be a path, a diagnostics.Data, a mapping of arrays or an (x, y) tuple; got {type(data).__name__}")
