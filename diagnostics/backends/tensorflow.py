"""TensorFlow primitives: ``tf.function`` + ``GradientTape``, compiled once per model and batch shape."""

from __future__ import annotations

import weakref

import numpy as np

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _compiled(model):
    import tensorflow as tf

    fns = _CACHE.get(model)
    if fns is None:
        @tf.function(reduce_retracing=True)
        def grad_fn(x, targets):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = model(x, training=False)
                if isinstance(out, (list, tuple)):
                    out = out[0]
                out = tf.reshape(out, (tf.shape(out)[0], -1))
                picked = tf.gather(out, targets, axis=1, batch_dims=1)
            return picked, tape.gradient(picked, x)

        fns = _CACHE[model] = {"grad": grad_fn}
    return fns


def input_gradients(model, x, targets, batch_size: int = 1024):
    """See :mod:`diagnostics.backends`. Batches are padded to one shape so the function traces once."""
    import tensorflow as tf

    x = np.asarray(x)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    n = len(x)
    fn = _compiled(model)["grad"]
    dtype = tf.int32 if np.issubdtype(x.dtype, np.integer) else tf.float32
    values, grads = [], []
    size = min(batch_size, n)
    for start in range(0, n, size):
        xb, tb = x[start:start + size], targets[start:start + size]
        pad = size - len(xb)
        if pad:
            xb = np.concatenate([xb, np.repeat(xb[-1:], pad, axis=0)])
            tb = np.concatenate([tb, np.repeat(tb[-1:], pad)])
        v, g = fn(tf.convert_to_tensor(xb, dtype=dtype), tf.convert_to_tensor(tb))
        values.append(v.numpy()[: size - pad])
        grads.append(None if g is None else g.numpy()[: size - pad])
    if any(g is None for g in grads):
        raise TypeError("the model's output has no gradient with respect to its input (integer token inputs?): "
                        "differentiate with respect to an embedding instead")
    return np.concatenate(values), np.concatenate(grads)


def loss_gradients(model, x, y, loss_fn):
    import tensorflow as tf

    x = tf.convert_to_tensor(np.asarray(x))
    y = tf.convert_to_tensor(np.asarray(y))
    variables = list(model.trainable_variables)
    with tf.GradientTape() as tape:
        out = model(x, training=False)
        loss = tf.reduce_mean(loss_fn(y, out))
    grads = tape.gradient(loss, variables)
    return float(loss.numpy()), {v.path: (np.zeros(v.shape, np.float32) if g is None else np.asarray(g))
                                 for v, g in zip(variables, grads)}
