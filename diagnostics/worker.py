"""What runs inside a worker process (or in-process, for in-memory models).

A worker serves one Keras backend: it sets ``KERAS_BACKEND`` before keras is imported, loads the
model once, and runs analyzer jobs one after another, sending progress and results back over a
pipe. Any exception an analyzer raises becomes a ``failed`` result; a crash or a hang is handled by
the parent, which kills the worker and starts another for the remaining jobs.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .analyzer import Context, Data, ModelInfo, Result, validate_result
from .plugin_manager import PluginError, PluginHost


@dataclasses.dataclass
class Job:
    """One unit of work: model file, data file, analyzer name, options -> a result dict.

    Everything in it is plain data, so an executor may ship it to another machine.
    """

    analyzer: str
    model_path: str
    data_path: str | None
    artifact_dir: str
    seed: int = 0
    budget_s: float = 300.0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    trust: bool = False
    loss: str | None = None
    kind_hint: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: dict[str, list[float]] | None = None
    max_model_size: int = 1 << 30
    max_memory: int | None = None  #: bytes this worker may use (its share of --max-memory); None: the default


class WorkerState:
    """The model, data and plugins a worker keeps between jobs."""

    def __init__(self, backend: str, disabled: set[str], extra: tuple = ()):
        self.backend = backend
        self.host = PluginHost(disabled=disabled, extra=extra)
        self.model = None
        self.model_path: str | None = None
        self.info: ModelInfo | None = None
        self.data: Data | None = None
        self.data_path: str | None = None
        self.fingerprint: str | None = None

    def ensure_model(self, job: Job):
        if self.model is None or self.model_path != job.model_path:
            from .loading import load_model, weights_fingerprint
            from .modelinfo import inspect_model

            self.host.load()
            self.model = load_model(job.model_path, custom_objects=self.host.custom_objects, trust=job.trust)
            self.model_path = job.model_path
            self.info = inspect_model(self.model, loss=job.loss, kind_hint=job.kind_hint)
            self.fingerprint = weights_fingerprint(self.model)
        if job.data_path != self.data_path:
            from .data import load_file

            self.data = read_only(load_file(job.data_path)) if job.data_path else None
            self.data_path = job.data_path
        return self.model

    def versions(self) -> dict[str, str]:
        import keras

        out = {"keras": keras.__version__, "backend": keras.backend.backend()}
        try:
            if self.backend == "tensorflow":
                import tensorflow as tf

                out["tensorflow"] = tf.__version__
                gpus = tf.config.list_physical_devices("GPU")
                out["device"] = f"GPU ({', '.join(g.name for g in gpus)})" if gpus else "CPU"
            else:
                import torch

                out["torch"] = torch.__version__
                out["device"] = f"GPU ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU"
        except ImportError:
            pass
        return out


def run_job(state: WorkerState, job: Job, progress: Callable[[int, int, str], None]) -> dict[str, Any]:
    """Run one analyzer on the state's model; always returns a result dict, never raises (but KeyboardInterrupt)."""
    from .loading import weights_fingerprint

    try:
        entry = state.host.analyzer(job.analyzer)
    except PluginError:  # loaded in the parent but not here: say why instead of killing the worker
        why = "; ".join(f"{name}: {r.error}" for name, r in state.host.records.items() if r.error) or "it is not registered"
        return _failed(f"could not be loaded in the {state.backend} worker process: {why}", 0.0)
    artifact_dir = Path(job.artifact_dir)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    model = state.model
    context = Context(
        model=model, info=state.info, data=state.data, history=job.history, metadata=job.metadata,
        seed=job.seed, artifact_dir=artifact_dir, budget_s=job.budget_s, backend=state.backend,
        options=dict(job.options), progress=progress,
        _companion_loader=_companion_loader(job, state), _deadline=time.monotonic() + job.budget_s,
    )
    _seed_everything(job.seed)
    from . import memory

    memory.set_limit(job.max_memory)
    memory.take_notes()
    memory.reset_peak()
    t0 = time.perf_counter()
    try:
        result = entry.cls().run(context)
    except Exception as e:  # noqa: BLE001 - isolate the analyzer
        tb = traceback.format_exc(limit=-8)
        reason = f"raised {type(e).__name__}: {e}"
        if memory.is_oom(e):
            reason += (f" (out of memory with {memory.describe(memory.limit_bytes())} allowed to this worker: "
                       f"raise --max-memory or lower the analyzer's batch_size/samples option)")
        if weights_fingerprint(model) != state.fingerprint:  # it raised halfway through changing the model
            state.model = None  # reload a pristine copy for the next analyzer
            reason += "; it had also changed the model's weights (reloaded for the next analyzer)"
        return {**_failed(reason, time.perf_counter() - t0, traceback=tb), **_memory_record(memory)}
    duration = time.perf_counter() - t0
    problems = validate_result(result, artifact_dir)
    if weights_fingerprint(model) != state.fingerprint:
        state.model = None  # reload a pristine copy for the next analyzer
        problems.insert(0, "changed the model's weights (analyzers must leave the model as they found it)")
    if problems:
        return _failed("returned a malformed result: " + "; ".join(problems), duration)
    if result.skipped:
        return {"status": "skipped", "reason": result.skipped, "duration_s": duration, **_memory_record(memory)}
    return {
        "status": "ok",
        "reason": "",
        "duration_s": duration,
        "findings": [f.to_dict() for f in result.findings],
        "metrics": dict(result.metrics),
        "artifacts": dict(result.artifacts),
        **_memory_record(memory),
    }


