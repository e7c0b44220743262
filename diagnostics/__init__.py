"""diagnostics: diagnose and explain Keras models.

The public API. Importing this package imports neither keras, tensorflow nor torch (the
explanation pipeline, :mod:`diagnostics.explainers`, loads on first use of its names).
"""

from .analyzer import MODEL_KINDS, Analyzer, Context, Data, Finding, ModelInfo, Option, Result, Severity
from .api import DiagnosisError, diagnose
from ._exitcodes import ExitCode
from ._hookspecs import HOOK_API_VERSION, hookimpl
from .loading import load_checked
from ._measures import Direction, HealthAnalyzer, Measure, MeasureSection, Measurements, Scope, Value
from .report import AnalyzerRecord, Report, Status
from ._verdicts import Check, MethodExplanation, Outcome, Verdict

try:
    from importlib.metadata import version as _version

    __version__ = _version("diagnostics")
except Exception:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0+unknown"

#: Names served lazily from :mod:`diagnostics.explainers`, :mod:`diagnostics.explain` (numpy) and
#: :mod:`diagnostics._tensorflow_hidden` (imports keras when called).
_LAZY = {"Explainer": "explainers", "ExplanationAnalyzer": "explainers", "ModelView": "explainers",
         "refine_unconverged": "explainers", "seed_everything": "_tensorflow_hidden",
         "predict_batched": "explain", "select_targets": "explain", "select_samples": "explain"}

__all__ = [
    "MODEL_KINDS", "Analyzer", "AnalyzerRecord", "Check", "Context", "Data", "DiagnosisError", "Direction", "ExitCode",
    "Explainer", "ExplanationAnalyzer", "Finding", "HOOK_API_VERSION", "HealthAnalyzer", "Measure", "MeasureSection",
    "Measurements", "MethodExplanation", "ModelInfo", "ModelView", "Option", "Outcome", "Report", "Result", "Scope",
    "Severity", "Status", "Value", "Verdict", "diagnose", "hookimpl", "load_checked", "predict_batched",
    "refine_unconverged", "seed_everything", "select_samples", "select_targets",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
