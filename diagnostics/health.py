"""Shared helpers of the health analyzers: thresholds, statistics, spectra, losses and probes.

numpy at module level; keras only inside the functions that need it. Public so that third-party
health analyzers judge with the same thresholds and statistics as the built-in ones.

Thresholds live in :mod:`diagnostics.thresholds` (re-exported here).
"""

from __future__ import annotations

import functools
import math
import weakref
from typing import Any, Mapping

import numpy as np

from .thresholds import (DEFAULT_THRESHOLDS, THRESHOLDS_OPTION, ThresholdError,  # noqa: F401  (public here too)
                         load_thresholds_file, thresholds)


# -- statistics ------------------------------------------------------------------------------------
def finite_or_none(x: Any) -> float | None:
    """A float for the report, or None when it is NaN/Inf (JSON has no NaN)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def bootstrap_diff_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``a`` minus mean of ``b`` and its percentile bootstrap interval (each resampled independently)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(a), (n_boot, len(a)))
    ib = rng.integers(0, len(b), (n_boot, len(b)))
    diffs = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    lo, hi = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve for scores where ``positive`` should score higher (ties count half)."""
    pos = np.asarray(positive, np.float64)
    neg = np.asarray(negative, np.float64)
    scores = np.concatenate([pos, neg])
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = len(pos), len(neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# -- losses, targets and inputs ----------------------------------------------------------------------
def per_sample_loss_fn(info, y_example=None):
    """A Keras loss object with ``reduction=None`` for the model: the compiled loss when the file had one,
    else the loss its output implies (softmax: sparse categorical cross-entropy; one sigmoid unit:
    binary cross-entropy; linear with integer labels: cross-entropy from logits; otherwise MSE).
    Returns ``(loss, description)``."""
    import keras

    desc = (getattr(info, "loss", None) or "").strip()
    low = desc.lower().replace("_", "")
    from_logits = "fromlogits=true" in low
    act = getattr(info, "output_activation", None)
    out_units = (info.output_shapes[0][-1] if info.output_shapes and info.output_shapes[0] else None) or 1
    if "sparsecategorical" in low or ("categoricalcrossentropy" in low and y_example is not None and _is_index_labels(y_example, out_units)):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=None), desc
    if "categoricalcrossentropy" in low:
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits, reduction=None), desc
    if "binarycrossentropy" in low or "binaryfocal" in low:
        return keras.losses.BinaryCrossentropy(from_logits=from_logits, reduction=None), desc
    if "meansquared" in low or low == "mse":
        return keras.losses.MeanSquaredError(reduction=None), desc
    if "meanabsolute" in low or low == "mae":
        return keras.losses.MeanAbsoluteError(reduction=None), desc
    if "huber" in low:
        return keras.losses.Huber(reduction=None), desc
    # No (known) compiled loss: what the output implies.
    if act == "softmax" and out_units > 1:
        return keras.losses.SparseCategoricalCrossentropy(reduction=None), "sparse categorical cross-entropy (implied by the softmax output)"
    if act == "sigmoid":
        return keras.losses.BinaryCrossentropy(reduction=None), "binary cross-entropy (implied by the sigmoid output)"
    if y_example is not None and out_units > 1 and _is_index_labels(y_example, out_units):
        return (keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None),
                "sparse categorical cross-entropy from logits (implied by the linear output and integer labels)")
    return keras.losses.MeanSquaredError(reduction=None), "mean squared error (no compiled loss; assumed)"


def _is_index_labels(y, units: int) -> bool:
    y = np.asarray(y)
    return (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and units > 1)) and np.issubdtype(y.dtype, np.integer)


def prepare_targets(loss, y: np.ndarray, out_units: int) -> np.ndarray:
    """Labels shaped and typed as ``loss`` expects them."""
    y = np.asarray(y)
    name = type(loss).__name__
    if name == "SparseCategoricalCrossentropy":
        return y.reshape(len(y)).astype(np.int32)
    if name == "CategoricalCrossentropy" and (y.ndim == 1 or y.shape[-1] == 1):
        return np.eye(out_units, dtype=np.float32)[y.reshape(-1).astype(int)]
    y = y.astype(np.float32)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    return y


def probabilities(out: np.ndarray, activation: str | None) -> np.ndarray | None:
    """Class probabilities (n, classes) from a classifier's output, or None for a non-classifier."""
    out = np.asarray(out, np.float64).reshape(len(out), -1)
    if activation == "softmax":
        return out
    if activation == "sigmoid" and out.shape[1] == 1:
        return np.concatenate([1 - out, out], axis=1)
    if activation in (None, "linear") and out.shape[1] > 1:
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return None


