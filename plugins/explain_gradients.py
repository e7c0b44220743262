"""Built-in plugin: the gradient family of explanations, each with a trust verdict.

Integrated Gradients, saliency, SmoothGrad, input x gradient and expected gradients (SHAP's
GradientExplainer), all on the compiled, batched gradient primitive of the running backend
(:mod:`diagnostics.backends`), through :mod:`diagnostics.explain`. Token models are explained in
embedding space: the model is split after its embedding layer and attributions are summed over the
embedding dimensions, one number per token.

Every method's maps are checked: IG completeness (steps doubled until the gap is under 1%),
expected-gradients additivity, model-parameter randomisation (Adebayo et al., 2018) against a clone
with re-initialised weights, deletion/insertion faithfulness against a random order, ground truth
where the data has it (``mask_val``), agreement between methods and stability across seeds.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity

METHODS = ("integrated_gradients", "saliency", "smoothgrad", "input_x_gradient", "expected_gradients")
#: Methods whose sign is meaningful (randomisation compares signed ranks); saliency is |gradient|.
SIGNED = {"integrated_gradients": True, "saliency": False, "smoothgrad": True, "input_x_gradient": True,
          "expected_gradients": True}
SAMPLING = ("smoothgrad", "expected_gradients")
#: Expected gradients is a Monte-Carlo estimate: its additivity error shrinks as 1/sqrt(samples).
ADDITIVITY_TOLERANCE = 0.1
DEFAULTS = {"samples": 16, "steps": 32, "max_steps": 512, "batch_size": 1024, "smoothgrad_samples": 16,
            "smoothgrad_noise": 0.15, "eg_samples": 64, "eg_max_samples": 512, "background": 64, "sanity": True, "faithfulness": True,
            "baseline": "zeros", "baseline_token": 0, "methods": ",".join(METHODS)}


class Explainable:
    """The model as the methods see it: a float input space, a gradient function and a forward
    function. For integer (token) inputs the float space is the embedding layer's output."""

    def __init__(self, model, x, batch_size: int, baseline: str, baseline_token: int, train=None):
        import keras
        import numpy as np

        from diagnostics.backends import get

        self.model = model
        self.batch_size = batch_size
        self.backend = get()
        self.tokens = np.issubdtype(np.asarray(x).dtype, np.integer)
        self.x_raw = np.asarray(x)
        if self.tokens:
            layer = _embedding_layer(model)
            self.embed = keras.Model(model.inputs, layer.output)
            self.head = keras.Model(layer.output, model.outputs[0])
            self.x = self._embed(self.x_raw)
            self.baseline_raw = np.full_like(self.x_raw, baseline_token)
            self.baseline = self._embed(self.baseline_raw)
            self.reduce_axes = (2,)
            self.feature_shape = self.x_raw.shape[1:]
            self.embedding_layer = layer.name
        else:
            self.head = model
            self.x = self.x_raw.astype(np.float32)
            if baseline == "mean" and train is not None:
                b = np.asarray(train, np.float32).mean(0, keepdims=True)
            else:
                b = np.zeros((1,) + self.x.shape[1:], np.float32)
            self.baseline = np.broadcast_to(b, self.x.shape).copy()
            self.baseline_raw = self.baseline
            rank = self.x.ndim - 1
            # images (H, W, C) and sequences (T, C): a feature is a pixel / time step, channels summed
            self.reduce_axes = (rank,) if rank >= 2 else ()
            self.feature_shape = self.x.shape[1:rank] if rank >= 2 else self.x.shape[1:]
            self.embedding_layer = None

    def _embed(self, ids):
        import numpy as np

        out = [np.asarray(self.embed.predict_on_batch(ids[s:s + self.batch_size]))
               for s in range(0, len(ids), self.batch_size)]
        return np.concatenate(out).astype(np.float32)

    def grad_fn(self, xb, tb):
        return self.backend.input_gradients(self.head, xb, tb, batch_size=len(xb))

    def forward(self, x, targets):
        """The explained unit's output for raw inputs (token ids for token models), in fixed batches."""
        import numpy as np

        from diagnostics import explain as E

        out = E.predict_batched(self.model, x, self.batch_size)
        return out[np.arange(len(x)), np.asarray(targets)]


def _embedding_layer(model):
    """The layer that turns the integer input into floats: the first layer after the input."""
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        return layer
    raise TypeError("the model has integer inputs but no layer after them to differentiate through")


def _options(context: Context) -> dict:
    from diagnostics import explain as E

    return E.method_options(context.options, DEFAULTS, METHODS)


