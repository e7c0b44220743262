"""Built-in plugin: captum's attribution methods on the Keras model (torch backend, where a Keras model
is a ``torch.nn.Module``): Integrated Gradients, occlusion, feature ablation, Shapley value sampling,
Grad-CAM on the last convolution (:func:`diagnostics.backends.torch.gradcam_channels_last`: captum's
``LayerGradCam`` averages over the wrong axes of an NHWC map) and NoiseTunnel (SmoothGrad over IG). Checks and
verdicts come from :class:`diagnostics.explainers.ExplanationAnalyzer`.

Not offered, on purpose: ``DeepLift``/``DeepLiftShap`` and ``GuidedBackprop``/``Deconvolution`` (they
need ``nn.ReLU`` modules; Keras activations are functions). See docs/explanations.md.
"""

from __future__ import annotations

import diagnostics
from diagnostics import ExplanationAnalyzer, Explainer, Option
from diagnostics.captum_methods import PATCH, CaptumMethod

class IntegratedGradients(CaptumMethod):
    name, reference, axiom = "integrated_gradients", "Sundararajan et al. 2017 (captum IntegratedGradients)", "completeness"
    captum_class, options = "IntegratedGradients", (Option("steps", int, 50, "captum's n_steps (fixed: no raising)"),)
    scalable = {"steps": 8}

    def kwargs(self, view, z):
        return {"n_steps": int(self.opts["steps"]), "internal_batch_size": view.batch_size}

    def cost(self, view, x):
        return int(self.opts["steps"])


class Occlusion(CaptumMethod):
    name, reference, captum_class, options = "occlusion", "Zeiler & Fergus 2014", "Occlusion", (PATCH,)
    backward = False

    def kwargs(self, view, z):
        from diagnostics.explain import patch_side

        shape = tuple(z.shape[1:])
        p = patch_side(self.opts["patch"], shape) if len(shape) == 3 else 1
        window, stride = {3: ((p, p, shape[-1]), (max(1, p // 2), max(1, p // 2), shape[-1])),
                          2: ((1 if view.tokens else 3, shape[-1]), (1, shape[-1]))}.get(len(shape), ((1,), (1,)))
        return {"sliding_window_shapes": window, "strides": stride, "perturbations_per_eval": max(1, view.batch_size // len(z))}

    def cost(self, view, x):  # windows at half a patch apart: about 4 per pixel block of an image
        return super().cost(view, x) * (4 if view.kind == "image" else 1)


class FeatureAblation(CaptumMethod):
    name, reference, captum_class, options = "feature_ablation", "Kokhlikyan et al. 2020", "FeatureAblation", (PATCH,)
    backward = False


class ShapleySampling(CaptumMethod):
    name, reference, sampling, captum_class = "shapley_sampling", "Strumbelj & Kononenko 2010", True, "ShapleyValueSampling"
    options, scalable = (PATCH, Option("shapley_samples", int, 8, "feature permutations sampled")), {"shapley_samples": 1}
    backward = False

    def kwargs(self, view, z):
        return {**super().kwargs(view, z), "n_samples": int(self.opts["shapley_samples"])}

    def cost(self, view, x):
        return super().cost(view, x) * int(self.opts["shapley_samples"])


class NoiseTunnel(CaptumMethod):
    name, reference, sampling = "noise_tunnel", "Smilkov et al. 2017 (SmoothGrad over IG, captum NoiseTunnel)", True
    captum_class, tunnel, scalable = "IntegratedGradients", True, {"nt_samples": 2, "nt_steps": 4}
    options = (Option("nt_samples", int, 8, "noisy copies per sample"), Option("nt_steps", int, 16, "IG steps per copy"),
               Option("nt_stdev", float, 0.15, "noise std as a fraction of the inputs' value range"))

    def kwargs(self, view, z):
        span = float(z.max() - z.min()) or 1.0
        return {"nt_type": "smoothgrad", "nt_samples": int(self.opts["nt_samples"]), "n_steps": int(self.opts["nt_steps"]),
                "stdevs": float(self.opts["nt_stdev"]) * span, "internal_batch_size": view.batch_size}

    def cost(self, view, x):
        return int(self.opts["nt_samples"]) * int(self.opts["nt_steps"])


class GradCam(Explainer):
    name, reference, signed, input_kinds = "gradcam", "Selvaraju et al. 2017 (channels-last)", False, frozenset({"image"})
    work = 1.0

    def unavailable(self, view, x):
        from diagnostics.modelinfo import last_conv_layer

        return super().unavailable(view, x) or (None if last_conv_layer(view.model) else "the model has no 2-D convolution layer")

    def attribute(self, view, x, targets, seed):
        import numpy as np
        import torch

        from diagnostics.backends.torch import gradcam_channels_last
        from diagnostics.modelinfo import last_conv_layer

        up, _ = gradcam_channels_last(lambda t: view.model(t, training=False).reshape(t.shape[0], -1),
                                      last_conv_layer(view.model), torch.tensor(view.float_space(x)),
                                      torch.as_tensor(np.asarray(targets, np.int64)))
        return up


class CaptumExplanations(ExplanationAnalyzer):
    """captum's IG, occlusion, feature ablation, Shapley value sampling, Grad-CAM and NoiseTunnel."""

    name, backends, requires, reference = "explain.captum", ("torch",), ("captum",), "Kokhlikyan et al. 2020 (captum)"
    description = "captum (torch): IG, occlusion, feature ablation, Shapley sampling, Grad-CAM, NoiseTunnel — with verdicts."
    explainers = (IntegratedGradients, Occlusion, FeatureAblation, ShapleySampling, GradCam, NoiseTunnel)
    defaults, sanity_cost = {"batch_size": 512}, 1.5
    not_offered = {"DeepLift": "Keras activations are not nn.ReLU modules: captum's rescale rule never fires and "
                               "DeepLift silently equals input x gradient",
                   "GuidedBackprop": "overrides nn.ReLU's backward, which Keras models do not have"}


@diagnostics.hookimpl
def register_analyzers(register):
    register(CaptumExplanations)
