"""What the health analyzers share, public so that a third-party health check measures with the same
thresholds, batch, pass and statistics as the built-in ones (docs/plugins.md, "What a plugin may import").

The public names, exactly those of ``__all__``:

- thresholds (:mod:`diagnostics._thresholds`): ``DEFAULT_THRESHOLDS``, ``thresholds(options, section)``;
- the batch (``batches``): ``select_batch(context, max_samples)`` (validation data, else synthetic
  inputs), ``forward(model, x)`` (batched inference-mode output), ``to_numpy(tensor)``,
  ``subsample(n, k, seed)`` (the rows a split is measured on), ``first_output_labels(y, info)``;
- the shared pass (``probe``, ``losses``): ``health_pass(context, x, y)`` (one cached compiled
  forward+backward pass with per-unit statistics), ``loss_and_targets(context, x, y)`` (the loss it
  differentiates and its targets), ``logits_view(model, loss)`` (cross-entropy from the logits),
  ``per_sample_loss_fn(info, y)`` (the model's loss with no reduction), ``prepare_targets(loss, y, units)``;
- the layers (``layers``): ``flatten_layers(model)``, ``unit_layers(model)`` (the ReLU, sigmoid/tanh
  and LSTM layers whose units ``health_pass`` probes);
- the history (``history``): ``training_series(history, key)``, ``development(values, ...)``;
- statistics (``stats``): ``finite_or_none(x)``, ``bootstrap_diff_ci(a, b)``,
  ``probabilities(outputs, activation)``, ``auc(positive, negative)`` (ties count half);
- token ids (``tokens``): ``token_counts(x_train, x_val, top)`` (per-sequence counts of the frequent ids, the
  other ids, the unseen ids and the length), the view of a token model's inputs the data analyzers share.

The modules themselves are the implementation (their other names may change in any release).
numpy at module level; keras only inside the functions that need it.
"""

from __future__ import annotations

from .._thresholds import DEFAULT_THRESHOLDS, thresholds
from .batches import first_output_labels, forward, select_batch, subsample, to_numpy
from .history import development, training_series
from .layers import flatten_layers, unit_layers
from .losses import logits_view, loss_and_targets, per_sample_loss_fn, prepare_targets
from .probe import health_pass
from .stats import auc, bootstrap_diff_ci, finite_or_none, probabilities
from .tokens import token_counts

__all__ = [
    "DEFAULT_THRESHOLDS", "thresholds",
    "select_batch", "forward", "to_numpy", "subsample", "first_output_labels",
    "health_pass", "loss_and_targets", "logits_view", "per_sample_loss_fn", "prepare_targets",
    "flatten_layers", "unit_layers",
    "training_series", "development",
    "finite_or_none", "bootstrap_diff_ci", "probabilities", "auc",
    "token_counts",
]
