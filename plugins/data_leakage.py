"""Built-in plugin: ``data.leakage``, label information that no model should have, found in the data.

Two faults that inflate a validation score without any sign in the score itself:

- *A feature that is the label.* A column filled in after the outcome (a diagnosis code, a refund flag,
  the label itself joined back by mistake) predicts the label on its own far better than every other
  feature. When it is present in both splits, the validation score is as inflated as the training score,
  so no train/validation gap betrays it (``explain.shortcut`` finds only features that differ between the
  splits). Each feature of a table (a region of an image, a time step of a sequence, the per-sequence count of
  a frequent token id) gets a one-feature classifier (the majority label of the ``neighbours``
  nearest samples by the feature's value, cross-fitted on two halves of the split, so a feature cannot
  memorise its own rows) in each split; a feature whose balanced accuracy is near perfect *and* whose error
  is a small fraction of the next-best feature's is named (Kaufman et al. 2012, *Leakage in data mining*).
- *The same samples in both splits.* Exact duplicates (identical bytes) and near duplicates (the nearest
  training sample closer than ``near_distance`` of the training data's spread) of validation samples: the
  model is scored on samples it was trained on, and its validation score measures memory (Allamanis 2019,
  *The adverse effects of code duplication*; Barz & Denzler 2020, *Do we train on test data?*).
"""

from __future__ import annotations

from typing import Any

import diagnostics
from diagnostics import Direction, Finding, HealthAnalyzer, Measure, Measurements, Option, Scope, Severity, Value

DEFAULTS = {
    # samples per split compared (drawn with --seed)
    "max_samples": 2000,
    # neighbours (by the feature's value) whose majority label the one-feature classifier predicts
    "neighbours": 15,
    # near duplicate: distance to the nearest training sample at most this share of the training spread
    # (the root of the summed per-feature variances, ~ the distance between two random samples / sqrt 2)
    "near_distance": 0.02,
    # token models: the most frequent training ids whose per-sequence counts are compared one by one
    "token_ids": 50,
}
_HELP = {
    "max_samples": "samples per split compared",
    "neighbours": "neighbours (by the feature's value) whose majority label the one-feature classifier predicts",
    "near_distance": "near duplicate: nearest training sample within this share of the training data's spread",
    "token_ids": "token models: the most frequent training ids whose counts per sequence are compared one by one",
}
THRESHOLDS = {
    # a feature that alone reaches this balanced accuracy (the lower end of its 95% interval)...
    "label_feature_accuracy": 0.95,
    # ... with an error at most this share of the next-best feature's: the label, not a strong predictor
    "label_feature_error_ratio": 0.25,
    # share of validation samples with a duplicate in the training split (the lower end of its 95% interval):
    # 1% moves a score by up to a point; 5% is a split that was not made by sample
    "duplicates_warning": 0.01,
    "duplicates_error": 0.05,
}


