"""Executors run jobs. The runner only calls :meth:`Executor.load` and :meth:`Executor.submit`, so a
distributed engine can replace the local worker processes without any analyzer changing.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import threading
import time
from typing import Any, Callable, Protocol

from ._jobresult import JobResult, loaded, not_started
from .safety import ModelRefused
from ._sandbox import FLAG as SANDBOX_FLAG
from ._worker import Job, WorkerState, run_job, worker_main

ProgressFn = Callable[[int, int, str], None]
LOAD_TIMEOUT_S = 600.0
STARTUP_TIMEOUT_S = 600.0  #: a worker's import of its framework, before --load-timeout starts counting
GRACE_S = 2.0


class ExecutorError(Exception):
    pass


class Executor(Protocol):
    def load(self, backend: str, job: Job) -> dict[str, Any]:
        """Load the job's model (and data) on ``backend``; return ``{"info": ..., "versions": ...}``."""

    def submit(self, backend: str, job: Job, progress: ProgressFn) -> JobResult:
        """Run one job on ``backend``; its result's status is set where it happened: by the worker (ok, skipped,
        failed) or by the executor (crashed when the worker died, timed_out when it stopped it)."""

    def close(self) -> None: ...


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, which containers narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(side_by_side: int) -> int | None:
    """Compute threads for each of ``side_by_side`` workers busy at once: the cores shared out (at least 1),
    or None (the frameworks' own default: every core) for a worker alone. Two workers that each start a
    thread per core on a 2-core machine fight over the cores (docs/performance.md)."""
    return max(1, usable_cores() // side_by_side) if side_by_side > 1 else None


class _Worker:
    """One spawned process serving one backend."""

    def __init__(self, backend: str, disabled: list[str], extra: tuple, log_path: str | None, threads: int | None = None,
                 sandbox: dict | None = None):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.log_path = log_path
        self.process = ctx.Process(target=worker_main, args=(child, backend, disabled, extra, log_path, time.time(), threads,
                                                             sandbox),
                                   name=f"diagnostics-{backend}", daemon=True)
        self.process.start()
        child.close()
        self.ready = False  #: the worker said it has imported its framework

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(2)
        self.conn.close()

    def describe_death(self) -> str:
        self.process.join(1)
        code = self.process.exitcode
        if code is not None and code < 0:
            import signal

            try:
                return f"the worker process was killed by {signal.Signals(-code).name}{self.log_tail()}"
            except ValueError:
                pass
        return f"the worker process died (exit code {code}){self.log_tail()}"

    def log_tail(self, lines: int = 3) -> str:
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                tail = [l.strip() for l in fh.readlines()[-lines:] if l.strip()]
        except OSError:
            return ""
        return "; last output: " + " | ".join(tail) if tail else ""


class ProcessExecutor:
    """Local worker processes, one per backend, restarted after a crash or a timeout."""

    def __init__(self, disabled: set[str] = frozenset(), extra: tuple = (), log_dir: str | None = None, *,
                 sandbox: dict | None):
        """``sandbox``: the :class:`diagnostics._sandbox.Policy` (as a dict) every worker confines itself to
        before it reads the model; None only when the user lifted it (``--no-sandbox``). Required, so that no
        caller gets unconfined workers by leaving it out."""
        self.sandbox = sandbox
        self.disabled = sorted(disabled)
        self.log_dir = log_dir
        self.extra = tuple((n, t) for n, t in extra if isinstance(t, str))
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._stats: dict[str, dict[str, float]] = {}
        self._starts: dict[str, int] = {}
        self._threads: int | None = None

    def start(self, backend: str, side_by_side: int = 1) -> None:
        """Start the backend's worker now so its imports overlap with other work. ``side_by_side``: how many
        workers the run keeps busy at once; they share the machine's cores (:func:`threads_per_worker`)."""
        self._threads = threads_per_worker(side_by_side)
        self._worker(backend)

    def _worker(self, backend: str) -> _Worker:
        with self._lock:
            w = self._workers.get(backend)
            if w is None or not w.process.is_alive():
                log = os.path.join(self.log_dir, f"worker-{backend}.log") if self.log_dir else None
                w = self._workers[backend] = _Worker(backend, self.disabled, self.extra, log, self._threads, self.sandbox)
                self._starts[backend] = self._starts.get(backend, 0) + 1
            return w

    def _note(self, backend: str, snapshot) -> None:
        """Keep the latest phase timings a worker reported (a restarted worker's add to its predecessor's)."""
        if isinstance(snapshot, dict):
            with self._lock:
                starts = self._starts.get(backend, 1)
                key = (backend, starts)
                self._stats[key] = dict(snapshot)

    def worker_stats(self) -> dict[str, dict[str, float]]:
        """Per backend: start-up (``spawn_s``), framework import (``import_s``), plugin loading
        (``plugins_s``), model loading (``load_s``) seconds summed over the worker processes the run
        needed (``processes``), and the highest peak resident memory among them (``peak_rss_mib``)."""
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            items = list(self._stats.items())
        for (backend, _), snap in sorted(items):
            agg = out.setdefault(backend, {"processes": 0})
            agg["processes"] += 1
            for k, v in snap.items():
                if k in ("peak_rss_mib", "threads"):
                    agg[k] = max(agg.get(k, 0.0), v)
                else:
                    agg[k] = round(agg.get(k, 0) + v, 3)
        return out

    def _drop(self, backend: str) -> None:
        with self._lock:
            w = self._workers.pop(backend, None)
        if w is not None:
            w.kill()

    def load(self, backend: str, job: Job, phase: Callable[[str], None] | None = None) -> dict[str, Any]:
        """``phase``: told each loading phase the worker reports, as it begins (diagnostics.loading)."""
        w = self._worker(backend)
        w.conn.send(("load", dataclasses.asdict(job)))
        timeout = getattr(job, "load_timeout_s", LOAD_TIMEOUT_S)
        reply = self._wait_loaded(w, timeout, phase)
        if reply is None:
            death = w.describe_death() if not w.process.is_alive() else f"loading the model took longer than {timeout:g} s (--load-timeout)"
            self._drop(backend)
            raise ModelRefused(f"{death} while loading the model")
        kind, payload = reply
        if kind == "loaded":
            self._note(backend, payload.pop("worker", None))
        else:
            self._drop(backend)
        return loaded(kind, payload)

    def submit(self, backend: str, job: Job, progress: ProgressFn, started: Callable[[], None] | None = None) -> JobResult:
        """``started``: called once the worker has the model and begins the job (its budget counts from then)."""
        w = self._worker(backend)
        t0 = time.perf_counter()
        w.conn.send(("run", dataclasses.asdict(job)))
        reply = self._wait_loaded(w, getattr(job, "load_timeout_s", LOAD_TIMEOUT_S))  # model (re)load, if the worker is fresh
        if reply is None or reply[0] != "started":
            return self._abnormal(backend, w, reply, t0, job)
        self._note(backend, reply[1])
        if started is not None:
            started()
        deadline = time.monotonic() + job.budget_s + GRACE_S
        t0 = time.perf_counter()
        while True:
            reply = self._wait(w, max(0.0, deadline - time.monotonic()))
            if reply is None:
                return self._abnormal(backend, w, None, t0, job, timed_out=time.monotonic() >= deadline)
            kind, payload = reply
            if kind == "progress":
                progress(*payload)
            elif kind == "result":
                self._note(backend, payload.get("worker"))
                return JobResult.from_wire(payload["job"])
            else:
                return self._abnormal(backend, w, reply, t0, job)

    def _abnormal(self, backend, w, reply, t0, job, timed_out=False) -> JobResult:
        """The job's outcome when the worker stopped answering (``reply`` None: it died, or ran past the budget)
        or answered something else than its progress and result; the worker is dropped either way."""
        duration = time.perf_counter() - t0
        if timed_out:
            self._drop(backend)
            return JobResult.timed_out(job.budget_s, duration)
        if reply is None:
            how = w.describe_death()
            self._drop(backend)
            return JobResult.crashed(how, duration)
        self._drop(backend)
        return not_started(*reply, duration)

    def _wait_loaded(self, w: _Worker, timeout: float, phase: Callable[[str], None] | None = None):
        """The first reply after a load; ``timeout`` counts from the worker's framework import, not before.
        The worker's ``("phase", name)`` messages on the way go to ``phase``."""
        deadline = time.monotonic() + (timeout if w.ready else STARTUP_TIMEOUT_S)
        while True:
            reply = self._wait(w, max(0.0, deadline - time.monotonic()))
            if reply is not None and reply[0] == "phase":
                if phase is not None:
                    phase(str(reply[1]))
                continue
            if reply is not None and reply[0] == "ready":
                w.ready = True
                deadline = time.monotonic() + timeout
                continue
            if reply is not None and reply[0] == "unconfined":  # the kernel refused a layer: nothing runs
                raise ExecutorError(f"{reply[1]} (diagnose only files you trust with {SANDBOX_FLAG})")
            return reply

    @staticmethod
    def _wait(w: _Worker, timeout: float):
        """The next message, or None on timeout or when the worker died."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                if w.conn.poll(min(left, 0.5)):
                    return w.conn.recv()
            except (EOFError, OSError):
                return None
            if not w.process.is_alive() and not w.conn.poll(0):
                return None

    def close(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        stopping = []
        for w in workers:  # all told first, so they exit side by side
            try:
                while not w.ready and w.conn.poll(0):  # phase messages queued, and "ready" perhaps among them
                    w.ready = w.conn.recv()[0] == "ready"
                if not w.ready:  # still importing its framework (a run refused early):
                    w.kill()                         # nothing to lose, and it would read "stop" only after
                    continue
                w.conn.send(("stop", None))
                stopping.append(w)
            except (OSError, EOFError):
                w.kill()
        for w in stopping:
            w.process.join(3)
            w.kill()


class InlineExecutor:
    """Runs jobs in this process, on an already loaded model (the notebook API).

    No isolation: a hanging analyzer hangs the caller. Budgets are advisory (``context.time_left()``).
    """

    def __init__(self, model, backend: str, host):
        self.state = WorkerState(backend, host.disabled)
        self.state.host = host
        self.state.model = model
        self.state.model_path = "<in-memory>"
        self.state.sandbox = "not applied: an in-memory model runs in the calling process"

    def load(self, backend: str, job: Job) -> dict[str, Any]:
        from .loading import weights_fingerprint
        from .modelinfo import inspect_model

        self.state.info = inspect_model(self.state.model, loss=job.loss, kind_hint=job.kind_hint)
        self.state.fingerprint = weights_fingerprint(self.state.model)
        self.state.data_path = None
        if job.data_path:
            from ._data import load_file

            from ._worker import read_only

            self.state.data = read_only(load_file(job.data_path))
            self.state.data_path = job.data_path
        return {"info": self.state.info.to_dict(), "versions": self.state.versions()}

    def submit(self, backend: str, job: Job, progress: ProgressFn) -> JobResult:
        model = self.state.model
        saved = model.get_weights()
        result = run_job(self.state, job, progress)
        if self.state.model is None:  # the analyzer changed the weights: give the caller theirs back
            model.set_weights(saved)
            self.state.model = model
        # through the wire form, as a worker's result arrives: what reaches the report is the same in-process
        return JobResult.from_wire(result.to_wire())

    def close(self) -> None:
        pass
