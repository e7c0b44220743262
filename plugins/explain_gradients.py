"""Built-in plugin: the gradient family of explanations, on the compiled, batched gradient primitive of
the running backend (:mod:`diagnostics.backends`, through :mod:`diagnostics.explain`).

Integrated Gradients (Gauss-Legendre quadrature, steps doubled until the completeness gap is under
1%), saliency, SmoothGrad, input x gradient and expected gradients (SHAP's GradientExplainer, samples
doubled until additive within 10%). Token models are explained in embedding space. Every check and the
verdict come from :class:`diagnostics.explainers.ExplanationAnalyzer`.

The math of saliency, input x gradient, SmoothGrad and expected gradients lives here, built on the
core's batched gradient stream (``diagnostics.explain.gradient_stream``, ``gradients``) and its time
test (``room_for_another``); Integrated Gradients stays in the core, which runs it for its own checks.

References:
    Sundararajan, Taly & Yan (2017), *Axiomatic Attribution for Deep Networks* (Integrated Gradients).
    Simonyan, Vedaldi & Zisserman (2014), *Deep Inside Convolutional Networks* (saliency).
    Smilkov et al. (2017), *SmoothGrad: removing noise by adding noise*.
    Shrikumar et al. (2016), *Not Just a Black Box* (gradient x input).
    Erion et al. (2021), *Improving performance of deep learning models with axiomatic attribution
    priors and expected gradients*; Lundberg & Lee (2017), *A Unified Approach to Interpreting Model
    Predictions* (expected gradients = SHAP's GradientExplainer).
"""

from __future__ import annotations

import diagnostics
from diagnostics import ExplanationAnalyzer, Explainer, Option

# ---------------------------------------------------------------------------------------------
# The methods' math, on the core's batched gradient stream (diagnostics.explain.gradient_stream): each
# takes a gradient function ``grad_fn(x, targets) -> (values, grads)`` and returns attributions shaped
# like ``x``. numpy is imported inside each, so that loading the plugin stays instant.


def saliency(grad_fn, x, targets, batch_size: int = 1024):
    """|∇F(x)| (Simonyan et al., 2014)."""
    import numpy as np

    from diagnostics import explain as E

    return np.abs(E.gradients(grad_fn, x, targets, batch_size)[1])


def input_x_gradient(grad_fn, x, baseline, targets, batch_size: int = 1024):
    """(x − baseline) ⊙ ∇F(x); with a zero baseline, the classic gradient × input."""
    import numpy as np

    from diagnostics import explain as E

    x = np.asarray(x, np.float32)
    return (x - np.broadcast_to(np.asarray(baseline, np.float32), x.shape)) * E.gradients(grad_fn, x, targets, batch_size)[1]


def smoothgrad(grad_fn, x, targets, samples: int = 16, noise: float = 0.15, seed: int = 0, batch_size: int = 1024):
    """Mean gradient over ``samples`` copies of x with Gaussian noise of std ``noise`` × (max − min) of x."""
    import numpy as np

    from diagnostics import explain as E

    x = np.asarray(x, np.float32)
    n = len(x)
    rng = np.random.default_rng(seed)
    span = (x.reshape(n, -1).max(1) - x.reshape(n, -1).min(1)).reshape((n,) + (1,) * (x.ndim - 1))
    sigma = (noise * np.where(span > 0, span, 1.0)).astype(np.float32)
    owner = np.repeat(np.arange(n), samples)
    acc = np.zeros(x.shape, np.float64)
    seeds = rng.integers(0, 2**31, n * samples)

    def points(full):
        eps = np.stack([np.random.default_rng(s).standard_normal(x.shape[1:], dtype=np.float32) for s in seeds[full]])
        return x[owner[full]] + sigma[owner[full]] * eps

    for idx, _, g in E.gradient_stream(grad_fn, points, owner, np.asarray(targets), n * samples, batch_size):
        np.add.at(acc, owner[idx], g.astype(np.float64))
    return acc / samples


