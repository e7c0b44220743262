"""Checkpoint sweeps: the data-cheap analyzers on every checkpoint of a training run, one report each,
and an index (``sweep.json``) of how the model's health moved over the steps.

``diagnose sweep PATH...`` takes files, directories and globs. The step of a checkpoint is read from
its sidecar (``"step"`` or ``"epoch"``), else from its file name: Keras ``ModelCheckpoint`` names such
as ``model.{epoch:02d}-{val_loss:.2f}.keras`` (``model.07-0.45.keras`` is epoch 7), or names with
``epoch``/``step`` followed by a number. Every checkpoint goes through :func:`diagnostics.runner.run_file`:
the same pre-scan, safe loading and report as ``diagnose MODEL``.

A sweep entry must be a plain file in the folder it is listed from: a symbolic link out of that folder
is not followed but refused (exit 4, in the index), with the same line whether its target exists or not.
A checkpoint whose sidecar is refused (a link out of the folder, oversized, not a JSON object...) is
refused by its own run; the rest of the sweep goes on.

The index is rewritten atomically after each checkpoint, and a checkpoint whose report is already
there for the same file (same sha256) is not run again: an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from .exitcodes import ExitCode

SWEEP_JSON = "sweep.json"
SWEEP_SCHEMA = 1
REPORTS = "checkpoints"
_KEYWORD_STEP = re.compile(r"(?i)(?:^|[^a-z])(epoch|step|ep|iter|it)[_=\-]?(\d+)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ACCEPTED = (".keras", ".h5", ".hdf5")
#: Fields of per-layer metric rows that the index keeps, per analyzer (the rest stays in the reports).
LAYER_FIELDS = ("grad_norm", "grad_weight_ratio", "alpha", "dead_fraction", "saturated_fraction", "norm")


class SweepError(Exception):
    """Nothing to sweep, or paths that are not checkpoints; the message says which."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int | None
    source: str  #: where the step came from: "sidecar", "name" or "order"
    refused: str = ""  #: why this entry is not run (a link out of its folder), or ""

    @property
    def key(self) -> str:
        """The report folder's name: the file name without its suffix, made safe for a path."""
        stem = self.path.name[: -len(self.path.suffix)] if self.path.suffix else self.path.name
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", stem)


def step_from_name(name: str) -> int | None:
    """``model.07-0.45.keras`` -> 7; ``ckpt_step1200.keras`` -> 1200; ``final.keras`` -> None."""
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix else name
    m = _KEYWORD_STEP.search(stem)
    if m:
        return int(m.group(2))
    # ModelCheckpoint's formatted fields: the first integer that is not part of a decimal number.
    for token in _NUMBER.findall(stem):
        if "." not in token:
            return int(token)
    return None


def _step_from_sidecar(path: Path) -> int | None:
    """The sidecar's ``step`` or ``epoch``; None when there is none or the sidecar is refused (the
    checkpoint's own run then refuses it, in one line, and the sweep goes on)."""
    from .data import DataRefused, find_sidecar, read_sidecar

    side = find_sidecar(path)
    if side is None:
        return None
    try:
        meta = read_sidecar(side)  # bounded in size and depth, a JSON object
    except DataRefused:
        return None
    for key in ("step", "epoch"):
        if isinstance(meta.get(key), int) and not isinstance(meta[key], bool):
            return int(meta[key])
    return None


_LINK_OUT = ("a symbolic link out of the sweep's folder, which is not followed: sweep entries must be plain "
             "files in the folder")


def _link_out(p: Path) -> bool:
    """A symbolic link whose target is not a file of the link's own folder. Judged on the link and the
    folder alone, so the answer (and the message) is the same whether an outside target exists or not."""
    if not p.is_symlink():
        return False
    return Path(os.path.realpath(p)).parent != Path(os.path.realpath(p.parent))


def _listed(p: Path) -> bool:
    """A directory or glob entry worth a look: a regular file, or any link (refused later if it leads out;
    a link is never dropped silently, which would tell a target that exists from one that does not)."""
    return p.is_symlink() or p.is_file()


