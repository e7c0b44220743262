"""The run: pre-scan, plugins, data, plan, dispatch by backend, report.

Used by the CLI (:func:`run_file`) and the notebook API (:func:`diagnostics.diagnose`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from . import _phrasing as phrasing, report as report_mod
from .analyzer import Data, ModelInfo
from ._companions import companion_files, companion_names
from ._data import DataRefused, find_sidecar, load_dataset, load_file, precheck, read_sidecar, save_npz, validate
from ._exitcodes import ExitCode
from ._plugin_manager import AnalyzerEntry, PluginError, PluginHost, unknown_analyzer
from ._executors import ExecutorError
from ._limits import DEFAULT as DEFAULT_LIMITS
from .loading import LoadingLine, phase_kwargs
from .options import OptionError, check_options
from .report import AnalyzerRecord, Report, Status
from .modelinfo import declared_model
from .safety import DEFAULT_MAX_SIZE, ModelRefused, require_safe, scan
from ._jobresult import JobResult
from ._worker import Job

_DATA_NEED_TEXT = {
    "x": "input samples",
    "xy": "input samples with labels",
    "train_val": "training and validation splits with labels",
}


class UsageError(Exception):
    pass


#: The default whole-run bound: the zoo's default runs take under a minute on 2 cores and ResNet50 about 8
#: minutes; 30 minutes is far above any default run and still ends a run a hostile file stretches (a
#: 200,000-step LSTM made every analyzer time out and its worker reload, 13 x --timeout).
DEFAULT_DEADLINE_S = 1800.0


@dataclasses.dataclass
class RunConfig:
    """Everything a run needs; the CLI's options map one to one onto it."""

    model_path: str
    out_dir: Path
    data_path: str | None = None
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    fail_on: str = "error"
    timeout_s: float = 300.0
    seed: int = 0
    trust: bool = False
    max_model_size: int = DEFAULT_MAX_SIZE
    max_params: int = DEFAULT_LIMITS.max_params
    load_timeout_s: float = DEFAULT_LIMITS.load_timeout_s
    max_worker_memory: int | None = DEFAULT_LIMITS.max_worker_memory
    backend: str = "auto"
    strict_plugins: bool = False
    disabled: frozenset[str] = frozenset()
    options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    label_column: str | None = None
    extra_plugins: tuple = ()
    confirm_trust: Callable[[list[str]], bool] | None = None
    executor: str = "local"  #: "local" (worker processes) or "ray" (see diagnostics._ray_executor)
    ray_address: str | None = None  #: None: a local Ray instance sized to the machine
    workers: int = 1  #: jobs in flight per backend (Ray replicas per backend)
    shards: int = 1  #: split sample-sharded analyzers (diagnostics.sharding) into this many jobs
    #: Bytes the run's workers may use together (--max-memory); None: diagnostics.memory.default_limit().
    max_memory: int | None = None
    #: Confine every process that reads or runs the model (diagnostics._sandbox); False only with --no-sandbox.
    sandbox: bool = True
    #: Seconds the whole run may take (--deadline): budgets and load timeouts shrink to what is left, and an
    #: analyzer whose turn comes after it is not run (timed_out). None: no bound but the per-analyzer ones.
    deadline_s: float | None = DEFAULT_DEADLINE_S
    #: Whose words reasons use (diagnostics._phrasing): "cli" (flags) or "api" (diagnostics.diagnose's arguments).
    caller: str = "cli"