class DataLeakage(HealthAnalyzer):
    """A single feature that predicts the label on its own far better than the rest (in either split), and
    exact or near duplicates of validation samples in the training split."""

    name = "data.leakage"
    category = "data"
    # Cause before symptom: a feature that is the label makes the model lean on it, which other analyzers see.
    explains = {
        "explain.shortcut.*": "a feature predicts the label on its own in the data: the model leans on a leak in "
                              "the data, remove it from the inputs (or build it only from what is known at "
                              "prediction time)",
        "health.overfitting.gap": "a feature predicts the label on its own in one split or both: the gap follows the "
                                  "leak, not noise fitted",
    }
    description = ("Label leakage: a feature that alone predicts the label far better than every other (either "
                   "split); exact and near duplicates across the splits.")
    model_kinds = frozenset({"image", "sequence", "token", "tabular"})
    data = "train_val"
    reference = ("Kaufman et al. 2012 (Leakage in data mining); Barz & Denzler 2020 (Do we train on test data?); "
                 "Allamanis 2019 (The adverse effects of code duplication)")
    default_thresholds = THRESHOLDS
    options = (*(Option(k, float, v, "threshold") for k, v in THRESHOLDS.items()),
               Option("max_samples", int, DEFAULTS["max_samples"], _HELP["max_samples"]),
               Option("neighbours", int, DEFAULTS["neighbours"], _HELP["neighbours"]),
               Option("near_distance", float, DEFAULTS["near_distance"], _HELP["near_distance"]),
               Option("token_ids", int, DEFAULTS["token_ids"], _HELP["token_ids"]),
               Option("health_thresholds", str, "", "thresholds file (TOML or JSON) with a [data.leakage] section"))
    measures = (
        Measure("single_feature_accuracy", "Balanced accuracy of the feature alone", scope=Scope.FEATURE,
                format=".3f",
                reference="majority label of the nearest samples by the feature's value, cross-fitted on two halves of the split; "
                          "95% bootstrap interval; shown for the best features, judged together (label_feature)"),
        Measure("duplicates", "Validation samples with a duplicate in training", unit="fraction",
                direction=Direction.HIGHER_IS_WORSE, warning="duplicates_warning", error="duplicates_error",
                format=".1%",
                reference="exact (identical values) or near (nearest training sample within near_distance of the "
                          "training spread); 95% Wilson interval, its lower end judged; 1% moves a score by up to a "
                          "point, 5% is a split not made by sample",
                advice="remove the duplicates before splitting, and split by group (patient, user, source file, "
                       "scene) so that copies and near copies of one sample stay in one split; then score again"),
    )

    def measure(self, context) -> Measurements:
        import numpy as np

        from diagnostics import inputs as I
        from diagnostics.health import thresholds, token_counts

        data = context.data
        if len(context.model.inputs) != 1 or I.is_multi(data.x_train):
            return Measurements.skip(f"{self.name} supports single-input models")
        opts = {**DEFAULTS, **{k: v for k, v in context.options.items() if k in DEFAULTS}}
        t = thresholds(context.options, self.name, defaults=THRESHOLDS)
        k = int(opts["max_samples"])
        it = diagnostics.select_samples(len(data.x_train), k, context.seed + 31)
        iv = diagnostics.select_samples(len(data.x_val), k, context.seed + 32)
        xt, xv = np.asarray(data.x_train)[it], np.asarray(data.x_val)[iv]
        yt, yv = _labels(data.y_train, it), _labels(data.y_val, iv)
        values: list[Value] = []
        findings: list[Finding] = []
        metrics: dict[str, Any] = {"train_samples": len(it), "val_samples": len(iv)}
        with context.timed("duplicates"):
            self._duplicates(xt, xv, yt, yv, float(opts["near_distance"]), values, metrics)
        if yt is None or yv is None:
            metrics["label_feature"] = "not measured: the labels are not class indices (a regression target?)"
        elif xt.ndim == 2 and context.info.kind == "tabular":
            with context.timed("single features"):
                self._label_feature(context, xt, xv, yt, yv, data.feature_names(xt.shape[1]), "feature", opts, t,
                                    values, findings, metrics)
        elif xt.ndim in (3, 4) and context.info.kind in ("image", "sequence"):
            # a region of an image (a cell of a 7 x 7 grid) or a time step, each as its mean value: a mark, a
            # watermark or a time stamp that is the label shows up as one such place predicting it alone
            (ft, fv), names = places(xt, xv)
            with context.timed("single places"):
                self._label_feature(context, ft, fv, yt, yv, names, "region" if xt.ndim == 4 else "time step", opts,
                                    t, values, findings, metrics)
        elif xt.ndim == 2 and context.info.kind == "token":
            # token ids are labels, not values: how often each frequent id occurs per sequence (a label word, a
            # tag or a template that differs by class is one such count predicting the label alone)
            (ft, fv), names, _ = token_counts(xt, xv, int(opts["token_ids"]))
            with context.timed("single tokens"):
                self._label_feature(context, ft, fv, yt, yv, names, "token", opts, t, values, findings, metrics)
        else:
            metrics["label_feature"] = f"not measured: inputs of shape {xt.shape[1:]} for a {context.info.kind} model"
        return Measurements(values=values, findings=findings, metrics=metrics)

    # -- a feature that is the label -------------------------------------------------------------------
    def _label_feature(self, context, xt, xv, yt, yv, names, kind, opts, t, values, findings, metrics) -> None:
        import numpy as np

        neighbours = int(opts["neighbours"])
        per_split = {}
        for split, x, y, seed in (("training", xt, yt, context.seed + 33), ("validation", xv, yv, context.seed + 34)):
            acc = np.array([single_feature_accuracy(x[:, j], y, neighbours, seed) for j in range(x.shape[1])])
            per_split[split] = acc
        shown = np.argsort(-np.maximum(per_split["training"], per_split["validation"]), kind="stable")[:10]
        metrics["single_feature_accuracy"] = {names[j]: {s: float(a[j]) for s, a in per_split.items()}
                                              for j in shown}
        leaks = {}
        for split, x, y, seed in (("training", xt, yt, context.seed + 35), ("validation", xv, yv, context.seed + 36)):
            acc = per_split[split]
            order = np.argsort(-acc, kind="stable")
            top = int(order[0])
            lo, hi = bootstrap_accuracy(x[:, top], y, neighbours, seed)
            for j in shown:
                interval = (lo, hi) if j == top else None
                values.append(Value("single_feature_accuracy", float(acc[j]), where=names[j], series=split, n=len(y),
                                    interval=interval))
            if len(order) < 2:
                continue
            second = int(order[1])
            err_top, err_second = 1 - acc[top], 1 - acc[second]
            ratio = err_top / err_second if err_second > 0 else 1.0
            metrics.setdefault("best_feature", {})[split] = {
                "feature": names[top], "balanced_accuracy": float(acc[top]), "ci95": [lo, hi],
                "next_feature": names[second], "next_balanced_accuracy": float(acc[second]), "error_ratio": float(ratio)}
            if lo >= t["label_feature_accuracy"] and ratio <= t["label_feature_error_ratio"]:
                leaks[split] = (top, float(acc[top]), lo, hi, second, float(acc[second]))
        by_feature: dict[int, dict] = {}
        for split, leak in leaks.items():
            by_feature.setdefault(leak[0], {})[split] = leak
        for j, splits in by_feature.items():
            both = len(splits) == 2
            evidence = "; ".join(
                f"on the {s} split it alone reaches balanced accuracy {a:.3f} (95% CI {lo:.3f}-{hi:.3f}) where the "
                f"next-best {kind}, {names[second]}, reaches {a2:.3f}"
                for s, (_, a, lo, hi, second, a2) in splits.items())
            if "validation" in splits:
                why = ("present in the validation split too, so the validation score is inflated exactly like the "
                       "training score and no train/validation gap shows it: the model will fail where that input is "
                       "not filled in yet (at prediction time)") if both else (
                       "in the validation split only: the validation score is inflated by it")
                severity = Severity.ERROR
            else:
                why = ("in the training split only: the model learns to read it and meets it uninformative on new data "
                       "(explain.shortcut measures how much the model relies on it)")
                severity = Severity.WARNING
            what = {"feature": f"{names[j]}", "region": f"the region {names[j]} (its mean value)",
                    "time step": f"{names[j]} (its mean over the channels)",
                    "token": f"{names[j]} (its count per sequence)"}[kind]
            remedy = {"feature": "Remove the column, or rebuild it from what is known before the outcome",
                      "region": "Remove what marks that region (a tag, watermark, border or burnt-in label) from "
                                "the images, or crop or mask it in every split",
                      "time step": "Remove what that step records about the outcome (a status or time stamp filled "
                                   "in afterwards), or mask it in every split",
                      "token": "Remove that token from the texts (a label word, a tag or template text that differs "
                               "by class, a field filled in after the outcome), or mask it in every split"}[kind]
            findings.append(Finding(
                "data.leakage.label_feature", severity, where=names[j],
                message=f"{what} predicts the label on its own far better than every other {kind} "
                        f"— {evidence}. An input that is (nearly) the label is a target leak: filled in after the "
                        f"outcome, derived from it, or the label joined back by mistake; {why}. {remedy}, then "
                        f"retrain and score again"))
        metrics["label_features"] = [names[j] for j in by_feature]

    # -- the same samples in both splits ----------------------------------------------------------------
    def _duplicates(self, xt, xv, yt, yv, near, values, metrics) -> None:
        import numpy as np

        ft = np.asarray(xt, np.float64).reshape(len(xt), -1)
        fv = np.asarray(xv, np.float64).reshape(len(xv), -1)
        if not (np.isfinite(ft).all() and np.isfinite(fv).all()):
            metrics["duplicates"] = "not measured: the inputs hold NaN or Inf (see data.drift)"
            return
        exact_rows = {r.tobytes() for r in np.ascontiguousarray(ft)}
        exact = np.array([r.tobytes() in exact_rows for r in np.ascontiguousarray(fv)])
        spread = float(np.sqrt(ft.var(axis=0).sum()))
        dist, nearest = nearest_distances(fv, ft)
        close = dist <= near * spread if spread > 0 else dist <= 0
        dup = exact | close
        n = len(fv)
        share = float(dup.mean())
        lo, hi = wilson(int(dup.sum()), n)
        differ = 0
        if yt is not None and yv is not None:
            differ = int(np.sum(dup & (yt[nearest] != yv)))
        metrics["duplicates"] = {"exact": int(exact.sum()), "near": int((close & ~exact).sum()), "samples": n,
                                 "share": share, "ci95": [lo, hi], "near_distance": near, "spread": spread,
                                 "different_label": differ,
                                 "examples": [[int(i), int(nearest[i])] for i in np.flatnonzero(dup)[:10]]}
        note = (f"{int(exact.sum())} exact and {int((close & ~exact).sum())} near duplicate(s) among {n} validation "
                f"samples (nearest training sample within {near:g} of the training spread {spread:.3g})")
        if differ:
            note += f"; {differ} of them carry a different label than their training copy (label noise)"
        note += ": the model is scored on samples it was trained on, so the validation score measures memory, not " \
                "generalisation"
        values.append(Value("duplicates", share, interval=(lo, hi), n=n, note=note))


