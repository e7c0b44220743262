"""Built-in plugin: ``explain.shortcut``, spurious features that only the training split carries.

Integrated Gradients through the public :func:`diagnostics.explain.integrated_gradients` on the
backend's compiled ``input_gradients``; the method's numpy steps live here with it (issue 24: a
method's math lives with its method), which is why the module is longer than most.

Two kinds of evidence: (a) *where the model looks*, (b) *what the model needs*, the region's content
shuffled across the samples of a split (Breiman 2001's permutation importance restricted to a region).
References: Lapuschkin et al. (2019), *Unmasking Clever Hans predictors*; Geirhos et al. (2020),
*Shortcut learning in deep neural networks*; Breiman (2001), *Random forests*.

Images and sequences: Integrated Gradients maps of training and validation samples (their predicted
class), each normalised to unit mass and averaged per split; the region where training attribution
exceeds validation attribution is shuffled across samples within each split. A region that holds much
of the training attribution and little of the validation attribution is a warning; one whose shuffling
drops training accuracy but not validation accuracy is an error. Tables: every feature is shuffled in
each split (permutation importance, train vs validation), and features constant in training but
varying in validation are reported.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import diagnostics
from diagnostics import Context, Finding, HealthAnalyzer, Measure, Measurements, Option, Scope, Severity, Value
from diagnostics.plotting import pyplot, save_png

#: Defaults of the analyzer's options (``--option explain.shortcut.KEY=VALUE``).
DEFAULTS = {
    # samples explained per split (Integrated Gradients)
    "samples": 128,
    # samples per split whose accuracy is measured with and without shuffling (forward passes only)
    "accuracy_samples": 512,
    # IG steps (Gauss-Legendre; the map is averaged over samples, so a few steps suffice)
    "steps": 16,
    # region: the connected cells where (train - val) mean attribution is at least this share of its peak
    # (on cnn_shortcut everything outside the planted mark stays under 0.06 of the peak; 0.5 keeps only
    # the mark's centre, because a 'valid' 3x3 convolution sees the border pixels through fewer taps)
    "region_level": 0.2,
    # (a) the region holds at least this share of the training attribution mass ...
    "train_mass_min": 0.05,
    # ... at least this many times its share of the input's area (attribution concentrates there) ...
    "density_min": 3.0,
    # ... and at least this many times the validation share
    "mass_ratio_min": 3.0,
    # (b) shuffling the region drops training accuracy by at least this much, and by this much more than
    # validation accuracy at the lower end of the 95% bootstrap interval of the difference (the healthy zoo
    # lstm's most-attended steps give a difference of 0.11 with a lower end near 0.0; cnn_shortcut's mark 0.20)
    "drop_margin": 0.05,
    "batch_size": 256,
}


_HELP = {
    "samples": "samples explained per split (Integrated Gradients)",
    "accuracy_samples": "samples per split whose accuracy is measured with and without shuffling",
    "steps": "IG steps",
    "region_level": "region: cells whose (train - val) mean attribution is at least this share of its peak",
    "train_mass_min": "the region holds at least this share of the training attribution mass",
    "density_min": "... at least this many times its share of the input's area",
    "mass_ratio_min": "... and at least this many times the validation share",
    "drop_margin": "shuffling the region drops training accuracy by this much more than validation accuracy",
    "batch_size": "forward/gradient batch size",
}


class ShortcutDetection(HealthAnalyzer):
    """Clever-Hans detection: attribution concentrated in a training-only region (Lapuschkin et al. 2019),
    confirmed by shuffling that region (permutation importance, Breiman 2001) on each split.

    Its measures are shown, not judged one by one: a shortcut is a diagnosis from several of them (see
    :meth:`_region`), made as an extra finding ``explain.shortcut.region`` or ``explain.shortcut.feature``.
    """

    name = "explain.shortcut"
    category = "explanation"
    description = "Spurious training-only features: where training attribution concentrates, confirmed by shuffling it."
    model_kinds = frozenset({"image", "sequence", "tabular"})
    data = "train_val"
    reference = "Lapuschkin et al. 2019 (Unmasking Clever Hans predictors); Geirhos et al. 2020; Breiman 2001"
    options = tuple(Option(k, type(v), v, _HELP[k]) for k, v in DEFAULTS.items())
    measures = (
        Measure("accuracy_drop", "Accuracy drop when shuffled", unit="accuracy", scope=Scope.FEATURE,
                reference="permutation importance (Breiman 2001), on each split", format=".3f"),
        Measure("drop_gap", "Training minus validation accuracy drop", unit="accuracy", scope=Scope.FEATURE,
                reference="95% interval: bootstrap, each split resampled", format=".3f"),
        Measure("attribution_share", "Share in the region", unit="fraction",
                scope=Scope.FEATURE, reference="integrated gradients, |attribution| summed over channels, unit mass per "
                                               "sample, averaged per split", format=".1%"),
    )

    def measure(self, context: Context) -> Measurements:
        import numpy as np

        from diagnostics.health import probabilities

        if len(context.model.inputs) != 1 or len(context.model.outputs) != 1:
            return Measurements.skip(f"{self.name} supports single-input, single-output models (this one has "
                                     f"{len(context.model.inputs)} inputs, {len(context.model.outputs)} outputs)")
        opts = dict(DEFAULTS)
        opts.update({k: v for k, v in context.options.items() if k in DEFAULTS})
        data, model, info = context.data, context.model, context.info
        n = int(opts["accuracy_samples"])
        bs = int(opts["batch_size"])
        it = diagnostics.select_samples(len(data.x_train), n, context.seed + 11)
        iv = diagnostics.select_samples(len(data.x_val), n, context.seed + 12)
        xt, yt = np.asarray(data.x_train)[it].astype(np.float32), np.asarray(data.y_train)[it]
        xv, yv = np.asarray(data.x_val)[iv].astype(np.float32), np.asarray(data.y_val)[iv]
        act = info.output_activation

        def predict(x):
            p = probabilities(diagnostics.predict_batched(model, x, bs), act)
            if p is None:
                raise _NotAClassifier
            return p.argmax(axis=1)

        try:
            predict(xv[:2])
        except _NotAClassifier:
            return Measurements.skip("needs a classifier (softmax or sigmoid output): accuracy is what a shortcut inflates")
        y_flat = lambda y: np.asarray(y).reshape(len(y), -1)[:, 0].astype(int)
        yt, yv = y_flat(yt), y_flat(yv)
        findings: list[Finding] = []
        values: list[Value] = []
        metrics: dict = {"train_samples": len(it), "val_samples": len(iv)}
        artifacts: dict = {}
        names = data.feature_names(xt.shape[1]) if xt.ndim == 2 else []
        if info.kind == "tabular" or xt.ndim == 2:
            self._table(context, opts, predict, xt, yt, xv, yv, names, findings, values, metrics)
        else:
            self._region(context, opts, predict, xt, yt, xv, yv, findings, values, metrics, artifacts)
        if xt.ndim == 2:
            const = constant_in_train(data.x_train, data.x_val)
            metrics["constant_in_train"] = [names[i] for i in const]
            if const:
                shown = ", ".join(names[i] for i in const[:8])
                findings.append(Finding(
                    "explain.shortcut.constant_in_train", Severity.WARNING, where=shown,
                    message=f"{len(const)} input feature(s) never vary in the training split but do in the validation split "
                            f"({shown}): the model learnt nothing about them and meets unseen values at prediction time — "
                            f"often a column filled in differently after the split (a leak) or a broken join; drop the "
                            f"column or rebuild both splits from the same source"))
        return Measurements(values=values, findings=findings, metrics=metrics, artifacts=artifacts)

    # -- images and sequences --------------------------------------------------------------------
    def _region(self, context, opts, predict, xt, yt, xv, yv, findings, values, metrics, artifacts) -> None:
        import numpy as np

        from diagnostics import explain as E
        from diagnostics.backends import get

        model, bs = context.model, int(opts["batch_size"])
        backend = get(context.backend)

        def grad_fn(xb, tb):
            return backend.input_gradients(model, xb, tb, batch_size=len(xb))

        context.progress(0, 3, "attributions (integrated gradients)")
        maps = {}
        k = int(opts["samples"])  # the first k of the (randomly drawn, sorted) accuracy samples
        for split, x in (("train", xt[diagnostics.select_samples(len(xt), k, context.seed)]),
                         ("val", xv[diagnostics.select_samples(len(xv), k, context.seed)])):
            p = diagnostics.predict_batched(model, x, bs)
            targets = diagnostics.select_targets(p, None, context.info.output_activation)
            steps = int(opts["steps"])
            r = E.integrated_gradients(grad_fn, x, np.zeros_like(x), targets.index, steps=steps, max_steps=steps,
                                       batch_size=bs)
            feature = np.abs(r.attributions).sum(axis=-1)  # channels summed: one value per pixel / step
            maps[split] = unit_mass(feature)  # drops the samples whose map is all zero or not finite
            metrics.setdefault("unusable_attributions", {})[split] = len(x) - len(maps[split])
        if not all(len(m) for m in maps.values()):
            metrics["region"] = None
            metrics["region_not_located"] = ("the model's integrated gradients are zero or not finite on every sample of "
                                             "a split (saturated or overflowing: see health.gradients): there is no "
                                             "attribution region to test")
            context.progress(3, 3, "done")
            return
        mt, mv = maps["train"].mean(axis=0), maps["val"].mean(axis=0)
        context.progress(1, 3, "region")
        region = attribution_region(mt, mv, float(opts["region_level"]))
        mask = region.pop("mask")
        context.progress(2, 3, "shuffling the region")
        acc_t, acc_t_shuf, per_t = permutation_drop(predict, xt, yt, mask, context.seed)
        acc_v, acc_v_shuf, per_v = permutation_drop(predict, xv, yv, mask, context.seed)
        drop_t = acc_t - acc_t_shuf
        gap, gap_lo, gap_hi = drop_gap(per_t, per_v, context.seed)
        image = mt.ndim == 2
        if image and "box" in region:
            top, left, bottom, right = region["box"]
            where = f"rows {top}-{bottom}, columns {left}-{right}"
        elif "steps" in region:
            where = f"steps {region['steps'][0]}-{region['steps'][1]}"
        else:
            where = "none"
        concentrated = (region["train_mass"] >= opts["train_mass_min"]
                        and region["train_mass"] >= opts["density_min"] * region["area"]
                        and region["train_mass"] >= opts["mass_ratio_min"] * max(region["val_mass"], 1e-12))
        needed = bool(mask.any()) and drop_t >= opts["drop_margin"] and gap_lo >= opts["drop_margin"]
        metrics.update({"method": f"integrated_gradients ({int(opts['steps'])} steps, zero baseline)", "region": region,
                        "where": where, "accuracy": {"train": acc_t, "train_shuffled": acc_t_shuf, "val": acc_v,
                                                     "val_shuffled": acc_v_shuf},
                        "drop_gap": {"value": gap, "ci95_low": gap_lo, "samples": [len(xt), len(xv)]},
                        "concentrated": bool(concentrated), "needed": bool(needed)})
        values.extend(_drops(where, acc_t - acc_t_shuf, acc_v - acc_v_shuf, gap, gap_lo, gap_hi, len(xt), len(xv)))
        values.extend([Value("attribution_share", region["train_mass"], where=where, series="train", n=len(maps["train"])),
                       Value("attribution_share", region["val_mass"], where=where, series="validation", n=len(maps["val"])),
                       Value("attribution_share", region["area"], where=where, series="input area")])
        # A diagnosis, not a threshold on one value: two independent lines of evidence, five numbers against
        # four options. Attribution concentrated in the region (three ratios) alone is a warning: the model
        # looks there in training only. Shuffling the region hurting training accuracy, and surely more than
        # validation accuracy (a drop and the lower end of an interval), is an error: the model needs it.
        # One finding per region, its severity saying which evidence holds, as the zoo's sidecars expect.
        if concentrated or needed:
            evidence = []
            if concentrated:
                evidence.append(f"it holds {region['train_mass']:.0%} of the training samples' attribution but "
                                f"{region['val_mass']:.0%} of the validation samples' ({region['area']:.1%} of the input)")
            evidence.append(f"shuffling it across samples drops training accuracy from {acc_t:.3f} to {acc_t_shuf:.3f} "
                            f"and validation accuracy from {acc_v:.3f} to {acc_v_shuf:.3f} (difference {gap:.3f}, 95% CI "
                            f"lower end {gap_lo:.3f}, on {len(xt)}+{len(xv)} samples)")
            findings.append(Finding(
                "explain.shortcut.region", Severity.ERROR if needed else Severity.WARNING, where=where,
                message=f"the model relies on a region that only its training data use ({where}): " + "; ".join(evidence)
                        + " — a spurious feature (a watermark, border, tag or time stamp) that encodes the training labels; "
                          "it will not hold on new data. Remove or randomise it in the training data (crop, mask, augment), "
                          "or collect training data without it, then retrain"))
        if image:
            artifacts["shortcut region"] = _draw_images(context.artifact_dir / "shortcut.png", xt, xv, mt, mv,
                                                        region.get("box"), flagged=concentrated or needed)
        else:
            artifacts["shortcut region"] = _draw_profile(context.artifact_dir / "shortcut.png", mt, mv, region.get("steps"),
                                                         flagged=concentrated or needed)
        context.progress(3, 3, "done")

    # -- tables -----------------------------------------------------------------------------------
    def _table(self, context, opts, predict, xt, yt, xv, yv, names, findings, values, metrics) -> None:
        import numpy as np

        n_features = xt.shape[1]
        drops, lows, measured = [], [], []
        base_t = base_v = None
        for j in range(n_features):
            mask = np.zeros(n_features, bool)
            mask[j] = True
            a_t, s_t, per_t = permutation_drop(predict, xt, yt, mask, context.seed + j)
            a_v, s_v, per_v = permutation_drop(predict, xv, yv, mask, context.seed + j)
            base_t, base_v = a_t, a_v
            drops.append((a_t - s_t, a_v - s_v))
            gap, lo, hi = drop_gap(per_t, per_v, context.seed + j)
            lows.append(lo)
            measured.append(_drops(names[j], a_t - s_t, a_v - s_v, gap, lo, hi, len(xt), len(xv)))
        drops_arr = np.array(drops)
        # The most important features first (training drop, then input order), as a permutation-importance
        # table is read; a chart that cannot show every feature of a wide table keeps the first ones.
        for j in np.argsort(-drops_arr[:, 0], kind="stable"):
            values.extend(measured[j])
        metrics["permutation_importance"] = {names[j]: {"train": float(d[0]), "val": float(d[1]),
                                                        "gap_ci95_low": float(lows[j])} for j, d in enumerate(drops)}
        metrics["accuracy"] = {"train": base_t, "val": base_v}
        margin = float(opts["drop_margin"])
        leaky = [j for j in np.argsort(-(drops_arr[:, 0] - drops_arr[:, 1]))
                 if drops_arr[j, 0] >= margin and lows[j] >= margin]
        metrics["features"] = [names[j] for j in leaky]
        # A diagnosis from two numbers per feature (the training drop, and the lower end of the interval of
        # its difference from the validation drop), both against drop_margin; the features that pass are
        # named together in one finding, the worst first.
        if leaky:
            shown = ", ".join(f"{names[j]} (training accuracy -{drops_arr[j, 0]:.3f}, validation "
                              f"{-drops_arr[j, 1]:+.3f})" for j in leaky[:5])
            findings.append(Finding(
                "explain.shortcut.feature", Severity.ERROR, where=", ".join(names[j] for j in leaky[:5]),
                message=f"shuffling {len(leaky)} feature(s) across rows hurts the model on its training split but not on "
                        f"its validation split: {shown}. The model relies on them, yet they predict only the training "
                        f"labels — a target leak (a column filled in after the outcome) or a training-only artefact; drop "
                        f"the column or rebuild it the same way in every split, then retrain"))


class _NotAClassifier(Exception):
    pass


# -- the numpy steps: where the model looks (a), what it needs (b), columns it never saw vary -------------
def unit_mass(maps: Any) -> Any:
    """|maps| per sample scaled to sum 1 (samples whose map is all zero or not finite are dropped)."""
    import numpy as np

    a = np.abs(np.asarray(maps, np.float64)).reshape(len(maps), -1)
    total = a.sum(axis=1)
    keep = np.isfinite(total) & (total > 0)
    return (a[keep] / total[keep, None]).reshape((int(keep.sum()),) + np.asarray(maps).shape[1:])


def attribution_region(train_map: Any, val_map: Any, level: float = 0.5) -> dict[str, Any]:
    """The region where the training split's mean attribution exceeds the validation split's.

    ``train_map``/``val_map`` are the per-split means of :func:`unit_mass` maps, shape (H, W) for
    images, (T,) for sequences. The region is the connected set (4-neighbourhood; a run of steps for
    sequences) around the largest difference, of cells whose difference is at least ``level`` of it. Returns ``{"mask", "box" | "steps" | "features",
    "train_mass", "val_mass", "area"}`` (box = [top, left, bottom, right], inclusive)."""
    import numpy as np

    t = np.asarray(train_map, np.float64)
    v = np.asarray(val_map, np.float64)
    d = t - v
    peak = float(d.max()) if d.size else 0.0
    out: dict[str, Any] = {"peak_difference": peak}
    if peak <= 0:
        mask = np.zeros(d.shape, bool)
    else:
        above = d >= level * peak
        seed = np.unravel_index(int(np.argmax(d)), d.shape)
        mask = _component(above, seed) if d.ndim in (1, 2) else above
    out["mask"] = mask
    out["train_mass"] = float(t[mask].sum())
    out["val_mass"] = float(v[mask].sum())
    out["area"] = float(mask.mean()) if mask.size else 0.0
    if mask.any():
        idx = np.argwhere(mask)
        if d.ndim == 2:
            (r0, c0), (r1, c1) = idx.min(0), idx.max(0)
            out["box"] = [int(r0), int(c0), int(r1), int(c1)]
        else:
            out["steps"] = [int(idx.min()), int(idx.max())]
    return out


def _component(above: Any, seed: tuple) -> Any:
    """The 4-connected component of ``above`` containing ``seed`` (a run, for 1-D)."""
    import numpy as np

    mask = np.zeros(above.shape, bool)
    stack = [tuple(int(i) for i in seed)]
    while stack:
        p = stack.pop()
        if mask[p] or not above[p]:
            continue
        mask[p] = True
        for axis in range(above.ndim):
            for step in (-1, 1):
                q = list(p)
                q[axis] += step
                if 0 <= q[axis] < above.shape[axis] and not mask[tuple(q)]:
                    stack.append(tuple(q))
    return mask


def iou(box_a: Sequence[int], box_b: Sequence[int]) -> float:
    """Intersection over union of two inclusive pixel boxes [top, left, bottom, right]."""
    t, l = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    b, r = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    inter = max(0, b - t + 1) * max(0, r - l + 1)
    area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)
    return inter / float(area(box_a) + area(box_b) - inter)


def permutation_drop(predict: Callable[[Any], Any], x: Any, y: Any, mask: Any,
                     seed: int = 0) -> tuple[float, float, Any]:
    """(accuracy, accuracy with the region ``mask`` shuffled across samples, per-sample drop: correct
    before minus correct after, in {-1, 0, 1}) of ``predict`` (inputs -> predicted class) on ``x``.
    ``mask`` covers the input's non-batch axes, or all but the last (channels), broadcast over them."""
    import numpy as np

    x = np.asarray(x)
    y = np.asarray(y).reshape(-1)
    m = np.asarray(mask, bool)
    if m.shape != x.shape[1:]:
        if m.shape != x.shape[1:-1]:
            raise ValueError(f"mask of shape {m.shape} fits neither the inputs {x.shape[1:]} nor their cells {x.shape[1:-1]}")
        m = np.broadcast_to(m[..., None], x.shape[1:])
    perm = np.random.default_rng(seed).permutation(len(x))
    shuffled = np.where(m[None], x[perm], x)
    before = (predict(x) == y).astype(np.float64)
    after = (predict(shuffled) == y).astype(np.float64)
    return float(before.mean()), float(after.mean()), before - after


