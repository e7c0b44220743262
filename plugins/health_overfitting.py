"""Built-in plugin: the ``health.overfitting`` analyzer.

Compares the model on its training and validation splits (loss and accuracy gaps with bootstrap
intervals, membership-inference AUC of per-sample loss, calibration on both), compares it with the
trivial predictor that ignores its input (majority class and label prior, or the mean:
``health.overfitting.chance_level``, telling underfitting from overfitting), and reads the training
history (sidecar ``history``, a Keras ``History`` passed to :func:`diagnostics.diagnose`,
or ``--option health.overfitting.history=log.csv`` from a ``CSVLogger``): the loss and the compiled
metrics per epoch, the best epoch, the epoch where validation loss turned up and how many epochs ran
past it; and the training loss read as a course: a NaN or a spike (divergence) and a flat loss at a uniform
prediction's (a plateau).

Every number is a value of a declared measure, judged by the host (:class:`diagnostics.HealthAnalyzer`);
the chance-level diagnosis (several numbers on two splits) and non-finite outputs are findings of their own.
"""

from __future__ import annotations

from typing import Any

import diagnostics
from diagnostics import (Context, Direction, Finding, HealthAnalyzer, Measure, Measurements, Option, Scope, Severity,
                         Value)
from diagnostics.options import health_options


