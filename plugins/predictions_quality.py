"""Built-in plugin: ``predictions.quality``, what the predictions get wrong and why.

Four questions about a classifier's validation predictions, each answered with its interval:

- *Is the network below a simple model?* A logistic regression fitted on the training split's
  flattened, standardised inputs (deepchecks' simple-model comparison; capped in samples, features and
  iterations so it stays a second or two) against the network on the validation split: the difference
  of accuracies with a paired bootstrap interval. A network far below it is underfitting — it has not
  learnt what a linear model finds in the same inputs — which the trivial-predictor check of
  ``health.overfitting`` cannot see as long as the network beats the majority class.
- *Which classes fail?* Precision, recall and F1 per class (Wilson score intervals for the two
  proportions, a bootstrap for F1), the confusion matrix and its most-confused pairs.
- *Is it the imbalance?* When the training classes are imbalanced, the rarest class's recall is judged
  and the message says imbalance, the balanced accuracy and the class weights to try (inverse
  frequency, ``class_weight`` in ``model.fit``).
- *Are some labels wrong?* Confident learning (Northcutt et al. 2021) through cleanlab's ``find_label_issues``
  on the validation probabilities, which are out-of-sample: the samples most likely mislabelled, shown.
- *Is its confidence a probability?* A reliability diagram (top-label, the 15 bins of
  ``health.overfitting.calibration``) and the classwise calibration error per class (Kull et al. 2019).

References: Wilson (1927) for the score interval; Brodersen et al. (2010) for balanced accuracy; King &
Zeng (2001) and scikit-learn's ``class_weight="balanced"`` for inverse-frequency weights; Guo et al.
(2017) for the reliability diagram; Kull et al. (2019) for classwise calibration.
"""

from __future__ import annotations

from typing import Any

import diagnostics
from diagnostics import (Context, Direction, HealthAnalyzer, Measure, Measurements, Option, Scope, Severity, Value)
from diagnostics.plotting import pyplot, save_png

#: Defaults of the analyzer's options (``--option predictions.quality.KEY=VALUE``).
DEFAULTS = {
    # validation samples whose predictions are scored (a forward pass each)
    "max_samples": 2000,
    # training samples the logistic-regression baseline is fitted on
    "baseline_samples": 2000,
    # inputs wider than this keep their highest-variance features (a token model: this many token counts)
    "baseline_features": 256,
    # L-BFGS iterations of the baseline (it need not converge to be a fair floor: it only ever gets better)
    "baseline_iterations": 100,
    # bootstrap resamples of every interval that has no closed form
    "bootstrap": 1000,
    # the training split is imbalanced when its most frequent class has this many times the samples of its rarest
    "imbalance_ratio": 4.0,
    # most-confused (true, predicted) pairs reported
    "confused_pairs": 5,
    # per-class values are reported for at most this many classes (the lowest F1 first)
    "max_classes": 20,
    # look for likely mislabelled samples (cleanlab, when installed)
    "label_issues": True,
}
_HELP = {
    "max_samples": "validation samples whose predictions are scored",
    "baseline_samples": "training samples the logistic-regression baseline is fitted on",
    "baseline_features": "features the baseline keeps (the highest-variance ones; token counts for token models)",
    "baseline_iterations": "L-BFGS iterations of the baseline",
    "bootstrap": "bootstrap resamples",
    "imbalance_ratio": "most / least frequent training class at or above which the classes count as imbalanced",
    "confused_pairs": "most-confused class pairs reported",
    "max_classes": "classes with per-class values in the report (lowest F1 first)",
    "label_issues": "look for likely mislabelled samples by confident learning (needs cleanlab)",
}
#: The thresholds of the judged measures, and why.
THRESHOLDS = {
    # The lower end of the paired 95% interval of (baseline - network) accuracy: 0.05 is more than a fitted
    # network gives away to a linear model on its own inputs (the healthy zoo models lie 0.02 below to 0.6
    # above it, every interval's lower end under 0); 0.15 is a network that missed what a linear model finds.
    "baseline_gap_warning": 0.05,
    "baseline_gap_error": 0.15,
    # The upper end of the rarest class's Wilson interval, judged only on imbalanced training data: under a
    # half, the model misses most of the class it saw least; under a fifth, it has all but stopped predicting it.
    "minority_recall_warning": 0.5,
    "minority_recall_error": 0.2,
}


