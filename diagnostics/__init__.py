"""diagnostics: diagnose and explain Keras models.

The public API. Importing this package imports neither keras, tensorflow nor torch.
"""

from .analyzer import MODEL_KINDS, Analyzer, Context, Data, Finding, ModelInfo, Result, Severity
from .api import DiagnosisError, diagnose
from .exitcodes import ExitCode
from .hookspecs import HOOK_API_VERSION, hookimpl
from .loading import load_checked
from .report import AnalyzerRecord, Report

try:
    from importlib.metadata import version as _version

    __version__ = _version("diagnostics")
except Exception:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0+unknown"

__all__ = [
    "MODEL_KINDS", "Analyzer", "AnalyzerRecord", "Context", "Data", "DiagnosisError", "ExitCode", "Finding",
    "HOOK_API_VERSION", "ModelInfo", "Report", "Result", "Severity", "diagnose", "hookimpl",
]