class Overfitting(HealthAnalyzer):
    """Train/validation gaps with bootstrap CIs, memorisation (membership-inference AUC), calibration
    (expected calibration error) and early-stopping evidence from the training history.

    Membership inference follows Yeom et al. (2018): a sample's loss is the attacker's score; an AUC
    of 0.5 means training samples are indistinguishable from unseen ones. ECE follows Guo et al. (2017).
    """

    name = "health.overfitting"
    options = health_options("overfitting", "units", "baseline", history=Option("history", str, "", "training history file (JSON or CSV) when the sidecar has none"))
    description = ("Train/validation gaps (bootstrap CI), chance-level baselines, early-stopping point from history, "
                   "membership-inference AUC, ECE.")
    model_kinds = frozenset({"image", "sequence", "token", "tabular"})
    data = "none"  # uses both splits when the run has them, the history when it has one; skips when neither
    reference = "Yeom et al. 2018 (membership inference via loss); Guo et al. 2017 (ECE); Prechelt 1998 (early stopping)"
    threshold_section = "overfitting"
    measures = (
        Measure("gap", "Train − validation accuracy", direction=Direction.HIGHER_IS_WORSE, warning="gap_warning",
                error="gap_error", format=".3f",
                reference="the lower end of its 95% bootstrap interval is judged, so a small validation set cannot "
                          "raise it",
                advice="get more data or augment it, add dropout or weight decay, use a smaller model, or stop "
                       "training earlier"),
        Measure("loss_gap", "Validation − train mean per-sample loss", format=".3g"),
        Measure("calibration", "Expected calibration error", direction=Direction.HIGHER_IS_WORSE, warning="ece_warning",
                format=".3f", reference="Guo et al. 2017, top-label, 15 confidence bins; validation data judged",
                advice="calibrate it (temperature scaling on a held-out split) or regularise (label smoothing)"),
        Measure("memorisation", "Membership-inference AUC of per-sample loss", direction=Direction.HIGHER_IS_WORSE,
                warning="mia_warning", format=".3f",
                reference="Yeom et al. 2018; 0.5: training samples look like unseen ones",
                advice="regularise, augment, or train with differential privacy if the data is sensitive"),
        Measure("epochs_past_best", "Epochs trained past the lowest validation loss", unit="epochs",
                direction=Direction.HIGHER_IS_WORSE, warning="epochs_past_warning", format=".0f",
                reference="Prechelt 1998; judged once validation loss has turned up, staying turn_tolerance above "
                          "its minimum",
                advice="use EarlyStopping(monitor='val_loss', restore_best_weights=True)"),
        Measure("loss_spike", "Largest training-loss spike, × the reference", direction=Direction.HIGHER_IS_WORSE,
                warning="spike_warning", error="spike_error", format=".3g",
                reference="an epoch's training loss over the lowest of the epochs before it (at least 1% of a "
                          "uniform prediction's loss), the first epoch's over a uniform prediction's ln k; "
                          "tenfold is no mini-batch noise, a hundredfold is divergence",
                advice="restart from the weights before the spike with a lower learning rate, gradient clipping "
                       "(clipnorm=1.0) and a warm-up; check the inputs are scaled and free of NaN"),
        Measure("plateau", "Final training loss ÷ a uniform prediction's", direction=Direction.HIGHER_IS_WORSE,
                warning="plateau_warning", format=".3f",
                reference="cross-entropy against ln k, judged only when the loss stayed within plateau_tolerance "
                          "over the last plateau_epochs epochs: a flat loss at a uniform prediction's has stalled "
                          "where the inputs say nothing",
                advice="check the learning rate (too high leaves dead or saturated units, too low no progress), "
                       "the initialisation, the input scaling, and that the labels match the inputs"),
        Measure("loss", "Loss per epoch", scope=Scope.EPOCH, format=".4g"),
        Measure("metrics", "Compiled metrics per epoch", scope=Scope.EPOCH, format=".4g"),
    )

    def measure(self, context: Context) -> Measurements:
        from diagnostics.health import thresholds

        t = thresholds(context.options, "overfitting")
        history = context.history
        history_source = "the model's sidecar" if history and context.metadata.get("history") else "the run"
        if context.options.get("history"):
            history = load_history(context.options["history"])
            history_source = str(context.options["history"])
        data = context.data
        has_splits = data is not None and data.has("train_val")
        has_labels = data is not None and data.has("xy")
        if not has_splits and not history and not has_labels:
            return Measurements.skip("needs training and validation splits with labels (--data FILE.npz with x_train, "
                                     "y_train, x_val, y_val) or a training history "
                                     "(--option health.overfitting.history=log.csv)")
        values: list[Value] = []
        findings: list[Finding] = []
        metrics: dict = {}
        outputs: dict = {}
        if has_splits:
            self._splits(context, t, values, findings, metrics, outputs)
        if has_labels:
            self._baseline(context, findings, metrics, outputs)
        if history:
            self._history(history, history_source, t, values, metrics, gap_known="gap" in metrics)
            self._course(history, history_source, t, uniform_loss(context.info), values, findings, metrics)
        return Measurements(values=values, findings=findings, metrics=metrics)

    # -- both splits -----------------------------------------------------------------------------
    def _splits(self, context: Context, t, values, findings, metrics, outputs) -> None:
        import numpy as np

        from diagnostics import inputs as I
        from diagnostics.health import (auc, bootstrap_diff_ci, finite_or_none, first_output_labels, forward, health_pass,
                                        per_sample_loss_fn, prepare_targets, probabilities, select_batch, subsample,
                                        thresholds, to_numpy)

        data, info = context.data, context.info
        k = int(t["max_samples"])

        it = subsample(I.n_samples(data.x_train), k, context.seed + 1)
        xt, yt = I.take(data.x_train, it), np.asarray(first_output_labels(data.y_train, info))[it]
        # The validation batch is the one the gradient and unit analyzers use: its outputs come from their pass.
        xv, yv, _ = select_batch(context, k)
        iv = range(I.n_samples(xv))
        loss, loss_desc = per_sample_loss_fn(info, yv)
        units = (info.output_shapes[0][-1] if info.output_shapes else None) or 1
        context.progress(0, 3, "training split")
        out_t = forward(context.model, xt)
        context.progress(1, 3, "validation split")
        out_v = health_pass(context, xv, yv, thresholds(context.options, "units")["saturation_level"])["outputs"]
        context.progress(2, 3, "statistics")
        outputs.update({"train": (out_t, yt), "val": (out_v, yv)})
        metrics.update({"train_samples": len(it), "val_samples": len(iv), "loss": loss_desc})
        bad = int((~np.isfinite(out_t.reshape(len(out_t), -1))).any(axis=1).sum() + (~np.isfinite(out_v.reshape(len(out_v), -1))).any(axis=1).sum())
        if bad:
            findings.append(Finding(
                "health.overfitting.nonfinite_outputs", Severity.ERROR,
                message=f"the model outputs NaN or Inf for {bad} of {len(it) + len(iv)} samples, so no gap can be "
                        f"measured: restore a checkpoint from before training diverged, and train with a lower "
                        f"learning rate and gradient clipping"))
            metrics["nonfinite_outputs"] = bad
            return

        def per_sample(x_out, y):
            with np.errstate(all="ignore"):
                return to_numpy(loss(prepare_targets(loss, y, units), x_out.astype(np.float32))).astype(np.float64).reshape(len(y), -1).mean(axis=1)

        lt, lv = per_sample(out_t, yt), per_sample(out_v, yv)
        n_boot = int(t["bootstrap"])
        d, lo, hi = bootstrap_diff_ci(lv, lt, n_boot, context.seed)
        metrics["loss_gap"] = {"train": float(lt.mean()), "val": float(lv.mean()), "gap": d, "ci95": [lo, hi],
                               "measure": "validation minus training mean per-sample loss"}
        values.append(Value("loss_gap", d, interval=(lo, hi) if np.isfinite([lo, hi]).all() else None, n=len(it) + len(iv),
                            note=f"{loss_desc}: {lv.mean():.3g} on validation vs {lt.mean():.3g} on training data"))
        mia = auc(-lt, -lv)  # lower loss = "member": positives are the training samples
        metrics["membership_auc"] = mia
        pt, pv = probabilities(out_t, info.output_activation), probabilities(out_v, info.output_activation)
        if pt is not None and np.issubdtype(np.asarray(yt).dtype, np.integer) or (pt is not None and np.allclose(yt, np.round(yt))):
            at = (pt.argmax(axis=1) == np.asarray(yt).reshape(-1)).astype(np.float64)
            av = (pv.argmax(axis=1) == np.asarray(yv).reshape(-1)).astype(np.float64)
            g, glo, ghi = bootstrap_diff_ci(at, av, n_boot, context.seed + 2)
            metrics["gap"] = {"metric": "accuracy", "train": float(at.mean()), "val": float(av.mean()), "gap": g,
                              "ci95": [glo, ghi], "measure": "training minus validation accuracy"}
            values.append(Value(
                "gap", g, interval=(glo, ghi),
                note=f"training accuracy {at.mean():.3f} vs validation {av.mean():.3f} on {len(it)}+{len(iv)} samples; "
                     f"validation loss {lv.mean():.3g} vs training {lt.mean():.3g}: the model has fitted its training "
                     f"set's noise"))
            ece_t, ece_v = expected_calibration_error(pt, yt), expected_calibration_error(pv, yv)
            metrics["ece"] = {"train": ece_t, "val": ece_v, "bins": 15}
            why = ("it is over-confident on unseen data only, a sign of overfitting" if ece_v - ece_t >= t["ece_warning"] / 2
                   else "it is mis-calibrated on training data too, so the cause is not overfitting")
            values.append(Value("calibration", ece_v, series="validation", n=len(iv),
                                note=f"on validation data, against {ece_t:.3f} on training data: its confidence is not "
                                     f"a probability ({why})"))
            # shown beside it, never judged: a model mis-calibrated on its training data is not overfitting
            values.append(Value("calibration", ece_t, series="train", n=len(it), ceiling=Severity.INFO))
        from diagnostics.health import development, training_series

        mia_series = training_series(context.history, "health/membership_auc")
        if mia_series:
            metrics["membership_auc_during_training"] = mia_series
        how = development(mia_series, t["mia_warning"], True, ".2f", what="the AUC")
        values.append(Value("memorisation", mia, n=len(it) + len(iv),
                            note="per-sample loss tells training samples from validation ones: the model memorised its "
                                 "training samples, which also leaks membership (privacy)" + (f"; {how}" if how else "")))
        metrics["loss_gap"] = {k: finite_or_none(v) if isinstance(v, float) else v for k, v in metrics["loss_gap"].items()}

    # -- trivial baselines -----------------------------------------------------------------------
    def _baseline(self, context: Context, findings, metrics, outputs) -> None:
        """The model against the predictor that ignores its input (majority class / label prior / mean),
        on the validation batch the other health analyzers use (its outputs come from their shared pass)
        and, with both splits, on the training sample too: both at chance is underfitting, only
        validation at chance is overfitting (or a shortcut only the training split carries). A diagnosis
        from several numbers on two splits, so a finding of its own rather than a threshold on one value."""
        import numpy as np

        from diagnostics.health import finite_or_none, health_pass, select_batch, thresholds

        t = thresholds(context.options, "baseline")
        if len(context.model.outputs) != 1:
            metrics["baseline"] = f"not compared: the model has {len(context.model.outputs)} outputs"
            return
        if "val" not in outputs:
            xv, yv, _ = select_batch(context, int(thresholds(context.options, "overfitting")["max_samples"]))
            outputs["val"] = (health_pass(context, xv, yv, thresholds(context.options, "units")["saturation_level"])["outputs"], yv)
        data, act = context.data, context.info.output_activation
        reference = data.y_train if data.y_train is not None else None
        split = "validation" if data.x_val is not None else "training"
        out_v, yv = outputs["val"]
        if not np.isfinite(np.asarray(out_v, np.float64)).all():
            return  # nothing to compare: health.overfitting.nonfinite_outputs (or the weights analyzer) says why
        val = baseline_comparison(out_v, yv, act, reference)
        if val is None:
            return
        train = baseline_comparison(*outputs["train"], act, reference) if "train" in outputs else None

        def at_chance(b):
            if b["task"] == "classification":
                return b["accuracy_lift"] < t["accuracy_margin"] and (b["skill"] is None or b["skill"] < t["skill_margin"])
            return b["r2"] is None or b["r2"] < t["skill_margin"]

        def numbers(b, name):
            if b["task"] == "classification":
                return (f"{name} accuracy {b['accuracy']:.3f} vs {b['majority_accuracy']:.3f} for always predicting "
                        f"class {b['majority_class']}, cross-entropy {b['cross_entropy']:.3f} vs {b['prior_cross_entropy']:.3f} "
                        f"for predicting the label prior (skill {b['skill']:.3f})")
            r2 = "n/a" if b["r2"] is None else f"{b['r2']:.3f}"
            return f"{name} MSE {b['mse']:.4g} vs {b['mean_predictor_mse']:.4g} for predicting the mean (R² {r2})"

        def beats(b):  # clearly better than the baseline by both measures
            if b["task"] == "classification":
                return b["accuracy_lift"] >= t["accuracy_margin"] and b["skill"] is not None and b["skill"] >= t["skill_margin"]
            return b["r2"] is not None and b["r2"] >= t["skill_margin"]

        diagnosis = None
        if at_chance(val):
            if train is not None and beats(train):
                diagnosis = "overfitting"
                why = (f"; yet on {train['samples']} training samples it beats the baseline ({numbers(train, 'training')}): "
                       f"it learnt something that holds only on its training split — memorisation or a shortcut that only "
                       f"the training data carry (see health.overfitting.gap and explain.shortcut); get more or cleaner "
                       f"data, regularise, and check the training split for leaked or spurious features")
            else:
                diagnosis = "underfitting"
                also = f" and on {train['samples']} training samples ({numbers(train, 'training')})" if train else ""
                rare = _imbalance(reference if reference is not None else yv, val)
                # cause before symptom: at 97 / 3 a model that never predicts the rare class sits at chance too
                first = (f"the classes are imbalanced ({rare}), and a model that never predicts the rare class scores "
                         f"the majority's accuracy however much its inputs say: see predictions.quality.minority_recall "
                         f"and train with class weights (class_weight in model.fit). Otherwise " if rare else "")
                why = (f"{also}: {first}the model has learnt nothing its inputs say about the labels (underfitting) — "
                       f"check that labels and inputs are aligned (a shuffled or misjoined label column looks exactly "
                       f"like this), that the inputs are scaled, the learning rate, and whether the gradient reaches the "
                       f"inputs (see health.gradients and health.temporal)")
            findings.append(Finding(
                "health.overfitting.chance_level", Severity.ERROR, where=f"{split} split",
                message=f"no better than a trivial predictor that ignores the input on {val['samples']} {split} samples: "
                        f"{numbers(val, split)}" + why))
        elif train is not None:
            diagnosis = "fits"
        clean = lambda b: None if b is None else {k: finite_or_none(v) if isinstance(v, float) else v for k, v in b.items()}
        metrics["baseline"] = {"val": clean(val), "train": clean(train), "diagnosis": diagnosis,
                               "reference_labels": "training split" if reference is not None else f"{split} split"}

    # -- history ---------------------------------------------------------------------------------
    def _history(self, history, source, t, values, metrics, gap_known: bool) -> None:
        from diagnostics.health import finite_or_none

        h = {k: [finite_or_none(v) for v in vals] for k, vals in history.items() if isinstance(vals, (list, tuple))}
        # The per-epoch curves are values of the epoch-scoped measures (the host draws them); the summary
        # (best epoch, turn, final gaps) stays in the metrics.
        for key, vals in sorted(h.items()):
            name = _series_name(key, h)
            if name is None:
                continue
            measure, series = name
            values.extend(Value(measure, v, where=str(epoch), series=series) for epoch, v in enumerate(vals, start=1))
        out: dict = {"source": source}
        if h.get("val_loss"):
            turn = history_turn(h["val_loss"], t["turn_tolerance"])
            out.update(turn)
            past = turn.get("epochs_past_best")
            final, best = turn.get("final_val_loss"), turn.get("best_val_loss")
            if past is not None:
                turned = turn.get("turn_epoch") is not None and final is not None and best is not None
                note = (f"validation loss was lowest at epoch {turn['best_epoch']} ({best:.4g}), turned up at epoch "
                        f"{turn['turn_epoch']} and ended at {final:.4g} (history from {source})" if turned else
                        f"validation loss was lowest at epoch {turn['best_epoch']} and did not turn up (history from "
                        f"{source}): not judged")
                # without a turn, the epochs after the best cost nothing: shown, never judged
                values.append(Value("epochs_past_best", past, note=note, ceiling=None if turned else Severity.INFO))
        final_gaps = {}
        for k, vals in h.items():
            if k.startswith("val_") and k[4:] in h and vals and h[k[4:]] and vals[-1] is not None and h[k[4:]][-1] is not None:
                final_gaps[k[4:]] = {"train": h[k[4:]][-1], "val": vals[-1], "gap": h[k[4:]][-1] - vals[-1]}
        out["final_epoch_gaps"] = final_gaps
        metrics["history"] = out
        acc = final_gaps.get("accuracy")
        if not gap_known and acc:
            values.append(Value(
                "gap", acc["gap"], ceiling=Severity.WARNING,
                note=f"at the last epoch of the training history ({source}) accuracy was {acc['train']:.3f} on "
                     f"training batches vs {acc['val']:.3f} on validation; no data given, so no confidence interval "
                     f"and at most a warning"))


    # -- the history's course: divergence and plateaus -----------------------------------------------
    def _course(self, history, source, t, chance, values, findings, metrics) -> None:
        """The training loss read as a course: a NaN/Inf or a spike (divergence) and a flat loss at a
        uniform prediction's (a plateau where nothing is learnt), from the history alone."""
        if not history.get("loss"):
            return
        c = loss_course(history["loss"], chance, int(t["plateau_epochs"]), t["plateau_tolerance"])
        metrics.setdefault("history", {})["course"] = c
        if c["nonfinite_epoch"] is not None:
            findings.append(Finding(
                "health.overfitting.loss_spike", Severity.ERROR, where=f"epoch {c['nonfinite_epoch']}",
                message=f"the training loss became NaN or Inf at epoch {c['nonfinite_epoch']} (history from {source}): "
                        f"training diverged, and every weight update after it is garbage — restart from the weights "
                        f"before that epoch with a lower learning rate and gradient clipping (clipnorm=1.0), and check "
                        f"the inputs and labels for NaN"))
        if c["spike"] is not None:
            e = c["spike_epoch"]
            after = (f"; the loss then stayed within {t['plateau_tolerance']:.0%} of {c['final']:.4g} to the last epoch, "
                     f"as a model whose output no longer depends on its input does" if c["flat"] and e < c["epochs"] else "")
            values.append(Value("loss_spike", c["spike"], where=f"epoch {e}",
                                note=f"the training loss reached {c['spike_loss']:.4g} at epoch {e} against {c['reference']:.4g}, "
                                     f"{c['reference_kind']} (history from {source}): training diverged there — the "
                                     f"learning rate is too high for this model, or a gradient exploded{after}"))
        if c["plateau"] is not None:
            values.append(Value(
                "plateau", c["plateau"], where=f"epochs {c['epochs'] - c['flat_epochs'] + 1}-{c['epochs']}" if c["flat"] else "",
                ceiling=None if c["flat"] else Severity.INFO,
                note=(f"the training loss stayed within {t['plateau_tolerance']:.0%} over the last {c['flat_epochs']} epochs "
                      f"at {c['final']:.4g}, where predicting every class as equally likely scores ln {c['classes']} = "
                      f"{chance:.4g} (history from {source}): training stalled without learning what the inputs say")
                if c["flat"] else f"the training loss still moved over the last {c['flat_epochs']} epochs: not judged"))


