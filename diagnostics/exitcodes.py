"""Exit codes of the ``diagnose`` command, documented in the README."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What the process exit status of ``diagnose`` means.

    Precedence when several apply to one run: INTERRUPTED, then ANALYZER_FAILED, then FINDINGS.
    A failed analyzer outranks findings because the verdict it leaves is incomplete.
    """

    OK = 0  #: every analyzer ran or was skipped for a stated reason; no finding at or above --fail-on
    FINDINGS = 1  #: at least one finding at or above --fail-on
    USAGE = 2  #: bad command line, unknown analyzer name, an unwritable output directory or output file
    ANALYZER_FAILED = 3  #: an analyzer or plugin raised, timed out, crashed, returned garbage or failed to load
    MODEL_REFUSED = 4  #: the model file was refused by the pre-scan or could not be loaded safely
    DATA_REFUSED = 5  #: the data file is unreadable or does not fit the model
    PLUGIN_ERROR = 6  #: --strict-plugins and a plugin misbehaved: the run was stopped
    INTERNAL_ERROR = 70  #: a bug in diagnostics itself (EX_SOFTWARE)
    INTERRUPTED = 130  #: Ctrl-C or SIGTERM; the previous report is left untouched