class PredictionQuality(HealthAnalyzer):
    """A classifier's validation predictions against a logistic-regression baseline, per class, under
    imbalance and in a reliability diagram, each with its interval."""

    name = "predictions.quality"
    category = "data"
    # Cause before symptom: a model at chance level is underfitting or ignoring a rare class, and says which.
    explains = {
        "health.overfitting.chance_level": {
            "predictions.quality.minority_recall": "the classes are imbalanced and the rare class is hardly ever "
                                                   "predicted, not shuffled labels or a learning rate: weight the "
                                                   "classes (class_weight) or resample them",
            "predictions.quality.baseline_gap": "a logistic regression on the same inputs does far better: the "
                                                "network underfits (too little capacity, a bottleneck, too few "
                                                "epochs), the data can be learnt"},
    }
    description = ("Underfitting against a logistic-regression baseline, per-class precision/recall/F1 and the "
                   "confusion matrix, class imbalance (minority recall, balanced accuracy, class weights), a "
                   "reliability diagram.")
    model_kinds = frozenset({"image", "sequence", "token", "tabular"})
    data = "xy"  # the baseline needs the training split too; without it the rest still runs
    reference = ("Wilson 1927 (score interval); Brodersen et al. 2010 (balanced accuracy); King & Zeng 2001 (class "
                 "weights); Guo et al. 2017 (reliability diagram); Kull et al. 2019 (classwise calibration)")
    default_thresholds = THRESHOLDS
    options = (*(Option(k, type(v), v, _HELP[k]) for k, v in DEFAULTS.items()),
               *(Option(k, float, v, "threshold") for k, v in THRESHOLDS.items()))
    measures = (
        Measure("baseline_gap", "Logistic regression − network validation accuracy", direction=Direction.HIGHER_IS_WORSE,
                warning="baseline_gap_warning", error="baseline_gap_error", format=".3f",
                reference="paired bootstrap 95% interval over the validation samples, its lower end judged; the "
                          "baseline is fitted on the training split's flattened, standardised inputs",
                advice="give the network capacity where it is narrowest, train it longer or with a higher learning "
                       "rate, and check that the inputs are scaled as the baseline's are"),
        Measure("minority_recall", "Recall of the rarest training class", direction=Direction.LOWER_IS_WORSE,
                warning="minority_recall_warning", error="minority_recall_error", format=".3f",
                reference="Wilson 95% interval, its upper end judged; judged only when the training classes are "
                          "imbalanced (most / least frequent at least imbalance_ratio, default 4)",
                advice="weight the loss by inverse class frequency (class_weight in model.fit), oversample the "
                       "minority class or undersample the majority, or move the decision threshold; judge the model "
                       "by balanced accuracy or per-class recall, not accuracy"),
        Measure("balanced_accuracy", "Balanced accuracy (mean per-class recall)", format=".3f",
                reference="Brodersen et al. 2010; bootstrap 95% interval"),
        Measure("precision", "Precision per class", scope=Scope.CLASS, format=".3f", reference="Wilson 95% interval"),
        Measure("recall", "Recall per class", scope=Scope.CLASS, format=".3f", reference="Wilson 95% interval"),
        Measure("f1", "F1 per class", scope=Scope.CLASS, format=".3f", reference="bootstrap 95% interval"),
        Measure("confusion", "Share of a class predicted as another", unit="fraction", scope=Scope.CLASS,
                format=".3f", reference="the most-confused pairs, true → predicted; Wilson 95% interval"),
        Measure("class_calibration", "Calibration error per class (one vs rest)", scope=Scope.CLASS, format=".3f",
                reference="Kull et al. 2019, classwise ECE, 15 equal-width bins"),
        Measure("label_issues", "Samples likely mislabelled", unit="fraction", format=".1%",
                reference="confident learning (Northcutt et al. 2021), cleanlab's find_label_issues on the model's "
                          "out-of-sample probabilities; Wilson 95% interval. Shown, never judged: a model that "
                          "underfits flags its own errors, not the labels"),
    )

    def measure(self, context: Context) -> Measurements:
        import numpy as np

        from diagnostics import inputs as I
        from diagnostics.health import first_output_labels, forward, probabilities, subsample

        if len(context.model.inputs) != 1 or len(context.model.outputs) != 1:
            return Measurements.skip(f"{self.name} supports single-input, single-output classifiers (this one has "
                                     f"{len(context.model.inputs)} inputs, {len(context.model.outputs)} outputs)")
        opts = dict(DEFAULTS)
        opts.update({k: v for k, v in context.options.items() if k in DEFAULTS})
        data, info = context.data, context.info
        split = "validation" if data.x_val is not None else "training"
        x_all, y_all = data.x, first_output_labels(data.y, info)
        iv = subsample(I.n_samples(x_all), int(opts["max_samples"]), context.seed)
        xv = I.take(x_all, iv)
        context.progress(0, 4, f"predictions on the {split} split")
        probs = probabilities(forward(context.model, xv), info.output_activation)
        if probs is None:
            return Measurements.skip("needs a classifier (a softmax or sigmoid output, or logits): per-class quality "
                                     "and a classification baseline mean nothing for a regression")
        k = probs.shape[1]
        yv = class_labels(np.asarray(y_all)[iv], k)
        if yv is None:
            return Measurements.skip(f"needs one integer class label per sample (or one-hot rows of {k}) for the "
                                     f"model's {k} classes")
        if not np.isfinite(probs).all():
            return Measurements.skip("the model outputs NaN or Inf: nothing to score (health.overfitting."
                                     "nonfinite_outputs and the weights analyzer say why)")
        pred = probs.argmax(axis=1)
        n_boot = int(opts["bootstrap"])
        y_train = None
        if data.y_train is not None:
            y_train = class_labels(np.asarray(first_output_labels(data.y_train, info)), k)
        values: list[Value] = []
        metrics: dict[str, Any] = {"split": split, "samples": int(len(yv)), "classes": k,
                                   "accuracy": float(np.mean(pred == yv))}
        artifacts: dict[str, str] = {}

        context.progress(1, 4, "per-class quality")
        per_class = per_class_quality(yv, pred, k, n_boot=n_boot, seed=context.seed)
        matrix = per_class["confusion_matrix"]
        metrics["per_class"] = {str(c): {"support": per_class["support"][c], "predicted": per_class["predicted"][c],
                                         **{key: {"value": per_class[key]["value"][c],
                                                  "ci95": _listed(per_class[key]["interval"][c])}
                                            for key in ("precision", "recall", "f1")}} for c in range(k)}
        metrics["confusion_matrix"] = matrix.tolist()
        shown = np.argsort([np.inf if f is None else f for f in per_class["f1"]["value"]], kind="stable")
        shown = shown[:int(opts["max_classes"])]
        for c in sorted(int(c) for c in shown):
            for key in ("precision", "recall", "f1"):
                p = per_class[key]
                values.append(Value(key, p["value"][c], where=f"class {c}", interval=p["interval"][c],
                                    n=int(per_class["predicted"][c] if key == "precision" else per_class["support"][c])))
        pairs = most_confused(matrix, int(opts["confused_pairs"]))
        metrics["most_confused"] = pairs
        for p in pairs:
            values.append(Value("confusion", p["share"], where=f"{p['true']} → {p['predicted']}",
                                interval=tuple(p["interval"]), n=p["support"],
                                note=f"{p['count']} of the {p['support']} class-{p['true']} samples are predicted "
                                     f"as class {p['predicted']}"))
        bal, bal_lo, bal_hi = balanced_accuracy(yv, pred, k, n_boot, context.seed + 1)
        metrics["balanced_accuracy"] = {"value": bal, "ci95": [bal_lo, bal_hi]}
        values.append(Value("balanced_accuracy", bal, interval=(bal_lo, bal_hi), n=len(yv),
                            note=f"against accuracy {metrics['accuracy']:.3f}"))
        self._imbalance(y_train if y_train is not None else yv, "training" if y_train is not None else split,
                        per_class, bal, metrics, values, opts, pred, k)

        context.progress(2, 4, "calibration")
        rel = reliability(probs, yv)
        metrics["reliability"] = rel
        classwise = classwise_calibration(probs, yv)
        metrics["class_calibration"] = classwise
        for c in sorted(int(c) for c in shown):
            values.append(Value("class_calibration", classwise[c], where=f"class {c}", n=len(yv)))
        artifacts["confusion matrix"] = draw_confusion(context.artifact_dir / "confusion_matrix.png", matrix, pairs)
        artifacts["reliability diagram"] = draw_reliability(context.artifact_dir / "reliability.png", rel, len(yv))

        if opts["label_issues"]:
            self._label_issues(probs, yv, iv, split, values, metrics)

        context.progress(3, 4, "logistic-regression baseline")
        if data.x_train is not None and y_train is not None and data.x_val is not None:
            self._baseline(context, opts, xv, yv, pred, y_train, k, values, metrics)
        else:
            metrics["baseline"] = "not fitted: it needs a training split with labels and a validation split"
        context.progress(4, 4, "done")
        return Measurements(values=values, metrics=metrics, artifacts=artifacts)

    # -- imbalance ---------------------------------------------------------------------------------
    def _imbalance(self, y_ref, ref_split, per_class, bal, metrics, values, opts, pred, k) -> None:
        import numpy as np

        counts = np.bincount(y_ref, minlength=k)[:k]
        present = np.flatnonzero(counts)
        if len(present) < 2:
            return
        rare = int(present[np.argmin(counts[present])])
        common = int(counts.argmax())
        ratio = float(counts[common] / counts[rare])
        weights = inverse_frequency_weights(counts)
        imbalanced = ratio >= float(opts["imbalance_ratio"])
        metrics["imbalance"] = {"counts": {str(c): int(n) for c, n in enumerate(counts)}, "split": ref_split,
                                "ratio": ratio, "rarest_class": rare, "imbalanced": imbalanced,
                                "class_weight": {str(c): w for c, w in weights.items()}}
        recall = per_class["recall"]
        if recall["value"][rare] is None:
            return  # the rarest training class is absent from the scored split
        share = counts / counts.sum()
        predicted = int(np.sum(pred == rare))
        weights_text = "{" + ", ".join(f"{c}: {w:.3g}" for c, w in weights.items()) + "}"
        if imbalanced:
            note = (f"the classes are imbalanced: in the {ref_split} split class {common} has {counts[common]} samples "
                    f"({share[common]:.1%}) and class {rare} {counts[rare]} ({share[rare]:.1%}), {ratio:.0f} to 1; the "
                    f"model predicts class {rare} for {predicted} of {len(pred)} samples and finds "
                    f"{per_class['tp'][rare]} of its {per_class['support'][rare]}; balanced accuracy {bal:.3f} against "
                    f"accuracy {sum(per_class['tp']) / len(pred):.3f}, where always predicting class {common} scores "
                    f"{per_class['support'][common] / len(pred):.3f}. Try class_weight={weights_text} (inverse frequency, n / (classes × "
                    f"count)) in model.fit")
        else:
            note = f"the training classes are balanced within {ratio:.1f} to 1 (imbalance_ratio {opts['imbalance_ratio']:g}): not judged"
        values.append(Value("minority_recall", recall["value"][rare], where=f"class {rare}",
                            interval=recall["interval"][rare], n=int(per_class["support"][rare]), note=note,
                            ceiling=None if imbalanced else Severity.INFO))

    # -- likely mislabelled samples -----------------------------------------------------------------
    def _label_issues(self, probs, y, index, split, values, metrics) -> None:
        """Confident learning (Northcutt et al. 2021) through cleanlab: the samples whose given label the model
        finds unlikely where it is confident of another class, ranked by the probability of the given label.
        The validation split's probabilities are out-of-sample (the model never trained on it), as it needs."""
        import warnings

        import numpy as np

        try:
            from cleanlab.filter import find_label_issues
        except ImportError:
            metrics["label_issues"] = "not looked for: cleanlab is not installed (pip install 'diagnostics[health]')"
            return
        if np.bincount(y, minlength=probs.shape[1]).min() < 1:
            metrics["label_issues"] = "not looked for: a class has no sample in the scored split"
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranked = find_label_issues(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence", n_jobs=1)
        ranked = np.asarray(ranked, int)
        listed = [{"sample": int(index[i]), "label": int(y[i]), "predicted": int(probs[i].argmax()),
                   "p_label": float(probs[i, y[i]]), "p_predicted": float(probs[i].max())} for i in ranked[:20]]
        metrics["label_issues"] = {"count": int(len(ranked)), "samples": int(len(y)), "split": split,
                                   "method": "cleanlab.filter.find_label_issues (prune_by_noise_rate)",
                                   "first": listed}
        shown = "; ".join(f"sample {d['sample']} labelled {d['label']}, p = {d['p_label']:.2f} for it and "
                          f"{d['p_predicted']:.2f} for {d['predicted']}" for d in listed[:3])
        values.append(Value("label_issues", len(ranked) / len(y), interval=wilson_interval(len(ranked), len(y)),
                            n=len(y), note=f"{len(ranked)} of the {len(y)} {split} samples" + (
                                f", the least likely first: {shown} (indices into the {split} split): look at them "
                                f"before trusting their labels" if listed else "")))

    # -- the simple-model baseline -----------------------------------------------------------------
    def _baseline(self, context, opts, xv, yv, pred, y_train, k, values, metrics) -> None:
        import time

        import numpy as np

        from diagnostics import inputs as I
        from diagnostics.health import forward, probabilities, subsample

        data = context.data
        it = subsample(I.n_samples(data.x_train), int(opts["baseline_samples"]), context.seed + 2)
        xt, yt = I.take(data.x_train, it), y_train[it]
        if len(np.unique(yt)) < 2:
            metrics["baseline"] = "not fitted: the training sample holds one class"
            return
        token = context.info.kind == "token" or np.issubdtype(np.asarray(xt).dtype, np.integer)
        start = time.perf_counter()
        fitted = fit_baseline(np.asarray(xt), yt, int(opts["baseline_features"]), int(opts["baseline_iterations"]),
                              token=token)
        base_val = fitted["predict"](np.asarray(xv))
        base_train = fitted["predict"](np.asarray(xt))
        seconds = time.perf_counter() - start
        net_train = probabilities(forward(context.model, xt), context.info.output_activation).argmax(axis=1)
        a_base, a_net = (base_val == yv).astype(np.float64), (pred == yv).astype(np.float64)
        gap, lo, hi = paired_bootstrap_diff(a_base, a_net, int(opts["bootstrap"]), context.seed + 3)
        acc = {"baseline_val": float(a_base.mean()), "network_val": float(a_net.mean()),
               "baseline_train": float(np.mean(base_train == yt)), "network_train": float(np.mean(net_train == yt))}
        metrics["baseline"] = {"model": "logistic regression (L2, C=1, L-BFGS)", **fitted["described"],
                               "train_samples": int(len(it)), "duration_s": round(seconds, 3), **acc,
                               "gap": gap, "ci95": [lo, hi]}
        inputs = fitted["described"]["inputs"]
        why = (f"logistic regression on the same {inputs}, fitted on {len(it)} training samples, reaches "
               f"{acc['baseline_val']:.3f} on the validation split where the network reaches {acc['network_val']:.3f}")
        if lo <= 0:
            why += "; the network is not surely below the baseline"
        elif acc["network_train"] < acc["baseline_train"] - float(THRESHOLDS["baseline_gap_warning"]):
            why += (f"; on the training split the network reaches {acc['network_train']:.3f} against the baseline's "
                    f"{acc['baseline_train']:.3f}, so it is not overfitting: the network underfits, it has not learnt "
                    f"what a linear model finds in its inputs")
        else:
            why += (f"; on the training split the network reaches {acc['network_train']:.3f} (the baseline "
                    f"{acc['baseline_train']:.3f}): it fits its training data but generalises worse than a linear model "
                    f"(see health.overfitting.gap)")
        narrow = narrowest_layer(context.model, k)
        if narrow:
            why += f"; its narrowest layer, {narrow[0]!r}, has {narrow[1]} units for {k} classes (a bottleneck)"
        values.append(Value("baseline_gap", gap, interval=(lo, hi), n=len(yv), note=why))


# -- the statistics of this analyzer (its method's math lives with it) -------------------------------------
def class_labels(y: Any, k: int):
    """Integer class labels (n,) from integer labels (n,) / (n, 1) or one-hot rows (n, k); None otherwise."""
    import numpy as np

    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == k and k > 1:
        return y.argmax(axis=1).astype(int)
    flat = y.reshape(len(y), -1)
    if flat.shape[1] != 1 or not np.issubdtype(flat.dtype, np.number) or not np.all(flat == np.round(flat)):
        return None
    labels = flat[:, 0].astype(int)
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        return None
    return labels


def _listed(interval):
    return None if interval is None else list(interval)


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson (1927) score interval of a proportion ``successes / n`` (95% by default); (0, 1) for n = 0.

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 or n successes, which is
    where a never-predicted class lies."""
    import math

    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def confusion_matrix(y: Any, pred: Any, k: int):
    """Counts, rows the true class and columns the predicted one."""
    import numpy as np

    return np.bincount(np.asarray(y) * k + np.asarray(pred), minlength=k * k).reshape(k, k)


def per_class_quality(y: Any, pred: Any, k: int, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Precision, recall and F1 of every class, with 95% intervals: Wilson score intervals for precision
    (of the samples predicted as the class) and recall (of the samples of the class), a percentile bootstrap
    over the samples for F1. A class never predicted has no precision (None), one never present no recall."""
    import numpy as np

    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    m = confusion_matrix(y, pred, k)
    tp = np.diag(m)
    support, predicted = m.sum(axis=1), m.sum(axis=0)

    def rate(num, den):
        vals = [None if d == 0 else float(a / d) for a, d in zip(num, den)]
        return {"value": vals, "interval": [None if d == 0 else wilson_interval(int(a), int(d)) for a, d in zip(num, den)]}

    precision, recall = rate(tp, predicted), rate(tp, support)
    f1 = [None if s + p == 0 else float(2 * t / (s + p)) for t, s, p in zip(tp, support, predicted)]
    intervals: list = [None] * k
    if n_boot and len(y) and k <= 100:
        idx = np.random.default_rng(seed).integers(0, len(y), (n_boot, len(y)))
        yb, pb = y[idx], pred[idx]
        for c in range(k):
            if f1[c] is None:
                continue
            t = np.sum((yb == c) & (pb == c), axis=1)
            den = np.sum(yb == c, axis=1) + np.sum(pb == c, axis=1)
            boots = np.where(den > 0, 2 * t / np.maximum(den, 1), 0.0)
            lo, hi = np.quantile(boots, [0.025, 0.975])
            intervals[c] = (float(lo), float(hi))
    return {"precision": precision, "recall": recall, "f1": {"value": f1, "interval": intervals},
            "support": [int(s) for s in support], "predicted": [int(p) for p in predicted],
            "tp": [int(t) for t in tp], "confusion_matrix": m}


def most_confused(matrix: Any, top: int = 5) -> list[dict[str, Any]]:
    """The off-diagonal cells with the most samples (ties: the larger share of the true class first), each
    with the share of its true class and the share's Wilson interval."""
    import numpy as np

    m = np.asarray(matrix)
    rows = m.sum(axis=1)
    cells = [(int(m[i, j]), m[i, j] / rows[i], i, j) for i in range(len(m)) for j in range(len(m))
             if i != j and m[i, j] > 0]
    cells.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    return [{"true": i, "predicted": j, "count": n, "support": int(rows[i]), "share": float(s),
             "interval": list(wilson_interval(n, int(rows[i])))} for n, s, i, j in cells[:top]]


def balanced_accuracy(y: Any, pred: Any, k: int, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean recall over the classes present (Brodersen et al. 2010) and its percentile bootstrap interval."""
    import numpy as np

    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)

    def value(yy, pp):
        support = np.bincount(yy, minlength=k)
        hits = np.bincount(yy[yy == pp], minlength=k)
        present = support > 0
        return float(np.mean(hits[present] / support[present]))

    b = value(y, pred)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        boots.append(value(y[i], pred[i]))
    lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (b, b)
    return b, float(lo), float(hi)


def inverse_frequency_weights(counts: Any) -> dict[int, float]:
    """``n / (classes × count)`` per class present: scikit-learn's ``class_weight="balanced"``, which
    Keras' ``model.fit(class_weight=...)`` takes as a dict (King & Zeng 2001)."""
    import numpy as np

    counts = np.asarray(counts)
    present = np.flatnonzero(counts)
    n = counts.sum()
    return {int(c): float(n / (len(present) * counts[c])) for c in present}


def paired_bootstrap_diff(a: Any, b: Any, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired samples and its percentile bootstrap 95% interval (the same samples
    resampled for both, so what the two models share cancels out)."""
    import numpy as np

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))
    lo, hi = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    return float(d.mean()), float(lo), float(hi)


def fit_baseline(x: Any, y: Any, max_features: int, max_iter: int, token: bool = False) -> dict[str, Any]:
    """A logistic regression on ``x`` flattened (or, for token ids, their counts per sample), its features
    capped at ``max_features`` (the highest-variance ones) and standardised with the training statistics.
    Returns ``{"predict": inputs -> classes, "described": {...}}``."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    def flat(a):
        a = np.asarray(a)
        return a.reshape(len(a), -1)

    if token:
        def features(a):
            ids = flat(a).astype(np.int64) % max_features
            out = np.zeros((len(ids), max_features), np.float64)
            np.add.at(out, (np.repeat(np.arange(len(ids)), ids.shape[1]), ids.reshape(-1)), 1.0)
            return out

        total, keep = max_features, np.arange(max_features)
    else:
        raw = flat(x)
        total = raw.shape[1]
        keep = np.arange(total)
        if total > max_features:
            # The variance per feature in chunks of rows: a 224x224x3 image is 150,528 features, and a float64 copy
            # of 2,000 of them would take 2.4 GB where only max_features columns are kept.
            s1, s2 = np.zeros(total), np.zeros(total)
            for i in range(0, len(raw), 64):
                chunk = raw[i:i + 64].astype(np.float64)
                s1 += chunk.sum(axis=0)
                s2 += (chunk * chunk).sum(axis=0)
            var = s2 / len(raw) - (s1 / len(raw)) ** 2
            keep = np.sort(np.argsort(-var, kind="stable")[:max_features])

        def features(a):
            return flat(a)[:, keep].astype(np.float64)

    f = features(x)
    mean, std = f.mean(axis=0), f.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(max_iter=max_iter)
    # One BLAS thread: on a busy machine the default thread pool spins against the model's own threads and
    # turned a 0.4 s fit into 10 s (the zoo cnn's 1,347 x 256 inputs, two loaded cores); threadpoolctl comes
    # with scikit-learn.
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit((f - mean) / std, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if token:
        inputs = f"token counts ({max_features} buckets of the ids)"
    elif total > max_features:
        inputs = f"flattened, standardised inputs ({len(keep)} of their {total} features, the highest-variance ones)"
    else:
        inputs = f"flattened, standardised inputs ({total} features)"

    def predict(a):
        with threadpool_limits(1):
            return model.predict((features(a) - mean) / std)

    return {"predict": predict,
            "described": {"inputs": inputs, "features": int(len(keep)), "converged": converged,
                          "iterations": int(np.max(model.n_iter_))}}


def narrowest_layer(model: Any, classes: int) -> tuple[str, int] | None:
    """The hidden layer with the fewest output units when it has fewer than ``classes`` (a bottleneck):
    ``(name, units)``, else None."""
    best = None
    for layer in model.layers[:-1]:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        units = shape[-1] if len(shape) >= 2 else None
        if units and (best is None or units < best[1]):
            best = (layer.name, int(units))
    return best if best and best[1] < classes else None


def reliability(probs: Any, y: Any, n_bins: int = 15) -> dict[str, Any]:
    """Top-label reliability bins (Guo et al. 2017): per equal-width confidence bin its sample count, mean
    confidence and accuracy, and the expected calibration error they give (as health.overfitting's)."""
    import numpy as np

    probs = np.asarray(probs, np.float64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y)).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    rows, ece = [], 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
        rows.append({"low": b / n_bins, "high": (b + 1) / n_bins, "count": int(m.sum()),
                     "confidence": float(conf[m].mean()) if m.any() else None,
                     "accuracy": float(correct[m].mean()) if m.any() else None})
    return {"bins": rows, "ece": float(ece)}


def classwise_calibration(probs: Any, y: Any, n_bins: int = 15) -> list[float]:
    """Per class, the calibration error of its predicted probability against being that class (one vs
    rest, equal-width bins): Kull et al. 2019's classwise ECE, before averaging over the classes."""
    import numpy as np

    probs = np.asarray(probs, np.float64)
    y = np.asarray(y)
    out = []
    for c in range(probs.shape[1]):
        p, hit = probs[:, c], (y == c).astype(np.float64)
        bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
        err = 0.0
        for b in np.unique(bins):
            m = bins == b
            err += m.mean() * abs(hit[m].mean() - p[m].mean())
        out.append(float(err))
    return out


# -- pictures --------------------------------------------------------------------------------------------
def draw_confusion(path, matrix, pairs) -> str:
    """The confusion matrix, each row normalised to its class's samples, the counts written in for up to 15
    classes and the most-confused pairs outlined."""
    import numpy as np
    from matplotlib.patches import Rectangle

    m = np.asarray(matrix)
    k = len(m)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    plt = pyplot()
    size = min(9.0, 2.6 + 0.4 * k)
    fig, ax = plt.subplots(figsize=(size + 1.0, size), dpi=90)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 15:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    for p in pairs:
        ax.add_patch(Rectangle((p["predicted"] - 0.5, p["true"] - 0.5), 1, 1, fill=False, edgecolor="#c62828", lw=1.5))
    if k <= 30:
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("predicted class", fontsize=8)
    ax.set_ylabel("true class", fontsize=8)
    ax.set_title("Confusion matrix (share of each true class)\nred: the most-confused pairs", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    return save_png(fig, path).name


def draw_reliability(path, rel: dict, n: int) -> str:
    """Accuracy against confidence per bin (the diagonal is a calibrated model), samples per bin below."""
    plt = pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.6, 4.6), dpi=90, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    rows = [r for r in rel["bins"] if r["count"]]
    width = rel["bins"][0]["high"] - rel["bins"][0]["low"]
    ax.plot([0, 1], [0, 1], color="#9e9e9e", lw=1, ls="--", label="calibrated")
    ax.bar([r["low"] for r in rows], [r["accuracy"] for r in rows], width=width, align="edge", color="#1565c0",
           alpha=0.8, edgecolor="white", label="accuracy")
    ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o", color="#c62828", ms=3,
            label="mean confidence")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy", fontsize=8)
    ax.set_title(f"Reliability diagram (top label; ECE {rel['ece']:.3f} on {n} samples)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    hist.bar([r["low"] for r in rel["bins"]], [r["count"] for r in rel["bins"]], width=width, align="edge",
             color="#757575", edgecolor="white")
    hist.set_xlim(0, 1)
    hist.set_xlabel("confidence", fontsize=8)
    hist.set_ylabel("samples", fontsize=8)
    for a in (ax, hist):
        a.tick_params(labelsize=7)
    return save_png(fig, path).name


@diagnostics.hookimpl
def register_analyzers(register):
    register(PredictionQuality)