def subsample(n: int, k: int, seed: int) -> np.ndarray:
    """Indices of at most ``k`` of ``n`` samples, drawn with ``seed``, in ascending order."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, int(k), replace=False))


def synthetic_inputs(model, info, n: int, seed: int):
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
    from . import inputs as I
    from . import memory

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


def first_output_labels(y, info):
    """Labels of the model's first output: ``y`` itself, or its entry for the first output when labels are
    given per output (``y_val.<output name>``); None when the first output has none."""
    if not isinstance(y, dict):
        return y
    names = list(getattr(info, "output_names", None) or [])
    return y.get(names[0]) if names else None


def to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        return t.detach().cpu().numpy()
    if hasattr(t, "numpy"):
        return np.asarray(t.numpy())
    return np.asarray(t)


def activation_name(layer) -> str | None:
    """The name of a layer's activation: its ``activation`` attribute or, for ReLU/Activation layers, the op."""
    cls = type(layer).__name__
    if cls == "ReLU":
        return "relu"
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", None) or type(act).__name__.lower()


def flatten_layers(model) -> list:
    out = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and getattr(layer, "layers", None) and type(layer).__name__ in ("Functional", "Sequential", "Model"):
            out.extend(flatten_layers(layer))
        else:
            out.append(layer)
    return out


# -- training history ------------------------------------------------------------------------------
def training_series(history: Mapping[str, Any] | None, key: str) -> list[float | None] | None:
    """The per-epoch values of ``key`` (e.g. ``"health/grad_norm"``, recorded by
    :class:`diagnostics.callbacks.HealthCallback`) from a history, or None when it was not recorded."""
    if not history or key not in history:
        return None
    vals = [finite_or_none(v) for v in history[key]]
    return vals if any(v is not None for v in vals) else None


def development(values: list[float | None] | None, threshold: float | None = None, above: bool = True,
                fmt: str = ".3g", what: str = "it") -> str:
    """One sentence on how a recorded indicator developed during training ("" when not recorded)."""
    if not values:
        return ""
    epochs = [(i + 1, v) for i, v in enumerate(values) if v is not None]
    if not epochs:
        return ""
    (e0, v0), (e1, v1) = epochs[0], epochs[-1]
    text = f"during training {what} went from {v0:{fmt}} (epoch {e0}) to {v1:{fmt}} (epoch {e1})"
    if threshold is not None:
        crossed = next((e for e, v in epochs if (v >= threshold if above else v <= threshold)), None)
        if crossed is not None:
            text += f", first {'above' if above else 'below'} {threshold:{fmt}} at epoch {crossed}"
    return text


def logits_view(model, loss):
    """``(model, loss)`` to differentiate: for a cross-entropy loss on a Dense softmax/sigmoid output,
    a view of the model that stops at the output layer's logits (sharing its variables) with the same
    loss ``from_logits=True``; otherwise the arguments unchanged.

    Why: the loss computed from probabilities clips them to [eps, 1 - eps], and the clip's gradient is
    zero, so a saturated output (p = 1.0 in float32) reports a zero gradient where the true one is
    p - y. TensorFlow silently recovers the logits from the softmax op; torch cannot, so without this
    view the two backends disagree exactly when gradients explode.
    """
    import keras

    found = _logits_head(model, loss)
    if found is None:
        return model, loss
    head, logits_loss = found
    try:
        body = keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, head.input)
    except Exception:  # noqa: BLE001 - no symbolic graph (subclassed model)
        return model, loss
    return _logits_view_class()(body, head), logits_loss


def _logits_head(model, loss):
    """(the Dense softmax/sigmoid head, the loss from logits) when :func:`logits_view` applies, else None."""
    name = type(loss).__name__
    if name not in ("SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy"):
        return None
    config = loss.get_config()
    if config.get("from_logits") or config.get("label_smoothing"):
        return None
    outputs = list(getattr(model, "outputs", None) or [])
    layers = getattr(model, "layers", None) or []
    if len(outputs) != 1 or not layers:
        return None
    head = layers[-1]
    wants = "sigmoid" if name == "BinaryCrossentropy" else "softmax"
    made_by = getattr(outputs[0], "_keras_history", None)
    if type(head).__name__ != "Dense" or activation_name(head) != wants or made_by is None or made_by[0] is not head:
        return None
    return head, type(loss).from_config({**config, "from_logits": True})


@functools.lru_cache(maxsize=None)
def _logits_view_class():
    import keras

    class LogitsView(keras.Model):
        """``body`` then the head Dense layer's affine map, without its activation (shared variables)."""

        def __init__(self, body, head):
            super().__init__(name=f"{head.name}_logits_view")
            self.body = body
            self.head = head

        def call(self, x, training=False):
            z = keras.ops.matmul(self.body(x, training=training), self.head.kernel)
            return z + self.head.bias if self.head.use_bias else z

    return LogitsView