def attribute(ex: Explainable, method: str, targets, opts: dict, seed: int, background=None):
    """(attributions in the float input space, extra metrics) for one method."""
    import numpy as np

    from diagnostics import explain as E

    bs = int(opts["batch_size"])
    if method == "integrated_gradients":
        r = E.integrated_gradients(ex.grad_fn, ex.x, ex.baseline, targets, steps=int(opts["steps"]),
                                   max_steps=int(opts["max_steps"]), batch_size=bs)
        rel = r.gap / np.maximum(np.abs(r.delta), 1e-12)
        return r.attributions, {"completeness": {
            "converged_fraction": float(r.converged.mean()), "median_relative_gap": float(np.median(rel)),
            "max_relative_gap": float(np.max(rel)), "median_abs_gap": float(np.median(r.gap)),
            "steps_used": {str(s): int((r.steps == s).sum()) for s in np.unique(r.steps)},
            "max_steps": int(opts["max_steps"]), "tolerance": E.COMPLETENESS_TOLERANCE}}
    if method == "saliency":
        return E.saliency(ex.grad_fn, ex.x, targets, bs), {}
    if method == "input_x_gradient":
        return E.input_x_gradient(ex.grad_fn, ex.x, ex.baseline, targets, bs), {}
    if method == "smoothgrad":
        return E.smoothgrad(ex.grad_fn, ex.x, targets, samples=int(opts["smoothgrad_samples"]),
                            noise=float(opts["smoothgrad_noise"]), seed=seed, batch_size=bs), {}
    if method == "expected_gradients":
        # additivity target: F(x) − E_b[F(b)] for the explained unit, from one forward pass each
        fx = ex.forward(ex.x_raw, targets)
        ref = np.zeros(len(fx))
        for t in np.unique(targets):
            ref[targets == t] = ex.forward(background[1], np.full(len(background[1]), t)).mean()
        delta = fx - ref
        attr, err, used = E.expected_gradients_converging(
            ex.grad_fn, ex.x, background[0], targets, delta, samples=int(opts["eg_samples"]),
            max_samples=int(opts["eg_max_samples"]), seed=seed, tolerance=ADDITIVITY_TOLERANCE, batch_size=bs)
        rel = err / np.maximum(np.abs(delta), E.COMPLETENESS_ABS_FLOOR)
        ok = rel <= ADDITIVITY_TOLERANCE
        return attr, {"additivity": {
            "median_abs_error": float(np.median(err)), "relative_error": float(np.median(rel)),
            "max_relative_error": float(np.max(rel)), "within_tolerance_fraction": float(ok.mean()),
            "within_tolerance": bool(ok.mean() >= 0.9), "tolerance": ADDITIVITY_TOLERANCE,
            "samples_used": {str(s): int((used == s).sum()) for s in np.unique(used)}}}
    raise ValueError(method)


