"""Training-time health: a Keras callback that records gradient and overfitting indicators per epoch.

Usage::

    from diagnostics.callbacks import HealthCallback

    history = model.fit(x, y, validation_data=(xv, yv), epochs=20,
                        callbacks=[HealthCallback(x[:256], y[:256], validation=(xv[:256], yv[:256]))])
    diagnostics.diagnose(model, data, history=history)   # the health analyzers report how it developed

At the end of every ``every``-th epoch it adds to the epoch's logs (so Keras' ``History``, a
``CSVLogger`` and TensorBoard all record them) under the ``health/`` prefix:

- ``health/grad_norm``: global norm of the loss gradient on the fixed batch, and
  ``health/grad_norm/<layer>`` per layer;
- ``health/first_last_ratio``: first/last layer kernel-gradient norm ratio (vanishing gradients);
- ``health/dead/<layer>``: share of a ReLU layer's units that never activate on the batch, and
  ``health/dead_max`` the worst layer's; ``health/saturated/<layer>`` for sigmoid/tanh layers;
- ``health/membership_auc``: how well per-sample loss separates the training batch from the
  validation batch (0.5 = no memorisation), when ``validation`` is given.

It uses the same compiled gradient primitive as the ``health.gradients`` analyzer
(:mod:`diagnostics.backends`) and leaves the weights untouched. Cost per recorded epoch: one
forward+backward and one forward pass over the batch (plus one forward of the validation batch).
"""

from __future__ import annotations

import math

import keras
import numpy as np

PREFIX = "health/"
#: Compiled-loss names mapped to their classes, so the logits view can apply to them.
_LOSS_CLASSES = {"sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
                 "categorical_crossentropy": "CategoricalCrossentropy", "binary_crossentropy": "BinaryCrossentropy"}


class HealthCallback(keras.callbacks.Callback):
    """Record gradient health, unit activity and memorisation on a fixed batch after each epoch.

    Args:
        x, y: a fixed training batch (a few hundred samples is plenty).
        validation: optional ``(x_val, y_val)`` batch for the membership-inference AUC.
        every: record after the first epoch and every ``every``-th; the others log NaN, so the
            History keeps one value per epoch.
        loss: the loss to differentiate; default: the model's compiled loss.
    """

    def __init__(self, x, y, validation=None, every: int = 1, loss=None):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.x = np.asarray(x)
        self.y = np.asarray(y)
        if len(self.x) != len(self.y):
            raise ValueError(f"x and y must have the same length, got {len(self.x)} and {len(self.y)}")
        self.validation = None if validation is None else (np.asarray(validation[0]), np.asarray(validation[1]))
        self.every = int(every)
        self.loss = loss
        self._probe = None
        self._probe_layers: list[tuple[str, str]] = []
        self._loss_fn = None
        self._grad_model = None
        self._grad_loss = None
        self.records: list[dict[str, float]] = []

    # -- set-up --------------------------------------------------------------------------------
    def _setup(self) -> None:
        model = self.model
        loss = self.loss if self.loss is not None else getattr(model, "loss", None)
        if loss is None:
            raise ValueError("HealthCallback needs a loss: compile the model first or pass loss=")
        if isinstance(loss, str) and loss in _LOSS_CLASSES:
            loss = getattr(keras.losses, _LOSS_CLASSES[loss])()
        self._loss_fn = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
        from .health import logits_view
        from .health.layers import activation_name

        # Differentiate cross-entropy from the logits (see diagnostics.health.logits_view): through
        # clipped probabilities a saturated output reports a zero gradient under torch.
        self._grad_model, self._grad_loss = logits_view(model, self._loss_fn) if isinstance(self._loss_fn, keras.losses.Loss) \
            else (model, self._loss_fn)

        outputs = {getattr(o, "_keras_history", [None])[0] for o in (model.outputs or [])}
        tensors = []
        for layer in model.layers:
            act = activation_name(layer)
            if layer in outputs or act not in ("relu", "sigmoid", "tanh") or type(layer).__name__ in ("LSTM", "GRU", "SimpleRNN"):
                continue
            tensors.append(layer.output)
            self._probe_layers.append((layer.name, act))
        if tensors:
            try:
                self._probe = keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, tensors)
            except Exception:  # noqa: BLE001 - subclassed models: gradients only
                self._probe, self._probe_layers = None, []

    def on_train_begin(self, logs=None):
        self._setup()

    # -- per epoch -------------------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if epoch and (epoch + 1) % self.every:
            # Skipped epochs log NaN for every indicator, so the History's columns stay one per epoch.
            if self.records:
                logs.update({k: float("nan") for k in self.records[-1] if k != "epoch"})
            return
        record = self.measure()
        self.records.append({"epoch": epoch + 1, **record})
        logs.update(record)

    def measure(self) -> dict[str, float]:
        """The indicators on the fixed batch, now (also usable outside ``fit``)."""
        if self._loss_fn is None:
            self._setup()
        from . import backends
        from .health import to_numpy
        from .health.stats import auc

        out: dict[str, float] = {}
        model = self.model
        with np.errstate(all="ignore"):
            _, grads = backends.get().loss_gradients(self._grad_model, self.x, self.y, self._grad_loss)
            kernel_norms = []
            total = 0.0
            for layer in model.layers:
                gs = [grads[v.path].astype(np.float64) for v in layer.trainable_weights if v.path in grads]
                if not gs:
                    continue
                sq = float(sum(np.sum(g * g) for g in gs))
                total += sq
                out[f"{PREFIX}grad_norm/{layer.name}"] = math.sqrt(sq)
                ks = [grads[v.path].astype(np.float64) for v in layer.trainable_weights if v.path in grads and v.name == "kernel"]
                if ks:
                    kernel_norms.append(math.sqrt(float(sum(np.sum(k * k) for k in ks))))
            out[f"{PREFIX}grad_norm"] = math.sqrt(total)
            if len(kernel_norms) >= 2 and kernel_norms[-1] > 0:
                out[f"{PREFIX}first_last_ratio"] = kernel_norms[0] / kernel_norms[-1]
            if self._probe is not None:
                acts = self._probe(self.x, training=False)
                acts = acts if isinstance(acts, (list, tuple)) else [acts]
                dead = []
                for (name, act), a in zip(self._probe_layers, acts):
                    a = to_numpy(a)
                    if act == "relu":
                        frac = float(np.mean(np.nan_to_num(a.reshape(-1, a.shape[-1])).max(axis=0) <= 0))
                        out[f"{PREFIX}dead/{name}"] = frac
                        dead.append(frac)
                    else:
                        s = np.abs(a) if act == "tanh" else np.abs(2 * a - 1)
                        out[f"{PREFIX}saturated/{name}"] = float(np.mean(s >= 0.99))
                if dead:
                    out[f"{PREFIX}dead_max"] = max(dead)
            if self.validation is not None:
                lt = self._per_sample_loss(self.x, self.y)
                lv = self._per_sample_loss(*self.validation)
                if np.isfinite(lt).all() and np.isfinite(lv).all():
                    out[f"{PREFIX}membership_auc"] = auc(-lt, -lv)
        return {k: float(v) for k, v in out.items()}

    def _per_sample_loss(self, x, y) -> np.ndarray:
        from .health import to_numpy

        pred = self.model(x, training=False)
        fn = self._loss_fn
        if isinstance(fn, keras.losses.Loss):
            fn = type(fn).from_config({**fn.get_config(), "reduction": None})
        values = to_numpy(fn(y, pred)).astype(np.float64)
        return values.reshape(len(x), -1).mean(axis=1)
