"""A small seeded fuzzer for the pre-scan: mutated .keras and .h5 files from a real plain model.

Mutations: bit flips, overwritten spans, truncation, duplicated spans — on the whole file, and for
.keras archives also inside config.json and inside the weights HDF5 before re-zipping (so the inner
parsers are reached, not only the archive's CRC check). The campaign scans each mutant in a child
process, one after another, with the HDF5 checks run in that child (fast: no process per mutant); a
mutant that hangs or crashes that child is recorded and the campaign goes on in a fresh child. The
test then runs each of those through the real pre-scan, where the HDF5 checks run in their own
killable process, and asserts a refusal within the deadline.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import time
import zipfile
from pathlib import Path

import numpy as np


def _mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:  # flip a few bits
        for _ in range(int(rng.integers(1, 9))):
            at = int(rng.integers(len(out)))
            out[at] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # overwrite a span with 0x00, 0xFF or noise
        at, n = int(rng.integers(len(out))), int(rng.integers(1, 65))
        fill = [bytes(n), b"\xff" * n, rng.bytes(n)][int(rng.integers(3))]
        out[at:at + n] = fill[: len(out[at:at + n])]
    elif kind == 2:  # truncate
        del out[int(rng.integers(1, len(out))):]
    elif kind == 3:  # duplicate a span in place
        at, n = int(rng.integers(len(out))), int(rng.integers(1, 257))
        out[at:at] = out[at:at + n]
    else:  # set a 4- or 8-byte field to an extreme value (sizes, offsets, counts)
        at = int(rng.integers(max(1, len(out) - 8)))
        width = 4 if rng.integers(2) else 8
        out[at:at + width] = [b"\xff" * width, b"\x7f" + b"\xff" * (width - 1), bytes(width)][int(rng.integers(3))]
    return bytes(out)


def _rezip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    return buf.getvalue()


def mutants(keras_path: Path, h5_path: Path, count: int, seed: int):
    """``count`` (name, suffix, bytes) mutants, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    keras_bytes, h5_bytes = keras_path.read_bytes(), h5_path.read_bytes()
    with zipfile.ZipFile(keras_path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    for i in range(count):
        target = int(rng.integers(4))
        if target == 0:
            yield f"m{i:05d}_h5", ".h5", _mutate_bytes(h5_bytes, rng)
        elif target == 1:
            yield f"m{i:05d}_zip", ".keras", _mutate_bytes(keras_bytes, rng)
        else:
            inner = "config.json" if target == 2 else "model.weights.h5"
            changed = dict(entries)
            changed[inner] = _mutate_bytes(entries[inner], rng)
            yield f"m{i:05d}_{inner.split('.')[0]}", ".keras", _rezip(changed)


@dataclasses.dataclass
class Campaign:
    tried: int = 0
    refused: int = 0
    clean: list = dataclasses.field(default_factory=list)  #: mutants that passed the pre-scan
    errors: list = dataclasses.field(default_factory=list)  #: (name, exception) — would have been exit 70
    hangs: list = dataclasses.field(default_factory=list)  #: paths that missed the deadline in-process
    crashes: list = dataclasses.field(default_factory=list)  #: paths that killed the in-process scanner (libhdf5)
    slowest_refusal_s: float = 0.0
    slowest_name: str = ""
    wall_s: float = 0.0


def _child(conn, paths: list[str]) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # an allocation bomb is a MemoryError here

    import diagnostics._h5probe as probe_mod
    import diagnostics.safety as safety

    def probe_in_process(path, label, limits, *, weights_only):
        size = Path(path).stat().st_size
        request = {**dataclasses.asdict(limits), "allowed_weight_bytes": limits.allowed_weight_bytes(size)}
        try:
            found = probe_mod.probe(str(path), label, weights_only, request, size)
        except MemoryError:
            found = {"refused": f"{label}: needs too much memory"}
        if "refused" in found:
            raise safety.ModelRefused(found["refused"])
        return found

    safety.probe_h5 = probe_in_process  # the real CLI runs the same probe in a killable child per file
    conn.send(("ready", None, 0.0))
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        try:
            safety.scan(path)
            outcome = "clean"
        except safety.ModelRefused:
            outcome = "refused"
        except MemoryError:
            outcome = "refused"
        except Exception as e:  # noqa: BLE001 - what the campaign is looking for
            outcome = f"error: {type(e).__name__}: {e}"[:300]
        conn.send((outcome, i, time.perf_counter() - t0))


def campaign(paths: list[Path], deadline_s: float) -> Campaign:
    """Scan every path in a child process; kill and restart it on a hang."""
    ctx = multiprocessing.get_context("spawn")
    result = Campaign()
    t0 = time.perf_counter()
    start = 0
    while start < len(paths):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child, [str(p) for p in paths[start:]]), daemon=True)
        proc.start()
        child.close()
        if not parent.poll(120):
            raise RuntimeError("the fuzz child did not start")
        parent.recv()
        index = start
        while index < len(paths):
            try:
                if not parent.poll(deadline_s):
                    result.hangs.append(paths[index])
                    result.tried += 1
                    break
                outcome, i, duration = parent.recv()
            except (EOFError, OSError):  # the child died inside libhdf5 on this mutant
                result.crashes.append(paths[index])
                result.tried += 1
                break
            index = start + i
            result.tried += 1
            if outcome == "refused":
                result.refused += 1
                if duration > result.slowest_refusal_s:
                    result.slowest_refusal_s, result.slowest_name = duration, paths[index].name
            elif outcome == "clean":
                result.clean.append(paths[index])
            else:
                result.errors.append((paths[index].name, outcome))
            index += 1
        proc.kill()
        proc.join(5)
        start = index + 1 if index < len(paths) else index
    result.wall_s = time.perf_counter() - t0
    return result


def write_mutants(keras_path: Path, h5_path: Path, out: Path, count: int, seed: int) -> list[Path]:
    paths = []
    for name, suffix, data in mutants(keras_path, h5_path, count, seed):
        p = out / f"{name}{suffix}"
        p.write_bytes(data)
        paths.append(p)
    return paths
