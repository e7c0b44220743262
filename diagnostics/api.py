"""The notebook API: ``diagnostics.diagnose(model_or_path, data=...) -> Report``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .analyzer import Data
from .data import DataRefused, from_arrays
from .exitcodes import ExitCode
from .report import Report


class DiagnosisError(Exception):
    """A diagnosis could not produce a report; ``exit_code`` says why (as the CLI would exit)."""

    def __init__(self, message: str, exit_code: ExitCode):
        super().__init__(message)
        self.exit_code = exit_code


def diagnose(model: Any, data: Any = None, *, out_dir: str | os.PathLike | None = None, seed: int = 0,
             only: tuple[str, ...] = (), skip: tuple[str, ...] = (), fail_on: str = "error",
             options: Mapping[str, Mapping[str, Any]] | None = None, history: Any = None,
             metadata: Mapping[str, Any] | None = None, timeout_s: float = 300.0, trust: bool = False,
             quiet: bool = True) -> Report:
    """Diagnose a Keras model and return the :class:`Report`.

    ``model`` is an in-memory ``keras.Model`` (analyzers run in this process, on this backend) or the
    path of a ``.keras``/``.h5`` file (safe loading and worker processes, exactly as the CLI).
    ``data`` is a path (.npz/.csv), a :class:`Data`, a mapping of arrays (``x_val``, ``y_val``...),
    or an ``(x, y)`` tuple. ``history`` is a ``keras.callbacks.History`` or a dict of per-epoch lists.
    The report is also written to ``out_dir`` (a temporary directory by default; see ``report.directory``).
    """
    from .plugin_manager import PluginHost
    from .runner import Progress, RunConfig, run_file, run_in_memory

    progress = Progress(quiet=quiet)
    if isinstance(model, (str, os.PathLike)):
        out = Path(out_dir) if out_dir is not None else Path(_tempdir())
        data_path = None
        if data is not None and not isinstance(data, (str, os.PathLike)):
            data_path = str(out / "input-data.npz")
            from .data import save_npz

            out.mkdir(parents=True, exist_ok=True)
            save_npz(_as_data(data), Path(data_path))
        elif data is not None:
            data_path = str(data)
        config = RunConfig(model_path=str(model), out_dir=out, data_path=data_path, only=tuple(only), skip=tuple(skip),
                           fail_on=fail_on, timeout_s=timeout_s, seed=seed, trust=trust,
                           options={k: dict(v) for k, v in (options or {}).items()})
        outcome = run_file(config, progress)
        if outcome.report is not None:
            object.__setattr__(outcome.report, "directory", str(out))
    else:
        host = PluginHost().load()
        if isinstance(data, (str, os.PathLike)):
            from .data import load_file

            data = load_file(data)
        hist = getattr(history, "history", history)
        outcome = run_in_memory(model, _as_data(data) if data is not None else None, out_dir=Path(out_dir) if out_dir else None,
                                seed=seed, only=only, skip=skip, fail_on=fail_on,
                                options={k: dict(v) for k, v in (options or {}).items()},
                                history=dict(hist) if hist else None, metadata=dict(metadata or {}), host=host,
                                progress=progress)
    if outcome.report is None:
        raise DiagnosisError(outcome.message, outcome.exit_code)
    return outcome.report


def _as_data(data: Any) -> Data:
    if isinstance(data, Data):
        return data
    if isinstance(data, Mapping):
        return from_arrays(data, source="in-memory arrays")
    if isinstance(data, tuple) and len(data) == 2:
        return from_arrays({"x_val": data[0], "y_val": data[1]}, source="in-memory arrays")
    raise DataRefused(f"data must be a path, a diagnostics.Data, a mapping of arrays or an (x, y) tuple; got {type(data).__name__}")


def _tempdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="diagnostics-")
