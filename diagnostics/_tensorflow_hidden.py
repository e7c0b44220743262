"""Keras without TensorFlow in a process that runs another backend.

Keras 3 looks TensorFlow up whenever it is *installed*, whatever the backend: ``keras.utils.set_random_seed``
seeds it, and serialising a layer's config (``keras.models.clone_model``) checks for ``tf.TensorShape``.
Either imports all of TensorFlow — seconds, and ~0.3 GB — into a torch worker that never runs a TensorFlow
op. :func:`tensorflow_hidden` makes those lookups answer "not installed" for the duration; it does nothing
when TensorFlow is the backend or is already imported (a legacy ``.h5`` read through it).
"""

from __future__ import annotations

import contextlib
import importlib
import random
import sys


@contextlib.contextmanager
def tensorflow_hidden():
    """Within the block, Keras's optional TensorFlow lookups see no TensorFlow (see the module's docstring)."""
    import keras

    lazy = getattr(importlib.import_module("keras.src.utils.module_utils"), "tensorflow", None)
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules or not hasattr(lazy, "_available"):
        yield
        return
    saved, lazy._available = lazy._available, False
    try:
        yield
    finally:
        lazy._available = saved


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and Keras (its global seed generator and the backend's own generator), as
    ``keras.utils.set_random_seed`` does, without importing TensorFlow into a process that runs another
    backend. The worker calls it before every analyzer; analyzers that need a reproducible draw mid-run
    (the re-initialised clone of the randomisation check) call it too."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import keras
    except ImportError:  # pragma: no cover
        return
    with tensorflow_hidden():
        keras.utils.set_random_seed(seed)