def uniform_loss(info) -> float | None:
    """The cross-entropy of predicting every class as equally likely (ln k; ln 2 per sigmoid unit), the
    loss any initialised classifier starts near; None when the model's loss is not a cross-entropy."""
    import math

    from diagnostics.health import per_sample_loss_fn

    try:
        loss, _ = per_sample_loss_fn(info)
    except Exception:  # noqa: BLE001 - an unusual output: no reference, the spike is read against the history alone
        return None
    name = type(loss).__name__
    if "Crossentropy" not in name:
        return None
    units = (info.output_shapes[0][-1] if info.output_shapes and info.output_shapes[0] else None) or 1
    return math.log(units if "Categorical" in name and units > 1 else 2)


def loss_course(loss: list, chance: float | None, plateau_epochs: int = 5, tolerance: float = 0.05) -> dict[str, Any]:
    """The course of a per-epoch training loss (1-based epochs): the first non-finite epoch; the largest
    spike, an epoch's loss over the lowest of the epochs before it (floored at 1% of ``chance``, or of the
    first loss, so that a loss near 0 cannot make noise a spike), the first epoch's over ``chance`` (a uniform
    prediction's loss, when the loss is a cross-entropy); and the plateau, the final loss over ``chance``,
    with whether the last ``plateau_epochs`` stayed within ``tolerance`` of their mean."""
    import math

    import numpy as np

    v = np.array([np.nan if x is None else float(x) for x in loss], np.float64)
    finite = np.isfinite(v)
    bad = np.flatnonzero(~finite)
    out: dict[str, Any] = {"epochs": len(v), "nonfinite_epoch": int(bad[0]) + 1 if len(bad) else None,
                           "spike": None, "spike_epoch": None, "spike_loss": None, "reference": None,
                           "reference_kind": None, "plateau": None, "flat": False,
                           "flat_epochs": min(plateau_epochs, len(v)), "final": None,
                           "classes": None if chance is None else int(round(math.exp(chance)))}
    if not finite.any():
        return out
    floor = 0.01 * (chance if chance is not None else abs(v[finite][0]))
    for e in np.flatnonzero(finite):
        before = v[:e][finite[:e]]
        if len(before):
            ref, kind = max(float(before.min()), floor), "the lowest loss of the epochs before"
        elif chance is not None:
            ref, kind = chance, "a uniform prediction's loss, ln k"
        else:
            continue
        if ref > 0 and (out["spike"] is None or v[e] / ref > out["spike"]):
            out.update(spike=float(v[e] / ref), spike_epoch=int(e) + 1, spike_loss=float(v[e]), reference=ref,
                       reference_kind=kind)
    last = v[-out["flat_epochs"]:]
    out["final"] = float(v[-1]) if finite[-1] else None
    if len(last) >= 2 and np.isfinite(last).all():
        out["flat"] = bool(last.max() - last.min() <= tolerance * abs(last.mean()))
    if chance is not None and out["final"] is not None:
        out["plateau"] = out["final"] / chance
    return out


