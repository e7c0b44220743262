"""Backend-specific primitives, one small module per backend, each importing its framework inside.

The compiled, batched gradient primitives here are shared by the explanation analyzers (gradients
with respect to inputs) and the health analyzers (gradients of the loss with respect to weights).

``get()`` returns the module for the backend this process runs; each module provides:

- ``input_gradients(model, x, targets, batch_size=...) -> (values, grads)``: per-sample output
  values ``model(x)[i, targets[i]]`` (or the sum of a 1-unit output) and their gradients with
  respect to ``x``, in compiled batches. ``targets`` is an int array (class index per sample).
- ``loss_gradients(model, x, y, loss_fn, batch_size=1024, return_outputs=False) -> (loss, grads[, outputs])``:
  the mean loss over ``x`` and its gradient for every trainable variable, as ``{variable.path: ndarray}``;
  batches are combined weighted by size, so the result does not depend on the batching. With
  ``return_outputs`` a third value holds the model's outputs per batch (one pass, three uses).
- ``input_loss_gradients(model, x, y, loss_fn, batch_size=256) -> (losses, grads)``: each sample's
  loss (``loss_fn`` with ``reduction=None``, averaged over any non-batch axes) and its gradient with
  respect to that sample's input, ``grads.shape == x.shape``, in compiled batches of one shape.
  ``x`` must be float: for token models differentiate a view that starts at the embedding's output.
  Used by the temporal gradient health check (the loss gradient reaching each time step).
"""

from __future__ import annotations

import importlib


def get(backend: str | None = None):
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if backend not in ("tensorflow", "torch"):
        raise NotImplementedError(f"no gradient primitives for the {backend!r} backend; use tensorflow or torch")
    return importlib.import_module(f"{__name__}.{backend}")