def find_checkpoints(paths: Iterable[str]) -> list[Checkpoint]:
    """Files, directories (their model files, not recursively) and globs -> checkpoints ordered by step."""
    files: list[Path] = []
    for raw in paths:
        text = str(raw)
        if any(c in text for c in "*?["):
            matched = [Path(p) for p in sorted(glob.glob(text))]
            if not matched:
                raise SweepError(f"no file matches {text!r}")
            files += [p for p in matched if _listed(p)]
        elif Path(text).is_dir():
            found = sorted(p for p in Path(text).iterdir() if _listed(p) and p.suffix.lower() in _ACCEPTED
                           and not p.name.lower().endswith(".weights.h5") and not p.name.startswith("."))
            if not found:
                raise SweepError(f"{text} holds no .keras or .h5 checkpoint")
            files += found
        elif _listed(Path(text)):
            files.append(Path(text))
        else:
            raise SweepError(f"no such file or directory: {text}")
    # a link out of its folder keeps its own (absolute) path: its target is neither read nor shown
    files = list(dict.fromkeys(Path(os.path.realpath(p.parent)) / p.name if _link_out(p) else p.resolve()
                               for p in files))
    if not files:
        raise SweepError("nothing to sweep: give checkpoint files, a directory of them, or a glob")
    out = []
    for p in files:
        if _link_out(p) or not p.is_file():
            step = step_from_name(p.name)
            why = _LINK_OUT if _link_out(p) else "not a regular file"
            out.append(Checkpoint(p, step, "name" if step is not None else "order", refused=why))
            continue
        step = _step_from_sidecar(p)
        source = "sidecar"
        if step is None:
            step, source = step_from_name(p.name), "name"
        out.append(Checkpoint(p, step, source if step is not None else "order"))
    out.sort(key=lambda c: (c.step is None, c.step if c.step is not None else 0, c.path.name))
    keys = [c.key for c in out]
    if len(set(keys)) != len(keys):
        raise SweepError("two checkpoints share a file name (in different folders); sweep them separately")
    return out