def expected_gradients(grad_fn, x, background, targets, samples: int = 32, seed: int = 0, batch_size: int = 1024):
    """Expected gradients (SHAP's GradientExplainer): E_{b~background, α~U(0,1)}[(x − b) ⊙ ∇F(b + α(x − b))].

    Additivity holds in expectation: Σ attributions ≈ F(x) − E_b[F(b)], with a Monte-Carlo error
    shrinking as 1/√samples; the α are stratified over [0, 1] per sample to reduce that error.
    """
    import numpy as np

    from diagnostics import explain as E

    x = np.asarray(x, np.float32)
    background = np.asarray(background, np.float32)
    n = len(x)
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(n), samples)
    bg_idx = rng.integers(0, len(background), n * samples)
    strata = np.concatenate([rng.permutation(samples) for _ in range(n)])
    alpha = ((strata + rng.random(n * samples)) / samples).astype(np.float32)
    shape1 = (-1,) + (1,) * (x.ndim - 1)

    def points(full):
        b = background[bg_idx[full]]
        return b + alpha[full].reshape(shape1) * (x[owner[full]] - b)

    acc = np.zeros(x.shape, np.float64)
    for idx, _, g in E.gradient_stream(grad_fn, points, owner, np.asarray(targets), n * samples, batch_size):
        contrib = g.astype(np.float64) * (x[owner[idx]] - background[bg_idx[idx]])
        np.add.at(acc, owner[idx], contrib)
    return acc / samples


def expected_gradients_converging(grad_fn, x, background, targets, reference, samples: int = 64,
                                  max_samples: int = 512, seed: int = 0, tolerance: float = 0.1,
                                  batch_size: int = 1024, time_left=None):
    """Expected gradients with the sample count doubled, for the rows whose additivity error
    |Σ attributions − (F(x) − reference)| exceeds ``tolerance`` × |F(x) − reference|, up to
    ``max_samples`` and while ``time_left()`` leaves room for another round
    (:func:`diagnostics.explain.room_for_another`). ``reference`` is (n,) F(x) − E_b[F(b)] per row.
    Returns (attributions, error, samples used per row)."""
    import time

    import numpy as np

    from diagnostics import explain as E

    x = np.asarray(x, np.float32)
    n = len(x)
    attr = np.zeros(x.shape, np.float64)
    err = np.full(n, np.inf)
    used = np.zeros(n, int)
    todo = np.arange(n)
    s = int(samples)
    while len(todo):
        t0 = time.monotonic()
        a = expected_gradients(grad_fn, x[todo], background, np.asarray(targets)[todo], s, seed, batch_size)
        attr[todo], used[todo] = a, s
        err[todo] = np.abs(a.reshape(len(todo), -1).sum(1) - reference[todo])
        todo = todo[err[todo] > tolerance * np.maximum(np.abs(reference[todo]), E.COMPLETENESS_ABS_FLOOR)]
        if s * 2 > max_samples or not E.room_for_another(time_left, time.monotonic() - t0):
            break
        s *= 2
    return attr, err, used


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
        return saliency(view.grad_fn, view.float_space(x), targets, view.batch_size)


class SmoothGrad(Explainer):
    name = "smoothgrad"
    work, scalable = 50.0, {"smoothgrad_samples": 4}
    reference = "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise"
    sampling = True
    options = (Option("smoothgrad_samples", int, 16, "noisy copies per sample"),
               Option("smoothgrad_noise", float, 0.15, "noise std as a fraction of each sample's value range"))

    def attribute(self, view, x, targets, seed):
        return smoothgrad(view.grad_fn, view.float_space(x), targets, samples=int(self.opts["smoothgrad_samples"]),
                          noise=float(self.opts["smoothgrad_noise"]), seed=seed, batch_size=view.batch_size)


class InputXGradient(Explainer):
    name = "input_x_gradient"
    work = 1.0
    reference = "Shrikumar et al. 2016, Not Just a Black Box"

    def attribute(self, view, x, targets, seed):
        return input_x_gradient(view.grad_fn, view.float_space(x), view.float_space(view.baseline_like(x)), targets,
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
        bg = view.background_raw
        ref = view.forward(x, targets) - view.background_output(targets)
        start = int(self.opts["eg_samples"])
        attr, _, used = expected_gradients_converging(
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
