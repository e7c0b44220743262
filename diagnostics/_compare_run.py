"""The two sides of ``diagnose compare``: a report directory read as it is, or a model file run through the
normal pipeline (:func:`diagnostics._runner.run_file`, the one pipeline) into ``OUT/baseline`` or
``OUT/candidate``; then :func:`diagnostics._compare.compare` and the compare report's files.

A model side reuses the report already in its folder when that report is of the same file (sha256) run with
the same settings (seed, data, analyzers, options: ``compare-settings.json`` beside it records them), so a
second ``diagnose compare`` with one new candidate runs only the candidate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from ._compare import COMPARE_HTML, COMPARE_JSON, Comparison, compare
from ._exitcodes import ExitCode
from .report import REPORT_JSON, Report

SETTINGS = "compare-settings.json"


class CompareError(Exception):
    """A side cannot be compared; ``exit_code`` says why (a refused model, unreadable data, a bad path)."""

    def __init__(self, message: str, exit_code: ExitCode):
        super().__init__(message)
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class Side:
    """One side: its report, where it is, and the model file when the side was given as one."""

    report: Report
    directory: Path
    model: Path | None = None
    reused: bool = False


def is_report(path: Path) -> bool:
    return (path.is_dir() and (path / REPORT_JSON).is_file()) or (path.is_file() and path.name == REPORT_JSON)


def load_report(path: Path) -> Report:
    try:
        return Report.load(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CompareError(f"cannot read the report in {path}: {e}; give a report directory written by diagnose "
                           f"(it holds report.json) or a model file", ExitCode.USAGE) from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def settings_of(config) -> dict[str, Any]:
    """What must match for a report to stand for a run of ``config`` (besides the model's sha256)."""
    data = None if config.data_path is None else {"path": str(Path(config.data_path).resolve()),
                                                  "sha256": _sha256(Path(config.data_path))}
    return {"seed": config.seed, "data": data, "only": sorted(config.only), "skip": sorted(config.skip),
            "options": json.loads(json.dumps(config.options, sort_keys=True, default=str)),
            "disabled": sorted(config.disabled)}


def reusable(directory: Path, model: Path, settings: dict[str, Any]) -> Report | None:
    """The report in ``directory`` when it is of ``model`` (same sha256) run with ``settings``; else None."""
    try:
        recorded = json.loads((directory / SETTINGS).read_text(encoding="utf-8"))
        report = Report.load(directory)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if recorded.get("sha256") != _sha256(model) or recorded.get("settings") != settings:
        return None
    if report.model.get("sha256") != recorded["sha256"]:
        return None
    return report


def resolve(path: str, role: str, out: Path, config, run: Callable, say: Callable[[str], None]) -> Side:
    """``path`` as a :class:`Side`: a report directory as it is, a model file run (or its report reused)."""
    p = Path(path)
    if is_report(p):
        report = load_report(p)
        return Side(report, p if p.is_dir() else p.parent)
    if not p.is_file():
        raise CompareError(f"the {role} {path!r} is neither a report directory (with report.json) nor a model file",
                           ExitCode.USAGE)
    directory = out / role
    settings = settings_of(config)
    report = reusable(directory, p, settings)
    if report is not None:
        say(f"{role}: reusing {directory} (same model sha256 and settings)")
        return Side(report, directory, model=p, reused=True)
    say(f"{role}: diagnosing {p}")
    outcome = run(dataclasses.replace(config, model_path=str(p), out_dir=directory))
    if outcome.report is None:
        raise CompareError(f"the {role} could not be diagnosed: {outcome.message}", outcome.exit_code)
    (directory / SETTINGS).write_text(json.dumps({"sha256": _sha256(p), "settings": settings}, sort_keys=True,
                                                 indent=2) + "\n", encoding="utf-8")
    return Side(Report.load(directory), directory, model=p)


def mismatch(a: Report, b: Report) -> list[str]:
    """What differs in how the two reports were run (each difference makes some items incomparable noise)."""
    out = []
    if a.seed != b.seed:
        out.append(f"seed {a.seed} vs {b.seed}")
    da, db = (a.data or {}).get("source"), (b.data or {}).get("source")
    if da != db:
        out.append(f"data {da!r} vs {db!r}")
    return out


def compare_sides(baseline: Side, candidate: Side, fail_on: str) -> Comparison:
    models = (str(baseline.model), str(candidate.model)) if baseline.model and candidate.model else None
    return compare(baseline.report, candidate.report, fail_on=fail_on, models=models)


def write(comparison: Comparison, out: Path) -> tuple[Path, Path]:
    """``compare.json`` and ``compare.html`` in ``out``, each written beside and renamed into place."""
    from ._html import render_compare_html

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in ((COMPARE_HTML, render_compare_html(comparison)), (COMPARE_JSON, comparison.to_json())):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
        written.append(out / name)
    return written[0], written[1]


def exit_code(comparison: Comparison, *sides: Side) -> ExitCode:
    """ANALYZER_FAILED when an analyzer of either side did not finish (the gate cannot vouch for it), else
    FINDINGS when something regressed at or above ``--fail-on``, else OK (the precedence of :class:`ExitCode`)."""
    if any(r.status.problem for s in sides for r in s.report.analyzers):
        return ExitCode.ANALYZER_FAILED
    return ExitCode(comparison.exit_code)