# -- the shared batch pass ---------------------------------------------------------------------------
def select_batch(context, max_samples: int):
    """The batch the health analyzers share: ``(x, y or None, description)``. Validation data when the
    run has some (at most ``max_samples``, drawn with the run's seed), else synthetic inputs. For several
    inputs ``x`` is a dict keyed by input name; ``y`` holds the first output's labels (the loss is taken
    on the first output)."""
    from . import inputs as I

    data = context.data
    if data is not None and data.x is not None:
        split = "validation" if data.x_val is not None else "training"
        idx = subsample(I.n_samples(data.x), max_samples, context.seed)
        y = first_output_labels(data.y, context.info)
        y = None if y is None else np.asarray(y)[idx]
        return I.take(data.x, idx), y, f"{len(idx)} {split} samples"
    n = int(max_samples)
    x = synthetic_inputs(context.model, context.info, n, context.seed)
    return x, None, f"{n} synthetic inputs drawn from the input spec (no data given: pass --data for real numbers)"


def unit_layers(model) -> tuple[list, list, list]:
    """(ReLU layers, [(sigmoid/tanh layer, activation)], LSTM layers) of a model, output layers excluded:
    a confident classifier's output is meant to saturate."""
    outputs = {getattr(o, "_keras_history", [None])[0] for o in (getattr(model, "outputs", None) or [])}
    relu, sat, lstm = [], [], []
    for layer in getattr(model, "layers", []):
        if layer in outputs:
            continue
        act = activation_name(layer)
        kind = type(layer).__name__
        if act == "relu" and kind not in ("LSTM", "GRU", "SimpleRNN"):
            relu.append(layer)
        elif act in ("sigmoid", "tanh") and kind not in ("LSTM", "GRU", "SimpleRNN"):
            sat.append((layer, act))
        if kind == "LSTM":
            lstm.append(layer)
    return relu, sat, lstm


_PASS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def health_pass(context, x, y, saturation_level: float = 0.99) -> dict[str, Any]:
    """One compiled forward+backward pass over a batch, shared by the health analyzers of a process.

    Differentiates the model's loss (see :func:`per_sample_loss_fn`, from the logits when
    :func:`logits_view` applies) with the backend's ``loss_gradients`` primitive, on a probe that also
    returns the model's outputs and, per ReLU / sigmoid / tanh layer, a per-unit reduction (the
    maximum over samples and positions; the count of saturated values). The result is cached for the model and
    this batch, so ``health.gradients``, ``health.units`` and ``health.overfitting`` pay for one pass.

    Returns ``{"loss_value", "loss", "loss_desc", "targets_from", "grads", "outputs", "units"}`` where
    ``outputs`` are the model's outputs (probabilities for a classifier) and ``units`` maps a layer
    name to ``{"activation", "units", "positions", "max" | "saturated", "finite"}``.
    """
    from . import inputs as I

    model, info = context.model, context.info
    key = (_digest(x), None if y is None else _digest(y), info.loss, float(saturation_level), context.backend)
    cached = _PASS_CACHE.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    from . import backends

    loss, loss_desc = per_sample_loss_fn(info, y)
    targets, targets_from = _targets(model, info, x, y, loss)
    relu, sat, _ = unit_layers(model)
    kinds = [("relu", l) for l in relu] + [(act, l) for l, act in sat]
    found = _logits_head(model, loss)
    head, pass_loss = found if found is not None else (None, loss)
    net = _probe(model, head, kinds, saturation_level)
    probed = net is not None
    if net is None:  # nothing to probe, or no symbolic graph: the logits view alone
        net, pass_loss = logits_view(model, loss)
        head = getattr(net, "head", None) if net is not model else None
    with np.errstate(all="ignore"):
        # several inputs: a list in the model's input order (the probe and logits view wrap the model)
        loss_value, grads, batches = backends.get(context.backend).loss_gradients(
            net, I.for_model(model, x), targets, pass_loss, return_outputs=True)
    first = np.concatenate([b[0] for b in batches]).astype(np.float64)
    outputs = first
    if head is not None:  # logits -> the model's own output activation
        outputs = _activate(first, info.output_activation)
    units = {}
    if probed:
        outputs_finite = bool(np.isfinite(first).all())
        for i, (kind, layer) in enumerate(kinds):
            stat = np.stack([b[1 + i] for b in batches])
            shape = [d for d in layer.output.shape[1:-1]]
            n_x = _n(x)
            positions = n_x * int(np.prod([d or 1 for d in shape])) if shape else n_x
            entry = {"activation": kind, "units": int(layer.output.shape[-1]), "positions": positions}
            if kind == "relu":
                entry["max"] = np.max(stat, axis=0)
                entry["finite"] = outputs_finite and bool(np.isfinite(entry["max"]).all())
            else:
                entry["saturated"] = np.sum(stat, axis=0)
                entry["finite"] = outputs_finite
            units[layer.name] = entry
    result = {"loss_value": loss_value, "loss": loss, "loss_desc": loss_desc, "targets_from": targets_from,
              "grads": grads, "outputs": outputs, "units": units, "probed": probed}
    _PASS_CACHE[model] = (key, result)
    return result


