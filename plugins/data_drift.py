"""Built-in plugin: ``data.drift``, inputs distributed differently in the training and validation splits.

A model is trained on one distribution and scored on another when the splits differ: a feature in other
units, a preprocessing step applied to one split only, a population that moved. Its validation score then
measures the shift as much as the model, and the gap it opens looks like overfitting to every check that
reads only the scores. This analyzer compares the inputs themselves, before any model is involved.

Tables: every feature is compared by a two-sample test, Kolmogorov–Smirnov (Massey 1951) for
continuous features, χ² on the contingency table for features with few distinct values; the p-values
are corrected for the number of features (Holm 1979 by default, Benjamini–Hochberg 1995 as an option),
and the size of the shift (KS D, or the total-variation distance of the value frequencies) is judged
only where the corrected p-value says the shift is real. Every shifted feature is its own finding.

Images and sequences: per channel, the range, mean and standard deviation of the values in each split,
the standardised mean difference and the ratio of the standard deviations, each tested on the
per-sample channel means and standard deviations (KS, Holm-corrected over the channels). Ranges that
differ by an order of magnitude are a preprocessing step missing from one split, said in plain words.

When ``--data FILE.npz`` holds the training split and evaluation data (``x_train``, ``y_train`` and
``x_val``/``y_val``, or ``x``/``y``), the same comparison is between the training inputs and those.
"""

from __future__ import annotations

from typing import Any, Sequence

import diagnostics
from diagnostics import Direction, Finding, HealthAnalyzer, Measure, Measurements, Option, Scope, Severity, Value

#: Options that are not thresholds (``--option data.drift.KEY=VALUE``).
DEFAULTS = {
    # samples per split compared (drawn with --seed); KS on 2,000 samples resolves a D of about 0.05
    "max_samples": 2000,
    # a feature with at most this many distinct values (both splits together) is compared by chi-squared
    "categorical_max_values": 10,
    # family-wise error rate (Holm) or false discovery rate (Benjamini-Hochberg) of the tests: 1%, so that a
    # healthy random split raises a finding in about one run of a hundred (at 5% the zoo's mlp_regression, a
    # random split of the diabetes table, had one feature at Holm p 0.022 and got a warning for it)
    "alpha": 0.01,
    "correction": "holm",
    # the test in the model's own feature space: samples per split, permutations of the split labels
    # token models: the most frequent ids in training compared one by one (the rest pooled as "other ids")
    "token_ids": 50,
    "mmd_samples": 400,
    "mmd_permutations": 200,
}
_HELP = {
    "max_samples": "samples per split compared",
    "categorical_max_values": "a feature with at most this many distinct values is compared by chi-squared",
    "alpha": "level of the corrected tests: a shift is judged only where the corrected p-value is below it",
    "correction": "multiple-testing correction over the features or channels: holm (family-wise) or bh "
                  "(Benjamini-Hochberg, false discovery rate)",
    "token_ids": "token models: how many of the most frequent training ids are compared one by one",
    "mmd_samples": "samples per split compared in the model's penultimate layer (0: no feature-space test)",
    "mmd_permutations": "permutations of the split labels behind the feature-space test's p-value",
}
THRESHOLDS = {
    # KS D (or total variation) of one feature: 0.1 of the probability mass moved is visible in the scores of a
    # model that uses the feature; at 0.25 a quarter of the validation values fall where training had few
    "shift_warning": 0.1,
    "shift_error": 0.25,
    # standardised mean difference of a channel (Cohen's d against the training std): 0.25 is a small effect,
    # 1.0 moves the average input a whole training standard deviation
    "mean_shift_warning": 0.25,
    "mean_shift_error": 1.0,
    # ratio of the validation to the training standard deviation of a channel
    "scale_warning_low": 0.67,
    "scale_warning_high": 1.5,
    "scale_error_low": 0.25,
    "scale_error_high": 4.0,
    # ranges (max - min) of the two splits differing by at least this factor: a scaling step is missing
    "range_ratio": 10.0,
    # squared MMD between the splits' penultimate-layer features (RBF kernel, median bandwidth, so values lie in
    # [0, 2]); the zoo's healthy models measure below 0.005 (see docs/health.md)
    "mmd_warning": 0.05,
}

