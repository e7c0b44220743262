"""What runs inside a worker process (or in-process, for in-memory models).

A worker serves one Keras backend: it sets ``KERAS_BACKEND`` before keras is imported, loads the
model once, and runs analyzer jobs one after another, sending progress and results back over a
pipe. Each job ends in a :class:`~diagnostics._jobresult.JobResult`: ``ok``, ``skipped``, or ``failed``
for any exception an analyzer raises; a crash or a hang is handled by the parent, which kills the
worker, records the job as ``crashed`` or ``timed_out`` and starts another for the remaining jobs.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .analyzer import Context, Data, ModelInfo, Result, validate_result
from ._jobresult import JobResult, problem
from ._plugin_manager import PluginError, PluginHost
from .report import Status
from ._tensorflow_hidden import seed_everything

#: What caps a worker's compute threads, read by the frameworks when they start: OpenMP (torch's intra-op
#: pool, oneDNN, MKL) and TensorFlow's own pools.
COMPUTE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@dataclasses.dataclass
class Job:
    """One unit of work: model file, data file, analyzer name, options -> a :class:`~diagnostics._jobresult.JobResult`.

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
    max_params: int = 200_000_000
    load_timeout_s: float = 300.0
    max_worker_memory: int | None = None
    max_memory: int | None = None  #: bytes this worker may use (its share of --max-memory); None: the default
    model_sha256: str | None = None  #: the digest the parent's pre-scan saw; the worker re-scans and compares
    #: A file to load instead of ``model_path`` (the same model in another format, made by another worker);
    #: ``model_path`` still names the model in messages and locates its companions.
    load_path: str | None = None
    #: After loading, also save the model here as ``.keras``, so that a worker of another backend can read
    #: it without importing this one's framework (Keras reads a legacy ``.h5`` through TensorFlow).
    keras_copy: str | None = None

    #: A sample-sharded analyzer's part (diagnostics.sharding): run samples [start, stop) only ...
    shard: list[int] | None = None
    #: ... or merge these shard files (global order) and run its checks once.
    shard_inputs: list[str] | None = None

    def limits(self):
        """The :class:`~diagnostics._limits.LoadLimits` this job's model is scanned and loaded under."""
        from ._limits import DEFAULT

        return dataclasses.replace(DEFAULT, max_size=self.max_model_size, max_params=self.max_params,
                                   load_timeout_s=self.load_timeout_s, max_worker_memory=self.max_worker_memory)


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
        #: what diagnostics._sandbox.confine applied to this process (None: unconfined)
        self.sandbox: dict | None = None
        #: seconds and peak memory of this worker's phases, sent to the parent with each reply
        self.stats: dict[str, float] = {}
        #: told each loading phase as it begins (the worker process sends it to the parent); None: nobody asks
        self.on_phase: Callable[[str], None] | None = None

    def ensure_model(self, job: Job):
        if self.model is None or self.model_path != job.model_path:
            from .loading import load_checked, weights_fingerprint
            from .modelinfo import inspect_model

            t0 = time.perf_counter()
            if self.on_phase is not None:
                self.on_phase("loading plugins")
            self.host.load()
            t1 = time.perf_counter()
            # A copy made by another worker of this run (job.load_path) is scanned again, but its digest is
            # not the one the parent saw: only the original file is held to model_sha256.
            self.model = load_checked(job.load_path or job.model_path, custom_objects=self.host.custom_objects,
                                      trust=job.trust, limits=job.limits(),
                                      expect_sha256=None if job.load_path else job.model_sha256, phase=self.on_phase)
            self.model_path = job.model_path
            self.info = inspect_model(self.model, loss=job.loss, kind_hint=job.kind_hint)
            self.fingerprint = weights_fingerprint(self.model)
            self.stats["plugins_s"] = self.stats.get("plugins_s", 0.0) + t1 - t0
            self.stats["load_s"] = self.stats.get("load_s", 0.0) + time.perf_counter() - t1
            self.stats["loads"] = self.stats.get("loads", 0) + 1
            if job.keras_copy and not os.path.exists(job.keras_copy):
                if self.on_phase is not None:
                    self.on_phase("saving a .keras copy for the other backends")
                _save_copy(self.model, job.keras_copy)
        if job.data_path != self.data_path:
            from ._data import load_file

            self.data = read_only(load_file(job.data_path)) if job.data_path else None
            self.data_path = job.data_path
        return self.model

    def snapshot(self) -> dict[str, float]:
        """The phase timings so far and the peak resident memory of this process (MiB)."""
        return {**{k: round(v, 3) for k, v in self.stats.items()}, "peak_rss_mib": peak_rss_mib()}

    def versions(self) -> dict[str, str]:
        import keras

        from ._sandbox import describe

        out = {"keras": keras.__version__, "backend": keras.backend.backend(), "sandbox": describe(self.sandbox)}
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


