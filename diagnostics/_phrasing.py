"""Reasons in the caller's words: the CLI's flags for ``diagnose``, parameters for :func:`diagnostics.diagnose`.

A run says why an analyzer was skipped, failed or stopped, and what to change. The CLI user changes a
flag (``--data FILE.npz``); the notebook user changes an argument (``data=(x, y)``). The runner words
its own reasons through :func:`data_hint` and :func:`backend_refusal`; an analyzer (built-in or third
party) writes the CLI's words, the ones the plugin docs use, and :func:`for_caller` rewrites those
flags into the API's parameters when the caller is the Python API.
"""

from __future__ import annotations

import re

CLI = "cli"
API = "api"
CALLERS = (CLI, API)

_API_DATA = {
    "x": "data=x",
    "xy": "data=(x, y)",
    "train_val": "data={'x_train': ..., 'y_train': ..., 'x_val': ..., 'y_val': ...}",
}


def _check(caller: str) -> None:
    if caller not in CALLERS:
        raise ValueError(f"caller must be one of {CALLERS}, got {caller!r}")


def data_hint(need: str, caller: str) -> str:
    """How to give the data an analyzer needs (``need``: ``x``, ``xy`` or ``train_val``)."""
    _check(caller)
    return "--data FILE.npz" if caller == CLI else _API_DATA[need]


def backend_refusal(supported: tuple[str, ...] | list[str], running: str, caller: str) -> str:
    """Why an analyzer cannot run on the backend the run is pinned to.

    On the CLI the pin is ``--backend``. Through the API it is the in-memory model's own backend: Keras
    runs one backend per process, fixed by ``KERAS_BACKEND`` when keras is first imported, and a model
    built under TensorFlow is not a ``torch.nn.Module`` (what captum differentiates), nor the reverse.
    A model file has no such pin: each analyzer then runs in a worker process of a backend it supports.
    """
    _check(caller)
    if caller == CLI:
        return f"supports the {' and '.join(supported)} backend(s), not {running} (--backend)"
    return (f"runs on the {' or '.join(supported)} backend only, and this in-memory model is a {running} model "
            f"(Keras runs one backend per process, chosen by KERAS_BACKEND when keras is first imported): "
            f"set KERAS_BACKEND={supported[0]} before importing keras and build or load the model again, "
            f"or pass the model's file path, which runs each analyzer in a worker process of a backend it supports")


_DATA_WITH = re.compile(r"--data FILE\.npz with ((?:\w+, )*\w+)")
_DATA_FILE = re.compile(r"--data FILE\.npz\b")
_DATA = re.compile(r"--data\b")
_OPTION = re.compile(r"--option ([\w*-]+(?:\.[\w*-]+)*)\.(\w+)=([^\s),;]+)")
_TIMEOUT = re.compile(r"--timeout\b")


def for_caller(reason: str, caller: str) -> str:
    """``reason`` (written with the CLI's flags) in the caller's words.

    For the API: ``--data FILE.npz with x_train, y_train`` becomes ``data={'x_train': ..., 'y_train': ...}``,
    ``--data FILE.npz`` becomes ``data=(x, y) or a mapping of arrays``, ``--option health.gan.judge=FILE.keras`` becomes
    ``options={'health.gan': {'judge': 'FILE.keras'}}`` and ``--timeout`` becomes ``timeout_s=``.
    Anything else is left as written.
    """
    _check(caller)
    if caller == CLI or "--" not in reason:
        return reason
    reason = _DATA_WITH.sub(lambda m: "data={" + ", ".join(f"'{k}': ..." for k in m.group(1).split(", ")) + "}", reason)
    reason = _DATA_FILE.sub("data=(x, y) or a mapping of arrays", reason)
    reason = _DATA.sub("data=", reason)
    reason = _OPTION.sub(lambda m: f"options={{'{m.group(1)}': {{'{m.group(2)}': '{m.group(3)}'}}}}", reason)
    return _TIMEOUT.sub("timeout_s=", reason)