def constant_in_train(x_train: Any, x_val: Any, tolerance: float = 1e-12) -> list[int]:
    """Indices of features (last axis of 2-D tables) constant in the training split and varying in the
    validation split: the model saw one value and will meet others."""
    import numpy as np

    xt = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    xv = np.asarray(x_val, np.float64).reshape(len(x_val), -1)
    spread_t = xt.max(0) - xt.min(0)
    spread_v = xv.max(0) - xv.min(0)
    return [int(i) for i in np.flatnonzero((spread_t <= tolerance) & (spread_v > tolerance))]


def drop_gap(drop_train, drop_val, seed: int = 0, n_boot: int = 1000) -> tuple[float, float, float]:
    """Training minus validation accuracy drop and its 95% bootstrap interval (each split resampled
    independently): a region is *needed* only when the interval's lower end clears the margin, so
    sampling noise on a few hundred samples cannot make a healthy model's region a shortcut."""
    from diagnostics.health import bootstrap_diff_ci

    gap, lo, hi = bootstrap_diff_ci(drop_train, drop_val, n_boot, seed)
    return float(gap), float(lo), float(hi)


def _drops(where: str, drop_t: float, drop_v: float, gap: float, lo: float, hi: float, n_t: int, n_v: int) -> list:
    """The values measured by shuffling one feature or region: its accuracy drop on each split, and
    their difference with its 95% interval."""
    return [Value("accuracy_drop", drop_t, where=where, series="train", n=n_t),
            Value("accuracy_drop", drop_v, where=where, series="validation", n=n_v),
            Value("drop_gap", gap, where=where, interval=(lo, hi), n=n_t + n_v,
                  note=f"on {n_t} training and {n_v} validation samples")]