def places(xt, xv, grid: int = 7, max_steps: int = 64) -> tuple[tuple[Any, Any], list[str]]:
    """Images: the mean of each cell of a ``grid`` x ``grid`` partition (over the cell's pixels and the
    channels), named ``rows a-b, columns c-d``. Sequences: the mean over the channels of each step, or of each
    window of steps when there are more than ``max_steps``, named ``step t`` / ``steps a-b``."""
    import numpy as np

    xt, xv = np.asarray(xt, np.float64), np.asarray(xv, np.float64)
    if xt.ndim == 4:
        h, w = xt.shape[1:3]
        rows = np.array_split(np.arange(h), min(grid, h))
        cols = np.array_split(np.arange(w), min(grid, w))
        cells = [(r, c) for r in rows for c in cols]
        names = [f"rows {r[0]}-{r[-1]}, columns {c[0]}-{c[-1]}" for r, c in cells]
        feats = [np.stack([x[:, r[0]:r[-1] + 1, c[0]:c[-1] + 1].mean(axis=(1, 2, 3)) for r, c in cells], axis=1)
                 for x in (xt, xv)]
        return (feats[0], feats[1]), names
    steps = np.array_split(np.arange(xt.shape[1]), min(max_steps, xt.shape[1]))
    names = [f"step {s[0]}" if len(s) == 1 else f"steps {s[0]}-{s[-1]}" for s in steps]
    feats = [np.stack([x[:, s[0]:s[-1] + 1].mean(axis=(1, 2)) for s in steps], axis=1) for x in (xt, xv)]
    return (feats[0], feats[1]), names


