"""The loss the health checks differentiate: the model's per-sample loss, its targets, and the view of
the model that takes cross-entropy from the logits."""

from __future__ import annotations

import functools

import numpy as np

from .batches import forward
from .layers import activation_name


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
