"""Run analyzer jobs on Ray actors: the same :class:`~diagnostics._executors.Executor` interface as the
local worker processes, so no analyzer changes (``diagnose MODEL --executor ray``).

Ray is an optional extra (``pip install 'diagnostics[ray]'``) and is imported inside functions only,
so ``diagnose --help`` never imports it. What the design keeps from the local executor:

- one long-lived actor per (backend, replica), ``KERAS_BACKEND`` set through the actor's runtime
  environment before keras is imported, the model loaded once per actor;
- the pre-scan runs on the driver (:func:`diagnostics._runner.run_file` calls
  :func:`diagnostics.safety.scan` before any executor sees the file); the model, its companions and
  the data go to the object store once, as bytes; each actor re-checks their sha256 against what the
  pre-scan saw before it writes them to its own disk;
- the actor never loads the model itself: a local worker process it starts does, confined by the
  sandbox to the actor's folder (:class:`ActorBody`), under the run's memory ceiling and load timeout;
- a job past its budget gets its actor killed (``ray.kill``) and a fresh one started; a crash, a
  malformed result and an import failure in the actor are reported with the same statuses as with
  local workers (the same :func:`diagnostics._worker.run_job` runs inside the actor);
- progress messages stream back (the actor's ``run`` is a Ray streaming generator);
- artifacts the analyzer wrote on the actor's machine come back as bytes with the result and are
  written into the report's staging directory by the driver.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from ._companions import companion_files
from ._jobresult import JobResult, loaded, not_started, problem
from .safety import ModelRefused
from ._worker import COMPUTE_THREAD_VARIABLES, Job, set_framework_environment

INSTALL_HINT = "pip install 'diagnostics[ray]'"
LOAD_TIMEOUT_S = 600.0
GRACE_S = 2.0
PROGRESS_INTERVAL_S = 0.2  # at most this often a progress message crosses the wire
#: Environment variables forwarded from the driver to every actor (plugins found through PYTHONPATH,
#: plugins blocked by name, the thread budget, and TMPDIR: an actor's folder goes where the driver puts its
#: temporary files, so that on the driver's machine the driver can remove what a killed actor left; a
#: TMPDIR that does not exist on an actor's machine is skipped by Python's tempfile, which falls back to /tmp).
FORWARDED_ENV = ("PYTHONPATH", "DIAGNOSTICS_DISABLE_PLUGINS", "OMP_NUM_THREADS", "TF_NUM_INTEROP_THREADS",
                 "TF_NUM_INTRAOP_THREADS", "TMPDIR")
#: Seconds the driver waits, when it closes, for the actors to remove their own folders, then for a killed
#: actor's process to end before it removes that actor's folder itself (on its own machine).
CLOSE_WAIT_S = 10.0


class RayUnavailable(Exception):
    """``--executor ray`` without Ray installed; the message says what to install."""


def ray_installed() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def require_ray() -> None:
    if not ray_installed():
        raise RayUnavailable(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}")


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address``, or start a local instance sized to this machine.

    The local instance has no dashboard and binds to the loopback interface only. Returns True when
    this call started (or joined) Ray and so should shut it down, False when Ray was already up in
    this process (a test session's instance, a notebook's).
    """
    require_ray()
    if not address:
        # Ray resolves "127.0.0.1" to the machine's routable address unless told this is a
        # single-machine instance; this variable, read when ray is imported, is how it is told (it
        # is what Ray does on macOS and Windows).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        # Ray starts its workers at nice 15 (its worker_niceness), under the driver. Here the actors are the
        # run's work, as local workers are at nice 0: at nice 15, anything else on the machine starves them
        # (a TensorFlow import took minutes beside a CPU load) and their time budgets and load timeout fire.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1", configure_logging=False)
    return True


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- inside the actor ------------------------------------------------------------------------------
class ActorBody:
    """What one Ray actor runs: the files it was sent, and a local worker process that loads and runs them.

    The actor itself never deserializes the model: it keeps Ray's connections, which a sandbox would
    cut, so the model is loaded by a :class:`diagnostics._executors.ProcessExecutor` worker that the
    actor starts and that confines itself (:mod:`diagnostics._sandbox`) to the actor's own folders:
    ``in/`` (the shipped files, read-only) and ``work/`` (artifacts, logs, ``TMPDIR``). That worker
    applies the same memory ceiling, load timeout and budgets as a local run's. Plain Python (no ray
    import at module level): :class:`RayExecutor` wraps it with ``ray.remote``.
    """

    def __init__(self, backend: str, disabled: list[str], extra: tuple, sandbox: bool = True):
        import multiprocessing

        from ._executors import ProcessExecutor, threads_per_worker
        from ._sandbox import Policy

        # as a local run does: the worker inherits the backend and the thread budget from this process
        set_framework_environment(backend, threads_per_worker(int(os.environ.get("DIAGNOSTICS_SIDE_BY_SIDE", "1"))))
        # The same process name as a local worker, so plugins and logs cannot tell them apart.
        multiprocessing.current_process().name = f"diagnostics-{backend}"
        _remove_stale_roots()
        self.backend = backend
        self.root = Path(tempfile.mkdtemp(prefix=f"diagnostics-ray-{os.getpid()}-"))
        self.inputs, self.work = self.root / "in", self.root / "work"
        self.inputs.mkdir()
        self.work.mkdir()
        policy = Policy(read=(str(self.inputs),), write=(str(self.work),), scratch=str(self.work / ".scratch"))
        self.local = ProcessExecutor(disabled=set(disabled), extra=tuple(tuple(e) for e in extra), log_dir=str(self.work),
                                     sandbox=policy.to_dict() if sandbox else None)
        self.local.start(backend)  # its framework import overlaps the driver's work
        self.files: dict[str, Path] = {}

    def pid(self) -> int:
        return os.getpid()

    def where(self) -> dict[str, Any]:
        """Where this actor keeps its files: its node, its process and its folder, so that the driver can
        remove the folder when it had to kill the actor (``ray.kill`` runs no clean-up)."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "root": str(self.root)}

    def _materialize(self, blob: dict[str, Any], directory: Path | None = None) -> Path:
        """Write a shipped file to this actor's disk (once per sha256), checking its digest first."""
        import ray

        expected = blob["sha256"]
        key = f"{expected}:{blob['name']}"
        if key in self.files and self.files[key].exists():
            return self.files[key]
        data = ray.get(blob["ref"])
        got = sha256_bytes(data)
        if got != expected:
            raise ModelRefused(f"{blob['name']}: the bytes received (sha256 {got[:16]}…) are not those the pre-scan "
                               f"checked (sha256 {expected[:16]}…); refusing to load them")
        directory = directory or (self.inputs / expected[:16])
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / PurePosixPath(blob["name"]).name
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.files[key] = path
        return path

    def _local_job(self, job_dict: dict, blobs: dict) -> Job:
        job = Job(**job_dict)
        model = blobs["model"]
        model_dir = self.inputs / model["sha256"][:16]
        path = self._materialize(model, model_dir)
        for companion in blobs.get("companions", ()):
            self._materialize(companion, model_dir)  # beside the model, where the sidecar names them
        data_path = str(self._materialize(blobs["data"])) if blobs.get("data") else None
        artifact_dir = self.work / "jobs" / os.urandom(8).hex()
        shard_inputs = None
        if blobs.get("shard_inputs"):
            shard_inputs = [str(self._materialize(b, self.inputs / f"{artifact_dir.name}-in{i}"))
                            for i, b in enumerate(blobs["shard_inputs"])]
        return dataclasses.replace(job, model_path=str(path), data_path=data_path, artifact_dir=str(artifact_dir),
                                   shard_inputs=shard_inputs)

    def load(self, job_dict: dict, blobs: dict):
        try:
            return ("loaded", self.local.load(self.backend, self._local_job(job_dict, blobs)))
        except Exception as e:  # noqa: BLE001
            return problem(e)

    def run(self, job_dict: dict, blobs: dict):
        """A streaming generator: ("started", None), then ("progress", ...)*, then ("result", {"job": the
        JobResult's wire form, "files": the artifacts it wrote}); or a problem reply (:func:`~diagnostics._jobresult.problem`)."""
        try:
            job = self._local_job(job_dict, blobs)
        except Exception as e:  # noqa: BLE001
            yield problem(e)
            return
        messages: queue.Queue = queue.Queue()
        last = [0.0]

        def progress(done, total, message=""):
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or done >= total:
                last[0] = now
                messages.put(("progress", (done, total, message)))

        def work():
            try:
                messages.put(("result", self.local.submit(self.backend, job, progress,
                                                          started=lambda: messages.put(("started", None)))))
            except Exception as e:  # noqa: BLE001 - refused at a reload, or the sandbox could not be applied
                messages.put(problem(e))

        thread = threading.Thread(target=work, name="diagnostics-job", daemon=True)
        thread.start()
        while True:
            kind, payload = messages.get()
            if kind != "result":
                yield (kind, payload)
                if kind in ("started", "progress"):
                    continue
                return
            files = _collect(Path(job.artifact_dir))
            shutil.rmtree(job.artifact_dir, ignore_errors=True)
            yield ("result", {"job": payload.to_wire(), "files": files})
            return

    def close(self) -> None:
        """Stop the local worker and remove this actor's folder (the driver calls it before ``ray.kill``)."""
        self.local.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _remove_stale_roots() -> None:
    """Remove the folders of actors of this machine that were killed (``ray.kill`` runs no clean-up)."""
    import glob

    for folder in glob.glob(os.path.join(tempfile.gettempdir(), "diagnostics-ray-*-*")):
        try:
            pid = int(Path(folder).name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def _collect(directory: Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` (no links), by its POSIX path relative to it."""
    out: dict[str, bytes] = {}
    if not directory.is_dir():
        return out
    for p in sorted(directory.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(directory).as_posix()] = p.read_bytes()
    return out


def write_files(files: dict[str, bytes], directory: Path) -> None:
    """Write an actor's artifact files under ``directory``; a path that would leave it is refused."""
    root = Path(directory).resolve()
    for rel, data in files.items():
        parts = PurePosixPath(rel).parts
        if not parts or rel.startswith("/") or ".." in parts:
            raise ValueError(f"refusing artifact path {rel!r} from a worker: it leaves the artifact directory")
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


# -- on the driver ---------------------------------------------------------------------------------
@dataclasses.dataclass
class _Replica:
    backend: str
    index: int
    actor: Any = None
    where: Any = None  #: the ObjectRef of the actor's ``where()``: its node, pid and folder


class RayExecutor:
    """Analyzer jobs on Ray actors: ``replicas`` actors per backend, each serving one job at a time.

    ``address`` joins an existing cluster (``ray start --head`` prints it); None starts a local instance
    (or uses the one already running in this process). ``num_cpus``/``num_gpus`` are what each actor
    asks the scheduler for; ``num_gpus=None`` asks for one GPU per actor when the cluster has any.
    Actors ask for no CPU by default and are spread over the nodes: ``replicas`` decides how many jobs
    run at once, and a run never waits for CPUs that its own other actors hold (a tensorflow and a
    torch actor with two replicas each on a 2-CPU machine would otherwise wait for ever).
    """

    def __init__(self, disabled: set[str] = frozenset(), extra: tuple = (), address: str | None = None,
                 replicas: int = 1, num_cpus: float = 0, num_gpus: float | None = None, log_dir: str | None = None,
                 sandbox: bool = True):
        self.owns_ray = connect(address)
        import ray

        self.sandbox = sandbox  #: each actor's worker confines itself to the actor's folders (False: --no-sandbox)
        self.disabled = sorted(disabled)
        self.extra = tuple((n, t) for n, t in extra if isinstance(t, str))
        self.replicas = max(1, int(replicas))
        self.num_cpus = num_cpus
        self._side_by_side = 1
        if num_gpus is None:
            num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self.num_gpus = num_gpus
        self._lock = threading.Lock()
        self._pools: dict[str, queue.Queue] = {}
        self._replicas: dict[str, list[_Replica]] = {}
        self._blobs: dict[tuple[str, str], dict] = {}
        self._remote_cls = ray.remote(ActorBody)
        self.started: dict[str, float] = {}
        self._killed: list[Any] = []  #: ``where()`` refs of actors killed without their own clean-up
        self._closed = False  #: set by close(): a job that fails after it starts no fresh actor

    # The runner asks how many jobs it may have in flight per backend.
    def slots(self, backend: str) -> int:
        return self.replicas

    def _new_actor(self, backend: str):
        env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
        # compute threads: as many as the CPUs Ray reserves for the actor, else the local rule on the actor's
        # machine (its cores shared by the workers side by side), so that a run gives the same numbers on
        # Ray as in local workers; the driver's own settings (forwarded below) win
        if self.num_cpus >= 1:
            env.update({v: str(int(self.num_cpus)) for v in COMPUTE_THREAD_VARIABLES})
        else:
            env["DIAGNOSTICS_SIDE_BY_SIDE"] = str(self._side_by_side)
        env.update({k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)})
        return self._remote_cls.options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_concurrency=1,
            runtime_env={"env_vars": env}, scheduling_strategy="SPREAD",
        ).remote(backend, self.disabled, self.extra, self.sandbox)

    def _replica(self, backend: str, index: int) -> _Replica:
        actor = self._new_actor(backend)
        return _Replica(backend, index, actor, actor.where.remote())  # answered once the actor is up

    def start(self, backend: str, side_by_side: int = 1) -> None:
        """Create the backend's actors now, so their imports overlap with other work. ``side_by_side``: the
        backends the run keeps busy at once (each with ``replicas`` actors), for the actors' thread count
        when Ray reserves no CPUs for them (``num_cpus`` 0)."""
        with self._lock:
            if backend in self._pools:
                return
            self._side_by_side = max(1, int(side_by_side)) * self.replicas
            pool: queue.Queue = queue.Queue()
            replicas = [self._replica(backend, i) for i in range(self.replicas)]
            for r in replicas:
                pool.put(r)
            self._pools[backend] = pool
            self._replicas[backend] = replicas
            self.started[backend] = time.monotonic()

    def _acquire(self, backend: str) -> _Replica:
        self.start(backend)
        return self._pools[backend].get()

    def _release(self, replica: _Replica) -> None:
        self._pools[replica.backend].put(replica)

    def _restart(self, replica: _Replica) -> None:
        import ray

        try:
            ray.kill(replica.actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass
        with self._lock:
            self._killed.append(replica.where)  # its folder is removed when the executor closes
            if self._closed:  # closed from another thread (an interrupted sweep): start nothing more
                return
        fresh = self._replica(replica.backend, replica.index)
        replica.actor, replica.where = fresh.actor, fresh.where

    # -- shipping -----------------------------------------------------------------------------------
    def _blob(self, path: str, expected_sha: str | None, label: str) -> dict:
        """``path``'s bytes in the object store (once), with the digest the actor must find."""
        import ray

        key = (str(path), expected_sha or "")
        with self._lock:
            if key in self._blobs:
                return self._blobs[key]
        data = Path(path).read_bytes()
        digest = sha256_bytes(data)
        if expected_sha and digest != expected_sha:
            raise ModelRefused(f"{Path(path).name} changed on disk after the pre-scan (sha256 {digest[:16]}… instead of "
                               f"{expected_sha[:16]}…); run diagnose again")
        blob = {"name": Path(path).name, "sha256": digest, "ref": ray.put(data), "what": label}
        with self._lock:
            self._blobs[key] = blob
        return blob

    def _blobs_for(self, job: Job) -> dict:
        blobs = {"model": self._blob(job.model_path, job.model_sha256, "model")}
        # plain files in the model's folder only (diagnostics._companions), with their own sidecars; the
        # worker that loads one scans it first, as it does the model
        files = companion_files(job.model_path, job.metadata or {})
        if files:
            blobs["companions"] = [self._blob(str(p), None, "companion") for p in files]
        if job.data_path:
            blobs["data"] = self._blob(job.data_path, None, "data")
        if job.shard_inputs:  # a sharded analyzer's merge job: the shards' arrays, from the driver
            blobs["shard_inputs"] = [self._blob(p, None, "shard") for p in job.shard_inputs]
        return blobs

    # -- the Executor interface ---------------------------------------------------------------------
    def load(self, backend: str, job: Job) -> dict[str, Any]:
        import ray

        blobs = self._blobs_for(job)
        replica = self._acquire(backend)
        try:
            ref = replica.actor.load.remote(dataclasses.asdict(job), blobs)
            ready, _ = ray.wait([ref], timeout=LOAD_TIMEOUT_S)
            if not ready:
                self._restart(replica)
                raise ModelRefused(f"loading the model on a Ray actor took over {LOAD_TIMEOUT_S:g} s")
            try:
                kind, payload = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self._restart(replica)
                raise ModelRefused(f"{_death(e)} while loading the model") from None
        finally:
            self._release(replica)
        return loaded(kind, payload)

    def submit(self, backend: str, job: Job, progress: Callable[[int, int, str], None]) -> JobResult:
        import ray

        blobs = self._blobs_for(job)
        replica = self._acquire(backend)
        try:
            return self._run(replica, job, blobs, progress, ray)
        finally:
            self._release(replica)

    def _run(self, replica: _Replica, job: Job, blobs: dict, progress, ray) -> JobResult:
        t0 = time.perf_counter()
        gen = replica.actor.run.remote(dataclasses.asdict(job), blobs)
        deadline = time.monotonic() + LOAD_TIMEOUT_S  # until "started": the model (re)load
        started = False
        while True:
            ready, _ = ray.wait([gen], timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                self._restart(replica)
                if not started:
                    return JobResult.failed("could not start: loading the model timed out", time.perf_counter() - t0)
                return JobResult.timed_out(job.budget_s, time.perf_counter() - t0)
            try:
                kind, payload = ray.get(next(gen))
            except StopIteration:
                self._restart(replica)
                return JobResult.crashed("the worker ended without a result", time.perf_counter() - t0)
            except ray.exceptions.RayActorError as e:
                self._restart(replica)
                return JobResult.crashed(_death(e), time.perf_counter() - t0)
            if kind == "started":
                started = True
                deadline = time.monotonic() + job.budget_s + GRACE_S
                t0 = time.perf_counter()
            elif kind == "progress":
                progress(*payload)
            elif kind == "result":
                result = JobResult.from_wire(payload["job"])
                try:
                    write_files(payload.get("files") or {}, Path(job.artifact_dir))
                except ValueError as e:
                    return JobResult.failed(f"returned a malformed result: {e}", result.duration_s)
                return result
            else:
                self._restart(replica)
                return not_started(kind, payload, time.perf_counter() - t0)

    def close(self) -> None:
        """Stop every actor and leave none of their folders behind, also when the run failed or was
        interrupted: each actor removes its own folder; then the actors are killed, and the folders of
        those on this machine that did not answer (hung, or killed earlier by a timeout or a crash) are
        removed here once their process has ended. A folder on another machine that a killed actor left
        is removed by the next actor that starts there (:func:`_remove_stale_roots`)."""
        import ray

        with self._lock:
            self._closed = True
            replicas = [r for rs in self._replicas.values() for r in rs]
            self._replicas, self._pools, self._blobs = {}, {}, {}
            killed, self._killed = self._killed, []
        if not ray.is_initialized():  # Ray was shut down under us (an interrupted run): only our machine is left
            _remove_stale_roots()
            return
        closing = {}
        for r in replicas:  # each removes its folder and stops its worker, side by side
            try:
                closing[r.actor.close.remote()] = r
            except Exception:  # noqa: BLE001 - already dead
                pass
        done: list = []
        if closing:
            done, _ = ray.wait(list(closing), num_returns=len(closing), timeout=CLOSE_WAIT_S)
        cleaned = {id(closing[ref]) for ref in done if _succeeded(ray, ref)}
        for r in replicas:
            try:
                ray.kill(r.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        _reap(ray, killed + [r.where for r in replicas if id(r) not in cleaned])
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()


def _succeeded(ray, ref) -> bool:
    try:
        ray.get(ref, timeout=0)
        return True
    except Exception:  # noqa: BLE001 - the actor died while closing: its folder may be left
        return False


def _reap(ray, wheres: list) -> None:
    """Remove the folders of killed actors that ran on this machine, once their processes have ended."""
    here = ray.get_runtime_context().get_node_id()
    places = []
    for ref in wheres:
        if ref is None:
            continue
        try:
            places.append(ray.get(ref, timeout=1.0))
        except Exception:  # noqa: BLE001 - killed before it answered: found by the stale-folder sweep below
            continue
    deadline = time.monotonic() + CLOSE_WAIT_S
    for place in places:
        if place.get("node") != here:
            continue
        while _alive(int(place["pid"])) and time.monotonic() < deadline:
            time.sleep(0.05)
        root = Path(place["root"])
        if root.name.startswith("diagnostics-ray-") and not _alive(int(place["pid"])):
            shutil.rmtree(root, ignore_errors=True)
    _remove_stale_roots()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive, and not ours to judge
        return True
    return True


def _death(e: BaseException) -> str:
    """'the worker process died (...)' from a Ray actor error, in the local executor's words."""
    text = str(e)
    detail = ""
    for marker in ("Worker exit detail: ", "exit detail: "):
        if marker in text:
            detail = text.split(marker, 1)[1].split(". ")[0].strip()
            break
    return f"the worker process died (Ray actor: {detail or type(e).__name__})"
