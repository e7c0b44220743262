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


def _trace_any_batch(fn, args) -> None:
    """Trace ``fn`` once for any batch size (the leading dimension None) before its first call: the
    explanation methods call it with a few batch sizes (a method's samples x steps, the refinement rounds,
    the last batch), and ``reduce_retracing`` would trace the first size, then a relaxed one (0.1-0.5 s each)."""
    import tensorflow as tf

    if fn.experimental_get_tracing_count() == 0:
        fn.get_concrete_function(*tf.nest.map_structure(lambda t: tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype), args))


def _tensor(a):
    import tensorflow as tf

    a = np.asarray(a)
    return tf.convert_to_tensor(a, dtype=tf.int32 if np.issubdtype(a.dtype, np.integer) else tf.float32)


def input_gradients(model, x, targets, batch_size: int = 1024):
    """See :mod:`diagnostics.backends`. Batches are padded to one shape so the function traces once; their
    size is capped to fit the worker's memory (:func:`diagnostics.memory.plan`), halved on out-of-memory.
    ``x`` may be a dict or list of arrays for a multi-input model (gradients come back alike)."""
    import tensorflow as tf

    from .. import inputs as I
    from .. import memory

    x = I.map_(np.asarray, x)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    n = I.n_samples(x)
    fn = _compiled(model)["grad"]

    def call(xb, tb):
        args = (I.map_(_tensor, I.for_model(model, xb)), tf.convert_to_tensor(tb))
        _trace_any_batch(fn, args)
        return fn(*args)

    size = memory.plan(model, min(batch_size, n), lambda k: call(I.repeat_first(x, k), np.repeat(targets[:1], k)))

    def step(start, stop, size):
        k = stop - start
        v, g = call(I.pad_to(I.slice_(x, start, stop), size), np.concatenate([targets[start:stop], np.repeat(targets[stop - 1:stop], size - k)]))
        gs = list(g) if isinstance(g, (list, tuple)) else [g]
        if any(gi is None for gi in gs):
            raise TypeError("the model's output has no gradient with respect to its input (integer token inputs?): "
                            "differentiate with respect to an embedding instead")
        return v.numpy()[:k], [gi.numpy()[:k] for gi in gs]

    parts = memory.run_batched(model, n, size, step)
    values = np.concatenate([p[0] for p in parts])
    grads = [np.concatenate([p[1][i] for p in parts]) for i in range(len(parts[0][1]))]
    if not I.is_multi(x):
        return values, grads[0]
    if isinstance(x, dict):
        return values, dict(zip(x, grads))
    return values, grads


_LOSS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _loss_grad_fn(model, loss_fn):
    """One ``tf.function`` per (model, loss): forward in inference mode, mean loss, gradient of every
    trainable variable. Cached per model (weakly), traced once per batch shape."""
    import tensorflow as tf

    fns = _LOSS_CACHE.setdefault(model, {})
    key = id(loss_fn)
    entry = fns.get(key)
    if entry is None or entry[0] is not loss_fn:
        variables = list(model.trainable_variables)

        @tf.function(reduce_retracing=True)
        def fn(x, y):
            with tf.GradientTape() as tape:
                outs = model(x, training=False)
                outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
                loss = tf.reduce_mean(loss_fn(y, outs[0]))
            grads = tape.gradient(loss, variables)
            # Embedding lookups give sparse IndexedSlices: densify, so every gradient is an array.
            return loss, [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads], outs

        entry = fns[key] = (loss_fn, fn, variables)
    return entry[1], entry[2]