def run_job(state: WorkerState, job: Job, progress: Callable[[int, int, str], None]) -> JobResult:
    """Run one analyzer on the state's model; always returns its result, never raises (but KeyboardInterrupt)."""
    from .loading import weights_fingerprint

    try:
        entry = state.host.analyzer(job.analyzer)
    except PluginError:  # loaded in the parent but not here: say why instead of killing the worker
        why = "; ".join(f"{name}: {r.error}" for name, r in state.host.records.items() if r.error) or "it is not registered"
        return JobResult.failed(f"could not be loaded in the {state.backend} worker process: {why}")
    artifact_dir = Path(job.artifact_dir)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    model = state.model
    context = Context(
        model=model, info=state.info, data=state.data, history=job.history, metadata=job.metadata,
        seed=job.seed, artifact_dir=artifact_dir, budget_s=job.budget_s, backend=state.backend,
        options=dict(job.options), progress=progress,
        _companion_loader=_companion_loader(job, state), _deadline=time.monotonic() + job.budget_s,
    )
    seed_everything(job.seed)
    from . import memory

    memory.set_limit(job.max_memory)
    memory.take_notes()
    memory.reset_peak()
    t0 = time.perf_counter()
    try:
        result = _call(entry.cls(), context, job)
    except memory.TooLarge as e:  # not a fault of the analyzer: the model's one sample is over the bound
        if weights_fingerprint(model) != state.fingerprint:
            state.model = None
        return JobResult.skipped(f"not run: {e}", time.perf_counter() - t0, **_memory_record(memory))
    except Exception as e:  # noqa: BLE001 - isolate the analyzer
        tb = traceback.format_exc(limit=-8)
        reason = f"raised {type(e).__name__}: {e}"
        if memory.is_oom(e):
            reason += (f" (out of memory with {memory.describe(memory.limit_bytes())} allowed to this worker: "
                       f"raise --max-memory or lower the analyzer's batch_size/samples option)")
        if weights_fingerprint(model) != state.fingerprint:  # it raised halfway through changing the model
            state.model = None  # reload a pristine copy for the next analyzer
            reason += "; it had also changed the model's weights (reloaded for the next analyzer)"
        return JobResult.failed(reason, time.perf_counter() - t0, traceback=tb, **_memory_record(memory))
    duration = time.perf_counter() - t0
    problems = validate_result(result, artifact_dir)
    if weights_fingerprint(model) != state.fingerprint:
        state.model = None  # reload a pristine copy for the next analyzer
        problems.insert(0, "changed the model's weights (analyzers must leave the model as they found it)")
    if problems:
        return JobResult.failed("returned a malformed result: " + "; ".join(problems), duration)
    phases = {k: round(v, 3) for k, v in context.phases.items()}
    if result.skipped:
        return JobResult.skipped(result.skipped, duration, phases=phases, **_memory_record(memory))
    return JobResult(Status.OK, "", duration, findings=tuple(result.findings), metrics=dict(result.metrics),
                     artifacts=dict(result.artifacts), explanations=tuple(result.explanations),
                     measures=tuple(result.measures), phases=phases, **_memory_record(memory))


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1 << 20) if sys.platform == "darwin" else rss / 1024, 1)  # bytes on macOS, KiB elsewhere


def _save_copy(model, path: str) -> None:
    """Save ``model`` as ``.keras`` at ``path`` (atomically); a model that cannot be saved is left alone:
    the other worker then reads the original file, which is only slower."""
    tmp = f"{path}.tmp.keras"
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except Exception as e:  # noqa: BLE001 - an optimisation only
        print(f"diagnostics: could not save a .keras copy for the other backend ({type(e).__name__}: {e})", flush=True)
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _call(analyzer, context: Context, job: Job):
    """``analyzer.run(context)``, or one part of a sharded run (see diagnostics.sharding)."""
    if job.shard is not None or job.shard_inputs is not None:
        from .sharding import is_sharded, run_merge_part, run_shard_part

        if not is_sharded(type(analyzer)):
            raise TypeError(f"{job.analyzer} does not shard over samples")
        if job.shard is not None:
            return run_shard_part(analyzer, context, job.shard)
        return run_merge_part(analyzer, context, job.shard_inputs)
    return analyzer.run(context)


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


def _companion_loader(job: Job, state: WorkerState):
    from ._companions import companion_names, companion_path

    companions = companion_names(job.metadata or {})
    cache: dict[str, Any] = {}

    def load(role: str):
        if role not in companions:
            raise LookupError(f"the model's metadata names no {role!r} companion (it names {sorted(companions) or 'none'})")
        if role not in cache:
            from .loading import load_checked

            path = companion_path(job.model_path, companions[role])
            cache[role] = load_checked(path, custom_objects=state.host.custom_objects, trust=job.trust, limits=job.limits())
        return cache[role]

    return load