def _imbalance(y_reference, comparison, ratio: float = 4.0) -> str:
    """How imbalanced the reference labels are ("class 0 holds 97.0% of them, class 1 3.0%"), or "" when the
    most frequent class has fewer than ``ratio`` times the samples of the rarest (as predictions.quality's
    imbalance_ratio) or the task is not a classification."""
    import numpy as np

    if comparison.get("task") != "classification":
        return ""
    y = np.asarray(y_reference).reshape(-1)
    if not len(y) or not np.all(y == np.round(y)):
        return ""
    counts = np.bincount(y.astype(int))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        return ""
    common, rare = int(counts.argmax()), int(present[np.argmin(counts[present])])
    if counts[common] < ratio * counts[rare]:
        return ""
    share = counts / counts.sum()
    return f"class {common} holds {share[common]:.1%} of the reference labels, class {rare} {share[rare]:.1%}"


def _series_name(key: str, h: dict) -> tuple[str, str] | None:
    """(measure, series) of a history key: the loss as ``train``/``validation``, a compiled metric as
    ``train accuracy``/``validation accuracy`` (a key with no validation twin under its own name); None
    for the ``health/`` records of :class:`diagnostics.callbacks.HealthCallback`, which the analyzer of
    each quantity reports."""
    if key.startswith("health/"):
        return None
    if key == "loss":
        return "loss", "train"
    if key == "val_loss":
        return "loss", "validation"
    if key.startswith("val_"):
        return "metrics", f"validation {key[4:]}"
    return "metrics", f"train {key}" if f"val_{key}" in h else key