def loss_gradients(model, x, y, loss_fn, batch_size: int = 1024, return_outputs: bool = False):
    """See :mod:`diagnostics.backends`: the mean loss over ``x`` and its gradient per trainable variable.

    Batches of ``batch_size`` (capped to fit the worker's memory, halved on out-of-memory) are combined
    weighted by their size, so the result is the gradient of the mean over all samples whatever the
    batching. Non-finite values are returned as they are. The loss is taken on the model's first
    output; with ``return_outputs`` a third value lists, per batch, every output of the model as numpy
    arrays (one pass gives loss, gradients and outputs). ``x`` may be a dict or list of arrays.
    """
    import tensorflow as tf

    from .. import inputs as I
    from .. import memory

    x = I.map_(np.asarray, x)
    y = np.asarray(y)
    fn, variables = _loss_grad_fn(model, loss_fn)
    n = I.n_samples(x)

    def call(xb, yb):
        return fn(I.map_(tf.convert_to_tensor, I.for_model(model, xb)), tf.convert_to_tensor(yb))

    size = memory.plan(model, min(batch_size, n), lambda k: call(I.repeat_first(x, k), np.repeat(y[:1], k, axis=0)))
    total = 0.0
    acc: list = [None] * len(variables)
    batches = []

    def step(start, stop, size):
        nonlocal total
        loss, grads, outs = call(I.slice_(x, start, stop), y[start:stop])
        if return_outputs:
            batches.append([o.numpy() for o in outs])
        w = (stop - start) / n
        total += float(loss.numpy()) * w
        for i, g in enumerate(grads):
            if g is None:
                continue
            g = np.asarray(g, np.float64) * w
            acc[i] = g if acc[i] is None else acc[i] + g

    memory.run_batched(model, n, size, step)
    grads = {v.path: (np.zeros(v.shape, np.float32) if a is None else a.astype(np.float32)) for v, a in zip(variables, acc)}
    return (total, grads, batches) if return_outputs else (total, grads)


_INPUT_LOSS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def input_loss_gradients(model, x, y, loss_fn, batch_size: int = 256):
    """See :mod:`diagnostics.backends`: per-sample loss and its gradient with respect to the input.

    One ``tf.function`` per (model, loss), traced once: batches are padded to one shape by repeating
    the last sample, and the padding's rows are dropped (each row's gradient is its own sample's)."""
    import tensorflow as tf

    fns = _INPUT_LOSS_CACHE.setdefault(model, {})
    entry = fns.get(id(loss_fn))
    if entry is None or entry[0] is not loss_fn:
        @tf.function(reduce_retracing=True)
        def fn(xb, yb):
            with tf.GradientTape() as tape:
                tape.watch(xb)
                out = model(xb, training=False)
                if isinstance(out, (list, tuple)):
                    out = out[0]
                per_sample = tf.reshape(loss_fn(yb, out), (tf.shape(xb)[0], -1))
                per_sample = tf.reduce_mean(per_sample, axis=1)
                total = tf.reduce_sum(per_sample)
            return per_sample, tape.gradient(total, xb)

        entry = fns[id(loss_fn)] = (loss_fn, fn)
    fn = entry[1]
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    n = len(x)
    size = max(1, min(int(batch_size), n))
    losses, grads = [], []
    for start in range(0, n, size):
        xb, yb = x[start:start + size], y[start:start + size]
        pad = size - len(xb)
        if pad:
            xb = np.concatenate([xb, np.repeat(xb[-1:], pad, axis=0)])
            yb = np.concatenate([yb, np.repeat(yb[-1:], pad, axis=0)])
        loss, g = fn(tf.convert_to_tensor(xb), tf.convert_to_tensor(yb))
        losses.append(loss.numpy()[: size - pad])
        grads.append(g.numpy()[: size - pad])
    return np.concatenate(losses), np.concatenate(grads)


def output_unit(head, unit: int):
    """One output unit of ``head`` (a functional Keras model, e.g. ``ModelView.head``) as a Keras model
    returning shape (n, 1) and sharing the weights: libraries that differentiate every output of a model
    (SHAP's ``GradientExplainer``) then differentiate just this one."""
    model, select = selectable_output_unit(head)
    select(unit)
    return model


def selectable_output_unit(head):
    """``(model, select)``: :func:`output_unit` whose unit ``select(unit)`` changes between calls. The unit is
    a variable the model reads, so a library that traces the model once per explainer (SHAP) traces it once
    for every unit, instead of once per unit (~0.1 s each)."""
    import keras
    import tensorflow as tf

    index = tf.Variable(0, dtype=tf.int32, trainable=False)
    out = head.outputs[0]
    flat = keras.layers.Reshape((-1,))(out) if len(out.shape) != 2 else out
    picked = keras.layers.Lambda(lambda o: tf.gather(o, tf.reshape(index, (1,)), axis=1), output_shape=(1,))(flat)
    model = keras.Model(head.inputs[0] if len(head.inputs) == 1 else head.inputs, picked, name=f"{head.name}_unit")
    return model, lambda unit: index.assign(int(unit))


def library_input(x):
    """An array as TensorFlow libraries take it (SHAP's ``GradientExplainer``): the numpy array itself."""
    return np.asarray(x, np.float32)
