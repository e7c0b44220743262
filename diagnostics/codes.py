"""Finding codes: every built-in code starts with its analyzer's name (``<analyzer>.<what>``), and the
codes of earlier releases stay readable as aliases for one release.

A health analyzer's findings are ``<analyzer>.<measure>`` (the host names them, see
:mod:`diagnostics._measures`); an explanation analyzer's are ``<analyzer>.<method>.<verdict>``.
Sidecars (``expected_findings``), ``--allow``/``assert_ok`` globs and CI rules written with an old code
keep working: :func:`canonical` maps an old code to the code(s) that replaced it.
"""

from __future__ import annotations

import fnmatch

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
    "gan.discriminator_wins": ("health.gan.discriminator_separation",),
    "gan.discriminator_fooled": ("health.gan.discriminator_separation",),
    "gan.loss_imbalance": ("health.gan.loss_ratio",),
    "gan.nonfinite_samples": ("health.gan.nonfinite_samples",),
    "data.constant_in_train": ("explain.shortcut.constant_in_train",),
    "explain.shortcut": ("explain.shortcut.region", "explain.shortcut.feature"),
    "explain.baseline_not_neutral": ("*.baseline_not_neutral",),
}


def canonical(code: str) -> tuple[str, ...]:
    """The current code(s) for ``code``: itself when it is current, the replacements of an old one.

    A replacement may hold ``*`` (``*.baseline_not_neutral``: whichever explanation analyzer made it).
    """
    return ALIASES.get(code, (code,))


def is_alias(code: str) -> bool:
    """Whether ``code`` is an old code kept as an alias (a sidecar or a glob still written with it)."""
    return code in ALIASES


def expand(pattern: str) -> tuple[str, ...]:
    """The glob ``pattern`` and, for every old code it matches, the current code(s) that replaced it.

    ``gradients.*`` expands to itself and ``health.gradients.grad_norm``, ``health.gan.grad_norm``,
    ``health.gradients.first_last_ratio``, ``health.gradients.update_ratio`` and
    ``health.temporal.early_late_ratio``: what it matched before the rename, it matches after.
    """
    out = [pattern]
    for old, new in ALIASES.items():
        if fnmatch.fnmatchcase(old, pattern):
            out += [n for n in new if n not in out]
    return tuple(out)


def matches(code: str, pattern: str) -> bool:
    """Whether a finding coded ``code`` matches the glob ``pattern``, either of them written with an old
    code or a current one: an old pattern matches the codes that replaced what it matched, and a finding
    with an old code (a report of an earlier release) matches a pattern written with its new code.

    Glob as :func:`fnmatch.fnmatchcase` (whole codes, case-sensitive): ``explain.gradients.saliency.*``.
    """
    codes = (code, *canonical(code))
    return any(fnmatch.fnmatchcase(c, p) for p in expand(pattern) for c in codes)


def matching(codes, pattern: str) -> list[str]:
    """The codes among ``codes`` that ``pattern`` matches (see :func:`matches`), in their order."""
    return [c for c in codes if matches(c, pattern)]


def renamed(pattern: str) -> tuple[str, ...]:
    """The current codes an old-style ``pattern`` stands for, () when it is written in current codes.

    A pattern is old-style when it matches old codes and none of the codes that replaced them
    (``units.*``, ``gradients.vanishing``); ``*`` or ``explain.*`` match current codes too, so they are not.
    """
    added = expand(pattern)[1:]
    return () if not added or any(fnmatch.fnmatchcase(a, pattern) for a in added) else added