# A region the tests flagged is drawn red and called a shortcut; one they rejected is only the candidate that
# was tested, drawn grey and dashed, so the picture never reads as a finding the report does not make.
def _region_style(flagged: bool) -> tuple[str, str, str]:
    if flagged:
        return "#c62828", "solid", "shortcut region"
    return "#9e9e9e", "dashed", "rejected candidate"


def _draw_images(path, xt, xv, mt, mv, box, k: int = 4, *, flagged: bool) -> str:
    """Training and validation samples with the region's box, and the two mean attribution maps."""
    import numpy as np
    from matplotlib.patches import Rectangle

    colour, style, title = _region_style(flagged)

    plt = pyplot()
    fig, axes = plt.subplots(2, k + 1, figsize=(1.5 * (k + 1), 3.3), dpi=90, squeeze=False)
    for row, (name, x, m) in enumerate((("training", xt, mt), ("validation", xv, mv))):
        gray = x[..., 0] if x.shape[-1] == 1 else x.mean(axis=-1)
        for j in range(k):
            ax = axes[row, j]
            ax.imshow(gray[j], cmap="gray", vmin=0, vmax=max(float(gray.max()), 1e-12))
            if box is not None:
                ax.add_patch(Rectangle((box[1] - 0.5, box[0] - 0.5), box[3] - box[1] + 1, box[2] - box[0] + 1,
                                       fill=False, edgecolor=colour, linestyle=style, lw=1.5))
        axes[row, 0].set_ylabel(name, fontsize=8)
        ax = axes[row, k]
        ax.imshow(m, cmap="magma", vmin=0, vmax=float(max(mt.max(), mv.max())) or 1.0)
        ax.set_title("mean |IG|", fontsize=7)
        if box is not None:
            ax.add_patch(Rectangle((box[1] - 0.5, box[0] - 0.5), box[3] - box[1] + 1, box[2] - box[0] + 1,
                                   fill=False, edgecolor="#4fc3f7", lw=1.2))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Shortcut region (red box) on training and validation samples" if flagged else
                 "Candidate region (dashed box): tested, not a shortcut", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.86, bottom=0.02, wspace=0.05, hspace=0.12)
    return save_png(fig, path, tight=False).name


def _draw_profile(path, mt, mv, steps, *, flagged: bool) -> str:
    colour, style, title = _region_style(flagged)
    plt = pyplot()
    fig = plt.figure(figsize=(5.5, 3.0), dpi=90)
    ax = fig.add_axes((0.12, 0.16, 0.84, 0.72))
    ax.plot(range(len(mt)), mt, label="training", color="#c62828")
    ax.plot(range(len(mv)), mv, label="validation", color="#1565c0")
    if steps is not None:
        ax.axvspan(steps[0] - 0.5, steps[1] + 0.5, color=colour, alpha=0.12 if flagged else 0.2, lw=0)
    ax.set_xlabel("time step", fontsize=8)
    ax.set_ylabel("share of |IG| attribution", fontsize=8)
    ax.set_title(f"Attribution per step, training vs validation (shaded: {title})", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7)
    return save_png(fig, path, tight=False).name


@diagnostics.hookimpl
def register_analyzers(register):
    register(ShortcutDetection)