def _labels(y, idx) -> Any:
    """Class indices of the selected rows (one per sample; one-hot rows become their argmax), or None
    when the labels are not class indices."""
    import numpy as np

    if y is None or isinstance(y, dict):
        return None
    y = np.asarray(y)[idx]
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    y = y.reshape(len(y))
    if not np.all(np.isfinite(y.astype(np.float64))) or not np.all(y == np.round(y)):
        return None
    return y.astype(np.int64)


def single_feature_accuracy(feature, y, neighbours: int = 15, seed: int = 0) -> float:
    """Balanced accuracy (mean recall over the classes present) of the one-feature classifier: each sample
    takes the majority label of its ``neighbours`` nearest samples by the feature's value in the other half
    of the split, and the halves swap (2-fold cross-fitting, so a feature with a distinct value per row
    cannot memorise its rows). Ties of distance are broken by the sorted order."""
    import numpy as np

    f = np.asarray(feature, np.float64)
    y = np.asarray(y)
    classes, y_idx = np.unique(y, return_inverse=True)
    if len(classes) < 2 or len(f) < 4:
        return float("nan")
    order = np.random.default_rng(seed).permutation(len(f))
    halves = (order[: len(f) // 2], order[len(f) // 2:])
    predicted = np.empty(len(f), np.int64)
    for fit, score in (halves, halves[::-1]):
        srt = np.argsort(f[fit], kind="stable")
        fv, lab = f[fit][srt], y_idx[fit][srt]
        k = min(int(neighbours), len(fv))
        pos = np.searchsorted(fv, f[score])
        # the k nearest lie among the k on either side of the insertion point
        window = np.clip(pos[:, None] + np.arange(-k, k)[None, :], 0, len(fv) - 1)
        dist = np.abs(fv[window] - f[score][:, None])
        dist[:, 1:][window[:, 1:] == window[:, :-1]] = np.inf  # clipped repeats count once
        nearest = np.take_along_axis(window, np.argsort(dist, axis=1, kind="stable")[:, :k], axis=1)
        votes = np.zeros((len(score), len(classes)))
        np.add.at(votes, (np.repeat(np.arange(len(score)), k), lab[nearest].ravel()), 1.0)
        predicted[score] = votes.argmax(axis=1)
    return float(np.mean([np.mean(predicted[y_idx == c] == c) for c in range(len(classes))]))


def bootstrap_accuracy(feature, y, neighbours: int, seed: int, n_boot: int = 200) -> tuple[float, float]:
    """95% percentile bootstrap interval of :func:`single_feature_accuracy` (rows resampled)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    f, y = np.asarray(feature), np.asarray(y)
    draws = []
    for i in range(n_boot):
        idx = rng.integers(0, len(f), len(f))
        a = single_feature_accuracy(f[idx], y[idx], neighbours, seed + i)
        if np.isfinite(a):
            draws.append(a)
    if not draws:
        return float("nan"), float("nan")
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(lo), float(hi)


def nearest_distances(queries, reference, chunk: int = 512) -> tuple[Any, Any]:
    """Euclidean distance from each row of ``queries`` to its nearest row of ``reference``, and that row's
    index (chunked |a|^2 + |b|^2 - 2ab, clipped at 0)."""
    import numpy as np

    q = np.asarray(queries, np.float64)
    r = np.asarray(reference, np.float64)
    rn = (r ** 2).sum(axis=1)
    dist = np.empty(len(q))
    idx = np.empty(len(q), np.int64)
    for s in range(0, len(q), chunk):
        block = q[s:s + chunk]
        d2 = (block ** 2).sum(axis=1)[:, None] + rn[None, :] - 2.0 * block @ r.T
        j = d2.argmin(axis=1)
        idx[s:s + chunk] = j
        dist[s:s + chunk] = np.sqrt(np.maximum(d2[np.arange(len(block)), j], 0.0))
    return dist, idx


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95% by default)."""
    import math

    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@diagnostics.hookimpl
def register_analyzers(register):
    register(DataLeakage)