def _memory_record(memory) -> dict[str, Any]:
    """The worker's peak resident memory during the job (MiB, None where unknown) and the batch-size
    adjustments made to fit its memory limit."""
    peak = memory.peak_rss()
    return {"peak_memory_mb": None if peak is None else round(peak / 2**20, 1), "resource_notes": memory.take_notes()}


def read_only(data: Data) -> Data:
    """``data`` with every array made read-only: the analyzers of a worker share one copy, so one that
    normalised ``context.data.x`` in place would silently change what every later analyzer sees."""
    for a in (data.x_train, data.y_train, data.x_val, data.y_val, *data.extras.values()):
        for leaf in (a.values() if isinstance(a, dict) else [a]):
            if hasattr(leaf, "setflags"):
                leaf.setflags(write=False)
    return data


def _failed(reason: str, duration: float, traceback: str = "") -> dict[str, Any]:
    out = {"status": "failed", "reason": reason, "duration_s": duration}
    if traceback:
        out["traceback"] = traceback
    return out


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import keras

        keras.utils.set_random_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def _companion_loader(job: Job, state: WorkerState):
    companions = (job.metadata or {}).get("companions") or {}
    cache: dict[str, Any] = {}

    def load(role: str):
        if role not in companions:
            raise LookupError(f"the model's metadata names no {role!r} companion (it names {sorted(companions) or 'none'})")
        if role not in cache:
            from .loading import load_model
            from .safety import ModelRefused, scan

            path = Path(job.model_path).parent / companions[role]
            result = scan(path, max_size=job.max_model_size, registered=state.host.custom_objects)
            if (result.risks or result.custom_classes) and not job.trust:
                raise ModelRefused(f"companion {path.name} holds code that would run on loading; pass --trust to allow it")
            cache[role] = load_model(path, custom_objects=state.host.custom_objects, trust=job.trust)
        return cache[role]

    return load


# -- the worker process ----------------------------------------------------------------------------
def worker_main(conn, backend: str, disabled: list[str], extra: tuple, log_path: str | None = None) -> None:
    """Entry point of a spawned worker. Messages: ("load", job) and ("run", job); replies go to conn.

    The worker's stdout and stderr go to ``log_path``: framework chatter stays off the terminal, an
    analyzer's prints cannot corrupt the verdict table, and the parent quotes the log when it crashes.
    """
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    state = WorkerState(backend, set(disabled), extra)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        kind, payload = message
        if kind == "stop":
            return
        job = Job(**payload)
        try:
            state.ensure_model(job)
        except Exception as e:  # noqa: BLE001
            from .data import DataRefused
            from .safety import ModelRefused

            code = "refused" if isinstance(e, ModelRefused) else "data_refused" if isinstance(e, DataRefused) else "error"
            conn.send((code, f"{e}" if code != "error" else f"{type(e).__name__}: {e}"))
            continue
        if kind == "load":
            conn.send(("loaded", {"info": state.info.to_dict(), "versions": state.versions()}))
            continue
        conn.send(("started", None))
        result = run_job(state, job, lambda done, total, msg="": conn.send(("progress", (done, total, msg))))
        conn.send(("result", result))