# -- the statistics only this analyzer uses (its method's math lives with it; what the health checks
# share -- the loss, the rows, the AUC -- comes from diagnostics.health) -------------------------------
def expected_calibration_error(probs, y, n_bins: int = 15) -> float:
    """Top-label ECE (Guo et al., 2017) with equal-width confidence bins. ``probs`` is (n, classes)."""
    import numpy as np

    probs = np.asarray(probs, np.float64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y).reshape(-1)).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def baseline_comparison(outputs, y, activation: str | None, y_reference=None) -> dict[str, Any] | None:
    """The model against the trivial predictor that ignores its input, on ``(outputs, y)``.

    Classifier (see :func:`diagnostics.health.probabilities`): accuracy against always predicting the
    majority class and cross-entropy against predicting the label prior for every sample, both taken
    from ``y_reference`` (the training labels; ``y`` when None), the prior smoothed by one count per
    class; ``skill`` is 1 - CE / prior CE (0: no better than the prior). Regression (a linear output,
    float targets of its shape): MSE against predicting the reference mean and R^2 = 1 - MSE / baseline
    MSE. Returns None when neither applies (e.g. multi-label outputs)."""
    import numpy as np

    from diagnostics.health import probabilities

    out = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    y = np.asarray(y)
    ref = np.asarray(y if y_reference is None else y_reference)
    probs = probabilities(out, activation)
    flat = y.reshape(len(y), -1)
    if probs is not None and flat.shape[1] == 1 and np.all(flat == np.round(flat)):
        labels = flat[:, 0].astype(int)
        k = probs.shape[1]
        if labels.min() < 0 or labels.max() >= k:
            return None
        counts = np.bincount(np.asarray(ref).reshape(-1).astype(int), minlength=k)[:k]
        prior = (counts + 1.0) / (counts.sum() + k)
        majority = int(counts.argmax())
        with np.errstate(all="ignore"):
            p_true = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
            ce = float(-np.mean(np.log(p_true)))
            prior_ce = float(-np.mean(np.log(prior[labels])))
        acc = float(np.mean(probs.argmax(axis=1) == labels))
        majority_acc = float(np.mean(labels == majority))
        return {"task": "classification", "samples": int(len(labels)), "accuracy": acc,
                "majority_class": majority, "majority_accuracy": majority_acc, "accuracy_lift": acc - majority_acc,
                "cross_entropy": ce, "prior_cross_entropy": prior_ce,
                "skill": 1.0 - ce / prior_ce if prior_ce > 0 else None}
    if activation in (None, "linear") and np.issubdtype(flat.dtype, np.number) and flat.shape == out.shape:
        mean = np.asarray(ref, np.float64).reshape(len(ref), -1).mean(axis=0)
        with np.errstate(all="ignore"):
            mse = float(np.mean((out - flat) ** 2))
            base = float(np.mean((flat - mean) ** 2))
        return {"task": "regression", "samples": int(len(flat)), "mse": mse, "mean_predictor_mse": base,
                "r2": 1.0 - mse / base if base > 0 else None}
    return None


