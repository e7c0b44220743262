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


def loss_gradients(model, x, y, loss_fn):
    import torch

    variables = list(model.trainable_variables)
    tensors = [v.value for v in variables]
    out = model(torch.as_tensor(np.asarray(x)), training=False)
    loss = torch.mean(loss_fn(torch.as_tensor(np.asarray(y)), out))
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    return float(loss.detach().cpu()), {v.path: (np.zeros(v.shape, np.float32) if g is None else g.detach().cpu().numpy())
                                        for v, g in zip(variables, grads)}
