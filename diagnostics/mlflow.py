"""Log a report to MLflow: ``diagnose MODEL --mlflow [RUN_ID]`` and, from a notebook,
``diagnostics.mlflow.log_report(report)``.

What is logged, into one run:

- artifacts ``diagnostics/report.json`` and ``diagnostics/report.html``;
- every value of every health measure (the report's measure sections), keyed by the measure's code:
  ``<code>`` for a model-wide value (``health.overfitting.gap``), ``<code>/<series>`` for one of several
  series, ``<code>/<where>`` for a layer's, class's or feature's (``health.gradients.grad_norm/conv1``), and
  ``<code>/<series>/<where>``; a per-epoch measure is one metric per series whose MLflow ``step`` is the
  epoch, so MLflow draws its curve. Each part of a key keeps the characters MLflow accepts on every
  platform (letters, digits, ``_ - . space``); any other, and a part that is only dots (``..`` would be
  read as a path), becomes ``_``; a key that would repeat gets ``_2``, ``_3``...;
- every numeric free-form metric of every analyzer as ``<analyzer>.<metric>`` (nested mappings flattened
  with dots; strings, lists and booleans are left to report.json), except one whose key is a measure's:
  the measure's value is logged (a ported analyzer may keep the same number in both);
- tags ``diagnostics.verdict`` (worst severity, or ``clean``), ``diagnostics.exit_code``,
  ``diagnostics.fail_on``, ``diagnostics.model`` and ``diagnostics.version``, and
  ``diagnostics.exit_reason`` when an analyzer or plugin, not a finding, set the exit code.

The run is the one given, else the active one (``mlflow.start_run()`` in this process, or
``MLFLOW_RUN_ID``), else a new run, named after the model, in the experiment MLflow would choose
(``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_EXPERIMENT_ID``). The store is MLflow's own choice:
``MLFLOW_TRACKING_URI`` or ``mlflow.set_tracking_uri``.

Artifacts: with a ``sqlite:///PATH`` store, MLflow keeps artifacts of the experiments it creates in
``./mlruns`` of the *working folder* (its ``default_artifact_root``), wherever the database is. So when
this function creates the database or the experiment, it gives them an artifact location beside the
database instead, ``<folder of PATH>/mlartifacts/<experiment id>`` (the name ``mlflow server`` uses for
its artifact store): a run leaves nothing in the folder it was started from. An experiment that already
exists keeps the location it was created with.

MLflow is an optional extra (``pip install 'diagnostics[mlflow]'``) and is imported only inside
these functions, so ``diagnose --help`` never pays for it.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from ._measures import Scope
from .report import REPORT_HTML, REPORT_JSON, Report

INSTALL_HINT = "pip install 'diagnostics[mlflow]'"
ARTIFACT_PATH = "diagnostics"
# MLflow accepts alphanumerics, _ - . / space and : in metric names (not ':' on Windows); anything
# else (a layer called "conv/1:0" is fine, "dense[0]" is not) becomes '_'.
_BAD_KEY = re.compile(r"[^\w.\-/ ]")
_MAX_KEY = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
_BATCH = 1000  # metrics per log_batch request (MAX_METRICS_PER_BATCH)


class MlflowMissing(ImportError):
    """MLflow is not installed."""


def available() -> bool:
    """Whether MLflow can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):
        return False


def numeric_metrics(report: Report) -> dict[str, float]:
    """``{"<analyzer>.<metric>": value}`` for every finite numeric metric, nested keys joined with dots."""
    out: dict[str, float] = {}
    for record in report.analyzers:
        for key, value in _flatten(record.metrics, record.name):
            key = _BAD_KEY.sub("_", key)[:_MAX_KEY]
            out[key] = value
    return out


_BAD_PART = re.compile(r"[^\w.\- ]")  # no '/' inside a part: it separates the parts; no ':' (Windows)


def _key_part(text: str) -> str:
    part = _BAD_PART.sub("_", text)
    return part.replace(".", "_") if not part.strip(".") else part  # "", "." and ".." are not names


