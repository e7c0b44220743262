"""Every verdict threshold of the suite in one place: the health analyzers' and the explanations' trust
checks', one section per area, each with the reasoning behind it, and how a run overrides them.

Override them for a run with a TOML or JSON file holding the same sections::

    diagnose model.keras --option health_thresholds=thresholds.toml

or one key at a time, per analyzer: ``--option health.gradients.vanishing_warning=1e-4``.
(docs/health.md explains each threshold.) A third-party health analyzer's thresholds are its
``default_thresholds``, in a section named after the analyzer (:mod:`diagnostics._measures`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

#: The option that names a thresholds file (TOML or JSON), seen by every health analyzer.
THRESHOLDS_OPTION = "health_thresholds"

DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "overfitting": {
        # Train-minus-validation accuracy. Below ~5 points the gap is within what a healthy model and
        # sampling noise give on a few hundred samples; above 20 points the model fits noise. Judged
        # on the lower end of the 95% bootstrap interval, so a small validation set cannot raise it.
        "gap_warning": 0.05,
        "gap_error": 0.20,
        # Membership-inference AUC of per-sample loss (0.5: training samples look like unseen ones).
        "mia_warning": 0.70,
        # Validation loss this much above its minimum (relative) counts as "turned up".
        "turn_tolerance": 0.05,
        # Epochs trained past the turn before it is worth a warning (early stopping would have helped).
        "epochs_past_warning": 5,
        # A training loss this many times the lowest of the epochs before it (or, at the first epoch, a uniform
        # prediction's ln k): tenfold is no mini-batch noise (the zoo's healthy models stay under 1.5), a
        # hundredfold is divergence (issue 25: a spike of 2.9e3 against ln 2 in the first epoch).
        "spike_warning": 10,
        "spike_error": 100,
        # A final training loss at 90% or more of a uniform prediction's, flat (within plateau_tolerance) over the
        # last plateau_epochs epochs: training stalled where the inputs say nothing about the labels.
        "plateau_warning": 0.9,
        "plateau_tolerance": 0.05,
        "plateau_epochs": 5,
        # Expected calibration error on validation data worth a warning when it also exceeds train ECE.
        "ece_warning": 0.10,
        "bootstrap": 1000,
        "max_samples": 512,
    },
    "baseline": {
        # A classifier is at chance level when BOTH its accuracy is less than 2 points above always
        # predicting the training split's majority class AND its cross-entropy is less than 5% below that
        # of predicting the training label prior for every sample (skill = 1 - CE / prior CE). Either alone
        # misleads: on imbalanced data a useful model may not beat the majority's accuracy, and an
        # over-confident one may not beat the prior's loss. A regression model is at chance level when
        # R^2 (against predicting the training mean) is below 0.05. Judged by health.overfitting.
        "accuracy_margin": 0.02,
        "skill_margin": 0.05,
    },
    "gradients": {
        # First/last layer kernel gradient-norm ratio. Healthy nets sit within two orders of magnitude;
        # below 1e-3 the first layers learn a thousand times slower than the last (Glorot & Bengio 2010).
        "vanishing_warning": 1e-3,
        "vanishing_error": 1e-5,
        # Global gradient norm of the mean loss. Clipping defaults are 1-5; trained nets give < 10.
        "exploding_warning": 100.0,
        "exploding_error": 1000.0,
        # ||grad|| / ||weight|| per layer: above 1 a single SGD step at lr 1 would replace the layer.
        "update_ratio_warning": 10.0,
        "max_samples": 512,
    },
    "units": {
        # Share of a layer's ReLU units (channels) that are <= 0 on every sample of the batch.
        # A few dead units are normal; a quarter is capacity lost, over half a broken layer.
        "dead_warning": 0.25,
        "dead_error": 0.60,
        # Share of (sample, unit) sigmoid/tanh outputs within 1% of the asymptotes (derivative < 0.02).
        "saturation_level": 0.99,
        "saturated_warning": 0.50,
        "saturated_error": 0.80,
        # LSTM input/forget/output gates: share of values below 0.01 or above 0.99.
        "gate_saturated_warning": 0.90,
        "max_samples": 512,
    },
    "temporal": {
        # Early/late ratio: mean norm of the loss gradient w.r.t. the input at the first 10% of the time
        # steps over that at the last 10%. The zoo's healthy lstm gives 1.0e-2 (its motif can sit at
        # any step), the transformer 0.96; the rnn_vanishing twin (3 tanh RNNs over 120 steps)
        # gives 2.5e-8 (Bengio, Simard & Frasconi 1994: the product of step Jacobians shrinks
        # geometrically). Below 1e-3 the first steps cannot be learnt from in any practical number of
        # steps (Adam's effective step is ~1e-3 of the late steps'); below 1e-5 nothing reaches them.
        "vanishing_warning": 1e-3,
        "vanishing_error": 1e-5,
        # The mirror image: the first steps get 1e3 (1e5) times the gradient of the last ones, the
        # signature of a recurrent Jacobian with spectral radius above 1 (Pascanu et al. 2013).
        "exploding_warning": 1e3,
        "exploding_error": 1e5,
        # Share of the steps at each end that count as "early" and "late".
        "edge_fraction": 0.1,
        # A step is within the effective memory while its gradient norm is at least this share of the
        # profile's peak.
        "memory_floor": 0.01,
        # Share of the profile's total on its largest step: how far the output depends on one position.
        # The zoo's healthy lstm puts 11% on its largest step (of 50), the transformer 4% (of 24), the
        # lstm_exploding twin 22%. Over 90% the other steps barely move the output; over 99% it sees
        # one position only (issue 25: a causal mask with first-position pooling gave [1.83, 0 x 23]).
        "focus_warning": 0.9,
        "focus_error": 0.99,
        "max_samples": 256,
    },
    "spectra": {
        # Martin & Mahoney (2021): trained layers have 2 <= alpha <= 6; below 2 over-fitted/over-trained,
        # above 6 poorly trained (close to random).
        "alpha_low": 2.0,
        "alpha_high": 6.0,
        # Fewer eigenvalues than this and the tail fit is not reported (CSN needs a tail to fit).
        "min_eigenvalues": 20,
    },
    "explanations": {
        # Completeness (IG): a sample converges when |sum of attributions - (F(x) - F(baseline))| is
        # under this fraction of |F(x) - F(baseline)|; all samples must (else doubtful), half at least
        # (else failed: the map does not account for the output it claims to explain).
        "completeness_tolerance": 0.01,
        "completeness_min_fraction": 1.0,
        "completeness_fail": 0.5,
        # Additivity (expected gradients, SHAP: sum = F(x) - E[F(background)]) is a Monte-Carlo estimate
        # for the sampling methods: 10% per sample, on 90% of the samples, else doubtful.
        "additivity_tolerance": 0.1,
        "additivity_min_fraction": 0.9,
        "additivity_fail": 0.0,
        # Adebayo et al. (2018): median rank correlation with the maps of a weight-randomised model at or
        # above this fails (the map does not depend on what the model learnt); above the second, doubtful.
        "randomisation_fail": 0.5,
        "randomisation_doubtful": 0.3,
        # Deletion/insertion margins over a random order (units of the median |F(x)|): the better of the
        # two at or under 0 fails, at or under 0.02 is doubtful.
        "faithfulness_fail": 0.0,
        "faithfulness_doubtful": 0.02,
        # Top-k precision on planted ground-truth positions below this is doubtful.
        "ground_truth_min": 0.5,
        # Sampling methods: median correlation of the maps of two seeds below this is doubtful.
        "stability_min": 0.8,
        # LIME: median R² of the local linear fit below this is doubtful.
        "local_fit_min": 0.2,
    },
    "gan": {
        "samples": 1000,
        # A generated sample counts for a class when the judge gives it at least this probability.
        "confidence": 0.90,
        # Coverage: share of the judge's classes with at least one confident sample.
        "coverage_warning": 0.80,
        "coverage_error": 0.50,
        # Share of confident samples in the two most frequent classes (0.2 for ten balanced classes).
        "top2_warning": 0.40,
        "top2_error": 0.60,
        # Discriminator accuracy on real+generated: near 0.5 is balance, near 1 the generator lost,
        # near 0 (1 - this) the discriminator lost.
        "discriminator_warning": 0.90,
        # Mean pairwise distance of generated samples over that of real ones (1.0: as diverse as the data).
        "diversity_warning": 0.60,
        # Mean g_loss / d_loss over the last quarter of training.
        "loss_ratio_warning": 5.0,
    },
}


class ThresholdError(ValueError):
    """A thresholds file or option is unusable; the message says which and why."""


def thresholds(options: Mapping[str, Any], section: str, defaults: Mapping[str, float] | None = None) -> dict[str, float]:
    """The thresholds of ``section``: defaults, then the file named by ``health_thresholds``, then
    single-key options (``--option health.gradients.vanishing_warning=1e-4``).

    ``defaults``: the thresholds of a section that is not built in (a third-party health analyzer's
    ``default_thresholds``, its section named after the analyzer)."""
    if defaults is None and section not in DEFAULT_THRESHOLDS:
        raise ThresholdError(f"unknown threshold section {section!r}; known: {sorted(DEFAULT_THRESHOLDS)}")
    out = copy.deepcopy(dict(DEFAULT_THRESHOLDS[section] if defaults is None else defaults))
    path = options.get(THRESHOLDS_OPTION)
    if path:
        loaded = load_thresholds_file(path, also=() if defaults is None else (section,))
        _merge(out, loaded.get(section, {}), f"{path} [{section}]")
    _merge(out, {k: v for k, v in options.items() if k in out}, "--option")
    return out


def load_thresholds_file(path: str | Path, also: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise ThresholdError(f"thresholds file {str(p)!r} does not exist (--option {THRESHOLDS_OPTION}=FILE.toml|FILE.json)")
    text = p.read_text()
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except Exception as e:  # noqa: BLE001 - json and tomllib raise different types
        raise ThresholdError(f"thresholds file {p.name} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {e}") from None
    unknown = sorted(set(data) - set(DEFAULT_THRESHOLDS) - set(also))
    if unknown:
        raise ThresholdError(f"thresholds file {p.name}: unknown section(s) {unknown}; known: {sorted(DEFAULT_THRESHOLDS)}")
    return data


def _merge(into: dict, new: Mapping[str, Any], where: str) -> None:
    for k, v in new.items():
        if k not in into:
            raise ThresholdError(f"{where}: unknown threshold {k!r}; known: {sorted(into)}")
        try:
            into[k] = float(v)
        except (TypeError, ValueError):
            raise ThresholdError(f"{where}: threshold {k!r} must be a number, got {v!r}") from None
