"""Loading a pre-scanned model file with Keras (in worker processes: keras is imported inside the
functions), and the parent's view of it: the phases a worker reports while it loads, shown as they happen.

A worker names each phase as it begins (``("phase", name)`` messages, see :mod:`diagnostics._worker`):
``importing <backend>``, then for each load ``loading plugins``, ``reading the file`` (the pre-scan again,
inside the sandbox), ``building layers``, ``loading weights``. :class:`LoadingLine` shows them with the
seconds elapsed: one line rewritten in place on a terminal, a plain line per phase elsewhere.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ._plugin_manager import resolve_object
from .safety import ModelRefused, _first_line


PhaseFn = Callable[[str], None]


def load_checked(path: str | Path, *, custom_objects: Mapping[str, Any] = {}, trust: bool = False,
                 limits=None, expect_sha256: str | None = None, phase: PhaseFn | None = None):
    """The one safe way to load a model file: :func:`diagnostics.safety.scan`, then Keras.

    Every path that loads a file calls this (worker processes, companion models; a distributed or
    Keras 2 loader should too): the pre-scan with ``limits`` (a :class:`~diagnostics._limits.LoadLimits`),
    refusal of unknown classes and, without ``trust``, of code stored in the file; ``expect_sha256``
    refuses a file that changed since the parent process scanned it. ``phase`` is told each phase as it begins.
    """
    from .safety import require_safe, scan

    if phase is not None:
        phase("reading the file")
    result = scan(path, limits=limits, registered=custom_objects)
    if expect_sha256 is not None and result.sha256 != expect_sha256:
        raise ModelRefused(f"{Path(path).name} changed between the pre-scan and loading: refused")
    require_safe(result, trust=trust)
    return load_model(path, custom_objects=custom_objects, trust=trust, phase=phase)


def load_model(path: str | Path, *, custom_objects: Mapping[str, Any] = {}, trust: bool = False,
               phase: PhaseFn | None = None):
    """``keras.saving.load_model(path, safe_mode=not trust, compile=False)`` with plugin custom objects.

    Errors become :class:`ModelRefused` with a one-line reason; an unknown custom class is named.
    ``phase``: told "building layers", then "loading weights" where Keras lets that moment be seen.
    """
    import keras

    objects = {name: resolve_object(obj) for name, obj in custom_objects.items()}
    try:
        if phase is None:
            return keras.saving.load_model(str(path), custom_objects=objects, compile=False, safe_mode=not trust)
        phase("building layers")
        with _weights_phase(phase):
            return keras.saving.load_model(str(path), custom_objects=objects, compile=False, safe_mode=not trust)
    except Exception as e:  # noqa: BLE001 - keras raises many types for bad files
        text = _first_line(e)
        name = Path(path).name
        if "Could not locate class" in text or "Unknown layer" in text or "Could not locate" in text:
            raise ModelRefused(f"{name}: {text.split(' Make sure')[0]} — register it from a plugin's register_custom_objects hook") from None
        raise ModelRefused(f"{name} could not be loaded: {type(e).__name__}: {text}") from None


#: Where Keras 3 turns from building the layers to reading their weights: (module, function) for the
#: ``.keras`` format and for legacy ``.h5`` files. Both are private names, so a Keras that renamed them
#: only loses the "loading weights" phase (the time then shows under "building layers").
_WEIGHT_READERS = (("keras.src.saving.saving_lib", "_load_state"),
                   ("keras.src.legacy.saving.legacy_h5_format", "load_weights_from_hdf5_group"))


@contextlib.contextmanager
def _weights_phase(phase: PhaseFn):
    """While Keras loads a model, report "loading weights" when it first calls its weight reader: the
    reader is wrapped for the duration only, in this process (a worker loads one model at a time)."""
    import importlib

    told = []
    patched = []

    def wrap(original):
        def reader(*args, **kwargs):
            if not told:  # _load_state recurses through the layers: say it once
                told.append(True)
                phase("loading weights")
            return original(*args, **kwargs)
        return reader

    for module_name, attr in _WEIGHT_READERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        original = getattr(module, attr, None)
        if callable(original):
            setattr(module, attr, wrap(original))
            patched.append((module, attr, original))
    try:
        yield
    finally:
        for module, attr, original in patched:
            setattr(module, attr, original)


class LoadingLine:
    """What the user sees while a worker loads the model: ``loading cnn.h5 (tensorflow backend)``, then each
    phase the worker reports (:meth:`phase`) with the seconds since loading began.

    On a terminal it is one line rewritten in place, once a second, so that a long phase (TensorFlow's
    import) visibly advances; elsewhere (a pipe, CI logs, the dashboard) one plain line per phase, each
    starting ``loading ``; nothing with ``--quiet``. ``progress`` is the run's
    :class:`diagnostics._runner.Progress`. Use as a context manager around the load.
    """

    def __init__(self, progress, name: str, backend: str, *, tick_s: float = 1.0):
        self.progress = progress
        self.name = name
        self.backend = backend
        self.tick_s = tick_s
        self.current = "starting the worker"
        self.live = bool(getattr(progress, "tty", False)) and not getattr(progress, "quiet", False) \
            and callable(getattr(progress, "live", None))
        self._t0 = 0.0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def __enter__(self) -> "LoadingLine":
        self._t0 = time.monotonic()
        if self.live:
            self._draw()
            self._ticker = threading.Thread(target=self._tick, name="loading-line", daemon=True)
            self._ticker.start()
        else:
            self.progress.say(f"loading {self.name} ({self.backend} backend)…")
        return self

    def phase(self, name: str) -> None:
        """The worker began ``name``."""
        self.current = name
        if self.live:
            self._draw()
        else:
            self.progress.say(f"loading {self.name}: {name} ({self.elapsed():.1f} s)")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if exc_type is not None:
            if self.live:
                self.progress.live("")  # the refusal's own message follows on a clean line
            return
        if self.live:
            self.progress.say(f"loaded {self.name} ({self.backend} backend) in {self.elapsed():.1f} s")
        else:
            self.progress.say(f"loading {self.name}: loaded in {self.elapsed():.1f} s")

    def _draw(self) -> None:
        self.progress.live(f"loading {self.name} ({self.backend} backend): {self.current}… {self.elapsed():.0f} s")

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            self._draw()


def weights_fingerprint(model) -> str:
    """A hash of every weight value, to detect an analyzer that changed the model."""
    import hashlib

    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    for w in model.weights:
        a = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def phase_kwargs(executor, phase: PhaseFn) -> dict[str, Any]:
    """``{"phase": phase}`` for an executor whose ``load`` reports the worker's phases
    (:class:`diagnostics._executors.ProcessExecutor`); ``{}`` for one that does not (Ray, in-process)."""
    import inspect

    try:
        accepts = "phase" in inspect.signature(executor.load).parameters
    except (TypeError, ValueError):
        accepts = False
    return {"phase": phase} if accepts else {}
