"""Named datasets, generated once per machine.

A dataset plugin's loader (``register_datasets``) may import scikit-learn (~1.5 s) or build its arrays
from scratch on every run; :func:`load` runs it on the first use of a (dataset, seed) and keeps the
arrays as an ``.npz`` in the user's cache, which later runs read in milliseconds. The cache key covers the
loader's source file and this package's version, so editing a generator regenerates its data. The cached
file is read as any data file is (no pickled objects); one that cannot be read is generated again.

``DIAGNOSTICS_CACHE_DIR`` moves the cache (default ``$XDG_CACHE_HOME/keras-diagnostics`` or
``~/.cache/keras-diagnostics``); ``DIAGNOSTICS_CACHE_DIR=off`` turns it off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .analyzer import Data


def cache_root() -> Path | None:
    """This package's cache (generated datasets, compiled kernels of the libraries it drives), or None
    when ``DIAGNOSTICS_CACHE_DIR=off``."""
    where = os.environ.get("DIAGNOSTICS_CACHE_DIR")
    if where is not None:
        return None if where.strip().lower() in ("", "off", "0", "none") else Path(where)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keras-diagnostics"


def cache_dir() -> Path | None:
    """Where generated datasets are kept, or None when the cache is off."""
    root = cache_root()
    return None if root is None else root / "datasets"


def load(name: str, seed: int, loader: Callable[[int], Any]) -> Data:
    """The dataset ``name`` for ``seed``: from the cache when a current copy is there, else from
    ``loader(seed)`` (and then kept, when its arrays are plain numbers or strings)."""
    from ._data import DataRefused, from_arrays, load_file, save_npz

    source = f"dataset {name} (seed {seed})"
    path = _path(name, seed, loader)
    if path is not None and path.is_file():
        try:
            return dataclasses.replace(load_file(path), source=source)
        except DataRefused:
            pass  # unreadable (a partial copy, an edit): generate it again
    data = from_arrays(loader(seed), source=source)
    if path is not None and _plain(data):
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".partial.npz")  # np.savez wants .npz
            os.close(fd)
            save_npz(data, Path(tmp))
            os.replace(tmp, path)  # whole or not at all
            tmp = None
        except OSError:
            pass  # a read-only home: no cache, same data
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
    return data


def _path(name: str, seed: int, loader: Callable[[int], Any]) -> Path | None:
    where = cache_dir()
    if where is None:
        return None
    try:
        code = Path(inspect.getsourcefile(loader) or "").read_bytes()
    except (TypeError, OSError):  # a loader without a source file cannot be keyed: no cache
        return None
    from . import __version__

    key = hashlib.sha256(b"\0".join([name.encode(), str(int(seed)).encode(), __version__.encode(),
                                     getattr(loader, "__qualname__", "").encode(), code])).hexdigest()[:20]
    return where / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{int(seed)}-{key}.npz"


def _plain(data: Data) -> bool:
    arrays = [getattr(data, k) for k in ("x_train", "y_train", "x_val", "y_val")] + list(data.extras.values())
    flat = [a for v in arrays if v is not None for a in (v.values() if isinstance(v, dict) else [v])]
    return all(isinstance(a, np.ndarray) and a.dtype != object for a in flat)