def measure_metrics(report: Report) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` for every finite value of every health measure (see the module docstring):
    step 0, or the epoch for a per-epoch measure."""
    out: list[tuple[str, float, int]] = []
    taken: set[tuple[str, int]] = set()
    for record in report.analyzers:
        for section in record.measures:
            per_epoch = section.scope is Scope.EPOCH
            for i, v in enumerate(section.values):
                if v.value is None or not math.isfinite(v.value):
                    continue
                places = [v.series] if per_epoch else [v.series, "" if section.scope is Scope.MODEL else v.where]
                key = "/".join([section.code, *(_key_part(p) for p in places if p)])
                step = int(v.where) if per_epoch and v.where.isdigit() else (i if per_epoch else 0)
                key = _unique(key[:_MAX_KEY].rstrip("/"), step, taken)
                out.append((key, float(v.value), step))
    return out


def _unique(key: str, step: int, taken: set[tuple[str, int]]) -> str:
    n, candidate = 1, key
    while (candidate, step) in taken:
        n += 1
        suffix = f"_{n}"
        candidate = key[:_MAX_KEY - len(suffix)] + suffix
    taken.add((candidate, step))
    return candidate


def logged_metrics(report: Report) -> list[tuple[str, float, int]]:
    """Every ``(key, value, step)`` :func:`log_report` logs: the measures' values, then the free-form
    metrics whose keys no measure uses."""
    measured = measure_metrics(report)
    keys = {k for k, _, _ in measured}
    return measured + [(k, v, 0) for k, v in sorted(numeric_metrics(report).items()) if k not in keys]


def _flatten(value: Any, prefix: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        yield prefix, float(value)


def tags(report: Report) -> dict[str, str]:
    """The run tags that say what the diagnosis concluded; ``diagnostics.exit_reason`` only when the
    findings alone do not explain the exit code ("1 analyzer crashed"), as the verdict line says."""
    from ._exitcodes import exit_reason

    why = exit_reason(report)
    out = {
        "diagnostics.verdict": report.worst.value if report.worst else "clean",
        "diagnostics.exit_code": str(int(report.exit_code)),
        "diagnostics.fail_on": report.fail_on,
        "diagnostics.model": str(report.model.get("name") or report.model.get("path") or ""),
        "diagnostics.version": str(report.environment.get("diagnostics") or ""),
    }
    if why:
        out["diagnostics.exit_reason"] = why
    return out


def log_report(report: Report | str | os.PathLike, run_id: str | None = None) -> str:
    """Log ``report`` (a :class:`Report`, its directory or its report.json) to MLflow; return the run id.

    The run is ``run_id``, else the active run, else ``MLFLOW_RUN_ID``, else a new run (see the module
    docstring). A run this function creates is ended when it returns; a given or active run is left open.
    """
    try:
        import mlflow
        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise MlflowMissing(f"logging to MLflow needs MLflow: {INSTALL_HINT} ({e})") from None

    report, directory = _resolve(report)
    active = mlflow.active_run()
    run_id = run_id or (active.info.run_id if active else None) or os.environ.get("MLFLOW_RUN_ID") or None
    if not run_id:  # before the client opens the store: a fresh database would get MLflow's ./mlruns
        _artifacts_beside_sqlite(mlflow)
    client = MlflowClient()

    def log_into(rid: str) -> None:
        import time

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v, step in logged_metrics(report)]
        for i in range(0, len(metrics), _BATCH):
            client.log_batch(rid, metrics=metrics[i:i + _BATCH])
        client.log_batch(rid, tags=[RunTag(k, v) for k, v in tags(report).items()])
        with tempfile.TemporaryDirectory(prefix="diagnostics-mlflow-") as tmp:
            for name in (REPORT_JSON, REPORT_HTML):
                source = directory / name if directory is not None else None
                if source is None or not source.is_file():  # a Report held only in memory: write what it says
                    source = Path(tmp) / name
                    source.write_text(_render(report, name, directory), encoding="utf-8")
                client.log_artifact(rid, str(source), ARTIFACT_PATH)

    if run_id:
        log_into(run_id)
        return run_id
    name = str(report.model.get("name") or "model")
    with mlflow.start_run(run_name=f"diagnose {name}") as run:
        log_into(run.info.run_id)
        return run.info.run_id


ARTIFACTS_BESIDE_DB = "mlartifacts"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` tracking URI (relative to the working folder, as MLflow
    reads it), or None for any other store and for an in-memory database."""
    from urllib.parse import unquote

    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///"):].split("?", 1)[0])
    return Path(path) if path and path != ":memory:" else None


def _artifacts_beside_sqlite(mlflow) -> None:
    """Before a new run: a sqlite database this creates, and the experiment named by
    ``MLFLOW_EXPERIMENT_NAME`` if it does not exist yet, get their artifact location beside the database
    (see the module docstring); any other store, or what exists already, is left as MLflow has it."""
    db = sqlite_path(mlflow.get_tracking_uri())
    if db is None:
        return
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    fresh = not db.exists() or db.stat().st_size == 0
    if not fresh and not name:
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.file_utils import path_to_local_file_uri

    root = path_to_local_file_uri(str((db.absolute().parent / ARTIFACTS_BESIDE_DB)))
    # The store `mlflow server --default-artifact-root` builds: on a fresh file it creates the tables and the
    # Default experiment (id 0) with their artifacts under ``root``, and experiments it creates get ``root/<id>``.
    store = SqlAlchemyStore(mlflow.get_tracking_uri(), root)
    try:
        if name and store.get_experiment_by_name(name) is None:
            store.create_experiment(name)
    finally:
        store.engine.dispose()


def _resolve(report: Report | str | os.PathLike) -> tuple[Report, Path | None]:
    if isinstance(report, Report):
        directory = getattr(report, "directory", None)
        return report, Path(directory) if directory else None
    path = Path(report)
    directory = path if path.is_dir() else path.parent
    return Report.load(path), directory


def _render(report: Report, name: str, directory: Path | None) -> str:
    if name == REPORT_JSON:
        return report.to_json()
    from ._html import render_html

    return render_html(report, directory or Path("."))


def log_comparison(directory: str | os.PathLike, run_id: str | None = None) -> str:
    """Log a ``diagnose compare`` result (the folder holding compare.json) to MLflow: ``compare.json`` and
    ``compare.html`` as artifacts, the count of each change as a metric (``compare.regressed``...) and the
    gate's exit code as a tag; the run is chosen as :func:`log_report` chooses it. Returns the run id."""
    try:
        import mlflow
        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise MlflowMissing(f"logging to MLflow needs MLflow: {INSTALL_HINT} ({e})") from None
    from ._compare import COMPARE_HTML, COMPARE_JSON, Change, Comparison

    directory = Path(directory)
    comparison = Comparison.load(directory)
    active = mlflow.active_run()
    run_id = run_id or (active.info.run_id if active else None) or os.environ.get("MLFLOW_RUN_ID") or None
    if not run_id:
        _artifacts_beside_sqlite(mlflow)
    client = MlflowClient()

    def log_into(rid: str) -> None:
        import time

        now = int(time.time() * 1000)
        client.log_batch(rid, metrics=[Metric(f"compare.{c.value}", float(comparison.count(c)), now, 0) for c in Change],
                         tags=[RunTag("diagnostics.compare.exit_code", str(comparison.exit_code)),
                               RunTag("diagnostics.compare.fail_on", comparison.fail_on)])
        for name in (COMPARE_JSON, COMPARE_HTML):
            if (directory / name).is_file():
                client.log_artifact(rid, str(directory / name), ARTIFACT_PATH)

    if run_id:
        log_into(run_id)
        return run_id
    with mlflow.start_run(run_name=f"diagnose compare {comparison.candidate.get('name')}") as run:
        log_into(run.info.run_id)
        return run.info.run_id
