"""Checkpoint sweeps: the data-cheap analyzers on every checkpoint of a training run, one report each,
and an index (``sweep.json``) of how the model's health moved over the steps.

``diagnose sweep PATH...`` takes files, directories and globs. Each checkpoint has an epoch and an
optimizer step, each read from its sidecar (``"epoch"``, ``"step"``), else from its file name: Keras
``ModelCheckpoint`` names such as ``model.{epoch:02d}-{val_loss:.2f}.keras`` give the epoch
(``model.07-0.45.keras`` is epoch 7), names with ``epoch``/``ep`` or ``step``/``iter`` followed by a
number give that. The sweep's axis (``"axis"`` in the index, the first column of every table) is the
epoch when every checkpoint has one, else the step when every checkpoint has one, else the position in
the sweep: the numbers the user sees are those of the file names, never a counter of our own.
Every checkpoint goes through :func:`diagnostics._runner.run_file`: the same pre-scan, safe loading and
report as ``diagnose MODEL``.

Each checkpoint's entry carries the value of every health measure its report holds, by the measure's code
(``"measures": {"health.gradients.grad_norm": {"conv1": 0.3, ...}}``, one label per value: the layer, class
or feature, with its series; a model-wide value is ``value`` or its series), and the index a ``catalogue``
of those measures as their analyzers declared them (title, unit, scale, scope, direction, thresholds):
a new health analyzer is in the index, and on the dashboard's Sweep page, with no edit here.

The index says why the verdict moved: each checkpoint lists the findings (warning or error) that
appeared, went away, or changed severity since the previous checkpoint with a report (``"changes"``), and
``"first_seen"`` gives each finding's first appearance and every interval over which it was present
(``"intervals"``: a finding that goes and comes back has two).

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
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ._exitcodes import ExitCode

SWEEP_JSON = "sweep.json"
#: 2: each checkpoint has its ``epoch`` and its ``step`` (each with its source), the index its ``axis``,
#: each checkpoint its ``changes`` since the previous one, and ``first_seen`` its ``intervals``.
#: 3: each checkpoint has its health ``measures`` (``{code: {label: value}}``, from the reports' measure
#: sections) instead of free-form ``metrics`` per analyzer, and the index a ``catalogue`` of the measures
#: (code -> title, unit, scale, scope, direction, thresholds...), so that a chart is titled and scaled
#: from what the analyzer declared.
SWEEP_SCHEMA = 3
REPORTS = "checkpoints"
_KEYWORD = re.compile(r"(?i)(?:^|[^a-z])(epoch|step|ep|iter|it)[_=\-]?(\d+)")
_EPOCH_WORDS = ("epoch", "ep")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ACCEPTED = (".keras", ".h5", ".hdf5")
#: What a sweep's axis can be: the checkpoints' epochs, their optimizer steps, or their position.
AXES = ("epoch", "step", "position")
_RANK = {"info": 0, "warning": 1, "error": 2}


class SweepError(Exception):
    """Nothing to sweep, or paths that are not checkpoints; the message says which."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    path: Path
    epoch: int | None
    step: int | None  #: the optimizer step (``"step"`` of the sidecar, ``step1200`` in a name), not a counter
    epoch_source: str | None = None  #: "sidecar", "name", or None when the epoch is not known
    step_source: str | None = None
    refused: str = ""  #: why this entry is not run (a link out of its folder), or ""

    @property
    def key(self) -> str:
        """The report folder's name: the file name without its suffix, made safe for a path."""
        stem = self.path.name[: -len(self.path.suffix)] if self.path.suffix else self.path.name
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", stem)

    def order(self) -> tuple:
        return (self.epoch is None, self.epoch or 0, self.step is None, self.step or 0, self.path.name)


