"""torch primitives: autograd on the Keras model, which under this backend is a ``torch.nn.Module``."""

from __future__ import annotations

import numpy as np


def input_gradients(model, x, targets, batch_size: int = 1024):
    """See :mod:`diagnostics.backends`."""
    import torch

    x = np.asarray(x)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if np.issubdtype(x.dtype, np.integer):
        raise TypeError("the model's output has no gradient with respect to its input (integer token inputs?): "
                        "differentiate with respect to an embedding instead")
    values, grads = [], []
    for start in range(0, len(x), batch_size):
        xb = torch.tensor(x[start:start + batch_size], dtype=torch.float32, requires_grad=True)
        tb = torch.as_tensor(targets[start:start + batch_size])
        out = model(xb, training=False)
        if isinstance(out, (list, tuple)):
            out = out[0]
        out = out.reshape(out.shape[0], -1)
        picked = out.gather(1, tb[:, None])[:, 0]
        (g,) = torch.autograd.grad(picked.sum(), xb)
        values.append(picked.detach().cpu().numpy())
        grads.append(g.detach().cpu().numpy())
    return np.concatenate(values), np.concatenate(grads)


def loss_gradients(model, x, y, loss_fn, batch_size: int = 1024, return_outputs: bool = False):
    """See :mod:`diagnostics.backends`: the mean loss over ``x`` and its gradient per trainable variable,
    batches combined weighted by their size, and with ``return_outputs`` every output of the model per
    batch (the same contract as the TensorFlow primitive)."""
    import torch

    variables = list(model.trainable_variables)
    tensors = [v.value for v in variables]
    x = np.asarray(x)
    y = np.asarray(y)
    n = len(x)
    total = 0.0
    acc: list = [None] * len(variables)
    batches = []
    for start in range(0, n, batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        outs = model(torch.as_tensor(xb), training=False)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        loss = torch.mean(loss_fn(torch.as_tensor(yb), outs[0]))
        if return_outputs:
            batches.append([o.detach().cpu().numpy() for o in outs])
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        w = len(xb) / n
        total += float(loss.detach().cpu()) * w
        for i, g in enumerate(grads):
            if g is None:
                continue
            g = g.detach().cpu().numpy().astype(np.float64) * w
            acc[i] = g if acc[i] is None else acc[i] + g
    grads = {v.path: (np.zeros(v.shape, np.float32) if a is None else a.astype(np.float32)) for v, a in zip(variables, acc)}
    return (total, grads, batches) if return_outputs else (total, grads)


def input_loss_gradients(model, x, y, loss_fn, batch_size: int = 256):
    """See :mod:`diagnostics.backends`: per-sample loss and its gradient with respect to the input."""
    import torch

    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    losses, grads = [], []
    for start in range(0, len(x), batch_size):
        xb = torch.tensor(x[start:start + batch_size], requires_grad=True)
        out = model(xb, training=False)
        if isinstance(out, (list, tuple)):
            out = out[0]
        per_sample = loss_fn(torch.as_tensor(y[start:start + batch_size]), out).reshape(len(xb), -1).mean(dim=1)
        (g,) = torch.autograd.grad(per_sample.sum(), xb)
        losses.append(per_sample.detach().cpu().numpy())
        grads.append(g.detach().cpu().numpy())
    return np.concatenate(losses), np.concatenate(grads)
