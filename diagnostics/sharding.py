"""Sharded explanations: an analyzer that explains samples one by one may declare it, and the host
then splits its samples into shards, runs each shard as a job on any worker (or Ray actor), and
merges the per-sample arrays in global sample order before the analyzer's trust checks run, once,
on the merged maps.

An analyzer opts in by subclassing :class:`SampleSharded` and implementing three methods instead of
``run``: :meth:`~SampleSharded.sample_count` (how many samples it explains; called on the driver, no
model), :meth:`~SampleSharded.run_shard` (per-sample arrays for some global sample indices) and
:meth:`~SampleSharded.finish` (trust checks, findings, artifacts on the merged arrays). Its ``run``
is then ``finish(run_shard(all samples))``, so an unsharded run is the 1-way split.

For the split not to change the answer, per-sample randomness must come from
:func:`sample_rng` (a generator seeded by (seed, analyzer, global sample index)), never from one
stream consumed across rows; and a batched computation must batch the same samples together
whatever the split: shards start at multiples of :attr:`SampleSharded.shard_unit`, so an analyzer
that batches ``shard_unit`` samples at a time (aligned on global indices) sees identical batches.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

SHARD_FILE = "shard.npz"


class SampleSharded:
    """Mixin declaring that an :class:`~diagnostics.Analyzer` shards over samples (see the module doc).

    Deprecated (issue 24): no built-in analyzer shards, and the explanation pipeline decides how many
    samples it audits as it goes (issue 23), which a split fixed in advance cannot follow. Subclassing
    warns; sharding leaves the core in the next release (docs/ray.md).
    """

    def __init_subclass__(cls, **kwargs):
        import warnings

        super().__init_subclass__(**kwargs)
        warnings.warn(f"{cls.__qualname__}: diagnostics.sharding.SampleSharded is deprecated and goes in the next "
                      f"release (docs/ray.md, 'Sharded explanations')", DeprecationWarning, stacklevel=2)

    #: Shards start at multiples of this many samples (the analyzer's batch, in samples).
    shard_unit: ClassVar[int] = 1

    def sample_count(self, options: dict[str, Any], data) -> int:  # pragma: no cover - abstract
        """How many samples a run with ``options`` on ``data`` explains (on the driver: no model here)."""
        raise NotImplementedError

    def run_shard(self, context, indices: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """Per-sample arrays (first axis: one row per index of ``indices``, in that order)."""
        raise NotImplementedError

    def finish(self, context, merged: dict[str, np.ndarray]):  # pragma: no cover - abstract
        """The :class:`~diagnostics.Result` from the merged arrays (all samples, global order)."""
        raise NotImplementedError

    def run(self, context):
        n = self.sample_count(context.options, context.data)
        return self.finish(context, self.run_shard(context, np.arange(n)))


def is_sharded(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, SampleSharded)


def sample_rng(seed: int, analyzer: str, index: int) -> np.random.Generator:
    """The random generator of one sample: the same for a sample whatever shard it lands in."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(analyzer.encode("utf-8")), int(index)])


def split(n: int, shards: int, unit: int = 1) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``range(n)`` in order: at most ``shards`` of them, each
    starting at a multiple of ``unit``, as even as that allows."""
    unit = max(1, int(unit))
    blocks = -(-n // unit)
    shards = max(1, min(int(shards), blocks)) if n else 1
    bounds = [min(n, unit * (blocks * i // shards)) for i in range(shards + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a] or [(0, 0)]


def merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate shard arrays (given in global order) key by key."""
    if not parts:
        return {}
    keys = list(parts[0])
    for p in parts[1:]:
        if list(p) != keys:
            raise ValueError(f"shards returned different arrays: {keys} and {list(p)}")
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


# -- on the driver (called by diagnostics._runner for --shards N) -------------------------------------
def run_sharded(cls, executor, backend: str, job, data, shards: int, folder: Path,
                step: Callable[[int, int, str], None]):
    """Run the sharded analyzer ``cls``'s ``job`` as ``shards`` jobs on ``executor`` (as many at once as it has
    slots), each writing its arrays under ``folder``, then one merge job that runs its checks on the merged
    arrays; returns the merge job's :class:`~diagnostics._jobresult.JobResult`, or the first shard's that did not
    end ok (its reason naming the shard). ``step(done, total, message)`` is told as each shard ends."""
    import concurrent.futures

    from .report import Status

    t0 = time.perf_counter()
    ranges = split(cls().sample_count(job.options, data), shards, cls.shard_unit)
    jobs = [dataclasses.replace(job, shard=[a, b], artifact_dir=str(Path(folder) / f"{i:04d}"))
            for i, (a, b) in enumerate(ranges)]
    done = [0]

    def one(part):
        result = executor.submit(backend, part, lambda d, t, m="": None)
        done[0] += 1
        step(done[0], len(jobs) + 1, f"shard {done[0]}/{len(jobs)}")
        return result

    slots = max(1, int(getattr(executor, "slots", lambda b: 1)(backend)))
    with concurrent.futures.ThreadPoolExecutor(min(slots, len(jobs)), thread_name_prefix=f"shards-{cls.name}") as pool:
        results = list(pool.map(one, jobs))
    for (a, b), r in zip(ranges, results):
        if r.status is not Status.OK:  # the shard's own status: a crashed shard is a crashed analyzer
            return dataclasses.replace(r, reason=f"shard [{a}, {b}) of {len(ranges)}: {r.reason}",
                                       duration_s=time.perf_counter() - t0)
    merged = executor.submit(backend, dataclasses.replace(job, shard_inputs=[str(Path(p.artifact_dir) / SHARD_FILE) for p in jobs]),
                             lambda d, t, m="": None)
    return dataclasses.replace(merged, duration_s=time.perf_counter() - t0)


# -- inside a worker (called by diagnostics._worker.run_job) -----------------------------------------
def run_shard_part(analyzer, context, bounds) -> Any:
    """Run one shard; its arrays go to ``shard.npz`` in the job's artifact directory."""
    from .analyzer import Result

    start, stop = int(bounds[0]), int(bounds[1])
    arrays = analyzer.run_shard(context, np.arange(start, stop))
    for k, v in arrays.items():
        if len(v) != stop - start:
            raise ValueError(f"run_shard returned {len(v)} rows of {k!r} for {stop - start} samples")
    np.savez(Path(context.artifact_dir) / SHARD_FILE, **arrays)
    return Result(metrics={"shard": [start, stop]}, artifacts={"shard": SHARD_FILE})


def run_merge_part(analyzer, context, paths: list[str]) -> Any:
    """Merge the shards' arrays (``paths`` in global order) and run the analyzer's checks once."""
    parts = []
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            parts.append({k: z[k] for k in z.files})
    return analyzer.finish(context, merge(parts))
