"""Built-in plugin: captum's attribution methods on the Keras model (torch backend, where a Keras model
is a ``torch.nn.Module``): Integrated Gradients, occlusion, feature ablation, Shapley value sampling,
Grad-CAM on the last convolution (computed here for channels-last maps: captum's ``LayerGradCam``
averages over the wrong axes of an NHWC map) and NoiseTunnel (SmoothGrad over IG). Checks and
verdicts come from :class:`diagnostics.explainers.ExplanationAnalyzer`.

Not offered, on purpose: ``DeepLift``/``DeepLiftShap`` and ``GuidedBackprop``/``Deconvolution`` (they
need ``nn.ReLU`` modules; Keras activations are functions). See docs/explanations.md.
"""

from __future__ import annotations

import diagnostics
from diagnostics import ExplanationAnalyzer, Explainer, Option

PATCH = Option("patch", int, 4, "side of the pixel blocks that occlusion, feature ablation and Shapley sampling move")


def last_conv_layer(model):
    """The last 2-D convolution of the model (Grad-CAM's layer), or None."""
    convs = [ly for ly in model.layers if type(ly).__name__ in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")]
    return convs[-1] if convs else None


def gradcam_channels_last(forward_t, layer, x_t, targets_t):
    """Grad-CAM (Selvaraju et al., 2017) for an NHWC feature map: ReLU(Σ_c mean(∂y/∂A_c) · A_c),
    upsampled bilinearly to the input size. Returns (upsampled maps, maps at the layer's size)."""
    import torch
    from captum._utils.gradient import compute_layer_gradients_and_eval

    grads, acts = compute_layer_gradients_and_eval(forward_t, layer, x_t, target_ind=targets_t)
    cam = torch.relu((grads[0].mean(dim=(1, 2), keepdim=True) * acts[0]).sum(dim=-1))  # (n, H, W)
    up = torch.nn.functional.interpolate(cam[:, None], size=tuple(x_t.shape[1:3]), mode="bilinear", align_corners=False)
    return up[:, 0].detach().cpu().numpy(), cam.detach().cpu().numpy()


class CaptumMethod(Explainer):
    """A captum ``Attribution`` class (``captum_class``, wrapped in ``NoiseTunnel`` when ``tunnel``) called
    on the float space; subclasses give the keyword arguments in ``kwargs``."""

    captum_class, tunnel = "", False

    def attribute(self, view, x, targets, seed):
        import captum.attr
        import numpy as np
        import torch

        torch.manual_seed(seed)
        z = torch.tensor(view.float_space(x))
        method = getattr(captum.attr, self.captum_class)(lambda t: view.head(t, training=False).reshape(t.shape[0], -1))
        method = captum.attr.NoiseTunnel(method) if self.tunnel else method
        return method.attribute(z, target=torch.as_tensor(np.asarray(targets, np.int64)),
                                baselines=torch.tensor(view.float_space(view.baseline_like(x))),
                                **self.kwargs(view, z)).detach().numpy()

    def kwargs(self, view, z):
        """Feature groups: patch x patch pixel blocks, one time step or token, or one column."""
        import numpy as np
        import torch

        shape, p = tuple(z.shape[1:]), int(self.opts["patch"])
        if len(shape) == 3:
            ids = (np.arange(shape[0]) // p)[:, None] * (-(-shape[1] // p)) + (np.arange(shape[1]) // p)[None, :]
            ids = np.broadcast_to(ids[:, :, None], shape)
        else:
            ids = np.broadcast_to(np.arange(shape[0])[:, None], shape) if len(shape) == 2 else np.arange(shape[0])
        return {"feature_mask": torch.as_tensor(ids.copy())[None], "perturbations_per_eval": max(1, view.batch_size // len(z))}


class IntegratedGradients(CaptumMethod):
    name, reference, axiom = "integrated_gradients", "Sundararajan et al. 2017 (captum IntegratedGradients)", "completeness"
    captum_class, options = "IntegratedGradients", (Option("steps", int, 50, "captum's n_steps (fixed: no raising)"),)

    def kwargs(self, view, z):
        return {"n_steps": int(self.opts["steps"]), "internal_batch_size": view.batch_size}


class Occlusion(CaptumMethod):
    name, reference, captum_class, options = "occlusion", "Zeiler & Fergus 2014", "Occlusion", (PATCH,)

    def kwargs(self, view, z):
        shape, p = tuple(z.shape[1:]), int(self.opts["patch"])
        window, stride = {3: ((p, p, shape[-1]), (max(1, p // 2), max(1, p // 2), shape[-1])),
                          2: ((1 if view.tokens else 3, shape[-1]), (1, shape[-1]))}.get(len(shape), ((1,), (1,)))
        return {"sliding_window_shapes": window, "strides": stride, "perturbations_per_eval": max(1, view.batch_size // len(z))}


class FeatureAblation(CaptumMethod):
    name, reference, captum_class, options = "feature_ablation", "Kokhlikyan et al. 2020", "FeatureAblation", (PATCH,)


class ShapleySampling(CaptumMethod):
    name, reference, sampling, captum_class = "shapley_sampling", "Strumbelj & Kononenko 2010", True, "ShapleyValueSampling"
    options = (PATCH, Option("shapley_samples", int, 8, "feature permutations sampled"))

    def kwargs(self, view, z):
        return {**super().kwargs(view, z), "n_samples": int(self.opts["shapley_samples"])}


class NoiseTunnel(CaptumMethod):
    name, reference, sampling = "noise_tunnel", "Smilkov et al. 2017 (SmoothGrad over IG, captum NoiseTunnel)", True
    captum_class, tunnel = "IntegratedGradients", True
    options = (Option("nt_samples", int, 8, "noisy copies per sample"), Option("nt_steps", int, 16, "IG steps per copy"),
               Option("nt_stdev", float, 0.15, "noise std as a fraction of the inputs' value range"))

    def kwargs(self, view, z):
        span = float(z.max() - z.min()) or 1.0
        return {"nt_type": "smoothgrad", "nt_samples": int(self.opts["nt_samples"]), "n_steps": int(self.opts["nt_steps"]),
                "stdevs": float(self.opts["nt_stdev"]) * span, "internal_batch_size": view.batch_size}


class GradCam(Explainer):
    name, reference, signed, input_kinds = "gradcam", "Selvaraju et al. 2017 (channels-last)", False, frozenset({"image"})

    def unavailable(self, view, x):
        return super().unavailable(view, x) or (None if last_conv_layer(view.model) else "the model has no 2-D convolution layer")

    def attribute(self, view, x, targets, seed):
        import numpy as np
        import torch

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
