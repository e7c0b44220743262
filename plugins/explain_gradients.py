"""Built-in plugin: the gradient family of explanations, on the compiled, batched gradient primitive of
the running backend (:mod:`diagnostics.backends`, through :mod:`diagnostics.explain`).

Integrated Gradients (Gauss-Legendre quadrature, steps doubled until the completeness gap is under
1%), saliency, SmoothGrad, input x gradient and expected gradients (SHAP's GradientExplainer, samples
doubled until additive within 10%). Token models are explained in embedding space. Every check and the
verdict come from :class:`diagnostics.explainers.ExplanationAnalyzer`.
"""

from __future__ import annotations

import diagnostics
from diagnostics import ExplanationAnalyzer, Explainer, Option


class IntegratedGradients(Explainer):
    name = "integrated_gradients"
    work, scalable = 128.0, {"steps": 8, "max_steps": 8}  # refines its steps up to max_steps until complete
    reference = "Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks"
    axiom = "completeness"
    options = (Option("steps", int, 32, "Gauss-Legendre steps to start from"),
               Option("max_steps", int, 512, "the most steps IG doubles to for completeness"))

    def attribute(self, view, x, targets, seed):
        from diagnostics import explain as E

        steps = int(self.opts["steps"])  # on the randomised model only the ranking matters: no raising
        r = E.integrated_gradients(view.grad_fn, view.float_space(x), view.float_space(view.baseline_like(x)), targets,
                                   steps=steps, max_steps=steps if self.stage == "randomisation" else int(self.opts["max_steps"]),
                                   batch_size=view.batch_size, time_left=view.time_left)
        self.notes["steps_used"] = {str(s): int((r.steps == s).sum()) for s in sorted(set(r.steps.tolist()))}
        return r.attributions


class Saliency(Explainer):
    name = "saliency"
    work = 1.0
    reference = "Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks"
    signed = False

    def attribute(self, view, x, targets, seed):
        from diagnostics import explain as E

        return E.saliency(view.grad_fn, view.float_space(x), targets, view.batch_size)


class SmoothGrad(Explainer):
    name = "smoothgrad"
    work, scalable = 50.0, {"smoothgrad_samples": 4}
    reference = "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise"
    sampling = True
    options = (Option("smoothgrad_samples", int, 16, "noisy copies per sample"),
               Option("smoothgrad_noise", float, 0.15, "noise std as a fraction of each sample's value range"))

    def attribute(self, view, x, targets, seed):
        from diagnostics import explain as E

        return E.smoothgrad(view.grad_fn, view.float_space(x), targets, samples=int(self.opts["smoothgrad_samples"]),
                            noise=float(self.opts["smoothgrad_noise"]), seed=seed, batch_size=view.batch_size)


class InputXGradient(Explainer):
    name = "input_x_gradient"
    work = 1.0
    reference = "Shrikumar et al. 2016, Not Just a Black Box"

    def attribute(self, view, x, targets, seed):
        from diagnostics import explain as E

        return E.input_x_gradient(view.grad_fn, view.float_space(x), view.float_space(view.baseline_like(x)), targets,
                                  view.batch_size)


class ExpectedGradients(Explainer):
    name = "expected_gradients"
    work, scalable = 100.0, {"eg_samples": 8, "eg_max_samples": 8}
    reference = "Erion et al. 2021 (expected gradients); Lundberg & Lee 2017 (SHAP GradientExplainer)"
    sampling = True
    axiom = "additivity"
    options = (Option("eg_samples", int, 64, "(baseline, alpha) draws per sample to start from"),
               Option("eg_max_samples", int, 512, "the most draws expected gradients doubles to for additivity"))

    def attribute(self, view, x, targets, seed):
        from diagnostics import explain as E

        bg = view.background_raw
        ref = view.forward(x, targets) - view.background_output(targets)
        start = int(self.opts["eg_samples"])
        attr, _, used = E.expected_gradients_converging(
            view.grad_fn, view.float_space(x), view.float_space(bg), targets, ref, samples=start,
            max_samples=start if self.stage == "randomisation" else int(self.opts["eg_max_samples"]), seed=seed, tolerance=0.1,
            batch_size=view.batch_size, time_left=view.time_left)
        self.notes["samples_used"] = {str(s): int((used == s).sum()) for s in sorted(set(used.tolist()))}
        return attr


class GradientExplanations(ExplanationAnalyzer):
    """Integrated Gradients, saliency, SmoothGrad, input x gradient and expected gradients, each with a
    trusted / doubtful / failed verdict from the trust pipeline."""

    name = "explain.gradients"
    description = ("Integrated Gradients, saliency, SmoothGrad, input x gradient, expected gradients — "
                   "each checked (completeness, randomisation, faithfulness, ground truth) and given a verdict.")
    backends = ("tensorflow", "torch")
    reference = ("Sundararajan et al. 2017 (IG); Simonyan et al. 2014; Smilkov et al. 2017; Shrikumar et al. 2016; "
                 "Erion et al. 2021 (expected gradients); Adebayo et al. 2018 (sanity checks)")
    explainers = (IntegratedGradients, Saliency, SmoothGrad, InputXGradient, ExpectedGradients)
    defaults = {"samples": 16}


@diagnostics.hookimpl
def register_analyzers(register):
    register(GradientExplanations)
