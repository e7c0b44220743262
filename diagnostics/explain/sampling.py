"""What the explanation analyzers explain: the samples (the same ones for the same seed, so maps from
different analyzers and backends compare sample by sample), the output unit and sign per sample, the
model's batched predictions, and the ``failed`` result when those predictions are not finite."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Targets:
    """What to explain per sample: output unit ``index`` and a ``sign`` (+1, or -1 to explain
    "not this unit", used for class 0 of a one-unit sigmoid, whose probability is 1 - p)."""

    index: np.ndarray
    sign: np.ndarray
    description: str


def select_targets(predictions: np.ndarray, target: Any = None, activation: str | None = None) -> Targets:
    """Targets from the model's ``predictions`` (n, units): the predicted class by default.

    ``target`` (``--target``) is a class index. One-unit outputs: a sigmoid is a binary classifier
    (unit 0 is p(class 1); class 0 is explained as -p, which has the same attributions negated,
    since attributions of 1 - p are those of -p); anything else is a regression output, explained as is.
    """
    p = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    n, units = p.shape
    if units == 1:
        binary = activation == "sigmoid"
        if target is None:
            cls = (p[:, 0] >= 0.5).astype(int) if binary else np.ones(n, int)
            desc = "predicted class (sigmoid: p>=0.5 is class 1)" if binary else "the regression output"
        else:
            t = _as_class(target, 2 if binary else 1, "a one-unit sigmoid output has classes 0 and 1" if binary
                          else "a one-unit regression output has only output 0")
            cls = np.full(n, t if binary else 1, int)
            desc = f"class {t}" if binary else "the regression output"
        sign = np.where(cls == 1, 1.0, -1.0) if binary else np.ones(n)
        return Targets(np.zeros(n, np.int64), sign, desc)
    if target is None:
        return Targets(p.argmax(1).astype(np.int64), np.ones(n), "predicted class")
    t = _as_class(target, units, f"the output has {units} classes (0..{units - 1})")
    return Targets(np.full(n, t, np.int64), np.ones(n), f"class {t}")


def sample_order(n_total: int, seed: int) -> np.ndarray:
    """The order in which the explanation analyzers take samples: a permutation of the evaluation rows
    drawn from the seed. Every analyzer explains a prefix of it (longer while its checks are undecided,
    :mod:`diagnostics._intervals`), so two analyzers, or two methods, share their first samples."""
    return np.random.default_rng(seed).permutation(int(n_total))


def select_samples(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` sample indices drawn from the seed (sorted), the same for the same seed: what an analyzer
    that audits a fixed number of samples takes (the shortcut analyzer). The explanation pipeline takes
    prefixes of :func:`sample_order` instead, since it may audit more samples as it goes."""
    n = min(int(n), int(n_total))
    return np.sort(np.random.default_rng(seed).choice(int(n_total), size=n, replace=False))


def _as_class(target: Any, units: int, why: str) -> int:
    try:
        t = int(target)
    except (TypeError, ValueError):
        raise ValueError(f"--target must be a class index: {why}; got {target!r}") from None
    if not 0 <= t < max(units, 1):
        raise ValueError(f"--target {t} is out of range: {why}")
    return t


def nonfinite_predictions(predictions: np.ndarray, code: str):
    """A ``failed`` Result when any explained sample's prediction is NaN/Inf (there is nothing to
    explain), else None. ``code`` is the analyzer's finding code, e.g. ``"explain.lime.failed"``."""
    from ..analyzer import Finding, Result, Severity

    flat = np.asarray(predictions).reshape(len(predictions), -1)
    bad = int(np.sum(~np.all(np.isfinite(flat), axis=1)))
    if not bad:
        return None
    return Result(findings=[Finding(code, Severity.WARNING, where="predictions",
                                    message=f"the model's outputs are NaN or Inf for {bad} of {len(flat)} explained "
                                            f"samples: there is nothing to explain — fix the model first (see the "
                                            f"weights and health findings)")],
                  metrics={"verdict": "failed", "nonfinite_predictions": bad})


def predict_batched(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``model`` outputs for ``x`` as ``(n, units)``, through ``predict_on_batch`` in fixed-size chunks.

    The last chunk is padded to the same size, so the compiled predict function traces once
    (a ``model.predict`` call costs ~120 ms whatever the batch; a compiled call a few ms).
    The chunk size is capped to fit the worker's memory and halved on out-of-memory (diagnostics.memory).
    """
    from .. import memory

    n = len(x)
    size = memory.plan(model, max(1, min(int(batch_size), n)),
                       lambda k: model.predict_on_batch(np.repeat(x[:1], k, axis=0)), backward=False)

    def step(s, e, size):
        xb = x[s:e]
        pad = size - len(xb)
        if pad:
            xb = np.concatenate([xb, np.repeat(xb[-1:], pad, axis=0)])
        return np.asarray(model.predict_on_batch(xb)).reshape(size, -1)[: size - pad]

    return np.concatenate(memory.run_batched(model, n, size, step, backward=False))