def numbers_from_name(name: str) -> tuple[int | None, int | None]:
    """``(epoch, step)`` that a file name states. ``model.07-0.45.keras`` -> (7, None) (ModelCheckpoint's
    ``{epoch:02d}``); ``weights.epoch=12.keras`` -> (12, None); ``ckpt_step1200.keras`` -> (None, 1200);
    ``final.keras`` -> (None, None)."""
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix else name
    m = _KEYWORD.search(stem)
    if m:
        n = int(m.group(2))
        return (n, None) if m.group(1).lower() in _EPOCH_WORDS else (None, n)
    # ModelCheckpoint's formatted fields: the first integer that is not part of a decimal number is the epoch.
    for token in _NUMBER.findall(stem):
        if "." not in token:
            return int(token), None
    return None, None


def _numbers_from_sidecar(path: Path) -> tuple[int | None, int | None]:
    """The sidecar's ``epoch`` and ``step``; None for each it lacks, and both None when there is no
    sidecar or it is refused (the checkpoint's own run then refuses it, in one line, and the sweep goes on)."""
    from ._data import DataRefused, find_sidecar, read_sidecar

    side = find_sidecar(path)
    if side is None:
        return None, None
    try:
        meta = read_sidecar(side)  # bounded in size and depth, a JSON object
    except DataRefused:
        return None, None

    def integer(key: str) -> int | None:
        v = meta.get(key)
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else None

    return integer("epoch"), integer("step")


def _checkpoint(p: Path, refused: str = "") -> Checkpoint:
    """The sidecar wins over the name, number by number (a refused entry's sidecar is not read)."""
    epoch, step = (None, None) if refused else _numbers_from_sidecar(p)
    from_name = numbers_from_name(p.name)
    epoch_source = "sidecar" if epoch is not None else ("name" if from_name[0] is not None else None)
    step_source = "sidecar" if step is not None else ("name" if from_name[1] is not None else None)
    return Checkpoint(p, epoch if epoch is not None else from_name[0], step if step is not None else from_name[1],
                      epoch_source, step_source, refused)


def axis_of(checkpoints: Iterable[Checkpoint]) -> str:
    """``epoch`` when every checkpoint has one, else ``step`` when every one has one, else ``position``."""
    checkpoints = list(checkpoints)
    if checkpoints and all(c.epoch is not None for c in checkpoints):
        return "epoch"
    if checkpoints and all(c.step is not None for c in checkpoints):
        return "step"
    return "position"


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
            out.append(_checkpoint(p, refused=_LINK_OUT if _link_out(p) else "not a regular file"))
        else:
            out.append(_checkpoint(p))
    out.sort(key=Checkpoint.order)
    keys = [c.key for c in out]
    if len(set(keys)) != len(keys):
        raise SweepError("two checkpoints share a file name (in different folders); sweep them separately")
    return out


# -- the index ---------------------------------------------------------------------------------------
def measure_labels(section: dict[str, Any]) -> list[str]:
    """How the index names each value of a report's measure section (one line of its chart each).

    A layer, class or feature value is named by its ``where`` (with its ``series`` before it when it has
    one: ``train · conv1``); a model-wide or per-epoch value by its ``series`` alone, or ``value``: the
    ``where`` of a model-wide value only says where it is worst, which may move from checkpoint to
    checkpoint, and must not split its line. Names that would repeat fall back to series and where."""
    scope = section.get("scope", "model")
    values = section.get("values") or []

    def name(v, with_where: bool) -> str:
        parts = (v.get("series") or "", v.get("where") or "" if with_where else "")
        return " \u00b7 ".join(p for p in parts if p) or "value"

    labels = [name(v, scope not in ("model", "epoch")) for v in values]
    if len(set(labels)) != len(labels):
        labels = [name(v, True) for v in values]
    seen: dict[str, int] = {}
    out = []
    for label in labels:  # still repeated (the same place twice): numbered, never merged
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _epoch_number(where: str) -> float:
    try:
        return float(where)
    except (TypeError, ValueError):
        return float("-inf")