_WHY = ("the model meets inputs unlike those it was trained on, so its validation score measures the shift as much "
        "as the model (and a train/validation gap it opens is not overfitting)")


class DataDrift(HealthAnalyzer):
    """Input drift between the training split and the validation (or evaluation) split: per-feature
    two-sample tests with a multiple-testing correction for tables, per-channel statistics for images and
    sequences, and a plain finding for a scale mismatch."""

    name = "data.drift"
    category = "data"
    # Cause before symptom: what drift between the splits makes other analyzers see (the host leads their
    # findings with these sentences while a drift finding stands).
    explains = {
        "health.overfitting.*": "the validation inputs are distributed unlike the training inputs, so what differs "
                                "between the splits may come from the data rather than from the model fitting its "
                                "training set's noise: "
                                "give both splits the same preprocessing (or draw them from one distribution) "
                                "before regularising",
        "health.gradients.*": {
            "data.drift.range_mismatch": "these gradients were measured on validation inputs that were not "
                                         "preprocessed as the training inputs were (a step is missing): fix the "
                                         "inputs first, the learning rate may be fine",
            "*": "these gradients were measured on validation inputs distributed unlike the training inputs: fix "
                 "the inputs first, the learning rate may be fine"},
        "health.units.*": "these units were measured on validation inputs distributed unlike the training inputs: "
                          "fix the inputs first",
        "explain.shortcut.*": "the feature differs between the splits because its distribution moved: it may be a "
                              "real, causal feature whose inputs drifted, not a leak to drop",
    }
    description = ("Input drift between the splits: per-feature KS / chi-squared tests with Holm correction (tables), "
                   "per-channel range, mean and std (images, sequences), scale mismatch.")
    model_kinds = frozenset({"image", "sequence", "token", "tabular"})
    data = "train_val"  # the inputs of both splits (labels are not used, but the host's needs pair them)
    reference = ("Massey 1951 (Kolmogorov-Smirnov two-sample test); Holm 1979; Benjamini & Hochberg 1995; "
                 "Rabanser et al. 2019 (Failing loudly: detecting dataset shift)")
    default_thresholds = THRESHOLDS
    options = (*(Option(k, float, v, "threshold") for k, v in THRESHOLDS.items()),
               Option("max_samples", int, DEFAULTS["max_samples"], _HELP["max_samples"]),
               Option("categorical_max_values", int, DEFAULTS["categorical_max_values"],
                      _HELP["categorical_max_values"]),
               Option("alpha", float, DEFAULTS["alpha"], _HELP["alpha"]),
               Option("correction", str, DEFAULTS["correction"], _HELP["correction"], choices=("holm", "bh")),
               Option("token_ids", int, DEFAULTS["token_ids"], _HELP["token_ids"]),
               Option("mmd_samples", int, DEFAULTS["mmd_samples"], _HELP["mmd_samples"]),
               Option("mmd_permutations", int, DEFAULTS["mmd_permutations"], _HELP["mmd_permutations"]),
               Option("health_thresholds", str, "", "thresholds file (TOML or JSON) with a [data.drift] section"))
    measures = (
        Measure("feature_shift", "Shift of a feature's distribution (KS D or total variation)",
                scope=Scope.FEATURE, direction=Direction.HIGHER_IS_WORSE, warning="shift_warning", error="shift_error",
                format=".3f",
                reference="two-sample Kolmogorov-Smirnov D (chi-squared and the total-variation distance for "
                          "few-valued features), judged only where the multiple-testing-corrected p-value is below "
                          "alpha; 0.1 of the mass moved is visible in a model's scores, 0.25 is a quarter of the "
                          "validation values where training had few",
                advice="check that the feature is computed, scaled and in the same units in every split (one scaler "
                       "fitted on the training split and applied to all), re-split at random if the splits come from "
                       "different sources or times, and if the population really moved, retrain on data that covers "
                       "it or reweight the training samples (importance weighting)"),
        Measure("channel_mean_shift", "Standardised mean difference of a channel", unit="training std",
                scope=Scope.FEATURE, direction=Direction.HIGHER_IS_WORSE, warning="mean_shift_warning",
                error="mean_shift_error", format=".2f",
                reference="|validation mean - training mean| / training std (Cohen's d), judged only where a KS "
                          "test on the per-sample channel means, Holm-corrected over the channels, rejects; 0.25 is "
                          "a small effect, 1.0 a whole standard deviation",
                advice="apply the same preprocessing (scaling, normalisation, colour order) to every split, with "
                       "statistics computed on the training split"),
        Measure("channel_scale", "Validation / training std of a channel", scope=Scope.FEATURE,
                direction=Direction.BAND, warning=("scale_warning_low", "scale_warning_high"),
                error=("scale_error_low", "scale_error_high"), scale="log", format=".3g",
                reference="judged only where a KS test on the per-sample channel standard deviations, "
                          "Holm-corrected over the channels, rejects; outside 1/4-4 the inputs are a different "
                          "scale, not a different sample",
                advice="apply the same scaling to every split (e.g. x / 255, or the training split's mean and std)"),
        Measure("feature_space_mmd", "Squared MMD of the splits in the model's penultimate layer",
                direction=Direction.HIGHER_IS_WORSE, warning="mmd_warning", format=".4f",
                reference="Gretton et al. 2012 (a kernel two-sample test), as in Rabanser et al. 2019: RBF kernel with "
                          "the median distance as bandwidth, unbiased estimate, p-value from permutations of the split "
                          "labels; judged only where p is below alpha, and at most a warning (it says the shift reaches "
                          "what the model computes, not where it comes from)",
                advice="find the shifted inputs (the other data.drift findings) and make the splits alike: the same "
                       "preprocessing, the same source, or a random re-split"),
    )

    def measure(self, context) -> Measurements:
        import numpy as np

        from diagnostics import inputs as I
        from diagnostics.health import token_counts

        data = context.data
        if len(context.model.inputs) != 1:
            return Measurements.skip(f"{self.name} supports single-input models (this one has "
                                     f"{len(context.model.inputs)} inputs)")
        if data is None or data.x_train is None or data.x_val is None or I.is_multi(data.x_train):
            return Measurements.skip("needs the inputs of two splits: the training split and the validation or "
                                     "evaluation split (--data FILE.npz with x_train, y_train and x_val, y_val, or x, y)")
        opts = {**DEFAULTS, **{k: v for k, v in context.options.items() if k in DEFAULTS}}
        if opts["correction"] not in CORRECTIONS:
            raise ValueError(f"data.drift.correction must be one of {sorted(CORRECTIONS)}, got {opts['correction']!r}")
        alpha = float(opts["alpha"])
        k = int(opts["max_samples"])
        xt_all, xv_all = np.asarray(data.x_train), np.asarray(data.x_val)
        xt = xt_all[diagnostics.select_samples(len(xt_all), k, context.seed + 21)].astype(np.float64)
        xv = xv_all[diagnostics.select_samples(len(xv_all), k, context.seed + 22)].astype(np.float64)
        metrics: dict[str, Any] = {"train_samples": len(xt), "val_samples": len(xv), "alpha": alpha,
                                   "correction": opts["correction"], "source": data.source}
        values: list[Value] = []
        findings: list[Finding] = []
        artifacts: dict[str, str] = {}
        finite_t, finite_v = np.isfinite(xt).all(), np.isfinite(xv).all()
        if not (finite_t and finite_v):
            # NaN/Inf in the inputs: no statistic is defined on them (nan-aware ones would hide the fault)
            split = "training" if not finite_t else "validation"
            return Measurements(findings=[Finding(
                "data.drift.nonfinite_inputs", Severity.ERROR, where=f"{split} split",
                message=f"the {split} inputs hold NaN or Inf values, so their distribution cannot be compared: a "
                        f"missing value was not imputed or a division overflowed in preprocessing; impute or drop "
                        f"those rows in every split before training")], metrics=metrics)
        with context.timed("tests"):
            if context.info.kind == "token":
                # token ids are labels, not values: compare how often each id occurs per sequence instead
                (ct, cv), names, metrics["tokens"] = token_counts(xt, xv, int(opts["token_ids"]))
                shifted = self._table(ct, cv, names, opts, values, metrics)
            elif xt.ndim == 2:
                names = data.feature_names(xt.shape[1])
                shifted = self._table(xt, xv, names, opts, values, metrics)
            else:
                shifted = self._channels(xt, xv, xt_all, xv_all, opts, context.options, values, findings, metrics)
        if int(opts["mmd_samples"]) > 0:
            with context.timed("feature space"):
                self._feature_space(context, xt, xv, opts, values, metrics)
        if shifted or findings:
            # drawn only when there is a shift to show (the host charts every measure anyway): matplotlib's
            # first figure cost the healthy zoo mlp 2.2 s of a 4 s run
            with context.timed("plot"):
                artifacts["drift"] = _draw(context.artifact_dir / "drift.png", xt, xv, shifted, metrics)
        return Measurements(values=values, findings=findings, metrics=metrics, artifacts=artifacts)

    # -- tables ------------------------------------------------------------------------------------
    def _table(self, xt, xv, names, opts, values, metrics) -> list[tuple[str, Any, Any]]:
        import numpy as np

        tests = [two_sample(xt[:, j], xv[:, j], int(opts["categorical_max_values"])) for j in range(xt.shape[1])]
        corrected = CORRECTIONS[opts["correction"]]([t["p"] for t in tests])
        alpha = float(opts["alpha"])
        label = "Holm" if opts["correction"] == "holm" else "Benjamini-Hochberg"
        per_feature = {}
        order = np.argsort([-t["statistic"] for t in tests], kind="stable")
        for j in order:
            t, p = tests[j], float(corrected[j])
            significant = p < alpha
            note = (f"{t['test']} {t['statistic_name']} {t['statistic']:.3f}, {label}-corrected p {_p(p)} over "
                    f"{len(tests)} features (raw {_p(t['p'])}); training mean {xt[:, j].mean():.3g} (std "
                    f"{xt[:, j].std():.3g}, range [{xt[:, j].min():.3g}, {xt[:, j].max():.3g}]), validation mean "
                    f"{xv[:, j].mean():.3g} (std {xv[:, j].std():.3g}, range [{xv[:, j].min():.3g}, "
                    f"{xv[:, j].max():.3g}])")
            if significant:
                note += f": {_WHY}"
            else:
                note += f": not significant at {alpha:g}, not judged"
            values.append(Value("feature_shift", t["statistic"], where=names[j], n=len(xt) + len(xv), note=note,
                                ceiling=None if significant else Severity.INFO))
            per_feature[names[j]] = {"test": t["test"], "statistic": t["statistic"], "p": t["p"], "p_corrected": p}
        metrics["features"] = per_feature
        metrics["shifted"] = [names[j] for j in order if corrected[j] < alpha]
        return [(names[j], xt[:, j], xv[:, j]) for j in order if corrected[j] < alpha][:6]

    # -- images and sequences: per channel --------------------------------------------------------------
    def _channels(self, xt, xv, xt_all, xv_all, opts, options, values, findings, metrics) -> list[tuple[str, Any, Any]]:
        import numpy as np

        from diagnostics.health import thresholds

        channels = xt.shape[-1]
        ft = xt.reshape(len(xt), -1, channels)
        fv = xv.reshape(len(xv), -1, channels)
        # the range over every sample (cheap, and one odd sample is exactly what a range must not miss)
        lo_t = np.asarray(xt_all).reshape(-1, channels).min(0).astype(np.float64)
        hi_t = np.asarray(xt_all).reshape(-1, channels).max(0).astype(np.float64)
        lo_v = np.asarray(xv_all).reshape(-1, channels).min(0).astype(np.float64)
        hi_v = np.asarray(xv_all).reshape(-1, channels).max(0).astype(np.float64)
        mean_t, mean_v = ft.mean(axis=(0, 1)), fv.mean(axis=(0, 1))
        std_t, std_v = ft.std(axis=(0, 1)), fv.std(axis=(0, 1))
        # the tests are on per-sample summaries: pixels of one image are not independent draws
        p_mean = [two_sample(ft[:, :, c].mean(1), fv[:, :, c].mean(1), 0)["p"] for c in range(channels)]
        p_std = [two_sample(ft[:, :, c].std(1), fv[:, :, c].std(1), 0)["p"] for c in range(channels)]
        corrected = CORRECTIONS[opts["correction"]]([*p_mean, *p_std])
        c_mean, c_std = corrected[:channels], corrected[channels:]
        alpha = float(opts["alpha"])
        per_channel = {}
        shifted = []
        for c in range(channels):
            where = f"channel {c}"
            stats = (f"training inputs in [{lo_t[c]:.3g}, {hi_t[c]:.3g}] (mean {mean_t[c]:.3g}, std {std_t[c]:.3g}), "
                     f"validation inputs in [{lo_v[c]:.3g}, {hi_v[c]:.3g}] (mean {mean_v[c]:.3g}, std {std_v[c]:.3g})")
            d = abs(mean_v[c] - mean_t[c]) / max(std_t[c], 1e-12)
            ratio = std_v[c] / max(std_t[c], 1e-12)
            sig_m, sig_s = bool(c_mean[c] < alpha), bool(c_std[c] < alpha)
            values.append(Value("channel_mean_shift", d, where=where, n=len(xt) + len(xv),
                                note=f"{stats}; KS on the per-sample means, Holm-corrected p {_p(c_mean[c])}"
                                     + (f": {_WHY}" if sig_m else ": not significant, not judged"),
                                ceiling=None if sig_m else Severity.INFO))
            values.append(Value("channel_scale", ratio, where=where, n=len(xt) + len(xv),
                                note=f"{stats}; KS on the per-sample stds, Holm-corrected p {_p(c_std[c])}"
                                     + (f": {_WHY}" if sig_s else ": not significant, not judged"),
                                ceiling=None if sig_s else Severity.INFO))
            per_channel[where] = {"train": {"min": lo_t[c], "max": hi_t[c], "mean": mean_t[c], "std": std_t[c]},
                                  "val": {"min": lo_v[c], "max": hi_v[c], "mean": mean_v[c], "std": std_v[c]},
                                  "mean_shift": d, "scale_ratio": ratio, "p_mean": float(c_mean[c]),
                                  "p_std": float(c_std[c])}
            if sig_m or sig_s:
                shifted.append((where, ft[:, :, c].ravel(), fv[:, :, c].ravel()))
        metrics["channels"] = {w: {s: ({k: float(v) for k, v in d.items()} if isinstance(d, dict) else float(d))
                                   for s, d in ch.items()} for w, ch in per_channel.items()}
        # the plain diagnosis: whole ranges an order of magnitude apart are a missing scaling step
        factor = float(thresholds(options, self.name, defaults=THRESHOLDS)["range_ratio"])
        span_t, span_v = hi_t - lo_t, hi_v - lo_v
        for c in range(channels):
            bigger, smaller = max(span_t[c], span_v[c]), min(span_t[c], span_v[c])
            if bigger > 0 and bigger >= factor * max(smaller, 1e-12):
                wide = "validation" if span_v[c] > span_t[c] else "training"
                narrow = "training" if wide == "validation" else "validation"
                where = f"channel {c}" if channels > 1 else "inputs"
                findings.append(Finding(
                    "data.drift.range_mismatch", Severity.ERROR, where=where,
                    message=f"the validation inputs lie in [{lo_v[c]:.3g}, {hi_v[c]:.3g}], the training inputs in "
                            f"[{lo_t[c]:.3g}, {hi_t[c]:.3g}]" + (f" ({where})" if channels > 1 else "")
                            + f": a preprocessing step is missing — the {wide} inputs span {bigger / max(smaller, 1e-12):.3g} "
                              f"times the range of the {narrow} inputs, so one split was scaled (e.g. to [0, 1] or "
                              f"[-1, 1], or standardised) and the other was not. The validation score then measures the "
                              f"missing step, not the model; apply the same preprocessing to every split (and to the "
                              f"inputs it will get in use), then measure again"))
                metrics.setdefault("range_mismatch", []).append(where)
        return shifted


    # -- the model's own feature space -------------------------------------------------------------------
    def _feature_space(self, context, xt, xv, opts, values, metrics) -> None:
        """The two splits compared where the model sees them: the input of its last layer."""
        import numpy as np

        import keras

        from diagnostics.health import forward

        model = context.model
        try:
            probe = keras.Model(model.inputs, model.layers[-1].input)
        except Exception as e:  # a subclassed model has no graph to cut: say so, measure the rest
            metrics["feature_space"] = f"not measured: the penultimate layer is not reachable ({type(e).__name__})"
            return
        k = int(opts["mmd_samples"])
        a = xt[diagnostics.select_samples(len(xt), k, context.seed + 23)]
        b = xv[diagnostics.select_samples(len(xv), k, context.seed + 24)]
        dtype = model.inputs[0].dtype if hasattr(model.inputs[0], "dtype") else "float32"
        fa = forward(probe, a.astype(str(dtype))).reshape(len(a), -1)
        fb = forward(probe, b.astype(str(dtype))).reshape(len(b), -1)
        if not (np.isfinite(fa).all() and np.isfinite(fb).all()):
            metrics["feature_space"] = "not measured: the penultimate layer's features are not finite"
            return
        mmd2, p, bandwidth = mmd_permutation_test(fa, fb, int(opts["mmd_permutations"]), context.seed + 25)
        alpha = float(opts["alpha"])
        significant = p < alpha
        layer = model.layers[-1].name
        note = (f"the input of {layer} on {len(a)} training and {len(b)} validation samples, permutation p "
                f"{p:.3g} ({int(opts['mmd_permutations'])} permutations), RBF bandwidth {bandwidth:.3g}")
        note += (": the model's own features tell the splits apart, so the shift reaches what it computes" if significant
                 else ": not significant, not judged")
        values.append(Value("feature_space_mmd", mmd2, where=layer, n=len(a) + len(b), note=note,
                            ceiling=Severity.WARNING if significant else Severity.INFO))
        metrics["feature_space"] = {"layer": layer, "mmd2": mmd2, "p": p, "bandwidth": bandwidth,
                                    "samples": [len(a), len(b)]}