class Progress:
    """Progress on stderr: one line per analyzer, and a live bar for long work on a terminal."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()
        self.total = 0
        self.done = 0

    def say(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            self.stream.flush()

    def live(self, text: str) -> None:
        """Rewrite the current line in place, on a terminal only: something still going on (the model loading)."""
        if self.quiet or not self.tty:
            return
        with self._lock:
            self.stream.write(f"\r\033[K{text}"[:120])
            self.stream.flush()

    def step(self, name: str, done: int, total: int, message: str = "") -> None:
        if self.quiet or not self.tty or total <= 0:
            return
        width = 24
        filled = int(width * min(done, total) / total)
        bar = "█" * filled + "·" * (width - filled)
        with self._lock:
            self.stream.write(f"\r\033[K  {name} {bar} {done}/{total} {message}"[:120])
            self.stream.flush()

    def finished(self, record: AnalyzerRecord) -> None:
        extra = f": {record.reason}" if record.reason else ""
        self.say(f"{self._count()} {record.name:<24} {record.status}{extra} ({record.duration_s:.1f}s)")

    def interrupted(self, name: str) -> None:
        """``name`` was running when the run was interrupted (Ctrl-C): stopped by us, not crashed."""
        self.say(f"{self._count()} {name:<24} interrupted")

    def _count(self) -> str:
        """``[3/13]``, padded to the width of ``[13/13]`` so the names line up in a column."""
        with self._lock:  # backend groups finish analyzers from several threads
            self.done += 1
            done = self.done
        return f"[{done}/{self.total}]".ljust(2 * len(str(self.total)) + 3)


# -- planning ---------------------------------------------------------------------------------------
def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def choose_backend(entry: AnalyzerEntry, preference: str, caller: str = "cli") -> tuple[str | None, str]:
    """The backend to run an analyzer on, or (None, reason in the ``caller``'s words)."""
    candidates = list(entry.cls.backends)
    if preference != "auto":
        if preference not in candidates:
            return None, phrasing.backend_refusal(candidates, preference, caller)
        candidates = [preference]
    for b in candidates:
        if installed(b):
            return b, ""
    return None, f"needs the {' or '.join(candidates)} backend; install it (pip install {candidates[0]})"


def skip_reason(entry: AnalyzerEntry, info: ModelInfo, data: Data | None, caller: str = "cli") -> str:
    cls = entry.cls
    if info.kind not in cls.model_kinds:
        article = "an" if info.kind[:1] in "aeiou" else "a"
        return f"applies to {', '.join(sorted(cls.model_kinds))} models; this is {article} {info.kind} model"
    if cls.data != "none" and (data is None or not data.has(cls.data)):
        return (f"needs {_DATA_NEED_TEXT[cls.data]} ({phrasing.data_hint(cls.data, caller)}); "
                f"{'none given' if data is None else 'the data lacks them'}")
    missing = [m for m in cls.requires if not installed(m)]
    if missing:
        return f"needs the optional package(s) {', '.join(missing)}: pip install {' '.join(missing)}"
    return ""


def select(host: PluginHost, only: tuple[str, ...], skip: tuple[str, ...]) -> list[AnalyzerEntry]:
    for name in (*only, *skip):
        if name not in host.analyzers:
            raise UsageError(unknown_analyzer(name, host.analyzers))
    names = [n for n in sorted(host.analyzers) if (not only or n in only) and n not in skip]
    return [host.analyzers[n] for n in names]


# -- the run ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    report: Report | None
    exit_code: ExitCode
    message: str = ""


EXPECTED_FAILURES = (ModelRefused, DataRefused, UsageError, OptionError, ExecutorError, report_mod.OutputDirError,
                     KeyboardInterrupt)


def _classes(host: PluginHost) -> dict[str, type]:
    return {name: entry.cls for name, entry in host.analyzers.items()}


def failure_outcome(e: BaseException) -> Outcome:
    """The exit code and one-line message for an expected failure of a run."""
    if isinstance(e, ModelRefused):
        return Outcome(None, ExitCode.MODEL_REFUSED, f"model refused: {e}")
    if isinstance(e, ExecutorError):  # raised while the workers load the model: it cannot be diagnosed
        return Outcome(None, ExitCode.MODEL_REFUSED, f"model refused: the worker could not load it: {e}")
    if isinstance(e, DataRefused):
        return Outcome(None, ExitCode.DATA_REFUSED, f"data refused: {e}")
    if isinstance(e, KeyboardInterrupt):
        return Outcome(None, ExitCode.INTERRUPTED, "interrupted: the previous report, if any, is left as it was")
    return Outcome(None, ExitCode.USAGE, str(e))


def run_file(config: RunConfig, progress: Progress | None = None, executor=None) -> Outcome:
    """Diagnose a model file. Never raises for expected failures: they become an exit code and a message."""
    progress = progress or Progress()
    staging = None
    own_executor = executor is None
    deadline = None if config.deadline_s is None else time.monotonic() + config.deadline_s
    reading: str | None = "the model"  # the file this process is reading, for a MemoryError under its ceiling
    created: list[Path] = []  # the output folders this run made, removed again if it ends with nothing in them
    try:
        t_run = time.perf_counter()
        out_dir = Path(config.out_dir)
        created = _missing_dirs(out_dir)
        report_mod.check_writable(out_dir)
        host = PluginHost(disabled=set(config.disabled), strict=config.strict_plugins, extra=config.extra_plugins)
        try:
            host.load()
        except PluginError as e:
            return Outcome(None, ExitCode.PLUGIN_ERROR, f"{e} (--strict-plugins)")
        entries = select(host, config.only, config.skip)
        config = dataclasses.replace(config, options=check_options(config.options, _classes(host)))
        limits = dataclasses.replace(DEFAULT_LIMITS, max_size=config.max_model_size, max_params=config.max_params,
                                     load_timeout_s=config.load_timeout_s, max_worker_memory=config.max_worker_memory)
        scan_result = scan(config.model_path, limits=limits, registered=host.custom_objects)
        _check_trust(scan_result, config)
        require_sandbox(config)
        sidecar_path = find_sidecar(config.model_path)
        metadata = read_sidecar(sidecar_path) if sidecar_path else {}
        companion_names(metadata, sidecar_path.name if sidecar_path else "the sidecar")  # before a worker reads one
        # what the model declares (read from the config the pre-scan parsed, without Keras): the user's data
        # file is checked against it before any worker starts, so a misfit is refused in about a second
        # rather than after a worker has imported TensorFlow and loaded the model
        declared = declared_model(scan_result.config, metadata.get("model_kind"))
        t_data = time.perf_counter()
        prescan_s = t_data - t_run
        reading = "the data"
        data = _resolve_data(config, metadata, host) if config.data_path else None
        if data is not None:
            precheck(data, declared)
        data_s = time.perf_counter() - t_data
        staging = report_mod.new_staging_dir(out_dir)
        if executor is None:
            policy = worker_policy(config, [Path(config.model_path)], [metadata], staging, staging / ".scratch")
            executor = make_executor(config, host, str(staging), policy)
        # the workers import their frameworks (seconds) while a sidecar's dataset is generated here; they
        # load nothing until told, and a misfit below stops them
        _start_workers(executor, _plan_backends(config, entries, config.model_path)[1])
        if not config.data_path:
            t_data = time.perf_counter()
            data = _resolve_data(config, metadata, host)
            if data is not None:
                precheck(data, declared)
            data_s += time.perf_counter() - t_data
        data_path = None
        if data is not None:
            data_path = str(staging / "data.npz")
            save_npz(data, Path(data_path))
        base_job = Job(
            analyzer="", model_path=str(Path(config.model_path).resolve()), data_path=data_path, artifact_dir="",
            seed=config.seed, budget_s=config.timeout_s, trust=config.trust, loss=scan_result.loss,
            kind_hint=metadata.get("model_kind"), metadata=metadata, history=metadata.get("history"),
            max_model_size=config.max_model_size, max_params=config.max_params, load_timeout_s=config.load_timeout_s,
            max_worker_memory=config.max_worker_memory, model_sha256=scan_result.sha256,
            max_memory=config.max_memory,
        )
        model_summary = {**scan_result.summary(), "path": config.model_path, "name": Path(config.model_path).name,
                         "sidecar": sidecar_path.name if sidecar_path else None}
        reading = None
        prepared = Prepared(host, entries, base_job, data, model_summary, staging, out_dir,
                            timings={"prescan_s": prescan_s, "data_s": data_s}, deadline=deadline)
        return _execute(config, prepared, executor, progress)
    except EXPECTED_FAILURES as e:
        return failure_outcome(e)
    except MemoryError:  # this process's ceiling (the CLI applies one) while it reads a file: a bound, not a crash
        if reading is None:
            raise
        code = ExitCode.DATA_REFUSED if reading == "the data" else ExitCode.MODEL_REFUSED
        return Outcome(None, code, f"{'data' if code == ExitCode.DATA_REFUSED else 'model'} refused: reading {reading} "
                                   f"needs more memory than this process may use (--max-worker-memory)")
    finally:
        if own_executor and executor is not None:
            executor.close()
        report_mod.discard(staging)
        _remove_if_empty(created)  # a refused run leaves no empty reports/<name>/ behind


def _missing_dirs(out_dir: Path) -> list[Path]:
    """The folders that writing to ``out_dir`` will create (``reports/`` and ``reports/cnn`` on a fresh
    checkout), deepest first: the ones :func:`_remove_if_empty` may take away again."""
    missing = []
    p = Path(out_dir).absolute()
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def _remove_if_empty(created: list[Path]) -> None:
    """Remove the folders this run created, deepest first, as long as they are empty: a run that wrote its
    report keeps them; a folder that was there before the run is never in the list, so never removed."""
    for d in created:
        try:
            d.rmdir()
        except OSError:  # not empty (a report, or someone else's file), or already gone
            return


def make_executor(config: RunConfig, host: PluginHost, log_dir: str | None, policy: dict):
    """The executor ``config.executor`` names: local worker processes confined to ``policy`` (see
    :func:`worker_policy`), or Ray actors, whose workers confine themselves to the actor's folders."""
    extra = importable_plugins(config.extra_plugins)
    if config.executor == "ray":
        from ._ray_executor import RayExecutor, RayUnavailable

        try:
            return RayExecutor(disabled=host.disabled, extra=extra, address=config.ray_address, replicas=config.workers,
                               sandbox=config.sandbox)
        except RayUnavailable as e:
            raise UsageError(str(e)) from None
    if config.executor != "local":
        raise UsageError(f"unknown executor {config.executor!r}; use 'local' or 'ray'")
    from ._executors import ProcessExecutor

    return ProcessExecutor(disabled=host.disabled, extra=extra, log_dir=log_dir, sandbox=policy if config.sandbox else None)


def require_sandbox(config: RunConfig) -> None:
    """Refuse, in one line, to run model code unconfined unless the user lifted the sandbox."""
    from ._sandbox import FLAG, unavailable_reason

    why = unavailable_reason() if config.sandbox else None
    if why:
        raise UsageError(f"{why}, so the worker processes cannot be confined: diagnose only files you trust, "
                         f"with {FLAG}")


def worker_policy(config: RunConfig, models: list[Path], metadatas: list[dict], write: Path, scratch: Path) -> dict:
    """What a run's workers may touch (:class:`diagnostics._sandbox.Policy`): read the model files, their
    sidecars and companions and the files named by analyzer options; write only under ``write`` (the
    run's staging folder, where the data copy, the artifacts and the logs are), with ``scratch`` as
    ``TMPDIR``. The user's data file is not among them: workers read the copy in the staging folder."""
    from ._sandbox import Policy

    read: list[str] = []
    for model, metadata in zip(models, metadatas):
        sidecar = find_sidecar(model)
        read += [str(model), *([str(sidecar)] if sidecar else []), *(str(p) for p in companion_files(model, metadata))]
    for options in config.options.values():  # --option health.gan.classifier=judge.keras
        read += [str(v) for v in options.values() if isinstance(v, str) and v and Path(v).is_file()]
    largest = max(2 * config.max_model_size, 4 * config.max_params + DEFAULT_LIMITS.max_config_bytes)
    return Policy(read=tuple(read), write=(str(write),), scratch=str(scratch), max_file_bytes=largest).to_dict()


def importable_plugins(extra: tuple) -> tuple[tuple[str, str], ...]:
    """``extra`` plugins as import paths, which is all a worker process can load them by.

    A module object becomes its ``__name__``; any other object cannot cross the process boundary
    (its analyzers would be unknown in the worker, which would fail obscurely), so it is refused.
    """
    import sys
    import types

    out = []
    for name, target in extra:
        if isinstance(target, types.ModuleType) and sys.modules.get(target.__name__) is target \
                and getattr(target, "__file__", None):
            target = target.__name__
        if not isinstance(target, str):
            raise UsageError(f"plugin {name!r} was given as an in-process object ({type(target).__name__}); analyzers "
                             f"run in worker processes, which load plugins by import path: pass 'package.module' or "
                             f"'package.module:attr' instead (or diagnose an in-memory model, which runs in-process)")
        out.append((name, target))
    return tuple(out)


def _check_trust(scan_result, config: RunConfig) -> None:
    require_safe(scan_result, trust=config.trust)
    if not scan_result.risks:
        return
    listed = [str(r) for r in scan_result.risks]
    if config.confirm_trust is not None and not config.confirm_trust(listed):
        raise ModelRefused("loading code from the file was not confirmed")


def _resolve_data(config: RunConfig, metadata: dict, host: PluginHost) -> Data | None:
    if config.data_path:
        return load_file(config.data_path, config.label_column)
    if metadata.get("dataset"):
        return load_dataset(metadata["dataset"], int(metadata.get("split_seed", 0)), host.datasets)
    return None


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What a run has ready when its analyzers are to run (made by :func:`run_file` or :func:`run_in_memory`).

    ``entries``: the analyzers selected from ``host``'s; ``base_job``: the job every analyzer's job is made
    from (the model, the data file, the limits); ``model_summary``: the report's ``model`` section so far;
    ``staging``: the folder the report is written in before it replaces ``out_dir``'s; ``timings``: the
    seconds the run spent before (prescan, data); ``deadline``: the ``time.monotonic()`` by which the run
    ends (--deadline; None: no bound): every job's budget and load timeout is cut to what is left, and a
    job whose turn comes after it is recorded as timed out, not run.
    """

    host: PluginHost
    entries: list[AnalyzerEntry]
    base_job: Job
    data: Data | None
    model_summary: dict[str, Any]
    staging: Path
    out_dir: Path
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    deadline: float | None = None


def _execute(config: RunConfig, prepared: Prepared, executor, progress: Progress) -> Outcome:
    """Load the model in the primary backend's worker, run the analyzers in each backend's, and write the report."""
    t_start = time.perf_counter()
    host, entries, base_job, data, staging = (prepared.host, prepared.entries, prepared.base_job, prepared.data,
                                              prepared.staging)
    deadline = prepared.deadline

    def within_deadline(job: Job) -> Job | None:
        if deadline is None:
            return job
        left = deadline - time.monotonic()
        if left < 1.0:
            return None
        return dataclasses.replace(job, budget_s=min(job.budget_s, left), load_timeout_s=min(job.load_timeout_s, left))

    timings = dict(prepared.timings)
    plans, backends_needed = _plan_backends(config, entries, base_job.model_path)
    primary = backends_needed[0]
    from . import memory

    # The backend groups run concurrently, one worker each: they share the run's memory limit.
    base_job = dataclasses.replace(base_job, max_memory=memory.per_worker(
        base_job.max_memory or memory.default_limit(), len(backends_needed)))
    _start_workers(executor, backends_needed)
    primary_job = base_job
    # Ray actors may run on other machines, where a copy in this staging folder does not exist.
    copy = _keras_copy_path(base_job, primary, backends_needed, staging) if config.executor == "local" else None
    if copy:
        primary_job = dataclasses.replace(base_job, keras_copy=copy)
    primary_job = within_deadline(primary_job)
    if primary_job is None:
        raise ModelRefused(f"the run's --deadline of {config.deadline_s:g} s passed before the model was loaded")
    with LoadingLine(progress, prepared.model_summary["name"], primary) as line:  # the worker's phases as they happen
        loaded = executor.load(primary, primary_job, **phase_kwargs(executor, line.phase))
    primary_job = dataclasses.replace(primary_job, budget_s=base_job.budget_s, load_timeout_s=base_job.load_timeout_s)
    if copy and Path(copy).is_file():  # the other backends read the .keras copy, not the legacy .h5
        base_job = dataclasses.replace(base_job, load_path=copy)
    info = ModelInfo(**loaded["info"])
    versions = {primary: loaded["versions"]}
    if data is not None:
        validate(data, info)
    records: dict[str, AnalyzerRecord] = {}
    groups: dict[str, list[AnalyzerEntry]] = {}
    for entry, backend, why in plans:
        reason = why or skip_reason(entry, info, data, config.caller)
        if reason:
            records[entry.cls.name] = _record(entry, Status.SKIPPED, reason)
        else:
            groups.setdefault(backend, []).append(entry)
    progress.total = len(entries)
    for r in records.values():
        progress.finished(r)
    stop = threading.Event()
    lock = threading.Lock()
    # Ctrl-C: the executor's close() stops the workers, so what their jobs return after it (a "crash",
    # killed by SIGTERM, with the framework's log lines) is not a result: it is neither recorded nor shown.
    interrupted = threading.Event()
    running: dict[str, None] = {}  # the analyzers in a worker now, in the order they started

    def run_group(backend: str, group: list[AnalyzerEntry]) -> None:
        slots = int(getattr(executor, "slots", lambda b: 1)(backend))
        if slots > 1 and len(group) > 1:  # an executor with several replicas per backend: keep them busy
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(slots, thread_name_prefix=f"group-{backend}") as pool:
                list(pool.map(lambda e: run_group(backend, [e]), group))
            return
        for entry in group:
            name = entry.cls.name
            job = within_deadline(dataclasses.replace(
                base_job if backend != primary else primary_job, analyzer=name,
                artifact_dir=str(staging / report_mod.ARTIFACTS / name), options=_options_for(config.options, name)))
            if stop.is_set():
                rec = _record(entry, Status.SKIPPED, "not run: the run was stopped by --strict-plugins")
            elif job is None:
                rec = _record(entry, Status.TIMED_OUT, f"not run: the run's --deadline of {config.deadline_s:g} s had passed")
            elif interrupted.is_set():
                return
            else:
                with lock:
                    running[name] = None
                try:
                    step = lambda d, t, m="", n=name: progress.step(n, d, t, m)  # noqa: E731
                    if config.shards > 1 and _is_sharded(entry):
                        from .sharding import run_sharded

                        result = run_sharded(entry.cls, executor, backend, job, data, config.shards,
                                             staging / ".shards" / name, step)
                    else:
                        result = executor.submit(backend, job, step)
                except ModelRefused as e:
                    result = JobResult.failed(f"could not load the model on the {backend} backend: {e}")
                except ExecutorError as e:  # the executor itself broke on this job: the analyzer did not run
                    result = JobResult.failed(f"the {backend} executor failed: {e}")
                finally:
                    with lock:
                        running.pop(name, None)
                if interrupted.is_set():
                    return
                rec = _record_from_result(entry, backend, result, name, config.caller)
                if rec.status.problem and config.strict_plugins:
                    stop.set()
            with lock:
                records[name] = rec
            progress.finished(rec)

    threads = [threading.Thread(target=run_group, args=(b, g), name=f"group-{b}", daemon=True) for b, g in groups.items()]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short joins keep the main thread responsive to Ctrl-C
    except KeyboardInterrupt:
        interrupted.set()
        with lock:
            cut = list(running)
        for name in cut:
            progress.interrupted(name)
        raise
    ordered = tuple(records[e.cls.name] for e in entries)
    from ._causes import attribute

    ordered = attribute(ordered, {e.cls.name: e.cls for e in entries})
    t_report = time.perf_counter()
    report = Report(
        model={**prepared.model_summary, "info": info.to_dict()},
        data=_data_summary(data),
        environment={**_environment(versions, backends_needed),
                     "devices": {b: v.get("device") for b, v in versions.items() if v.get("device")},
                     "sandbox": {b: v.get("sandbox") for b, v in versions.items() if v.get("sandbox")},
                     "max_memory_per_worker_mb": None if not base_job.max_memory else round(base_job.max_memory / 2**20)},
        plugins=tuple(r.to_dict() for r in host.records.values()),
        analyzers=ordered,
        seed=config.seed,
        fail_on=config.fail_on,
        timings={"total_s": round(time.perf_counter() - t_start, 3)},
        workers=executor.worker_stats() if hasattr(executor, "worker_stats") else {},
    )
    code = report.compute_exit_code()
    if config.strict_plugins and (stop.is_set() or report.plugin_problems):
        code = ExitCode.PLUGIN_ERROR
    report = dataclasses.replace(report, exit_code=int(code))
    from ._html import render_html

    # the run's phases: time before the workers were asked for anything (prescan, data), the report
    # itself (measured up to the HTML render; the JSON and the commit are what is left after it)
    timings["report_s"] = time.perf_counter() - t_report
    timings["total_s"] = time.perf_counter() - t_start + timings.get("prescan_s", 0.0) + timings.get("data_s", 0.0)
    report = dataclasses.replace(report, timings={k: round(v, 3) for k, v in timings.items()})
    html = render_html(report, staging)
    report_mod.commit(prepared.out_dir, staging, {report_mod.REPORT_HTML: html, report_mod.REPORT_JSON: report.to_json()})
    from ._html import write_archive

    write_archive(prepared.out_dir)  # report.zip beside the page when its arrays are too large to embed (the page says so)
    return Outcome(report, code)


def _is_legacy_h5(model_path: str) -> bool:
    return model_path.lower().endswith((".h5", ".hdf5"))


def _plan_backends(config: RunConfig, entries: list[AnalyzerEntry], model_path: str):
    """``([(entry, backend or None, why not)], backends needed)``: the first backend needed is the primary
    one (TensorFlow for a legacy ``.h5``: it reads the file natively and hands the others a ``.keras`` copy)."""
    plans: list[tuple[AnalyzerEntry, str | None, str]] = []
    needed: list[str] = []
    for entry in entries:
        backend, why = choose_backend(entry, config.backend, config.caller)
        plans.append((entry, backend, why))
        if backend and backend not in needed:
            needed.append(backend)
    if not needed:
        needed = ["tensorflow" if installed("tensorflow") else "torch"]
    if _is_legacy_h5(model_path) and "tensorflow" in needed[1:]:
        needed.remove("tensorflow")
        needed.insert(0, "tensorflow")
    return plans, needed


def _start_workers(executor, backends: list[str]) -> None:
    """Start the backends' workers now (idempotent), so that their framework imports overlap the parent's
    work (the data) and each other; each is told how many run side by side, to share the cores."""
    if hasattr(executor, "start"):
        for b in backends:
            executor.start(b, side_by_side=len(backends))


def _keras_copy_path(base_job: Job, primary: str, backends: list[str], staging: Path) -> str | None:
    """Where the TensorFlow worker should save a ``.keras`` copy of a legacy ``.h5`` model for the other
    backends' workers, or None. Keras reads ``.h5`` files through TensorFlow's JSON utilities, so a torch
    worker loading one imports all of TensorFlow (several seconds and ~0.5 GB) only to read the config;
    the copy is written by our own worker from the model it loaded under the same safe-mode rules, and is
    loaded by the others under those rules again, so what may run on loading does not change."""
    if primary != "tensorflow" or len(backends) < 2 or not _is_legacy_h5(base_job.model_path):
        return None
    return str(Path(staging) / "model-for-other-backends.keras")


def _is_sharded(entry: AnalyzerEntry) -> bool:
    from .sharding import is_sharded

    return is_sharded(entry.cls)


def _options_for(options: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    merged = dict(options.get("*", {}))
    merged.update(options.get(name, {}))
    return merged


def _record(entry: AnalyzerEntry, status: Status, reason: str) -> AnalyzerRecord:
    return AnalyzerRecord(name=entry.cls.name, plugin=entry.plugin, category=entry.cls.category, status=status, reason=reason)


def _record_from_result(entry: AnalyzerEntry, backend: str, result: JobResult, name: str,
                        caller: str = "cli") -> AnalyzerRecord:
    """The report's record of one job: its status as the job result has it, its paths under the report's
    ``artifacts/<name>/``, a problem's reason naming the plugin to blame."""
    where = f"{report_mod.ARTIFACTS}/{name}"
    reason = phrasing.for_caller(result.reason, caller)  # analyzers write the CLI's flags
    if result.status.problem:
        reason = f"plugin {entry.plugin!r}: {reason}"
    return AnalyzerRecord(
        name=name, plugin=entry.plugin, category=entry.cls.category, status=result.status,
        reason=reason, backend=backend, duration_s=round(float(result.duration_s), 3),
        findings=result.findings, metrics=result.metrics, artifacts={k: f"{where}/{v}" for k, v in result.artifacts.items()},
        traceback=result.traceback, explanations=tuple(e.relocated(where) for e in result.explanations),
        measures=tuple(s.relocated(where) for s in result.measures),
        phases=result.phases, peak_memory_mb=result.peak_memory_mb, resource_notes=result.resource_notes,
    )


def _data_summary(data: Data | None) -> dict[str, Any] | None:
    if data is None:
        return None
    shapes = {}
    for k in ("x_train", "y_train", "x_val", "y_val"):
        v = getattr(data, k)
        if isinstance(v, dict):  # one array per input (or output): x_val.image, x_val.stats
            shapes.update({f"{k}.{name}": list(a.shape) for name, a in v.items()})
        elif v is not None:
            shapes[k] = list(v.shape)
    shapes.update({k: list(v.shape) for k, v in data.extras.items() if hasattr(v, "shape")})
    return {"source": data.source, "shapes": shapes}


def _environment(versions: dict[str, dict[str, str]], backends: list[str]) -> dict[str, Any]:
    def v(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "diagnostics": v("diagnostics"),
        "keras": v("keras"),
        "numpy": v("numpy"),
        "tensorflow": v("tensorflow"),
        "torch": v("torch"),
        "backends": backends,
    }


def run_in_memory(model, data: Data | None, *, out_dir: Path | None, seed: int, only, skip, fail_on, options,
                  history, metadata, host: PluginHost, progress: Progress) -> Outcome:
    """The notebook path: analyzers run in this process on the caller's model."""
    import keras

    from ._executors import InlineExecutor

    backend = keras.backend.backend()
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="diagnostics-"))
    staging = None
    try:
        report_mod.check_writable(out)
        staging = report_mod.new_staging_dir(out)
        data_path = None
        if data is not None:
            data_path = str(staging / "data.npz")
            save_npz(data, Path(data_path))
        executor = InlineExecutor(model, backend, host)
        base_job = Job(analyzer="", model_path="<in-memory>", data_path=data_path, artifact_dir="", seed=seed,
                       loss=_loss_of(model), metadata=metadata or {}, history=history,
                       kind_hint=(metadata or {}).get("model_kind"))
        entries = select(host, tuple(only), tuple(skip))
        config = RunConfig(model_path="<in-memory>", out_dir=out, seed=seed, fail_on=fail_on, backend=backend, caller="api",
                           options=check_options(options or {}, _classes(host)))
        summary = {"path": None, "name": model.name, "format": "in-memory", "sha256": None, "size": None,
                   "keras_version": keras.__version__, "loss": base_job.loss, "sidecar": None}
        outcome = _execute(config, Prepared(host, entries, base_job, data, summary, staging, out), executor, progress)
        if outcome.report is not None:
            object.__setattr__(outcome.report, "directory", str(out))
        return outcome
    except EXPECTED_FAILURES as e:
        return failure_outcome(e)
    finally:
        report_mod.discard(staging)


def _loss_of(model) -> str | None:
    from .safety import describe_loss

    loss = getattr(model, "loss", None)
    if loss is None:
        return None
    try:
        import keras

        return describe_loss({"loss": keras.saving.serialize_keras_object(loss)})
    except Exception:  # noqa: BLE001
        return str(loss)