def measure_values(section: dict[str, Any]) -> dict[str, float | None]:
    """``{label: value}`` of one measure section at one checkpoint (None: not measurable there).

    A per-epoch measure (the loss per epoch in the checkpoint's history) gives its last epoch per
    series: the value at this checkpoint, so that over the sweep the values trace the training curve."""
    values = list(section.get("values") or [])
    if section.get("scope") == "epoch":
        last: dict[str, dict[str, Any]] = {}
        for v in values:
            series = v.get("series") or ""
            if series not in last or _epoch_number(v.get("where")) >= _epoch_number(last[series].get("where")):
                last[series] = v
        values = [{**v, "where": ""} for v in last.values()]
    return {label: v.get("value") for label, v in zip(measure_labels({**section, "values": values}), values)}


#: What the index's catalogue keeps of each measure: enough to title, scale and judge a chart.
CATALOGUE_FIELDS = ("title", "unit", "scale", "scope", "direction", "thresholds", "reference")


def index_entry(ckpt: Checkpoint, report_dir: Path, root: Path, exit_code: int | None, message: str = "",
                catalogue: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One checkpoint's row of the index, read from its report (``exit_code`` None: the report's own).

    ``measures`` holds the value of every health measure by its code and label (:func:`measure_values`);
    ``catalogue``, when given, receives each measure's declaration (:data:`CATALOGUE_FIELDS`) by code."""
    entry: dict[str, Any] = {"checkpoint": ckpt.path.name, "path": str(ckpt.path), "epoch": ckpt.epoch,
                             "epoch_source": ckpt.epoch_source, "step": ckpt.step, "step_source": ckpt.step_source,
                             "report": os.path.relpath(report_dir, root), "exit_code": int(exit_code or 0)}
    report_json = report_dir / "report.json"
    if message or not report_json.is_file():
        entry.update(verdict="refused" if exit_code in (ExitCode.MODEL_REFUSED, ExitCode.DATA_REFUSED) else "failed",
                     message=message, sha256=None, analyzers={}, findings=[], measures={})
        return entry
    report = json.loads(report_json.read_text(encoding="utf-8"))
    if exit_code is None:
        entry["exit_code"] = int(report.get("exit_code") or 0)
    findings = []
    worst = None
    analyzers = {}
    measures: dict[str, dict[str, float | None]] = {}
    for rec in report.get("analyzers", []):
        for f in rec.get("findings", []):
            findings.append({"analyzer": rec["name"], "code": f["code"], "severity": f["severity"], "where": f.get("where", "")})
            if worst is None or _RANK[f["severity"]] > _RANK[worst]:
                worst = f["severity"]
        analyzers[rec["name"]] = {"status": rec["status"]}
        for section in rec.get("measures") or []:
            measures[section["code"]] = measure_values(section)
            if catalogue is not None:
                catalogue[section["code"]] = {"analyzer": rec["name"], "measure": section.get("measure", ""),
                                              **{k: section.get(k) for k in CATALOGUE_FIELDS}}
    entry.update(verdict=worst or "clean", sha256=(report.get("model") or {}).get("sha256"), analyzers=analyzers,
                 findings=findings, measures=measures)
    return entry


def _entry_order(e: dict[str, Any]) -> tuple:
    return (e.get("epoch") is None, e.get("epoch") or 0, e.get("step") is None, e.get("step") or 0, e["checkpoint"])


def _has_report(e: dict[str, Any]) -> bool:
    return e.get("verdict") not in ("refused", "failed")


def arrange(entries: Iterable[dict[str, Any]], axis: str) -> list[dict[str, Any]]:
    """The entries in sweep order, each with its ``position`` (1-based), ``at`` (its value on ``axis``),
    and ``changes`` since ``since`` (the previous checkpoint with a report; see :func:`changes`)."""
    ordered = sorted(entries, key=_entry_order)
    previous: dict[str, Any] | None = None
    out = []
    for i, e in enumerate(ordered, 1):
        e = {**e, "position": i}
        e["at"] = i if axis == "position" else e.get(axis)
        if _has_report(e):
            e["since"] = previous["checkpoint"] if previous else None
            e["changes"] = changes(previous, e)
            previous = e
        else:  # refused or failed: nothing is known of its findings, so it neither gains nor loses any
            e["since"], e["changes"] = None, []
        out.append(e)
    return out


