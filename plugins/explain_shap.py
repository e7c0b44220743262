"""Built-in plugin: SHAP values (Lundberg & Lee, 2017), with their additivity checked.

- Differentiable models: ``shap.GradientExplainer`` (expected gradients) on the Keras model under
  the torch backend, where a Keras model is a ``torch.nn.Module`` (SHAP's TensorFlow path predates
  Keras 3). Token models are explained in embedding space (the model split after its embedding).
- Tabular models, and the black-box fallback when the model has no input gradient: the
  model-agnostic ``Permutation`` explainer (exactly additive), ``Kernel`` or ``Partition``
  (``--option explain.shap.explainer=kernel|partition``) on a batched prediction function, with a
  global importance summary (mean |SHAP| per feature).

``shap.DeepExplainer`` is not offered: on Keras 3 models under torch it fails its own additivity
check (its DeepLIFT rules need ``nn.ReLU`` modules; Keras activations are functions).
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity

DEFAULTS = {"samples": 8, "background": 64, "nsamples": 200, "max_nsamples": 800, "explainer": "auto", "baseline_token": 0,
            "sanity": True, "faithfulness": True, "batch_size": 1000, "max_evals": "auto"}
#: Median additivity error, as a fraction of |F(x) − E[F(background)]|, above which SHAP values are doubtful.
ADDITIVITY_TOLERANCE = 0.1
EXPLAINERS = ("auto", "gradient", "permutation", "kernel", "partition")


class Space:
    """The float space SHAP works in (embedding output for token models) and a batched numpy
    prediction on raw inputs."""

    def __init__(self, model, batch_size: int, baseline_token: int):
        import keras
        import numpy as np

        self.model = model
        self.batch_size = batch_size
        self.baseline_token = baseline_token
        self.dtype = np.dtype(model.inputs[0].dtype) if hasattr(model.inputs[0], "dtype") else np.dtype("float32")
        self.tokens = np.issubdtype(self.dtype, np.integer)
        if self.tokens:
            layer = next(layer for layer in model.layers if type(layer).__name__ != "InputLayer")
            self.embed = keras.Model(model.inputs, layer.output)
            self.head = keras.Model(layer.output, model.outputs[0])
        else:
            self.head = model

    def to_float(self, x):
        import numpy as np

        if not self.tokens:
            return np.asarray(x, np.float32)
        return np.concatenate([np.asarray(self.embed.predict_on_batch(x[s:s + self.batch_size]))
                               for s in range(0, len(x), self.batch_size)]).astype(np.float32)

    def predict(self, x):
        import numpy as np

        x = np.asarray(x)
        if not self.tokens:
            x = x.astype(np.float32)
        from diagnostics import explain as E
        return E.predict_batched(self.model, x, self.batch_size).astype(np.float64)


def gradient_shap(space: Space, x_float, background_float, targets, nsamples: int, seed: int):
    """SHAP values of the target unit per sample via ``shap.GradientExplainer`` (torch)."""
    import numpy as np
    import shap
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    class Unit(torch.nn.Module):
        """One output unit of the model: SHAP then differentiates one output, not every class."""

        def __init__(self, head, unit):
            super().__init__()
            self.head, self.unit = head, int(unit)

        def forward(self, z):
            out = self.head(z, training=False)
            return out.reshape(out.shape[0], -1)[:, self.unit:self.unit + 1]

    out = np.zeros(x_float.shape, np.float64)
    for t in np.unique(targets):
        rows = np.flatnonzero(targets == t)
        explainer = shap.GradientExplainer(Unit(space.head, t), torch.tensor(background_float),
                                           batch_size=max(nsamples, 50))
        vals = explainer.shap_values(torch.tensor(x_float[rows]), nsamples=nsamples, rseed=seed)
        vals = np.asarray(vals[0] if isinstance(vals, list) else vals)
        if vals.ndim == x_float.ndim + 1:  # (..., outputs) in shap >= 0.45
            vals = vals[..., 0]
        out[rows] = vals
    return out


def model_agnostic_shap(kind: str, predict_unit, x, background, seed: int, nsamples, max_evals):
    """SHAP values from a model-agnostic explainer on flat features; returns (values, base values)."""
    import numpy as np
    import shap

    n, d = len(x), x.shape[1]
    if kind == "kernel":
        explainer = shap.KernelExplainer(predict_unit, background, seed=seed)
        vals = np.asarray(explainer.shap_values(x, nsamples=nsamples, silent=True))
        return vals, np.full(n, float(np.asarray(explainer.expected_value).reshape(-1)[0]))
    masker = (shap.maskers.Partition(background, max_samples=len(background)) if kind == "partition"
              else shap.maskers.Independent(background, max_samples=len(background)))
    cls = shap.PartitionExplainer if kind == "partition" else shap.PermutationExplainer
    explainer = cls(predict_unit, masker, seed=seed)
    evals = 2 * (2 * d + 1) if max_evals == "auto" else int(max_evals)
    res = explainer(x, max_evals=max(evals, 2 * d + 1), silent=True) if kind == "permutation" else explainer(x, max_evals=evals, silent=True)
    return np.asarray(res.values), np.asarray(res.base_values).reshape(n)


class ShapExplanations(Analyzer):
    """SHAP values with their additivity error and a trust verdict; global importance for tables."""

    name = "explain.shap"
    category = "explanation"
    description = ("SHAP: GradientExplainer for differentiable models, Permutation/Kernel/Partition for tables and "
                   "black boxes; additivity checked, global importance for tables, a trust verdict.")
    model_kinds = frozenset({"image", "sequence", "token", "tabular"})
    data = "x"
    backends = ("torch",)
    requires = ("shap",)
    reference = "Lundberg & Lee 2017 (SHAP); Erion et al. 2021 (expected gradients = GradientExplainer)"

    def run(self, context: Context) -> Result:
        import time

        import numpy as np

        from diagnostics import explain as E

        t0 = time.monotonic()
        opts = dict(DEFAULTS)
        opts.update({k: v for k, v in context.options.items() if k in DEFAULTS or k == "target"})
        if opts["explainer"] not in EXPLAINERS:
            raise ValueError(f"explainer must be one of {', '.join(EXPLAINERS)}, got {opts['explainer']!r}")
        model = context.model
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            return Result.skip("SHAP here supports single-input, single-output models")
        space = Space(model, int(opts["batch_size"]), int(opts["baseline_token"]))
        x_all = np.asarray(context.data.x)
        from diagnostics import budget  # as many samples as fit the time budget, said in the report (issue 11)

        opts["samples"] = budget.fit_samples(context, min(int(opts["samples"]), len(x_all)), _work(opts, x_all),
                                             x=x_all[:1], minimum=2)
        idx = E.select_samples(len(x_all), int(opts["samples"]), context.seed)
        x = x_all[idx]
        pool = np.asarray(context.data.x_train) if context.data.x_train is not None else x_all
        bg_raw = pool[np.random.default_rng(context.seed + 1).choice(len(pool), min(int(opts["background"]), len(pool)), replace=False)]
        pred = space.predict(x)
        failed = E.nonfinite_predictions(pred, "explain.shap.failed")
        if failed is not None:
            return failed
        targets = E.select_targets(pred, opts.get("target"), context.info.output_activation)
        tabular = x.ndim == 2 and not space.tokens
        explainer = opts["explainer"]
        if explainer == "auto":
            explainer = "permutation" if tabular else "gradient"
        if explainer != "gradient" and not tabular:
            return Result.skip(f"the {explainer} explainer is offered for tabular models here; "
                               f"use explainer=gradient for {context.model_kind} models")

        def explain(m_space, seed, converge=False):
            if explainer == "gradient":
                xf, bf = m_space.to_float(x), m_space.to_float(bg_raw)
                base = m_space.predict(bg_raw)[:, targets.index].mean(0)
                ns = int(opts["nsamples"])
                t_start = time.monotonic()
                vals = gradient_shap(m_space, xf, bf, targets.index, ns, seed)
                # GradientExplainer is a Monte-Carlo estimate: double nsamples for the rows whose
                # additivity error is over tolerance, up to max_nsamples
                fx_ = m_space.predict(x)[np.arange(len(x)), targets.index]
                last = time.monotonic() - t_start
                # each doubling costs twice the last round; leave room for the sanity runs after it
                while converge and ns * 2 <= int(opts["max_nsamples"]) and context.time_left() > 6 * last:
                    err_ = np.abs(vals.reshape(len(x), -1).sum(1) - (fx_ - base))
                    todo = np.flatnonzero(err_ > ADDITIVITY_TOLERANCE * np.maximum(np.abs(fx_ - base), E.COMPLETENESS_ABS_FLOOR))
                    if not len(todo):
                        break
                    ns *= 2
                    t_round = time.monotonic()
                    vals[todo] = gradient_shap(m_space, xf[todo], bf, targets.index[todo], ns, seed)
                    used[todo] = ns
                    last = time.monotonic() - t_round
                return vals, base
            vals, base = np.zeros(x.shape), np.zeros(len(x))
            for t in np.unique(targets.index):
                rows = np.flatnonzero(targets.index == t)

                def unit(z, t=t):
                    return m_space.predict(np.asarray(z))[:, t]

                v, b = model_agnostic_shap(explainer, unit, x[rows].astype(np.float64), bg_raw.astype(np.float64),
                                           seed, int(opts["nsamples"]), opts["max_evals"])
                vals[rows], base[rows] = v, b
            return vals, base

        context.progress(0, 3, f"SHAP ({explainer})")
        used = np.full(len(x), int(opts["nsamples"]))
        vals, base = explain(space, context.seed, converge=True)
        reduce_axes = (2,) if space.tokens else ((x.ndim - 1,) if x.ndim >= 3 else ())
        feature_shape = x.shape[1:2] if space.tokens else (x.shape[1:-1] if x.ndim >= 3 else x.shape[1:])
        fx = pred[np.arange(len(x)), targets.index]
        err = np.abs(vals.reshape(len(x), -1).sum(1) - (fx - base))
        rel = err / np.maximum(np.abs(fx - base), E.COMPLETENESS_ABS_FLOOR)
        checks = {"finite": bool(np.all(np.isfinite(vals))), "additivity": {
            "median_abs_error": float(np.median(err)), "relative_error": float(np.median(rel)),
            "max_relative_error": float(np.max(rel)), "within_tolerance": bool(np.median(rel) <= ADDITIVITY_TOLERANCE),
            "tolerance": ADDITIVITY_TOLERANCE}}
        if explainer == "gradient":
            checks["additivity"]["nsamples_used"] = {str(k): int((used == k).sum()) for k in np.unique(used)}
        signed = vals * targets.sign.reshape((-1,) + (1,) * (vals.ndim - 1))
        fmap = E.feature_map(signed, reduce_axes)
        sanity_skip = None
        spent = time.monotonic() - t0
        if opts["sanity"] and context.time_left() < 2.5 * spent:
            opts["sanity"] = False
            sanity_skip = (f"not enough time left in the analyzer's budget ({context.time_left():.0f} s after {spent:.0f} s); "
                           f"raise --timeout")
        if opts["sanity"]:
            import keras

            context.progress(1, 3, "SHAP with another seed, and on a randomised model")
            v2, _ = explain(space, context.seed + 1)
            checks["stability"] = E.stability(fmap, E.feature_map(v2 * targets.sign.reshape((-1,) + (1,) * (v2.ndim - 1)), reduce_axes))
            try:
                keras.utils.set_random_seed(context.seed + 12345)
                rand = keras.models.clone_model(model)
            except Exception as e:  # noqa: BLE001
                rand, sanity_skip = None, f"the model could not be cloned: {e}"
            if rand is not None:
                rv, _ = explain(Space(rand, space.batch_size, space.baseline_token), context.seed)
                checks["randomisation"] = E.randomisation_check(
                    fmap, E.feature_map(rv * targets.sign.reshape((-1,) + (1,) * (rv.ndim - 1)), reduce_axes))
        hide = (np.full(x.shape[1:], int(opts["baseline_token"]), x.dtype) if space.tokens
                else bg_raw.mean(0).astype(x.dtype) if tabular else np.zeros(x.shape[1:], x.dtype))
        fb = space.predict(np.broadcast_to(hide, x.shape).copy())[np.arange(len(x)), targets.index]
        informative = E.informative_samples(fx * targets.sign, fb * targets.sign)
        if opts["faithfulness"]:
            keep = informative if informative.sum() >= 2 else np.ones(len(x), bool)

            def forward(xb, tb):
                return space.predict(xb)[np.arange(len(xb)), tb]

            checks["faithfulness"] = E.perturbation_curves(
                forward, x[keep], np.broadcast_to(hide, x.shape)[keep], fmap[keep], targets.index[keep],
                targets.sign[keep], seed=context.seed, feature_shape=tuple(feature_shape))
        mask = context.data.extras.get("mask_val") if context.data.x_val is not None else None
        if mask is not None and np.asarray(mask).shape[0] == len(x_all) and np.asarray(mask)[idx].reshape(len(idx), -1).shape[1] == fmap.shape[1]:
            mask = np.asarray(mask)[idx].reshape(len(idx), -1)
            checks["ground_truth"] = E.ground_truth_scores(fmap, mask, informative)
        else:
            mask = None
        status, reasons = E.verdict(finite=checks["finite"], additivity=checks["additivity"],
                                    randomisation=checks.get("randomisation"), faithfulness=checks.get("faithfulness"),
                                    ground_truth=checks.get("ground_truth"), stability_corr=checks.get("stability"))
        context.progress(3, 3, "writing")
        d = context.artifact_dir
        np.save(d / "shap_values.npy", signed.astype(np.float32))
        np.save(d / "sample_indices.npy", idx)
        artifacts = {"shap values": "shap_values.npy", "sample indices": "sample_indices.npy"}
        label = f"shap ({explainer})"
        metrics_extra = {}
        if tabular:
            names = list(context.metadata.get("feature_names") or [f"f{i}" for i in range(x.shape[1])])
            importance = np.abs(vals).mean(0)
            E.save_global_importance(d / "global_importance.png", names, importance,
                                     title=f"SHAP global importance: mean |SHAP| over {len(x)} samples ({status})")
            artifacts["global importance"] = "global_importance.png"
            order = np.argsort(-importance)
            metrics_extra["global_importance"] = {names[i]: float(importance[i]) for i in order[:20]}
        elif context.model_kind == "image" and x.ndim == 4:
            E.save_image_overlays(d / "overlays.png", x, {label: fmap.reshape((-1,) + tuple(feature_shape))},
                                  {label: status}, captions=[f"#{i} → {t}" for i, t in zip(idx, targets.index)])
            artifacts["overlays"] = "overlays.png"
        else:
            E.save_heat_strips(d / "heat_strips.png", {label: fmap}, {label: status}, mask=mask,
                               xlabel="token position" if space.tokens else "time step",
                               tokens=x if space.tokens else None)
            artifacts["heat strips"] = "heat_strips.png"
        findings = [Finding(f"explain.shap.{status}", Severity.WARNING if status == E.FAILED else Severity.INFO,
                            where=f"shap.{explainer}", message=f"SHAP ({explainer}) explanations are {status}: "
                            + ("; ".join(reasons) if reasons else "passed every check that applies"))]
        metrics = {"explainer": explainer, "samples": len(idx), "sample_indices": idx.tolist(),
                   "target": targets.description, "targets": targets.index.tolist(), "verdict": status,
                   "reasons": reasons, "checks": checks, "background": len(bg_raw), "sanity_skipped": sanity_skip,
                   "space": "embedding" if space.tokens else "input", "informative_samples": int(informative.sum()),
                   "not_offered": {"DeepExplainer": "fails its own additivity check on Keras 3 models under torch "
                                                    "(Keras activations are not nn.ReLU modules)"}, **metrics_extra}
        return Result(findings=findings, metrics=E.json_round(metrics), artifacts=artifacts)


def _work(opts: dict, x) -> float:
    """Gradient evaluations per explained sample (a forward counts a third), for the time budget (issue 11)."""
    # x3: the perturbations are built and fitted in numpy too (uncalibrated guess; see budget.py)
    return int(opts["max_nsamples"]) * (2 if opts.get("sanity") else 1) * (1.5 if opts.get("faithfulness") else 1)


@diagnostics.hookimpl
def register_analyzers(register):
    register(ShapExplanations)