def _n(x) -> int:
    from . import inputs as I

    return I.n_samples(x)


def _digest(a) -> str:
    import hashlib

    from . import inputs as I

    h = hashlib.blake2b(digest_size=16)
    for name, leaf in (sorted(a.items()) if isinstance(a, dict) else enumerate(I.leaves(a))):
        leaf = np.ascontiguousarray(leaf)
        h.update(str(name).encode() + leaf.tobytes() + str((leaf.shape, leaf.dtype)).encode())
    return h.hexdigest()


def _activate(z: np.ndarray, activation: str | None) -> np.ndarray:
    with np.errstate(all="ignore"):
        if activation == "softmax":
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        if activation == "sigmoid":
            return 1.0 / (1.0 + np.exp(-z))
    return z


def loss_and_targets(context, x, y):
    """The model's per-sample loss and the targets to differentiate it against, on a batch:
    ``(loss, description, targets, targets_from)``, as :func:`health_pass` takes them.

    The loss is the compiled one, else the one the output implies (see :func:`per_sample_loss_fn`);
    the targets are the labels ``y`` shaped for it, else the model's own predictions, and
    ``targets_from`` says which, for the report. Pass ``(model, loss)`` through :func:`logits_view`
    before differentiating, so a saturated output does not report a zero gradient."""
    loss, desc = per_sample_loss_fn(context.info, y)
    targets, targets_from = _targets(context.model, context.info, x, y, loss)
    return loss, desc, targets, targets_from


def _targets(model, info, x, y, loss):
    """Targets for the loss: the data's labels, else the model's own predictions (said in the report)."""
    units = (info.output_shapes[0][-1] if info.output_shapes else None) or 1
    if y is not None:
        return prepare_targets(loss, y, units), "labels"
    out = forward(model, x)
    name = type(loss).__name__
    if name in ("SparseCategoricalCrossentropy", "CategoricalCrossentropy"):
        pred = np.nan_to_num(out.reshape(len(out), -1)).argmax(axis=1)
        return prepare_targets(loss, pred, units), "the model's own predicted classes"
    if name == "BinaryCrossentropy":
        cut = 0.0 if loss.get_config().get("from_logits") else 0.5
        return (np.nan_to_num(out) >= cut).astype(np.float32).reshape(len(out), -1), "the model's own predicted classes"
    return np.nan_to_num(out).astype(np.float32), "the model's own outputs (zero-loss reference)"


def _probe(model, head, kinds, level):
    """A model returning [loss input (``head``'s logits, or the output), then one per-unit statistic per
    probed layer], or None when there is nothing to probe or no symbolic graph."""
    if not kinds:
        return None
    import keras

    try:
        first = head.input if head is not None else model.outputs[0]
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        body = keras.Model(inputs, [first, *[layer.output for _, layer in kinds]])
    except Exception:  # noqa: BLE001 - subclassed models have no symbolic graph: gradients only
        return None
    return _probe_class()(body, head, [k for k, _ in kinds], level)


@functools.lru_cache(maxsize=None)
def _probe_class():
    import keras
    from keras import ops

    class HealthProbe(keras.Model):
        """``body``'s outputs reduced per unit inside the compiled pass, so only (units,) vectors leave it."""

        def __init__(self, body, head, kinds, level):
            super().__init__(name="health_probe")
            self.body = body
            self.head = head
            self.kinds = list(kinds)
            self.level = float(level)

        def call(self, x, training=False):
            outs = list(self.body(x, training=training))
            z = outs[0]
            if self.head is not None:
                z = ops.matmul(z, self.head.kernel)
                if self.head.use_bias:
                    z = z + self.head.bias
            result = [z]
            for kind, a in zip(self.kinds, outs[1:]):
                # One reduction per layer inside the compiled pass: conv activations are the bulk of the
                # memory traffic, so no extra elementwise passes (non-finite values show in the max).
                axes = tuple(range(len(a.shape) - 1))
                if kind == "relu":
                    result.append(ops.max(a, axis=axes))
                else:
                    s = ops.abs(a) if kind == "tanh" else ops.abs(2 * a - 1)
                    result.append(ops.sum(ops.cast(s >= self.level, "float32"), axis=axes))
            return result

    return HealthProbe