# -- the statistics (this method's math lives with it) ---------------------------------------------------
def holm(pvalues: Sequence[float]) -> Any:
    """Holm's (1979) step-down adjusted p-values: the family-wise error rate is at most alpha when every
    adjusted p-value below alpha is rejected. Sorted ascending, p_(i) is multiplied by m - i + 1 (i from 1),
    the running maximum keeps them monotone, and each is capped at 1; returned in the input's order."""
    import numpy as np

    p = np.asarray(pvalues, np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> Any:
    """Benjamini & Hochberg's (1995) step-up adjusted p-values (q-values): the false discovery rate is at most
    alpha among the rejected. Sorted ascending, p_(i) is multiplied by m / i, the running minimum from the
    largest keeps them monotone, and each is capped at 1; returned in the input's order."""
    import numpy as np

    p = np.asarray(pvalues, np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}


def mmd_permutation_test(a: Any, b: Any, permutations: int = 200, seed: int = 0) -> tuple[float, float, float]:
    """(squared MMD, permutation p-value, bandwidth) of two samples (rows): Gretton et al.'s (2012) unbiased
    estimate with the RBF kernel exp(-|x - y|^2 / (2 s^2)), s the median pairwise distance of the pooled
    sample; the p-value is (1 + #{permuted >= observed}) / (1 + permutations), the split labels permuted."""
    import numpy as np

    z = np.concatenate([np.asarray(a, np.float64), np.asarray(b, np.float64)])
    n, m = len(a), len(b)
    sq = (z ** 2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    off = d2[np.triu_indices(len(z), 1)]
    median = float(np.median(off[off > 0])) if (off > 0).any() else 1.0
    k = np.exp(-d2 / median)  # s^2 = median / 2: 2 s^2 is the median squared distance
    np.fill_diagonal(k, 0.0)

    def stats(first):
        """The statistic for each column of ``first`` (samples x draws, True = the first split)."""
        f = first.astype(np.float64)
        g = 1.0 - f
        kf, kg = k @ f, k @ g  # the diagonal is zero: the within-split sums leave each sample's own term out
        return ((f * kf).sum(0) / (n * (n - 1)) + (g * kg).sum(0) / (m * (m - 1))
                - 2.0 * (g * kf).sum(0) / (n * m))

    labels = np.r_[np.ones(n, bool), np.zeros(m, bool)]
    observed = float(stats(labels[:, None])[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    if int(permutations) > 0:
        draws = np.stack([rng.permutation(labels) for _ in range(int(permutations))], axis=1)
        exceed = int((stats(draws) >= observed).sum())
    return observed, (1 + exceed) / (1 + int(permutations)), float(np.sqrt(median / 2.0))


def _p(p: float) -> str:
    """A p-value as the notes print it (below 1e-16 it is only as exact as float rounding: said so)."""
    return "< 1e-16" if p < 1e-16 else f"{p:.2g}"


def two_sample(a: Any, b: Any, categorical_max_values: int) -> dict[str, Any]:
    """One feature's two-sample test: chi-squared on the value counts (with the total-variation distance
    of the two frequency distributions as its size) when both samples together hold at most
    ``categorical_max_values`` distinct values, else Kolmogorov-Smirnov (D as its size). A feature
    constant and equal in both samples has statistic 0 and p 1."""
    import numpy as np
    from scipy import stats

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    levels = np.unique(np.concatenate([a, b]))
    if len(levels) <= 1:
        return {"test": "constant", "statistic_name": "D", "statistic": 0.0, "p": 1.0}
    if len(levels) <= categorical_max_values:
        ca = np.array([(a == v).sum() for v in levels], np.float64)
        cb = np.array([(b == v).sum() for v in levels], np.float64)
        tv = 0.5 * float(np.abs(ca / ca.sum() - cb / cb.sum()).sum())
        _, p, _, _ = stats.chi2_contingency(np.stack([ca, cb]), correction=False)
        return {"test": "chi-squared", "statistic_name": "total variation", "statistic": tv, "p": float(p)}
    r = stats.ks_2samp(a, b)
    return {"test": "KS", "statistic_name": "D", "statistic": float(r.statistic), "p": float(r.pvalue)}


def _draw(path, xt, xv, shifted, metrics) -> str:
    """Histograms of the training and validation values of the shifted features or channels (or of the first
    ones when none shifted), one panel each."""
    import numpy as np

    from diagnostics.plotting import plain_text, pyplot, save_png

    panels = list(shifted)
    if not panels:
        if xt.ndim == 2:
            panels = [(f"feature {j}", xt[:, j], xv[:, j]) for j in range(min(3, xt.shape[1]))]
            names = list(metrics.get("features", {}))
            panels = [(names[j] if j < len(names) else p[0], p[1], p[2]) for j, p in enumerate(panels)]
        else:
            c = xt.shape[-1]
            panels = [(f"channel {i}", xt[..., i].ravel(), xv[..., i].ravel()) for i in range(min(3, c))]
    panels = panels[:6]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 0.6, 2.6), dpi=90, squeeze=False)
    for ax, (name, a, b) in zip(axes[0], panels):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        ax.hist(a, bins=bins, density=True, alpha=0.55, color="#1565c0", label="training")
        ax.hist(b, bins=bins, density=True, alpha=0.55, color="#c62828", label="validation")
        ax.set_title(plain_text(str(name)[:40]), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Shifted inputs: training vs validation" if shifted else "Inputs: training vs validation (no shift)",
                 fontsize=9)
    return save_png(fig, path).name


@diagnostics.hookimpl
def register_analyzers(register):
    register(DataDrift)
