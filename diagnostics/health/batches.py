"""The batch the health checks share (validation data, else synthetic inputs drawn from the input
spec) and the model's batched inference-mode output on it."""

from __future__ import annotations

import numpy as np


def select_batch(context, max_samples: int):
    """The batch the health analyzers share: ``(x, y or None, description)``. Validation data when the
    run has some (at most ``max_samples``, drawn with the run's seed), else synthetic inputs. For several
    inputs ``x`` is a dict keyed by input name; ``y`` holds the first output's labels (the loss is taken
    on the first output)."""
    from .. import inputs as I

    data = context.data
    if data is not None and data.x is not None:
        split = "validation" if data.x_val is not None else "training"
        idx = subsample(I.n_samples(data.x), max_samples, context.seed)
        y = first_output_labels(data.y, context.info)
        y = None if y is None else np.asarray(y)[idx]
        return I.take(data.x, idx), y, f"{len(idx)} {split} samples"
    n = int(max_samples)
    x = _synthetic_inputs(context.model, context.info, n, context.seed)
    return x, None, f"{n} synthetic inputs drawn from the input spec (no data given: pass --data for real numbers)"


def subsample(n: int, k: int, seed: int) -> np.ndarray:
    """Indices of at most ``k`` of ``n`` samples, drawn with ``seed``, in ascending order."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, int(k), replace=False))


def first_output_labels(y, info):
    """Labels of the model's first output: ``y`` itself, or its entry for the first output when labels are
    given per output (``y_val.<output name>``); None when the first output has none."""
    if not isinstance(y, dict):
        return y
    names = list(getattr(info, "output_names", None) or [])
    return y.get(names[0]) if names else None


def _synthetic_inputs(model, info, n: int, seed: int):
    """Inputs drawn from the input spec when no data is given: integer inputs uniform over the first
    embedding's vocabulary, float images uniform in [0, 1], other floats standard normal. A model with
    several inputs gets a dict keyed by input name, each drawn from its own spec."""
    rng = np.random.default_rng(seed)
    names = list(getattr(info, "input_names", None) or [])
    if len(info.input_shapes) > 1 and len(names) == len(info.input_shapes):
        return {name: _draw(model, info, rng, shape, dtype, n)
                for name, shape, dtype in zip(names, info.input_shapes, info.input_dtypes)}
    return _draw(model, info, rng, info.input_shapes[0], info.input_dtypes[0], n)


def _draw(model, info, rng, spec, dtype: str, n: int) -> np.ndarray:
    shape = [d if d is not None else 1 for d in spec[1:]]
    if dtype.startswith(("int", "uint")):
        vocab = 2
        for layer in model.layers:
            v = getattr(layer, "input_dim", None) or getattr(getattr(layer, "token_embeddings", None), "input_dim", None)
            if v:
                vocab = int(v)
                break
        return rng.integers(1 if vocab > 1 else 0, vocab, size=(n, *shape)).astype(np.int32)
    if info.kind == "image" and len(spec) == 4:
        return rng.uniform(0, 1, size=(n, *shape)).astype(np.float32)
    return rng.standard_normal((n, *shape)).astype(np.float32)


def forward(model, x, batch_size: int = 512) -> np.ndarray:
    """The model's (first) output on ``x`` (inference mode), in batches that fit the worker's memory
    (halved on out-of-memory), as float64 numpy. ``x`` may be a dict or list of arrays (several inputs)."""
    from .. import inputs as I
    from .. import memory

    x = I.for_model(model, x)
    n = I.n_samples(x)

    def call(xb):
        out = model(xb, training=False)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return to_numpy(out)

    size = memory.plan(model, min(batch_size, n), lambda k: call(I.repeat_first(x, k)), backward=False)
    outs = memory.run_batched(model, n, size, lambda a, b, _: call(I.slice_(x, a, b)), backward=False)
    return np.concatenate(outs).astype(np.float64)


def to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        return t.detach().cpu().numpy()
    if hasattr(t, "numpy"):
        return np.asarray(t.numpy())
    return np.asarray(t)
