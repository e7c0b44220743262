"""One compiled forward+backward pass over a batch, with per-unit activation statistics, shared (cached)
by the health analyzers of a process."""

from __future__ import annotations

import functools
import weakref
from typing import Any

import numpy as np

from .layers import unit_layers
from .losses import _logits_head, logits_view, loss_and_targets


_PASS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def health_pass(context, x, y, saturation_level: float = 0.99) -> dict[str, Any]:
    """One compiled forward+backward pass over a batch, shared by the health analyzers of a process.

    Differentiates the model's loss (see :func:`loss_and_targets`, from the logits when
    :func:`logits_view` applies) with the backend's ``loss_gradients`` primitive, on a probe that also
    returns the model's outputs and, per ReLU / sigmoid / tanh layer, a per-unit reduction (the
    maximum over samples and positions; the count of saturated values). The result is cached for the model and
    this batch, so ``health.gradients``, ``health.units`` and ``health.overfitting`` pay for one pass.

    Returns ``{"loss_value", "loss", "loss_desc", "targets_from", "grads", "outputs", "units"}`` where
    ``outputs`` are the model's outputs (probabilities for a classifier) and ``units`` maps a layer
    name to ``{"activation", "units", "positions", "max" | "saturated", "finite"}``.
    """
    from .. import inputs as I

    model, info = context.model, context.info
    key = (_digest(x), None if y is None else _digest(y), info.loss, float(saturation_level), context.backend)
    cached = _PASS_CACHE.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    from .. import backends

    loss, loss_desc, targets, targets_from = loss_and_targets(context, x, y)
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
    from .. import inputs as I

    return I.n_samples(x)


def _digest(a) -> str:
    import hashlib

    from .. import inputs as I

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