def _worst_by_finding(entry: dict[str, Any] | None, floor: int = 0) -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for f in (entry or {}).get("findings", []):
        if _RANK[f["severity"]] < floor:
            continue
        k = (f["analyzer"], f["code"], f["where"])
        if k not in out or _RANK[f["severity"]] > _RANK[out[k]]:
            out[k] = f["severity"]
    return out


_CHANGE_ORDER = {"appeared": 0, "worse": 1, "better": 2, "gone": 3}


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """The warnings and errors that moved between two checkpoints: ``appeared``, ``gone``, or changed
    severity (``worse``/``better``), each with ``severity`` (now; None when it is gone) and ``was``. These
    are what the verdict is made of, so a verdict that moves always has at least one change to show.
    ``before`` None: the first checkpoint with a report, whose findings all appeared."""
    old, new = _worst_by_finding(before, _RANK["warning"]), _worst_by_finding(after, _RANK["warning"])
    out = []
    for k in sorted(set(old) | set(new)):
        was, now = old.get(k), new.get(k)
        if was == now:
            continue
        kind = "appeared" if was is None else "gone" if now is None else "worse" if _RANK[now] > _RANK[was] else "better"
        out.append({"analyzer": k[0], "code": k[1], "where": k[2], "change": kind, "severity": now, "was": was})
    return sorted(out, key=lambda c: (_CHANGE_ORDER[c["change"]], -_RANK[c["severity"] or c["was"]], c["code"], c["where"]))


def describe_changes(entry: dict[str, Any]) -> str:
    """``entry``'s changes in words: ``health.overfitting.chance_level (error, validation split) gone; ...``."""
    parts = []
    for c in entry.get("changes") or []:
        where = f", {c['where']}" if c["where"] else ""
        if c["change"] == "appeared":
            parts.append(f"{c['code']} ({c['severity']}{where}) appeared")
        elif c["change"] == "gone":
            parts.append(f"{c['code']} ({c['was']}{where}) gone")
        else:
            parts.append(f"{c['code']}{' (' + c['where'] + ')' if c['where'] else ''} {c['was']} -> {c['severity']}")
    return "; ".join(parts)


def write_index(root: Path, entries: list[dict[str, Any]], meta: dict[str, Any],
                catalogue: dict[str, dict[str, Any]] | None = None) -> Path:
    """``sweep.json``, written to a temporary file and renamed over the old one (never half-written).
    ``catalogue``: the measures the entries hold, by code (see :func:`index_entry`); only those of the
    entries given are written."""
    ordered = arrange(entries, meta.get("axis", "position"))
    present = {code for e in ordered for code in e.get("measures") or {}}
    payload = {"schema": SWEEP_SCHEMA, **meta, "checkpoints": ordered, "first_seen": first_seen(ordered),
               "catalogue": {code: m for code, m in (catalogue or {}).items() if code in present}}
    path = root / SWEEP_JSON
    tmp = root / f".{SWEEP_JSON}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(json.dumps(payload, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def first_seen(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each finding (analyzer, code, where), from entries in sweep order (:func:`arrange`): where it
    first appears (``at``, ``epoch``, ``step``, ``checkpoint``) and its ``severity`` then, its ``worst``
    severity, and every interval of consecutive checkpoints over which it was present (``intervals``:
    ``from``/``to`` on the sweep's axis, with their checkpoints and the interval's worst severity) out of
    ``of`` checkpoints with a report. A refused or failed checkpoint does not split an interval: nothing is
    known of its findings."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    open_: set[tuple[str, str, str]] = set()
    reported = [e for e in entries if _has_report(e)]
    for e in reported:
        present = _worst_by_finding(e)
        for k in list(open_):
            if k not in present:
                open_.discard(k)
        for k, severity in present.items():
            s = seen.get(k)
            if s is None:
                s = seen[k] = {"analyzer": k[0], "code": k[1], "where": k[2], "at": e.get("at"), "epoch": e.get("epoch"),
                               "step": e.get("step"), "checkpoint": e["checkpoint"], "severity": severity,
                               "worst": severity, "intervals": [], "present": 0, "of": len(reported)}
            if _RANK[severity] > _RANK[s["worst"]]:
                s["worst"] = severity
            s["present"] += 1
            if k in open_:
                last = s["intervals"][-1]
                last.update({"to": e.get("at"), "to_checkpoint": e["checkpoint"]})
                if _RANK[severity] > _RANK[last["severity"]]:
                    last["severity"] = severity
            else:
                s["intervals"].append({"from": e.get("at"), "to": e.get("at"), "from_checkpoint": e["checkpoint"],
                                       "to_checkpoint": e["checkpoint"], "severity": severity})
                open_.add(k)
    order = {e["checkpoint"]: i for i, e in enumerate(entries)}
    return sorted(seen.values(), key=lambda s: (order[s["checkpoint"]], s["analyzer"], s["code"], s["where"]))


