"""torch primitives: autograd on the Keras model, which under this backend is a ``torch.nn.Module``.

Batch sizes are capped to fit the worker's memory and halved on out-of-memory
(:mod:`diagnostics.memory`); inputs may be a dict or list of arrays for a multi-input model.
"""

from __future__ import annotations

import numpy as np


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def input_gradients(model, x, targets, batch_size: int = 1024):
    """See :mod:`diagnostics.backends`."""
    import torch

    from .. import inputs as I
    from .. import memory

    x = I.map_(np.asarray, x)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if any(np.issubdtype(a.dtype, np.integer) for a in I.leaves(x)):
        raise TypeError("the model's output has no gradient with respect to its input (integer token inputs?): "
                        "differentiate with respect to an embedding instead")
    n = I.n_samples(x)
    device = _device()

    def call(xb, tb):
        xs = [torch.tensor(a, dtype=torch.float32, device=device, requires_grad=True) for a in I.leaves(xb)]
        args = xs[0] if not I.is_multi(xb) else xs
        out = model(args, training=False)
        if isinstance(out, (list, tuple)):
            out = out[0]
        out = out.reshape(out.shape[0], -1)
        picked = out.gather(1, torch.as_tensor(tb, device=out.device)[:, None])[:, 0]
        gs = torch.autograd.grad(picked.sum(), xs)
        return picked.detach().cpu().numpy(), [g.detach().cpu().numpy() for g in gs]

    ordered = I.for_model(model, x)
    size = memory.plan(model, min(batch_size, n), lambda k: call(I.repeat_first(ordered, k), np.repeat(targets[:1], k)))
    parts = memory.run_batched(model, n, size, lambda a, b, _: call(I.slice_(ordered, a, b), targets[a:b]))
    values = np.concatenate([p[0] for p in parts])
    grads = [np.concatenate([p[1][i] for p in parts]) for i in range(len(parts[0][1]))]
    if not I.is_multi(x):
        return values, grads[0]
    if isinstance(x, dict):
        return values, dict(zip(I.input_names(model), grads))
    return values, grads


def loss_gradients(model, x, y, loss_fn, batch_size: int = 1024, return_outputs: bool = False):
    """See :mod:`diagnostics.backends`: the mean loss over ``x`` and its gradient per trainable variable,
    batches combined weighted by their size, and with ``return_outputs`` every output of the model per
    batch (the same contract as the TensorFlow primitive)."""
    import torch

    from .. import inputs as I
    from .. import memory

    variables = list(model.trainable_variables)
    tensors = [v.value for v in variables]
    x = I.for_model(model, I.map_(np.asarray, x))
    y = np.asarray(y)
    n = I.n_samples(x)
    device = _device()
    total = 0.0
    acc: list = [None] * len(variables)
    batches = []

    def forward_loss(xb, yb):
        xs = [torch.as_tensor(a, device=device) for a in I.leaves(xb)]
        outs = model(xs[0] if not I.is_multi(xb) else xs, training=False)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        loss = torch.mean(loss_fn(torch.as_tensor(yb, device=device), outs[0]))
        return loss, outs

    def probe(k):
        loss, _ = forward_loss(I.repeat_first(x, k), np.repeat(y[:1], k, axis=0))
        torch.autograd.grad(loss, tensors, allow_unused=True)

    size = memory.plan(model, min(batch_size, n), probe)

    def step(start, stop, size):
        nonlocal total
        loss, outs = forward_loss(I.slice_(x, start, stop), y[start:stop])
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        if return_outputs:
            batches.append([o.detach().cpu().numpy() for o in outs])
        w = (stop - start) / n
        total += float(loss.detach().cpu()) * w
        for i, g in enumerate(grads):
            if g is None:
                continue
            g = g.detach().cpu().numpy().astype(np.float64) * w
            acc[i] = g if acc[i] is None else acc[i] + g

    memory.run_batched(model, n, size, step)
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


def output_unit(head, unit: int):
    """One output unit of ``head`` (a callable on a tensor batch, e.g. ``ModelView.head``) as a
    ``torch.nn.Module`` returning shape (n, 1): libraries that differentiate every output of a module
    (SHAP's ``GradientExplainer``) then differentiate just this one."""
    module, select = selectable_output_unit(head)
    select(unit)
    return module


def selectable_output_unit(head):
    """``(module, select)``: :func:`output_unit` whose unit ``select(unit)`` changes between calls (one
    library explainer for every unit, as under TensorFlow)."""
    import torch

    class Unit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.unit = head, 0

        def forward(self, z):
            out = self.head(z, training=False)
            return out.reshape(out.shape[0], -1)[:, self.unit:self.unit + 1]

    module = Unit()
    return module, lambda unit: setattr(module, "unit", int(unit))


def library_input(x):
    """An array as torch libraries take it (captum, SHAP's ``GradientExplainer``): a float32 tensor."""
    import torch

    return torch.tensor(np.asarray(x, np.float32))