def load_history(path) -> dict[str, list[float]]:
    """A per-epoch history from a Keras ``CSVLogger`` file (.csv) or a JSON object of lists (.json)."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"history file {str(p)!r} does not exist (expected a CSVLogger .csv or a .json of per-epoch lists)")
    if p.suffix.lower() == ".json":
        raw = json.loads(p.read_text())
        raw = raw.get("history", raw) if isinstance(raw, dict) else raw
        if not isinstance(raw, dict):
            raise ValueError(f"history file {p.name}: expected a JSON object of per-epoch lists, got {type(raw).__name__}")
        return {str(k): [_num(v) for v in vals] for k, vals in raw.items() if isinstance(vals, list)}
    import csv

    with p.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"history file {p.name} has no rows")
    return {k: [_num(r[k]) for r in rows] for k in rows[0] if k and k != "epoch"}


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def history_turn(val_loss: list, tolerance: float) -> dict[str, Any]:
    """Best epoch (minimum validation loss), the first later epoch where it is ``tolerance`` above that
    minimum and stays above it, and how many epochs training ran past the best. Epochs are 1-based."""
    import numpy as np

    from diagnostics.health import finite_or_none

    v = np.array([np.nan if x is None else x for x in val_loss], np.float64)
    if not np.isfinite(v).any():
        return {"epochs": len(v), "best_epoch": None, "turn_epoch": None, "epochs_past_best": None}
    best = int(np.nanargmin(v))
    limit = v[best] * (1 + tolerance) if v[best] >= 0 else v[best] * (1 - tolerance)
    turn = None
    for e in range(best + 1, len(v)):
        if np.all(~np.isfinite(v[e:]) | (v[e:] > limit)):
            turn = e
            break
    return {"epochs": len(v), "best_epoch": best + 1, "best_val_loss": float(v[best]),
            "turn_epoch": None if turn is None else turn + 1, "epochs_past_best": len(v) - 1 - best,
            "final_val_loss": finite_or_none(v[-1])}


@diagnostics.hookimpl
def register_analyzers(register):
    register(Overfitting)
