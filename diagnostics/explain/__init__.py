"""Shared, numpy-only machinery of the explanation analyzers (:mod:`diagnostics.explainers` and the
explanation plugins), one concern per module:

- ``sampling``: ``Targets``, ``select_targets(predictions, target, activation)`` (the output unit and
  sign explained per sample), ``sample_order(n_total, seed)``, ``select_samples(n_total, n, seed)``, ``predict_batched(model, x,
  batch_size)``, ``nonfinite_predictions(predictions, code)``;
- ``gradient_paths``: ``gradient_stream(grad_fn, points, owner, targets, total, batch_size)`` (the
  batched gradient stream every gradient method is built on), ``gradients(grad_fn, x, targets)``,
  ``gauss_legendre(steps)``, ``path_gradients(...)``, ``integrated_gradients(...)`` -> ``IGResult``,
  ``completeness_ok(gap, delta)``, ``room_for_another(time_left, last_s)``,
  ``COMPLETENESS_TOLERANCE``, ``COMPLETENESS_ABS_FLOOR``;
- ``groups``: ``patch_side(patch, shape)``, ``feature_groups(shape, patch)``, ``grid_segments(image,
  patch)`` (the features perturbation methods move together);
- ``metrics``: ``rank_correlation``, ``pearson``, ``randomisation_correlation``,
  ``perturbation_curves`` (``PERTURBATION_FRACTIONS``), ``summarise_curves``, ``informative_samples`` (``INFORMATIVE_DELTA``),
  ``ground_truth_scores``, ``agreement_matrix``, ``stability``, ``edge_map``;
- ``figures``: ``save_image_overlays``, ``save_heat_strips``, ``save_global_importance``,
  ``VERDICT_COLOURS``, ``json_round``.

These names, exactly those of ``__all__``, are what the core, the plugins and the tests import from
``diagnostics.explain``; a plugin takes only those listed in docs/plugins.md ("What a plugin may
import"). The modules themselves are the implementation. The gradient methods' math (saliency, input x
gradient, SmoothGrad, expected gradients) lives in diagnostics_plugins.explain_gradients, on
``gradient_stream``; LIME's in diagnostics_plugins.explain_lime. Nothing here imports a deep-learning
framework; matplotlib only inside the functions that draw.
"""

from __future__ import annotations

from .figures import VERDICT_COLOURS, json_round, save_global_importance, save_heat_strips, save_image_overlays
from .gradient_paths import (COMPLETENESS_ABS_FLOOR, COMPLETENESS_TOLERANCE, GradFn, IGResult, completeness_ok,
                             gauss_legendre, gradient_stream, gradients, integrated_gradients, path_gradients,
                             room_for_another)
from .groups import feature_groups, grid_segments, patch_side
from .metrics import (INFORMATIVE_DELTA, PERTURBATION_FRACTIONS, ForwardFn, agreement_matrix, edge_map,
                      ground_truth_scores, informative_samples, pearson, perturbation_curves, randomisation_correlation, summarise_curves,
                      rank_correlation, stability)
from .sampling import Targets, nonfinite_predictions, predict_batched, sample_order, select_samples, select_targets

__all__ = [
    "Targets", "select_targets", "select_samples", "sample_order", "predict_batched", "nonfinite_predictions",
    "GradFn", "gradient_stream", "gradients", "gauss_legendre", "path_gradients", "IGResult", "completeness_ok",
    "integrated_gradients", "room_for_another", "COMPLETENESS_TOLERANCE", "COMPLETENESS_ABS_FLOOR",
    "grid_segments", "patch_side", "feature_groups",
    "ForwardFn", "rank_correlation", "pearson", "randomisation_correlation", "perturbation_curves", "summarise_curves",
    "PERTURBATION_FRACTIONS", "informative_samples", "INFORMATIVE_DELTA", "ground_truth_scores", "agreement_matrix",
    "stability", "edge_map",
    "save_image_overlays", "save_heat_strips", "save_global_importance", "VERDICT_COLOURS", "json_round",
]
