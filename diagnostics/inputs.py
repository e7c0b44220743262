"""Model inputs as the analyzers handle them: one array, or several (a dict keyed by input name, or a
list in the model's input order) for a multi-input model. Every helper here works on either, so code
that slices, subsamples or pads a batch need not care how many inputs the model has.

Data files give several inputs as ``x_val.<input name>`` keys (see :mod:`diagnostics._data`), which
become a dict; :func:`for_model` turns a dict into the list, in ``model.inputs`` order, that any
Keras model accepts.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def is_multi(x: Any) -> bool:
    return isinstance(x, (dict, list, tuple))


def leaves(x: Any) -> list:
    if isinstance(x, dict):
        return [x[k] for k in x]
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def map_(fn: Callable[[Any], Any], x: Any) -> Any:
    if isinstance(x, dict):
        return {k: fn(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [fn(v) for v in x]
    return fn(x)


def n_samples(x: Any) -> int:
    sizes = {len(a) for a in leaves(x)}
    if len(sizes) != 1:
        raise ValueError(f"the inputs hold different numbers of samples: {sorted(sizes)}")
    return sizes.pop()


def take(x: Any, idx) -> Any:
    return map_(lambda a: np.asarray(a)[idx], x)


def slice_(x: Any, start: int, stop: int) -> Any:
    return map_(lambda a: a[start:stop], x)


def pad_to(x: Any, size: int) -> Any:
    """``x`` with its last sample repeated up to ``size`` samples."""
    def pad(a):
        a = np.asarray(a)
        return a if len(a) >= size else np.concatenate([a, np.repeat(a[-1:], size - len(a), axis=0)])

    return map_(pad, x)


def repeat_first(x: Any, k: int) -> Any:
    return map_(lambda a: np.repeat(np.asarray(a)[:1], k, axis=0), x)


def concat(parts: list) -> Any:
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    if isinstance(first, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return [np.concatenate([p[i] for p in parts]) for i in range(len(first))]
    return np.concatenate(parts)


def input_names(model) -> list[str]:
    return [str(getattr(t, "name", f"input_{i}")) for i, t in enumerate(getattr(model, "inputs", None) or [])]


def output_names(model) -> list[str]:
    """The names of a functional model's outputs: the layers that produce them."""
    names = []
    for i, t in enumerate(getattr(model, "outputs", None) or []):
        history = getattr(t, "_keras_history", None)
        layer = history[0] if history else None
        names.append(str(getattr(layer, "name", None) or getattr(t, "name", f"output_{i}")))
    return names


def for_model(model, x: Any) -> Any:
    """What to call ``model`` with: a single array as it is; a dict keyed by input name as a list in
    ``model.inputs`` order (a missing or unknown name raises ``KeyError`` naming both sets)."""
    if isinstance(x, dict):
        names = input_names(model)
        if set(names) != set(x):
            raise KeyError(f"the inputs are named {sorted(x)}; the model's are {names}")
        return [x[n] for n in names]
    if isinstance(x, tuple):
        return list(x)
    return x
