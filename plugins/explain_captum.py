"""Built-in plugin: captum's attribution methods on the Keras model (torch backend), each with a verdict.

Under ``KERAS_BACKEND=torch`` a Keras model is a ``torch.nn.Module`` and captum runs on it directly.
Offered: Integrated Gradients (the reference the gradient family is checked against), occlusion,
feature ablation, Shapley value sampling, Grad-CAM on the last convolution (computed here for
channels-last feature maps: captum's ``LayerGradCam`` averages over the wrong axes of an NHWC map)
and NoiseTunnel (SmoothGrad over IG).

Not offered, on purpose: captum's ``DeepLift``/``DeepLiftShap`` (Keras activations are functions,
not ``nn.ReLU`` modules, so captum's rescale rule never fires and the result silently equals input x
gradient) and ``GuidedBackprop``/``Deconvolution`` (same reason: they override ``nn.ReLU``'s
backward, which Keras models do not have). See docs/explanations.md.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity

METHODS = ("integrated_gradients", "occlusion", "feature_ablation", "shapley_sampling", "gradcam", "noise_tunnel")
SIGNED = {"integrated_gradients": True, "occlusion": True, "feature_ablation": True, "shapley_sampling": True,
          "gradcam": False, "noise_tunnel": True}
SAMPLING = ("shapley_sampling", "noise_tunnel")
DEFAULTS = {"samples": 8, "steps": 50, "batch_size": 512, "shapley_samples": 8, "nt_samples": 8, "nt_steps": 16,
            "nt_stdev": 0.15, "patch": 4, "sanity": True, "faithfulness": True, "baseline_token": 0,
            "methods": ",".join(METHODS)}


def _options(context: Context) -> dict:
    from diagnostics import explain as E

    return E.method_options(context.options, DEFAULTS, METHODS,
                            " (DeepLift and guided backprop are not offered: see docs/explanations.md)")


class TorchModel:
    """The Keras model as captum sees it: a float input space (the embedding output for token
    models), a forward function on torch tensors, and a batched numpy forward on raw inputs."""

    def __init__(self, model, x_raw, batch_size: int, baseline_token: int):
        import keras
        import numpy as np

        self.model = model
        self.batch_size = batch_size
        self.x_raw = np.asarray(x_raw)
        self.tokens = np.issubdtype(self.x_raw.dtype, np.integer)
        if self.tokens:
            layer = next(layer for layer in model.layers if type(layer).__name__ != "InputLayer")
            self.embed = keras.Model(model.inputs, layer.output)
            self.head = keras.Model(layer.output, model.outputs[0])
            self.x = self._np(self.embed, self.x_raw)
            self.baseline_raw = np.full_like(self.x_raw, baseline_token)
            self.baseline = self._np(self.embed, self.baseline_raw)
            self.feature_shape = self.x_raw.shape[1:]
            self.reduce_axes = (2,)
        else:
            self.head = model
            self.x = self.x_raw.astype(np.float32)
            self.baseline = np.zeros_like(self.x)
            self.baseline_raw = self.baseline
            rank = self.x.ndim - 1
            self.reduce_axes = (rank,) if rank >= 2 else ()
            self.feature_shape = self.x.shape[1:rank] if rank >= 2 else self.x.shape[1:]

    def _np(self, model, x):
        import numpy as np

        return np.concatenate([np.asarray(model.predict_on_batch(x[s:s + self.batch_size]))
                               for s in range(0, len(x), self.batch_size)]).astype(np.float32)

    def forward_t(self, t):
        out = self.head(t, training=False)
        return out.reshape(out.shape[0], -1)

    def forward(self, x, targets):
        """Explained unit's output for raw inputs, fixed-size batches."""
        import numpy as np

        from diagnostics import explain as E

        return E.predict_batched(self.model, x, self.batch_size)[np.arange(len(x)), np.asarray(targets)]

    def feature_mask(self, patch: int):
        """captum feature groups: patch x patch pixel blocks (all channels), one time step, one
        token (all embedding dims), or one tabular feature."""
        import numpy as np

        shape = self.x.shape[1:]
        if not self.tokens and len(shape) == 3:
            h, w, c = shape
            rows = (np.arange(h) // patch)[:, None]
            cols = (np.arange(w) // patch)[None, :]
            ids = rows * ((w + patch - 1) // patch) + cols
            return np.broadcast_to(ids[:, :, None], shape).copy()
        if len(shape) == 2:  # sequence (T, C) or tokens (T, E)
            return np.broadcast_to(np.arange(shape[0])[:, None], shape).copy()
        return np.arange(int(np.prod(shape))).reshape(shape)

    def occlusion_window(self, patch: int):
        shape = self.x.shape[1:]
        if not self.tokens and len(shape) == 3:
            return (patch, patch, shape[2]), (max(1, patch // 2), max(1, patch // 2), shape[2])
        if len(shape) == 2:
            return (1, shape[1]) if self.tokens else (3, shape[1]), (1, shape[1])
        return (1,), (1,)


def last_conv_layer(model):
    """The last 2-D convolution of the model (Grad-CAM's layer), or None."""
    convs = [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")]
    return convs[-1] if convs else None


def gradcam_channels_last(forward_t, layer, x_t, targets_t):
    """Grad-CAM (Selvaraju et al., 2017) for an NHWC feature map: weights = spatial mean of the
    gradients per channel, map = ReLU(Σ_c weight_c · A_c), upsampled bilinearly to the input size.

    captum's ``LayerGradCam`` averages the gradients over every axis after the second (right for
    NCHW), which for a channels-last map averages over width and channels instead.
    """
    import torch
    from captum._utils.gradient import compute_layer_gradients_and_eval

    grads, acts = compute_layer_gradients_and_eval(forward_t, layer, x_t, target_ind=targets_t)
    g, a = grads[0], acts[0]  # (n, H, W, C)
    weights = g.mean(dim=(1, 2), keepdim=True)
    cam = torch.relu((weights * a).sum(dim=-1))  # (n, H, W)
    size = tuple(x_t.shape[1:3])
    up = torch.nn.functional.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return up.detach().cpu().numpy(), cam.detach().cpu().numpy()


def attribute(tm: TorchModel, method: str, targets, opts: dict, seed: int):
    """(attributions in the float input space, shape of x; extra metrics) for one captum method."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    x_t = torch.tensor(tm.x)
    b_t = torch.tensor(np.broadcast_to(tm.baseline, tm.x.shape).copy())
    tgt = torch.as_tensor(np.asarray(targets, np.int64))
    bs = int(opts["batch_size"])
    if method == "integrated_gradients":
        from captum.attr import IntegratedGradients

        a, delta = IntegratedGradients(tm.forward_t).attribute(
            x_t, baselines=b_t, target=tgt, n_steps=int(opts["steps"]), internal_batch_size=bs,
            return_convergence_delta=True)
        return a.detach().numpy(), {"convergence_delta": np.abs(delta.detach().numpy())}
    if method == "occlusion":
        from captum.attr import Occlusion

        window, stride = tm.occlusion_window(int(opts["patch"]))
        a = Occlusion(tm.forward_t).attribute(x_t, sliding_window_shapes=window, strides=stride, baselines=b_t,
                                              target=tgt, perturbations_per_eval=max(1, bs // len(x_t)))
        return a.detach().numpy(), {}
    fmask = torch.as_tensor(tm.feature_mask(int(opts["patch"])))[None]
    if method == "feature_ablation":
        from captum.attr import FeatureAblation

        a = FeatureAblation(tm.forward_t).attribute(x_t, baselines=b_t, target=tgt, feature_mask=fmask,
                                                    perturbations_per_eval=max(1, bs // len(x_t)))
        return a.detach().numpy(), {}
    if method == "shapley_sampling":
        from captum.attr import ShapleyValueSampling

        a = ShapleyValueSampling(tm.forward_t).attribute(
            x_t, baselines=b_t, target=tgt, feature_mask=fmask, n_samples=int(opts["shapley_samples"]),
            perturbations_per_eval=max(1, bs // len(x_t)))
        return a.detach().numpy(), {}
    if method == "noise_tunnel":
        from captum.attr import IntegratedGradients, NoiseTunnel

        span = float(tm.x.max() - tm.x.min()) or 1.0
        a = NoiseTunnel(IntegratedGradients(tm.forward_t)).attribute(
            x_t, baselines=b_t, target=tgt, nt_type="smoothgrad", nt_samples=int(opts["nt_samples"]),
            stdevs=float(opts["nt_stdev"]) * span, n_steps=int(opts["nt_steps"]), internal_batch_size=bs)
        return a.detach().numpy(), {}
    raise ValueError(method)


class CaptumExplanations(Analyzer):
    """captum's IG, occlusion, feature ablation, Shapley value sampling, Grad-CAM (channels-last
    corrected) and NoiseTunnel on the Keras model under torch, each with a trust verdict."""

    name = "explain.captum"
    category = "explanation"
    description = ("captum on the Keras model (torch): IG, occlusion, feature ablation, Shapley sampling, "
                   "channels-last Grad-CAM, NoiseTunnel — each with a trust verdict.")
    model_kinds = frozenset({"image", "sequence", "token", "tabular"})
    data = "x"
    backends = ("torch",)
    requires = ("captum",)
    reference = ("Kokhlikyan et al. 2020 (captum); Zeiler & Fergus 2014 (occlusion); Strumbelj & Kononenko 2010 "
                 "(Shapley sampling); Selvaraju et al. 2017 (Grad-CAM); Smilkov et al. 2017 (NoiseTunnel)")

    def run(self, context: Context) -> Result:
        import time

        import numpy as np

        from diagnostics import explain as E

        t0 = time.monotonic()
        opts = _options(context)
        model = context.model
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            return Result.skip("captum explanations here support single-input, single-output models")
        from diagnostics import memory  # batches that fit the worker's memory (issue 11)

        opts["batch_size"] = memory.batch_size(model, int(opts["batch_size"]))
        x_all = np.asarray(context.data.x)
        from diagnostics import budget  # as many samples as fit the time budget, said in the report (issue 11)

        opts["samples"] = budget.fit_samples(context, min(int(opts["samples"]), len(x_all)), _work(opts, x_all),
                                             x=x_all[:1], minimum=2)
        idx = E.select_samples(len(x_all), int(opts["samples"]), context.seed)
        tm = TorchModel(model, x_all[idx], int(opts["batch_size"]), int(opts["baseline_token"]))
        pred = E.predict_batched(model, tm.x_raw, tm.batch_size)
        failed = E.nonfinite_predictions(pred, "explain.captum.failed")
        if failed is not None:
            return failed
        targets = E.select_targets(pred, opts.get("target"), context.info.output_activation)
        methods = list(opts["methods"])
        skipped = {}
        conv = last_conv_layer(model)
        if "gradcam" in methods and (conv is None or tm.tokens):
            methods.remove("gradcam")
            skipped["gradcam"] = "the model has no 2-D convolution layer"
        total = len(methods) * (2 if opts["sanity"] else 1)
        done = 0
        attrs, maps, extras = {}, {}, {}
        for m in methods:
            context.progress(done, total, m)
            attrs[m], extras[m], maps[m] = self._one(tm, m, targets, opts, context.seed, conv)
            done += 1

        checks = {m: {"finite": bool(np.all(np.isfinite(attrs[m])))} for m in attrs}
        if "integrated_gradients" in attrs:
            fx = tm.forward(tm.x_raw, targets.index)
            fb = tm.forward(tm.baseline_raw, targets.index)
            gap = extras["integrated_gradients"]["convergence_delta"]
            rel = gap / np.maximum(np.abs(fx - fb), E.COMPLETENESS_ABS_FLOOR)
            ok = E.completeness_ok(gap, fx - fb)
            checks["integrated_gradients"]["completeness"] = {
                "converged_fraction": float(ok.mean()), "median_relative_gap": float(np.median(rel)),
                "max_steps": int(opts["steps"]), "tolerance": E.COMPLETENESS_TOLERANCE,
                "note": "captum's IG uses a fixed step count (no raising); see explain.gradients for the adaptive one"}
        sanity_skip = None
        spent = time.monotonic() - t0
        if opts["sanity"] and context.time_left() < 1.5 * spent:
            opts["sanity"] = False
            sanity_skip = (f"not enough time left in the analyzer's budget ({context.time_left():.0f} s after {spent:.0f} s); "
                           f"raise --timeout")
        if opts["sanity"]:
            import keras

            try:
                keras.utils.set_random_seed(context.seed + 12345)
                rand = keras.models.clone_model(model)
            except Exception as e:  # noqa: BLE001
                rand, sanity_skip = None, f"the model could not be cloned: {e}"
            if rand is not None:
                rtm = TorchModel(rand, tm.x_raw, tm.batch_size, int(opts["baseline_token"]))
                rconv = rand.get_layer(conv.name) if conv is not None and "gradcam" in attrs else None
                for m in attrs:
                    context.progress(done, total, f"{m} on the randomised model")
                    _, _, rmap = self._one(rtm, m, targets, opts, context.seed, rconv)
                    checks[m]["randomisation"] = E.randomisation_check(maps[m], rmap, absolute=not SIGNED[m])
                    done += 1
            for m in SAMPLING:
                if m in attrs:
                    _, _, map2 = self._one(tm, m, targets, opts, context.seed + 1, conv)
                    checks[m]["stability"] = E.stability(maps[m], map2)
        fx = tm.forward(tm.x_raw, targets.index) * targets.sign
        fb = tm.forward(tm.baseline_raw, targets.index) * targets.sign
        informative = E.informative_samples(fx, fb)
        if opts["faithfulness"]:
            keep = informative if informative.sum() >= 2 else np.ones(len(idx), bool)
            for m in attrs:
                checks[m]["faithfulness"] = E.perturbation_curves(
                    tm.forward, tm.x_raw[keep], tm.baseline_raw[keep], maps[m][keep], targets.index[keep],
                    targets.sign[keep], seed=context.seed, feature_shape=tuple(tm.feature_shape))
        mask = context.data.extras.get("mask_val") if context.data.x_val is not None else None
        if mask is not None and np.asarray(mask).shape[0] == len(x_all):
            mask = np.asarray(mask)[idx].reshape(len(idx), -1)
            for m in attrs:
                if mask.shape[1] == maps[m].shape[1]:
                    checks[m]["ground_truth"] = E.ground_truth_scores(maps[m], mask, informative)
        else:
            mask = None
        verdicts, reasons = {}, {}
        for m in attrs:
            c = checks[m]
            verdicts[m], reasons[m] = E.verdict(
                finite=c["finite"], completeness=c.get("completeness"), randomisation=c.get("randomisation"),
                faithfulness=c.get("faithfulness"), ground_truth=c.get("ground_truth"), stability_corr=c.get("stability"))
        artifacts = self._write(context, tm, idx, attrs, maps, verdicts, targets, mask)
        findings = [Finding(f"explain.captum.{m}.{verdicts[m]}", Severity.WARNING if verdicts[m] == E.FAILED else Severity.INFO,
                            where=f"captum.{m}",
                            message=f"captum {m} explanations are {verdicts[m]}: "
                                    + ("; ".join(reasons[m]) if reasons[m] else "passed every check that applies"))
                    for m in attrs]
        metrics = {"samples": len(idx), "sample_indices": idx.tolist(), "target": targets.description,
                   "targets": targets.index.tolist(), "methods": list(attrs), "not_run": skipped,
                   "verdicts": verdicts, "reasons": reasons, "checks": checks, "agreement": E.agreement_matrix(maps),
                   "gradcam_layer": conv.name if conv is not None and "gradcam" in attrs else None,
                   "sanity_skipped": sanity_skip, "informative_samples": int(informative.sum()),
                   "not_offered": {"DeepLift": "Keras activations are not nn.ReLU modules: captum's rescale rule never "
                                               "fires and DeepLift silently equals input x gradient",
                                   "GuidedBackprop": "overrides nn.ReLU's backward, which Keras models do not have"}}
        return Result(findings=findings, metrics=E.json_round(metrics), artifacts=artifacts)

    def _one(self, tm, m, targets, opts, seed, conv):
        """(attributions, extras, per-feature map signed by the target) for one method."""
        import numpy as np
        import torch

        from diagnostics import explain as E

        if m == "gradcam":
            up, _ = gradcam_channels_last(tm.forward_t, conv, torch.tensor(tm.x),
                                          torch.as_tensor(np.asarray(targets.index, np.int64)))
            a = up * targets.sign[:, None, None]
            return a, {}, a.reshape(len(a), -1)
        a, extra = attribute(tm, m, targets.index, opts, seed)
        a = a * targets.sign.reshape((-1,) + (1,) * (a.ndim - 1))
        return a, extra, E.feature_map(a, tm.reduce_axes)

    def _write(self, context, tm, idx, attrs, maps, verdicts, targets, mask):
        import numpy as np

        from diagnostics import explain as E

        d = context.artifact_dir
        artifacts = {"sample indices": "sample_indices.npy"}
        np.save(d / "sample_indices.npy", idx)
        for m, a in attrs.items():
            np.save(d / f"{m}.npy", np.asarray(a, np.float32))
            artifacts[f"{m} attributions"] = f"{m}.npy"
        shape = tuple(tm.feature_shape)
        if context.model_kind == "image" and len(shape) == 2:
            E.save_image_overlays(d / "overlays.png", tm.x_raw, {m: v.reshape((-1,) + shape) for m, v in maps.items()},
                                  verdicts, captions=[f"#{i} → {t}" for i, t in zip(idx, targets.index)])
            artifacts["overlays"] = "overlays.png"
        elif tm.tokens or context.model_kind == "sequence":
            E.save_heat_strips(d / "heat_strips.png", maps, verdicts, mask=mask,
                               xlabel="token position" if tm.tokens else "time step",
                               tokens=tm.x_raw if tm.tokens else None)
            artifacts["heat strips"] = "heat_strips.png"
        else:
            m = "shapley_sampling" if "shapley_sampling" in maps else next(iter(maps))
            E.save_global_importance(d / "global_importance.png", [f"f{i}" for i in range(maps[m].shape[1])],
                                     np.abs(maps[m]).mean(0), title=f"Global importance: mean |{m}| ({verdicts[m]})")
            artifacts["global importance"] = "global_importance.png"
        return artifacts


def _work(opts: dict, x) -> float:
    """Gradient evaluations per explained sample with these options (for the time budget, issue 11);
    a forward pass counts a third. Occlusion, ablation and Shapley sampling cost one forward per feature."""
    import numpy as np

    shape = np.shape(x)[1:]
    patch = max(1, int(opts["patch"]))
    features = (shape[0] // patch) * (shape[1] // patch) if len(shape) == 3 else int(np.prod(shape))
    per = int(opts["steps"]) + int(opts["nt_samples"]) * int(opts["nt_steps"]) + (2 + int(opts["shapley_samples"])) * features / 3
    return per * (2 if opts.get("sanity") else 1) * (1.5 if opts.get("faithfulness") else 1) * 2


@diagnostics.hookimpl
def register_analyzers(register):
    register(CaptumExplanations)