# -- the worker process ----------------------------------------------------------------------------
def set_framework_environment(backend: str, threads: int | None) -> None:
    """What a worker process (local, or a Ray actor) sets before Keras and its framework are first imported:
    the backend, quiet TensorFlow logs, oneDNN off and ``threads`` compute threads; what the user set wins
    (except the backend). oneDNN's kernels would make TensorFlow's passes about 2x faster, but they round
    differently where the zoo's planted faults live: with them on, mlp_nan's NaN predictions and exploding
    gradients vanished and two verdicts moved (docs/performance.md)."""
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    for var in COMPUTE_THREAD_VARIABLES if threads else ():
        os.environ.setdefault(var, str(threads))


def confine_worker(policy: dict, extra: tuple) -> dict:
    """Confine this worker process (:mod:`diagnostics._sandbox`) to ``policy`` before any model byte is
    read: the folders of the plugins it may load stay readable."""
    from ._plugin_manager import DEFAULT_PLUGINS, _entry_points
    from ._sandbox import Policy, confine

    modules = {"diagnostics", *(t.split(":")[0] for _, t in DEFAULT_PLUGINS), *(str(t).split(":")[0] for _, t in extra)}
    try:
        modules.update(ep.value.split(":")[0] for ep in _entry_points())
    except Exception:  # noqa: BLE001 - a broken distribution: its plugin fails to load, as it would unconfined
        pass
    return confine(Policy.from_dict(policy), modules=tuple(sorted(modules)))


def worker_main(conn, backend: str, disabled: list[str], extra: tuple, log_path: str | None = None,
                spawned_at: float | None = None, threads: int | None = None, sandbox: dict | None = None) -> None:
    """Entry point of a spawned worker. Messages: ("load", job) and ("run", job); replies go to conn.

    The worker's stdout and stderr go to ``log_path``: framework chatter stays off the terminal, an
    analyzer's prints cannot corrupt the verdict table, and the parent quotes the log when it crashes.
    It imports Keras (and so its backend's framework) as soon as it starts, before the first message,
    so that the import overlaps the parent's work; ``spawned_at`` (the parent's ``time.time()`` when
    it started the process) gives the start-up time. ``threads`` caps the framework's compute threads
    (intra- and inter-op) when workers share the cores; variables the user set win. Every ``loaded``, ``started`` and ``result`` reply
    carries the worker's phase timings and peak memory (:meth:`WorkerState.snapshot`). ``sandbox``: the
    :class:`diagnostics._sandbox.Policy` (as a dict) it confines itself to before importing Keras; None
    runs it unconfined (``--no-sandbox``). The ``ready`` message says what was applied, or why not.
    """
    entered = time.time()
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    set_framework_environment(backend, threads)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    applied = None
    if sandbox is not None:
        from ._sandbox import SandboxUnavailable

        try:
            applied = confine_worker(sandbox, extra)
        except (SandboxUnavailable, OSError) as e:
            conn.send(("unconfined", f"the worker could not be confined: {e}"))
            sys.stdout.flush()
            os._exit(1)
    t0 = time.perf_counter()
    conn.send(("phase", f"importing {backend}"))  # the parent shows it while it waits (diagnostics.loading)
    try:  # import the framework now, so that --load-timeout measures loading, not TensorFlow's import
        import keras  # noqa: F401
    except Exception:  # noqa: BLE001 - reported when a job needs it
        pass
    import_s = time.perf_counter() - t0
    conn.send(("ready", {"sandbox": applied}))
    state = WorkerState(backend, set(disabled), extra)
    state.sandbox = applied
    state.on_phase = lambda name: conn.send(("phase", name))
    if threads:
        state.stats["threads"] = int(os.environ.get("OMP_NUM_THREADS", threads))
    if spawned_at is not None:
        state.stats["spawn_s"] = max(0.0, entered - spawned_at)
    state.stats["import_s"] = import_s
    ceiling_applied = False
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        kind, payload = message
        if kind == "stop":
            # Every result has been sent: exit now rather than through the interpreter's shutdown, where
            # TensorFlow's and torch's exit handlers took 3 s of every run the parent waited for.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        job = Job(**payload)
        if not ceiling_applied:  # before the model is loaded: a file that asks for too much gets a MemoryError
            from ._limits import apply_worker_memory_ceiling

            apply_worker_memory_ceiling(job.max_worker_memory)
            ceiling_applied = True
        try:
            state.ensure_model(job)
        except MemoryError:
            conn.send(("refused", f"loading the model needs more memory than the worker's ceiling allows "
                                  f"(--max-worker-memory): refused"))
            continue
        except Exception as e:  # noqa: BLE001
            conn.send(problem(e))
            continue
        if kind == "load":
            conn.send(("loaded", {"info": state.info.to_dict(), "versions": state.versions(), "worker": state.snapshot()}))
            continue
        conn.send(("started", state.snapshot()))
        result = run_job(state, job, lambda done, total, msg="": conn.send(("progress", (done, total, msg))))
        conn.send(("result", {"job": result.to_wire(), "worker": state.snapshot()}))