# -- the index ---------------------------------------------------------------------------------------
def key_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The scalars of one analyzer's metrics worth plotting over steps: top-level and one level down
    (``gap.gap``), and per-layer values of :data:`LAYER_FIELDS` as ``field[layer]``."""
    out: dict[str, Any] = {}
    metrics = record.get("metrics") or {}

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for k, v in metrics.items():
        if number(v):
            out[k] = v
        elif isinstance(v, dict):
            out.update({f"{k}.{k2}": v2 for k2, v2 in v.items() if number(v2)})
        elif isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            for row in v:
                layer = row.get("layer") or row.get("name")
                if not isinstance(layer, str):
                    continue
                suffix = f".{row['variable']}" if isinstance(row.get("variable"), str) and row["variable"] != "kernel" else ""
                for field in LAYER_FIELDS:
                    if number(row.get(field)):
                        out[f"{field}[{layer}{suffix}]"] = row[field]
    return dict(sorted(out.items()))


def index_entry(ckpt: Checkpoint, report_dir: Path, root: Path, exit_code: int, message: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"checkpoint": ckpt.path.name, "path": str(ckpt.path), "step": ckpt.step,
                             "step_source": ckpt.source, "report": os.path.relpath(report_dir, root),
                             "exit_code": int(exit_code)}
    report_json = report_dir / "report.json"
    if message or not report_json.is_file():
        entry.update(verdict="refused" if exit_code in (ExitCode.MODEL_REFUSED, ExitCode.DATA_REFUSED) else "failed",
                     message=message, sha256=None, analyzers={}, findings=[])
        return entry
    report = json.loads(report_json.read_text(encoding="utf-8"))
    findings = []
    worst = None
    rank = {"info": 0, "warning": 1, "error": 2}
    analyzers = {}
    for rec in report.get("analyzers", []):
        for f in rec.get("findings", []):
            findings.append({"analyzer": rec["name"], "code": f["code"], "severity": f["severity"], "where": f.get("where", "")})
            if worst is None or rank[f["severity"]] > rank[worst]:
                worst = f["severity"]
        analyzers[rec["name"]] = {"status": rec["status"], "metrics": key_metrics(rec)}
    entry.update(verdict=worst or "clean", sha256=(report.get("model") or {}).get("sha256"), analyzers=analyzers,
                 findings=findings)
    return entry


def write_index(root: Path, entries: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """``sweep.json``, written to a temporary file and renamed over the old one (never half-written)."""
    ordered = sorted(entries, key=lambda e: (e["step"] is None, e["step"] or 0, e["checkpoint"]))
    payload = {"schema": SWEEP_SCHEMA, **meta, "checkpoints": ordered, "first_seen": first_seen(ordered)}
    path = root / SWEEP_JSON
    tmp = root / f".{SWEEP_JSON}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(json.dumps(payload, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def first_seen(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each finding (analyzer, code, where): the first step at which it appears, and its severity then."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in entries:
        for f in e.get("findings", []):
            k = (f["analyzer"], f["code"], f["where"])
            if k not in seen:
                seen[k] = {"analyzer": k[0], "code": k[1], "where": k[2], "step": e["step"],
                           "checkpoint": e["checkpoint"], "severity": f["severity"]}
    return sorted(seen.values(), key=lambda s: (s["step"] is None, s["step"] or 0, s["analyzer"], s["code"], s["where"]))


def load_index(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(root) / SWEEP_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SWEEP_SCHEMA else None


# -- running -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class SweepOutcome:
    root: Path
    entries: list[dict[str, Any]]
    ran: int
    reused: int
    exit_code: ExitCode
    wall_s: float


def default_selection(host) -> tuple[str, ...]:
    """The data-cheap analyzers: every installed one but the explanations (they cost minutes per model)."""
    return tuple(sorted(n for n, e in host.analyzers.items() if e.cls.category != "explanation"))


def _finished(ckpt: Checkpoint, report_dir: Path) -> bool:
    """A report for this very file is already there (a sweep interrupted after it)."""
    try:
        report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (report.get("model") or {}).get("sha256") == _file_sha256(ckpt.path)


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_sweep(paths: Iterable[str], base, out_dir: Path, *, workers: int = 1, say: Callable[[str], None] = lambda s: None,
              make_executor: Callable[[], Any] | None = None) -> SweepOutcome:
    """Diagnose every checkpoint under ``paths`` with ``base`` (a :class:`~diagnostics.runner.RunConfig`
    whose model and output paths are replaced per checkpoint); ``workers`` checkpoints run at once,
    each lane on its own executor (local worker processes or Ray actors, as ``base.executor`` says)."""
    from .plugin_manager import PluginHost
    from .runner import Progress, importable_plugins, run_file

    t0 = time.perf_counter()
    checkpoints = find_checkpoints(paths)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    host = PluginHost(disabled=set(base.disabled), extra=base.extra_plugins).load()
    only = base.only or tuple(n for n in default_selection(host) if n not in base.skip)
    config = dataclasses.replace(base, only=only, skip=())
    meta = {"analyzers": list(only), "seed": base.seed, "fail_on": base.fail_on, "executor": base.executor}
    entries: dict[str, dict[str, Any]] = {}
    previous = load_index(root) or {}
    for e in previous.get("checkpoints", []):
        entries[e["checkpoint"]] = e
    lock = threading.Lock()
    todo: queue.Queue = queue.Queue()
    reused = 0
    refused = 0
    for c in checkpoints:
        report_dir = root / REPORTS / c.key
        if c.refused:  # never run, never read: one line and an index entry, and the sweep goes on
            entries[c.path.name] = index_entry(c, report_dir, root, ExitCode.MODEL_REFUSED, f"model refused: {c.refused}")
            say(f"step {'?' if c.step is None else c.step:<6} {c.path.name}: refused: {c.refused}")
            refused += 1
        elif _finished(c, report_dir):
            entries[c.path.name] = index_entry(c, report_dir, root, (entries.get(c.path.name) or {}).get("exit_code", 0))
            reused += 1
        else:
            entries.pop(c.path.name, None)
            todo.put(c)
    names = {c.path.name for c in checkpoints}
    entries = {k: v for k, v in entries.items() if k in names}
    write_index(root, list(entries.values()), meta)
    if reused:
        say(f"resuming: {reused} of {len(checkpoints)} checkpoint(s) already have their report")
    total = len(checkpoints)
    done = [reused + refused]
    owns_ray = False
    if base.executor == "ray":
        from .ray_executor import connect

        owns_ray = connect(base.ray_address)
    extra = importable_plugins(base.extra_plugins)
    errors: list[BaseException] = []
    stopping = threading.Event()  # set on Ctrl-C: a run cut short by the interrupt must not enter the index

    policy = _worker_policy(base, checkpoints, root) if base.sandbox and base.executor != "ray" else None

    def lane(index: int) -> None:
        executor = make_executor() if make_executor else _lane_executor(base, host, extra, root / ".logs" / f"lane-{index}",
                                                                         policy)
        try:
            while not errors and not stopping.is_set():
                try:
                    c = todo.get_nowait()
                except queue.Empty:
                    return
                report_dir = root / REPORTS / c.key
                t = time.perf_counter()
                outcome = run_file(dataclasses.replace(config, model_path=str(c.path), out_dir=report_dir),
                                   Progress(quiet=True), executor=executor)
                entry = index_entry(c, report_dir, root, int(outcome.exit_code), outcome.message if outcome.report is None else "")
                with lock:
                    if stopping.is_set():
                        return
                    entries[c.path.name] = entry
                    write_index(root, list(entries.values()), meta)
                    done[0] += 1
                    n = done[0]
                step = "?" if c.step is None else c.step
                extra_text = f": {outcome.message}" if outcome.message else ""
                say(f"[{n}/{total}] step {step:<6} {c.path.name:<36} {entry['verdict']}{extra_text} ({time.perf_counter() - t:.1f}s)")
                if outcome.exit_code == ExitCode.INTERRUPTED:
                    raise KeyboardInterrupt
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
        finally:
            executor.close()

    threads = [threading.Thread(target=lane, args=(i,), name=f"sweep-lane-{i}", daemon=True)
               for i in range(max(1, min(workers, todo.qsize())) if todo.qsize() else 0)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except BaseException:
        with lock:
            stopping.set()
        raise
    finally:
        if owns_ray:
            import ray

            ray.shutdown()
    if errors:
        raise errors[0]
    ordered = sorted(entries.values(), key=lambda e: (e["step"] is None, e["step"] or 0, e["checkpoint"]))
    codes = [ExitCode(e["exit_code"]) for e in ordered]
    code = max(codes, default=ExitCode.OK)
    return SweepOutcome(root, ordered, total - reused - refused, reused, code, time.perf_counter() - t0)


def _lane_executor(base, host, extra, log_dir: Path, policy: dict | None):
    if base.executor == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(disabled=host.disabled, extra=extra, address=base.ray_address, replicas=1, sandbox=base.sandbox)
    from .executors import ProcessExecutor

    log_dir.mkdir(parents=True, exist_ok=True)
    return ProcessExecutor(disabled=host.disabled, extra=extra, log_dir=str(log_dir), sandbox=policy)


def _worker_policy(base, checkpoints, root: Path) -> dict:
    """A lane's worker serves every checkpoint in turn: it may read them all (with their sidecars and
    companions) and write under the sweep's folder, where each checkpoint's report is staged. A sidecar
    that cannot be read adds nothing here: that checkpoint's own run refuses it."""
    from .companions import companion_names
    from .data import DataRefused, find_sidecar, read_sidecar
    from .runner import worker_policy

    models, metadatas = [], []
    for c in checkpoints:
        if c.refused:
            continue  # a link out of the folder: its target is not the workers' to read
        try:
            side = find_sidecar(c.path)
            metadata = read_sidecar(side) if side else {}
            companion_names(metadata)
        except DataRefused:
            continue  # refused by its own run before any worker sees it; its sidecar may be a link out
        models.append(Path(c.path))
        metadatas.append(metadata)
    return worker_policy(base, models, metadatas, root, root / ".logs" / "scratch")
