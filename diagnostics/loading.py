"""Loading a pre-scanned model file with Keras. Imports keras, so it runs in worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .plugin_manager import resolve_object
from .safety import ModelRefused, _first_line


def load_checked(path: str | Path, *, custom_objects: Mapping[str, Any] = {}, trust: bool = False,
                 limits=None, expect_sha256: str | None = None):
    """The one safe way to load a model file: :func:`diagnostics.safety.scan`, then Keras.

    Every path that loads a file calls this (worker processes, companion models; a distributed or
    Keras 2 loader should too): the pre-scan with ``limits`` (a :class:`~diagnostics.limits.LoadLimits`),
    refusal of unknown classes and, without ``trust``, of code stored in the file; ``expect_sha256``
    refuses a file that changed since the parent process scanned it.
    """
    from .safety import require_safe, scan

    result = scan(path, limits=limits, registered=custom_objects)
    if expect_sha256 is not None and result.sha256 != expect_sha256:
        raise ModelRefused(f"{Path(path).name} changed between the pre-scan and loading: refused")
    require_safe(result, trust=trust)
    return load_model(path, custom_objects=custom_objects, trust=trust)


def load_model(path: str | Path, *, custom_objects: Mapping[str, Any] = {}, trust: bool = False):
    """``keras.saving.load_model(path, safe_mode=not trust, compile=False)`` with plugin custom objects.

    Errors become :class:`ModelRefused` with a one-line reason; an unknown custom class is named.
    """
    import keras

    objects = {name: resolve_object(obj) for name, obj in custom_objects.items()}
    try:
        return keras.saving.load_model(str(path), custom_objects=objects, compile=False, safe_mode=not trust)
    except Exception as e:  # noqa: BLE001 - keras raises many types for bad files
        text = _first_line(e)
        name = Path(path).name
        if "Could not locate class" in text or "Unknown layer" in text or "Could not locate" in text:
            raise ModelRefused(f"{name}: {text.split(' Make sure')[0]} — register it from a plugin's register_custom_objects hook") from None
        raise ModelRefused(f"{name} could not be loaded: {type(e).__name__}: {text}") from None


def weights_fingerprint(model) -> str:
    """A hash of every weight value, to detect an analyzer that changed the model."""
    import hashlib

    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    for w in model.weights:
        a = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
