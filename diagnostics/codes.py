"""Finding codes: every built-in code starts with its analyzer's name (``<analyzer>.<what>``), and the
codes of earlier releases stay readable as aliases for one release.

A health analyzer's findings are ``<analyzer>.<measure>`` (the host names them, see
:mod:`diagnostics.measures`); an explanation analyzer's are ``<analyzer>.<method>.<verdict>``.
Sidecars (``expected_findings``), ``--allow``/``assert_ok`` globs and CI rules written with an old code
keep working: :func:`canonical` maps an old code to the code(s) that replaced it.
"""

from __future__ import annotations

#: Old code -> the code(s) that replaced it (issue 24). An alias is kept for one release: the release
#: after milestone 3 drops them. ``*`` stands for an explanation analyzer's name.
ALIASES: dict[str, tuple[str, ...]] = {
    "overfitting.gap": ("health.overfitting.gap",),
    "overfitting.memorisation": ("health.overfitting.memorisation",),
    "overfitting.calibration": ("health.overfitting.calibration",),
    "overfitting.early_stopping": ("health.overfitting.epochs_past_best",),
    "overfitting.nonfinite_outputs": ("health.overfitting.nonfinite_outputs",),
    "performance.chance_level": ("health.overfitting.chance_level",),
    "gradients.exploding": ("health.gradients.grad_norm", "health.gan.grad_norm"),
    "gradients.vanishing": ("health.gradients.first_last_ratio",),
    "gradients.update_ratio": ("health.gradients.update_ratio",),
    "gradients.exploding_through_time": ("health.temporal.early_late_ratio",),
    "gradients.vanishing_through_time": ("health.temporal.early_late_ratio",),
    "units.dead": ("health.units.dead_fraction",),
    "units.saturated": ("health.units.saturated_fraction",),
    "units.lstm_gates_saturated": ("health.units.gate_saturation",),
    "spectra.alpha_low": ("health.spectra.alpha",),
    "spectra.alpha_high": ("health.spectra.alpha",),
    "spectra.insufficient": ("health.spectra.insufficient",),
    "gan.mode_collapse": ("health.gan.coverage", "health.gan.top2_share"),
    "gan.low_diversity": ("health.gan.diversity",),
    "gan.discriminator_wins": ("health.gan.discriminator_accuracy",),
    "gan.discriminator_fooled": ("health.gan.discriminator_accuracy",),
    "gan.loss_imbalance": ("health.gan.loss_ratio",),
    "gan.nonfinite_samples": ("health.gan.nonfinite_samples",),
    "data.constant_in_train": ("explain.shortcut.constant_in_train",),
    "explain.shortcut": ("explain.shortcut.region", "explain.shortcut.feature"),
    "explain.baseline_not_neutral": ("*.baseline_not_neutral",),
}


def canonical(code: str) -> tuple[str, ...]:
    """The current code(s) for ``code``: itself when it is current, the replacements of an old one."""
    return ALIASES.get(code, (code,))
