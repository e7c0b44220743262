"""Built-in plugin: captum's attribution methods on the Keras model (torch backend, where a Keras model
is a ``torch.nn.Module``): Integrated Gradients, occlusion, feature ablation, Shapley value sampling,
Grad-CAM on the last convolution (:func:`gradcam_channels_last`: captum's ``LayerGradCam`` averages over
the wrong axes of an NHWC map) and NoiseTunnel (SmoothGrad over IG). Checks and verdicts come from
:class:`diagnostics.ExplanationAnalyzer`.

Everything captum-specific lives here, not in the core (issue 24: ``diagnostics`` imports no captum):
:class:`CaptumMethod`, any captum ``Attribution`` as an :class:`~diagnostics.Explainer`, was
``diagnostics.captum_methods.CaptumMethod``; :func:`gradcam_channels_last` was in
``diagnostics.backends.torch`` and read captum's private ``_utils``; it now takes the layer's
activation with a public torch forward hook.

Not offered, on purpose: ``DeepLift``/``DeepLiftShap`` and ``GuidedBackprop``/``Deconvolution`` (they
need ``nn.ReLU`` modules; Keras activations are functions). See docs/explanations.md.
"""

from __future__ import annotations

import diagnostics
from diagnostics import ExplanationAnalyzer, Explainer, Option

PATCH = Option("patch", object, "auto", "side of the pixel blocks that occlusion, feature ablation and Shapley "
               "sampling move, or 'auto' (4 px; about a 7 x 7 grid on large images)")


class CaptumMethod(Explainer):
    """A captum ``Attribution`` class (``captum_class``, wrapped in ``NoiseTunnel`` when ``tunnel``) called
    on the view's float space with the view's baseline and the explained targets; subclasses give the
    other keyword arguments in :meth:`kwargs` and their cost in :meth:`~diagnostics.Explainer.cost`. The
    defaults suit perturbation methods: feature groups of ``patch`` x ``patch`` pixel blocks (option
    :data:`PATCH`), time steps or columns, one forward pass per group. Another captum method is one more
    subclass listed in :attr:`CaptumExplanations.explainers`::

        class CaptumGradientShap(CaptumMethod):
            name, reference, sampling = "captum_gradient_shap", "Lundberg & Lee 2017", True
            captum_class = "GradientShap"

            def kwargs(self, view, z):
                return {"n_samples": 20}

            def cost(self, view, x):  # evaluations per sample, for the time budget
                return 20
    """

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

    def groups(self, shape):
        """Feature groups (:func:`diagnostics.explain.feature_groups`): pixel blocks, time steps, columns."""
        from diagnostics.explain import feature_groups, patch_side

        return feature_groups(shape, patch_side(self.opts["patch"], shape))

    def kwargs(self, view, z):
        import torch

        return {"feature_mask": torch.as_tensor(self.groups(z.shape[1:]))[None],
                "perturbations_per_eval": max(1, view.batch_size // len(z))}

    def cost(self, view, x):  # one forward pass per group: a third of an evaluation each
        return (int(self.groups(view.float_space(x[:1]).shape[1:]).max()) + 1) / 3


def gradcam_channels_last(forward_t, layer, x_t, targets_t):
    """Grad-CAM (Selvaraju et al., 2017) for an NHWC feature map: ReLU(Σ_c mean(∂y/∂A_c) · A_c), upsampled
    bilinearly to the input size. captum's ``LayerGradCam`` averages over the wrong axes of a channels-last
    map, so this computes the map itself: the layer's activation ``A`` taken by a forward hook (a Keras
    layer is a ``torch.nn.Module`` under this backend), ``∂y/∂A`` by autograd. ``forward_t`` maps a tensor
    batch to (n, units); returns (upsampled maps, maps at the layer's size) as numpy arrays."""
    import torch

    taken = []
    handle = layer.register_forward_hook(lambda module, inputs, output: taken.append(output))
    try:
        with torch.enable_grad():
            out = forward_t(x_t.detach().clone().requires_grad_(True))  # a path to A even with frozen weights
            (acts,) = taken
            picked = out.reshape(out.shape[0], -1).gather(1, torch.as_tensor(targets_t, device=out.device)[:, None])
            (grads,) = torch.autograd.grad(picked.sum(), acts)  # samples are independent: one backward for all
    finally:
        handle.remove()
    cam = torch.relu((grads.mean(dim=(1, 2), keepdim=True) * acts).sum(dim=-1))  # (n, H, W)
    up = torch.nn.functional.interpolate(cam[:, None], size=tuple(x_t.shape[1:3]), mode="bilinear", align_corners=False)
    return up[:, 0].detach().cpu().numpy(), cam.detach().cpu().numpy()


class IntegratedGradients(CaptumMethod):
    """captum's IG with the suite's step refinement (issue 23, "one IG story"): the samples whose
    attributions miss F(x) − F(baseline) by more than 1% are explained again with twice the steps, up to
    ``max_steps``, while the budget allows — as the suite's own IG (explain.gradients) does, so the two
    are judged alike on the same samples and their maps compare side by side. ``max_steps=steps`` keeps
    captum's fixed steps (the completeness check then says how many samples they leave incomplete)."""

    name, reference, axiom = "integrated_gradients", "Sundararajan et al. 2017 (captum IntegratedGradients)", "completeness"
    captum_class = "IntegratedGradients"
    options = (Option("steps", int, 50, "captum's n_steps to start from"),
               Option("max_steps", int, 512, "the most steps the incomplete samples are doubled to"))
    scalable = {"steps": 8, "max_steps": 8}

    def attribute(self, view, x, targets, seed):
        import numpy as np

        from diagnostics import explain as E
        from diagnostics import refine_unconverged

        x, targets = np.asarray(x), np.asarray(targets)
        steps = int(self.opts["steps"])
        most = steps if self.stage == "randomisation" else int(self.opts["max_steps"])  # only the ranking matters there
        reference = view.forward(x, targets) - view.forward(view.baseline_like(x), targets)
        used = np.full(len(x), steps)

        def call(rows, n):
            rows = np.arange(len(x)) if rows is None else rows
            used[rows] = n
            self.opts["steps"] = n
            try:
                return super(IntegratedGradients, self).attribute(view, x[rows], targets[rows], seed)
            finally:
                self.opts["steps"] = steps

        out = refine_unconverged(self, view, reference, call, steps, most, tol=E.COMPLETENESS_TOLERANCE)
        self.notes["steps_used"] = {str(k): int((used == k).sum()) for k in sorted(set(used.tolist()))}
        return out

    def kwargs(self, view, z):
        return {"n_steps": int(self.opts["steps"]), "internal_batch_size": view.batch_size}

    def cost(self, view, x):  # the steps to start from, and some refinement
        return 2 * int(self.opts["steps"])


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