def describe_intervals(item: dict[str, Any], axis: str) -> str:
    """``epochs 1–3, 6–40`` (one number for a one-checkpoint interval); ``axis`` ``position``: checkpoints."""
    unit = {"epoch": "epoch", "step": "step"}.get(axis, "checkpoint")
    spans = [str(i["from"]) if i["from"] == i["to"] else f"{i['from']}\u2013{i['to']}" for i in item.get("intervals", [])]
    return f"{unit}{'s' if len(spans) > 1 or any(chr(0x2013) in x for x in spans) else ''} {', '.join(spans)}"


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
    axis: str = "position"  #: what ``entries[i]["at"]`` counts: "epoch", "step" or "position" (see :func:`axis_of`)


def default_selection(host) -> tuple[str, ...]:
    """The data-cheap analyzers: every installed one but the explanations (they cost minutes per model)."""
    return tuple(sorted(n for n, e in host.analyzers.items() if e.cls.category != "explanation"))


def _finished(ckpt: Checkpoint, report_dir: Path) -> bool:
    """A report for this very file is already there (a sweep interrupted after it), written in this
    diagnostics' report schema: an older report has no measure sections for the index, so it is run again."""
    from .report import SCHEMA_VERSION

    try:
        report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (report.get("schema_version") == SCHEMA_VERSION
            and (report.get("model") or {}).get("sha256") == _file_sha256(ckpt.path))


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_sweep(paths: Iterable[str], base, out_dir: Path, *, workers: int = 1, say: Callable[[str], None] = lambda s: None,
              make_executor: Callable[[], Any] | None = None) -> SweepOutcome:
    """Diagnose every checkpoint under ``paths`` with ``base`` (a :class:`~diagnostics._runner.RunConfig`
    whose model and output paths are replaced per checkpoint); ``workers`` checkpoints run at once,
    each lane on its own executor (local worker processes or Ray actors, as ``base.executor`` says)."""
    from ._plugin_manager import PluginHost
    from ._runner import Progress, importable_plugins, run_file

    t0 = time.perf_counter()
    checkpoints = find_checkpoints(paths)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    host = PluginHost(disabled=set(base.disabled), extra=base.extra_plugins).load()
    only = base.only or tuple(n for n in default_selection(host) if n not in base.skip)
    config = dataclasses.replace(base, only=only, skip=())
    axis = axis_of(checkpoints)
    meta = {"analyzers": list(only), "seed": base.seed, "fail_on": base.fail_on, "executor": base.executor, "axis": axis}

    def label(c: Checkpoint) -> str:  # "epoch 6", "step 1200", "#3": the checkpoint as the tables show it
        value = getattr(c, axis) if axis != "position" else None
        return f"{axis} {value}" if value is not None else f"#{checkpoints.index(c) + 1}"
    entries: dict[str, dict[str, Any]] = {}
    catalogue: dict[str, dict[str, Any]] = {}  # every measure the reports hold, by code (write_index keeps those in use)
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
            say(f"{label(c):<10} {c.path.name}: refused: {c.refused}")
            refused += 1
        elif _finished(c, report_dir):
            entries[c.path.name] = index_entry(c, report_dir, root, None, catalogue=catalogue)  # its report's exit code
            reused += 1
        else:
            entries.pop(c.path.name, None)
            todo.put(c)
    names = {c.path.name for c in checkpoints}
    entries = {k: v for k, v in entries.items() if k in names}
    write_index(root, list(entries.values()), meta, catalogue)
    if reused:
        say(f"resuming: {reused} of {len(checkpoints)} checkpoint(s) already have their report")
    total = len(checkpoints)
    done = [reused + refused]
    owns_ray = False
    if base.executor == "ray":
        from ._ray_executor import connect

        owns_ray = connect(base.ray_address)
    extra = importable_plugins(base.extra_plugins)
    errors: list[BaseException] = []
    stopping = threading.Event()  # set on Ctrl-C: a run cut short by the interrupt must not enter the index

    policy = _worker_policy(base, checkpoints, root) if base.sandbox and base.executor != "ray" else None

    executors: list = []  # the lanes' executors, which an interrupt closes from here (see below)

    def lane(index: int) -> None:
        executor = make_executor() if make_executor else _lane_executor(base, host, extra, root / ".logs" / f"lane-{index}",
                                                                         policy)
        with lock:
            executors.append(executor)
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
                found: dict[str, dict[str, Any]] = {}
                entry = index_entry(c, report_dir, root, int(outcome.exit_code),
                                    outcome.message if outcome.report is None else "", catalogue=found)
                with lock:
                    if stopping.is_set():
                        return
                    entries[c.path.name] = entry
                    catalogue.update(found)
                    write_index(root, list(entries.values()), meta, catalogue)
                    done[0] += 1
                    n = done[0]
                extra_text = f": {outcome.message}" if outcome.message else ""
                say(f"[{n}/{total}] {label(c):<10} {c.path.name:<36} {entry['verdict']}{extra_text} ({time.perf_counter() - t:.1f}s)")
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
            lanes = list(executors)
        if base.executor == "ray":
            # The lanes are still in their runs; closing their actors now, while Ray is up, lets each
            # remove its folder (Ctrl-C must not leave /tmp/diagnostics-ray-* behind). Local workers
            # got the interrupt themselves and are closed by their lanes.
            for executor in lanes:
                try:
                    executor.close()
                except Exception:  # noqa: BLE001 - closing on the way out: the interrupt is what is reported
                    pass
        raise
    finally:
        if owns_ray:
            import ray

            ray.shutdown()
    if errors:
        raise errors[0]
    ordered = arrange(entries.values(), axis)
    codes = [ExitCode(e["exit_code"]) for e in ordered]
    code = max(codes, default=ExitCode.OK)
    return SweepOutcome(root, ordered, total - reused - refused, reused, code, time.perf_counter() - t0, axis)


def _lane_executor(base, host, extra, log_dir: Path, policy: dict | None):
    if base.executor == "ray":
        from ._ray_executor import RayExecutor

        return RayExecutor(disabled=host.disabled, extra=extra, address=base.ray_address, replicas=1, sandbox=base.sandbox)
    from ._executors import ProcessExecutor

    log_dir.mkdir(parents=True, exist_ok=True)
    return ProcessExecutor(disabled=host.disabled, extra=extra, log_dir=str(log_dir), sandbox=policy)


def _worker_policy(base, checkpoints, root: Path) -> dict:
    """A lane's worker serves every checkpoint in turn: it may read them all (with their sidecars and
    companions) and write under the sweep's folder, where each checkpoint's report is staged. A sidecar
    that cannot be read adds nothing here: that checkpoint's own run refuses it."""
    from ._companions import companion_names
    from ._data import DataRefused, find_sidecar, read_sidecar
    from ._runner import worker_policy

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
