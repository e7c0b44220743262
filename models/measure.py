"""Raw measurements of the twins' faults, recorded in their sidecars at training time.

These are deliberately plain (a gradient norm, a count of dead units) and independent of the
analyzers in ``plugins/``: the sidecar says what was *measured*, the analyzers must *find* it.
Gradients need the backend's autodiff, so the two backend branches are named functions that
import their framework inside.
"""

from __future__ import annotations

import keras
import numpy as np


def gradients(model, x, y, loss_fn) -> list[np.ndarray]:
    """Gradients of ``loss_fn(y, model(x))`` (inference mode) with respect to each trainable
    variable of ``model``, in ``model.trainable_variables`` order, as numpy arrays."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _gradients_tensorflow(model, x, y, loss_fn)
    if backend == "torch":
        return _gradients_torch(model, x, y, loss_fn)
    raise NotImplementedError(f"gradient measurement supports the tensorflow and torch backends, not {backend!r}")


def _gradients_tensorflow(model, x, y, loss_fn):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=False))
    return [np.asarray(g) for g in tape.gradient(loss, model.trainable_variables)]


def _gradients_torch(model, x, y, loss_fn):
    import torch

    loss = loss_fn(keras.ops.convert_to_tensor(y), model(x, training=False))
    grads = torch.autograd.grad(loss, [v.value for v in model.trainable_variables], allow_unused=True)
    return [np.zeros(v.shape, np.float32) if g is None else g.detach().cpu().numpy()
            for v, g in zip(model.trainable_variables, grads)]


def input_gradients(model, x, y, loss_fn) -> np.ndarray:
    """Gradient of the summed per-sample loss ``loss_fn(y, model(x))`` (inference mode) with respect to
    the input ``x``: row i is the gradient of sample i's own loss."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xt = tf.convert_to_tensor(np.asarray(x, np.float32))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(loss_fn(y, model(xt, training=False)))
        return np.asarray(tape.gradient(loss, xt))
    if backend == "torch":
        import torch

        xt = torch.tensor(np.asarray(x, np.float32), requires_grad=True)
        loss = torch.sum(loss_fn(keras.ops.convert_to_tensor(y), model(xt, training=False)))
        (g,) = torch.autograd.grad(loss, xt)
        return g.detach().cpu().numpy()
    raise NotImplementedError(f"gradient measurement supports the tensorflow and torch backends, not {backend!r}")


def early_late_ratio(grads: np.ndarray, fraction: float = 0.1) -> tuple[float, np.ndarray]:
    """(mean per-step gradient norm over the first ``fraction`` of the steps / that over the last
    ``fraction``, the per-step profile). ``grads`` is (n, steps, channels)."""
    profile = np.sqrt(np.sum(np.square(grads.astype(np.float64)), axis=-1)).mean(axis=0)
    k = max(1, int(round(fraction * len(profile))))
    return float(profile[:k].mean() / profile[-k:].mean()), profile


def kernel_gradient_norms(model, x, y, loss_fn) -> dict[str, float]:
    """L2 norm of the loss gradient with respect to each layer's ``kernel``, keyed by layer name,
    in layer order."""
    grads = gradients(model, x, y, loss_fn)
    by_path = {v.path: g for v, g in zip(model.trainable_variables, grads)}
    out = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.path in by_path:
            out[layer.name] = float(np.linalg.norm(by_path[kernel.path]))
    return out


def global_gradient_norm(model, x, y, loss_fn) -> float:
    """L2 norm of the loss gradient over all trainable variables (inf or nan if any is non-finite)."""
    grads = gradients(model, x, y, loss_fn)
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt(sum(float(np.sum(np.square(g.astype(np.float64)))) for g in grads)))


def layer_outputs(model, x, layer_names) -> dict[str, np.ndarray]:
    """The outputs of the named layers on ``x``, computed in one batched pass."""
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in layer_names])
    outs = probe.predict(x, batch_size=max(1, len(x)), verbose=0)
    if len(layer_names) == 1:
        outs = [outs]
    return {n: np.asarray(o) for n, o in zip(layer_names, outs)}


def dead_unit_fraction(activations: np.ndarray) -> float:
    """Fraction of units (last axis: neurons or channels) that are <= 0 for every sample and
    position of ``activations``, i.e. ReLUs that never fire on the data."""
    a = activations.reshape(-1, activations.shape[-1])
    return float(np.mean(a.max(axis=0) <= 0))


def saturated_fraction(activations: np.ndarray, threshold: float = 0.99) -> float:
    """Fraction of (sample, unit) tanh outputs with ``|a| >= threshold`` (derivative <= 0.02)."""
    return float(np.mean(np.abs(activations) >= threshold))


def nonfinite_weight_count(model) -> tuple[int, int]:
    """(number of non-finite weight values, total number of weight values)."""
    ws = model.get_weights()
    return int(sum(int(np.sum(~np.isfinite(w))) for w in ws)), int(sum(w.size for w in ws))


def generated_classes(generator, classifier, n: int = 1000, seed: int = 0, confidence: float = 0.9) -> dict:
    """Draw ``n`` latent vectors (standard normal, fixed ``seed``), generate images and classify
    them. Returns the histogram of classes predicted with probability >= ``confidence`` (10 bins),
    the number of classes with at least one such sample, the fraction of confident samples, the
    histogram of every sample's most likely class, and the share of its two largest bins."""
    latent_dim = generator.inputs[0].shape[-1]
    z = np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)
    images = generator.predict(z, batch_size=n, verbose=0)
    probs = classifier.predict(images, batch_size=n, verbose=0)
    labels = probs.argmax(axis=1)
    confident = probs.max(axis=1) >= confidence
    hist = np.bincount(labels[confident], minlength=probs.shape[1])
    every = np.bincount(labels, minlength=probs.shape[1])
    return {"class_histogram": [int(c) for c in hist], "classes_covered": int(np.sum(hist > 0)),
            "confident_fraction": float(confident.mean()), "argmax_histogram": [int(c) for c in every],
            "top2_share": float(np.sort(every)[-2:].sum() / n)}
