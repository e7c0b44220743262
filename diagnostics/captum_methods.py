"""Any captum ``Attribution`` as an :class:`~diagnostics.Explainer`: subclass :class:`CaptumMethod`, name
the captum class and give its keyword arguments; the trust pipeline does the rest. The built-in
``explain.captum`` is made of these; a plugin adds one more captum method the same way::

    class CaptumGradientShap(CaptumMethod):
        name, reference, sampling = "captum_gradient_shap", "Lundberg & Lee 2017", True
        captum_class = "GradientShap"

        def kwargs(self, view, z):
            return {"n_samples": 20}

        def cost(self, view, x):  # evaluations per sample, for the time budget
            return 20

Runs under the torch backend, where a Keras model is a ``torch.nn.Module``.
"""

from __future__ import annotations

from .analyzer import Option
from .explainers import Explainer

PATCH = Option("patch", object, "auto", "side of the pixel blocks that occlusion, feature ablation and Shapley "
               "sampling move, or 'auto' (4 px; about a 7 x 7 grid on large images)")


class CaptumMethod(Explainer):
    """A captum ``Attribution`` class (``captum_class``, wrapped in ``NoiseTunnel`` when ``tunnel``) called
    on the view's float space with the view's baseline and the explained targets; subclasses give the
    other keyword arguments in :meth:`kwargs` and their cost in :meth:`~diagnostics.Explainer.cost`. The
    defaults suit perturbation methods: feature groups of ``patch`` x ``patch`` pixel blocks (option
    :data:`PATCH`), time steps or columns, one forward pass per group."""

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
        from .explain import feature_groups, patch_side

        return feature_groups(shape, patch_side(self.opts["patch"], shape))

    def kwargs(self, view, z):
        import torch

        return {"feature_mask": torch.as_tensor(self.groups(z.shape[1:]))[None],
                "perturbations_per_eval": max(1, view.batch_size // len(z))}

    def cost(self, view, x):  # one forward pass per group: a third of an evaluation each
        return (int(self.groups(view.float_space(x[:1]).shape[1:]).max()) + 1) / 3