class GradientExplanations(Analyzer):
    """Integrated Gradients, saliency, SmoothGrad, input x gradient and expected gradients, with a
    trusted / doubtful / failed verdict per method (see :mod:`diagnostics.explain`)."""

    name = "explain.gradients"
    category = "explanation"
    description = ("Integrated Gradients, saliency, SmoothGrad, input x gradient, expected gradients — "
                   "each checked (completeness, randomisation, faithfulness, ground truth) and given a verdict.")
    model_kinds = frozenset({"image", "sequence", "token", "tabular"})
    data = "x"
    backends = ("tensorflow", "torch")
    reference = ("Sundararajan et al. 2017 (IG); Simonyan et al. 2014; Smilkov et al. 2017; Shrikumar et al. 2016; "
                 "Erion et al. 2021 (expected gradients); Adebayo et al. 2018 (sanity checks)")

    def run(self, context: Context) -> Result:
        import numpy as np

        from diagnostics import explain as E

        opts = _options(context)
        model = context.model
        x_all = np.asarray(context.data.x)
        if len(model.inputs) != 1:
            return Result.skip(f"the model has {len(model.inputs)} inputs; gradient explanations support one input")
        from diagnostics import budget  # as many samples as fit the time budget, said in the report (issue 11)

        opts["samples"] = budget.fit_samples(context, min(int(opts["samples"]), len(x_all)), _work(opts, x_all),
                                             x=x_all[:1], minimum=2)
        idx = E.select_samples(len(x_all), int(opts["samples"]), context.seed)
        x = x_all[idx]
        train = context.data.x_train
        from diagnostics import memory  # batches that fit the worker's memory (issue 11)

        opts["batch_size"] = memory.batch_size(model, int(opts["batch_size"]))
        bs = int(opts["batch_size"])
        ex = Explainable(model, x, bs, str(opts["baseline"]), int(opts["baseline_token"]), train)
        outputs = list(model.outputs)
        if len(outputs) > 1:
            return Result.skip(f"the model has {len(outputs)} outputs; explain one by saving a single-output model "
                               f"(multi-output gradients are not supported by this analyzer yet)")
        total_steps = len(opts["methods"]) * (3 if opts["sanity"] else 1)
        done = 0
        pred = np.asarray(model.predict_on_batch(ex.x_raw[:bs])) if len(x) <= bs else np.asarray(model.predict(ex.x_raw, verbose=0))
        targets = E.select_targets(pred, opts.get("target"), context.info.output_activation)
        # the background of expected gradients: training rows (in the float space), else the explained rows
        bg_source = np.asarray(train) if train is not None else x_all
        bg_rows = bg_source[np.random.default_rng(context.seed + 1).choice(len(bg_source), min(int(opts["background"]), len(bg_source)), replace=False)]
        background = (ex._embed(bg_rows) if ex.tokens else bg_rows.astype(np.float32), bg_rows)

        attrs, extras, maps = {}, {}, {}
        for m in opts["methods"]:
            context.progress(done, total_steps, m)
            a, extra = attribute(ex, m, targets.index, opts, context.seed, background)
            a = a * targets.sign.reshape((-1,) + (1,) * (a.ndim - 1))
            attrs[m], extras[m] = a, extra
            maps[m] = E.feature_map(a, ex.reduce_axes)
            done += 1

        checks: dict[str, dict] = {m: {} for m in attrs}
        for m, a in attrs.items():
            checks[m]["finite"] = bool(np.all(np.isfinite(a)))
        if "integrated_gradients" in attrs:
            checks["integrated_gradients"]["completeness"] = extras["integrated_gradients"]["completeness"]
        if "expected_gradients" in attrs:
            checks["expected_gradients"]["additivity"] = extras["expected_gradients"]["additivity"]

        if opts["sanity"]:
            rand_model = _randomised_clone(model, context.seed)
            if rand_model is None:
                sanity_skip = "the model could not be cloned (keras.models.clone_model failed)"
            else:
                sanity_skip = None
                rex = Explainable(rand_model, x, bs, str(opts["baseline"]), int(opts["baseline_token"]), train)
                ropts = {**opts, "max_steps": opts["steps"], "eg_max_samples": opts["eg_samples"]}  # no step raising: only the ranking matters here
                for m in attrs:
                    context.progress(done, total_steps, f"{m} on the randomised model")
                    ra, _ = attribute(rex, m, targets.index, ropts, context.seed,
                                      (rex._embed(bg_rows) if rex.tokens else background[0], bg_rows))
                    checks[m]["randomisation"] = E.randomisation_check(maps[m], E.feature_map(ra, rex.reduce_axes),
                                                                       absolute=not SIGNED[m])
                    done += 1
            for m in SAMPLING:
                if m in attrs:
                    context.progress(done, total_steps, f"{m} with another seed")
                    a2, _ = attribute(ex, m, targets.index, opts, context.seed + 1, background)
                    checks[m]["stability"] = E.stability(maps[m], E.feature_map(a2, ex.reduce_axes))
        else:
            sanity_skip = "switched off (sanity=false)"

        fx = ex.forward(ex.x_raw, targets.index) * targets.sign
        fb = ex.forward(ex.baseline_raw, targets.index) * targets.sign
        informative = E.informative_samples(fx, fb)
        if opts["faithfulness"]:
            # on the samples where the baseline differs from the input; removing features cannot move
            # an output that the baseline already gives
            keep = informative if informative.sum() >= 2 else np.ones(len(x), bool)
            for m in attrs:
                checks[m]["faithfulness"] = E.perturbation_curves(
                    ex.forward, ex.x_raw[keep], ex.baseline_raw[keep], maps[m][keep], targets.index[keep],
                    targets.sign[keep], seed=context.seed, feature_shape=tuple(ex.feature_shape))
                checks[m]["faithfulness"]["scored_samples"] = int(keep.sum())

        mask = context.data.extras.get("mask_val") if context.data.x_val is not None else None
        if mask is not None and np.asarray(mask).shape[0] == len(x_all):
            mask = np.asarray(mask)[idx].reshape(len(idx), -1)
            if mask.shape[1] == maps[next(iter(maps))].shape[1]:
                for m in attrs:
                    checks[m]["ground_truth"] = E.ground_truth_scores(maps[m], mask, informative)
            else:
                mask = None
        else:
            mask = None

        verdicts, reasons = {}, {}
        for m in attrs:
            c = checks[m]
            verdicts[m], reasons[m] = E.verdict(
                finite=c["finite"], completeness=c.get("completeness"), additivity=c.get("additivity"),
                randomisation=c.get("randomisation"), faithfulness=c.get("faithfulness"),
                ground_truth=c.get("ground_truth"), stability_corr=c.get("stability"))
        context.progress(total_steps, total_steps, "writing maps")
        artifacts = self._write(context, ex, x, idx, attrs, maps, verdicts, targets, mask)
        findings = []
        not_needed = int((~informative).sum())
        if not_needed:
            findings.append(Finding(
                "explain.baseline_not_neutral", Severity.INFO, where="baseline",
                message=f"for {not_needed} of {len(x)} samples the baseline ({opts['baseline']}"
                        f"{' token ' + str(opts['baseline_token']) if ex.tokens else ''}) already gets within "
                        f"{E.INFORMATIVE_DELTA:.0%} of the explained output (median {np.median(fb[~informative]):.3g} vs "
                        f"{np.median(fx[~informative]):.3g}): the model does not need the input to predict that — often a "
                        f"default class — so baseline attributions (IG, input x gradient) are rightly near zero there; "
                        f"these samples are left out of the ground-truth scores. Try --option "
                        f"explain.gradients.baseline=mean, or read expected_gradients, which averages over baselines."))
        for m in attrs:
            v = verdicts[m]
            sev = Severity.WARNING if v == E.FAILED else Severity.INFO
            why = "; ".join(reasons[m]) if reasons[m] else "passed every check that applies"
            findings.append(Finding(f"explain.{m}.{v}", sev, where=m,
                                    message=f"{m} explanations are {v}: {why}"))
        metrics = {
            "samples": int(len(x)), "sample_indices": idx.tolist(), "target": targets.description,
            "targets": targets.index.tolist(), "space": "embedding" if ex.tokens else "input",
            "embedding_layer": ex.embedding_layer, "methods": list(attrs),
            "verdicts": verdicts, "reasons": reasons,
            "checks": checks,  # faithfulness curves included (11 points each): the dashboard plots them
            "agreement": E.agreement_matrix(maps),
            "informative_samples": int(informative.sum()),
            "sanity_skipped": sanity_skip,
        }
        return Result(findings=findings, metrics=E.json_round(metrics), artifacts=artifacts)

    def _write(self, context, ex, x, idx, attrs, maps, verdicts, targets, mask):
        import numpy as np

        from diagnostics import explain as E

        d = context.artifact_dir
        artifacts = {}
        np.save(d / "sample_indices.npy", idx)
        artifacts["sample indices"] = "sample_indices.npy"
        for m, a in attrs.items():
            np.save(d / f"{m}.npy", a.astype(np.float32))
            artifacts[f"{m} attributions"] = f"{m}.npy"
        kind = context.model_kind
        shape = tuple(ex.feature_shape)
        if kind == "image" and len(shape) == 2:
            E.save_image_overlays(d / "overlays.png", ex.x_raw, {m: v.reshape((-1,) + shape) for m, v in maps.items()},
                                  verdicts, captions=[f"#{i} → {t}" for i, t in zip(idx, targets.index)])
            artifacts["overlays"] = "overlays.png"
        elif ex.tokens or kind == "sequence" or len(shape) == 1 and kind != "tabular":
            E.save_heat_strips(d / "heat_strips.png", maps, verdicts, mask=mask,
                               xlabel="token position" if ex.tokens else "time step",
                               tokens=ex.x_raw if ex.tokens else None)
            artifacts["heat strips"] = "heat_strips.png"
        else:
            names = [f"f{i}" for i in range(maps[next(iter(maps))].shape[1])]
            m = "integrated_gradients" if "integrated_gradients" in maps else next(iter(maps))
            E.save_global_importance(d / "global_importance.png", names, np.abs(maps[m]).mean(0),
                                     title=f"Global importance: mean |{m}| ({verdicts[m]})")
            artifacts["global importance"] = "global_importance.png"
        return artifacts


def _randomised_clone(model, seed: int):
    """A copy of the model with freshly initialised weights (the model itself is never touched)."""
    import keras

    try:
        keras.utils.set_random_seed(seed + 12345)
        return keras.models.clone_model(model)
    except Exception:  # noqa: BLE001 - subclassed or exotic models: report the check as skipped
        return None


def _work(opts: dict, x) -> float:
    """Gradient evaluations per explained sample with these options (for the time budget, issue 11)."""
    # IG and expected gradients refine until they converge: count a quarter of max_steps and half of
    # eg_max_samples (calibrated on MobileNetV2 96x96: ~2,100 evaluations per sample with the defaults).
    per = int(opts["max_steps"]) // 4 + int(opts["smoothgrad_samples"]) + int(opts["eg_max_samples"]) // 2 + 4
    return per * (2 if opts.get("sanity") else 1) * (1.5 if opts.get("faithfulness") else 1) * 1.7


@diagnostics.hookimpl
def register_analyzers(register):
    register(GradientExplanations)
