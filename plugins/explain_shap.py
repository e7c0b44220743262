"""Built-in plugin: SHAP values (Lundberg & Lee, 2017), additivity checked by the pipeline
(:class:`diagnostics.ExplanationAnalyzer`): Σ SHAP = F(x) − E[F(background)].

- ``gradient_shap``: ``shap.GradientExplainer`` (expected gradients) on the Keras model under torch, or
  TensorFlow when torch is missing (the same values: SHAP draws its samples from numpy either way); token
  models in embedding space; nsamples doubled for the rows not additive within 10%. The default
  for images, sequences and tokens.
- ``permutation_shap`` (exactly additive; the default for tables), ``kernel_shap``, ``partition_shap``.

Not offered: ``DeepExplainer`` (fails its own additivity check on Keras 3 models under torch).
"""

from __future__ import annotations

import diagnostics
from diagnostics import ExplanationAnalyzer, Explainer, Option, refine_unconverged

NSAMPLES = Option("nsamples", int, 200, "samples per SHAP estimate (gradient: doubled up to max_nsamples)")


class GradientShap(Explainer):
    name, reference, sampling, axiom = "gradient_shap", "Lundberg & Lee 2017; Erion et al. 2021", True, "additivity"
    options = (NSAMPLES, Option("max_nsamples", int, 800, "the most nsamples doubled to for additivity"))
    scalable = {"nsamples": 8, "max_nsamples": 8}

    def cost(self, view, x):  # nsamples gradients, and a third more for the rows refined (main run only)
        return 4 / 3 * int(self.opts["nsamples"])

    def attribute(self, view, x, targets, seed):
        bg, z = view.float_space(view.background_raw), view.float_space(x)
        ref = view.forward(x, targets) - view.background_output(targets)
        return refine_unconverged(self, view, ref, lambda rows, ns: self._shap(
            view, z if rows is None else z[rows], bg, targets if rows is None else targets[rows], ns, seed),
            int(self.opts["nsamples"]), int(self.opts["max_nsamples"]))

    def _explainer(self, view, bg):
        """SHAP's explainer of the model's output units and the function that picks the unit, made once per
        model and reused by every unit, refinement round and the other seed, with one batch size (the first
        round's nsamples): under TensorFlow each explainer traces its gradient function again for each new
        model and batch shape (~0.1 s a trace)."""
        import shap

        from diagnostics.backends import get

        cache = self.__dict__.setdefault("_explainers", {})  # per model and weights (the background's
        head, made = cache.get(view.randomised, (None, None))  # embedding depends on them)
        if head is not view.head:
            backend = get()  # SHAP differentiates TensorFlow and torch models alike: the running backend's
            unit, select = backend.selectable_output_unit(view.head)
            made = (shap.GradientExplainer(unit, backend.library_input(bg),
                                           batch_size=min(max(int(self.opts["nsamples"]), 50), view.batch_size)), select)
            cache[view.randomised] = (view.head, made)
        return made

    def _shap(self, view, z, bg, targets, nsamples, seed):
        import numpy as np

        from diagnostics import seed_everything
        from diagnostics.backends import get

        seed_everything(seed)
        explainer, select = self._explainer(view, bg)
        out = np.zeros(z.shape, np.float64)
        for t in np.unique(targets):
            rows = np.flatnonzero(targets == t)
            select(int(t))
            vals = explainer.shap_values(get().library_input(z[rows]), nsamples=nsamples, rseed=seed)
            vals = np.asarray(vals[0] if isinstance(vals, list) else vals)
            out[rows] = vals[..., 0] if vals.ndim == z.ndim + 1 else vals  # (..., outputs) in shap >= 0.45
        return out


def _compile_kernels_once() -> None:
    """SHAP's maskers run numba kernels that compile in every new process (about 7 s of a quiet mlp run,
    the run's critical path); keep their machine code in this package's cache (numba's own on-disk cache,
    which SHAP does not turn on), so only the first run on a machine compiles them. One kernel,
    ``_build_fixed_single_output``, takes the link function as an argument, whose numba type differs in
    every process: numba cannot reuse it, and it still compiles each run (about half of the 7 s)."""
    from numba.core import config
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher
    from shap.maskers import _tabular
    from shap.utils import _masked_model

    from diagnostics.dataset_cache import cache_root

    root = cache_root()
    if root is None:
        return
    if not config.CACHE_DIR:  # the user's NUMBA_CACHE_DIR wins
        config.CACHE_DIR = str(root / "numba")
    if not _writable(config.CACHE_DIR):  # a confined worker (docs/security.md): compile in memory, as SHAP does
        return
    for module in (_tabular, _masked_model):
        for kernel in vars(module).values():
            if isinstance(kernel, Dispatcher) and isinstance(kernel._cache, NullCache):  # not cached yet
                kernel.enable_caching()


def _writable(folder: str) -> bool:
    """Whether this process may write in ``folder``: a sandboxed worker may not write the kernel cache, which
    later runs would load as code (a model that escaped the pre-scan must not plant code for them)."""
    import os
    import tempfile

    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


class ModelAgnosticShap(Explainer):
    input_kinds, kind, axiom, sampling, backward = frozenset({"tabular"}), "", "additivity", True, False
    options = (NSAMPLES, Option("max_evals", object, "auto", "model evaluations per sample (permutation, partition)"))

    def attribute(self, view, x, targets, seed):
        import numpy as np
        import shap

        _compile_kernels_once()

        np.random.seed(seed % (2**32))  # KernelExplainer draws its coalitions from numpy's global generator
        bg, out = np.asarray(view.background_raw, np.float64), np.zeros(x.shape)
        evals = 2 * (2 * x.shape[1] + 1) if self.opts["max_evals"] == "auto" else int(self.opts["max_evals"])
        for t in np.unique(targets):
            rows = np.flatnonzero(targets == t)

            def unit(z, t=t):
                return view.predict(np.asarray(z))[:, t]

            xr = x[rows].astype(np.float64)
            if self.kind == "kernel":
                out[rows] = shap.KernelExplainer(unit, bg, seed=seed).shap_values(xr, nsamples=int(self.opts["nsamples"]),
                                                                                   silent=True)
                continue
            masker = (shap.maskers.Partition if self.kind == "partition" else shap.maskers.Independent)(bg, max_samples=len(bg))
            cls = shap.PartitionExplainer if self.kind == "partition" else shap.PermutationExplainer
            out[rows] = cls(unit, masker, seed=seed)(xr, max_evals=max(evals, 2 * x.shape[1] + 1), silent=True).values
        return out


class PermutationShap(ModelAgnosticShap):
    name, kind, reference = "permutation_shap", "permutation", "Lundberg & Lee 2017 (Permutation)"


class KernelShap(ModelAgnosticShap):
    name, kind, reference = "kernel_shap", "kernel", "Lundberg & Lee 2017 (Kernel SHAP)"


class PartitionShap(ModelAgnosticShap):
    name, kind, sampling, reference = "partition_shap", "partition", False, "Lundberg & Lee 2017; Owen values (Partition)"


class ShapExplanations(ExplanationAnalyzer):
    """SHAP values with their additivity checked and a trust verdict; global importance for tables."""

    name = "explain.shap"
    description = ("SHAP: GradientExplainer for differentiable models, Permutation/Kernel/Partition for tables; "
                   "additivity checked, global importance for tables, a trust verdict.")
    # torch first, as ever: SHAP's values are the same under TensorFlow (which serves when torch is missing),
    # but the randomisation check's re-initialised weights come from the backend's random generator, and
    # moving to TensorFlow moved three of the zoo's verdicts (docs/performance.md)
    backends, requires = ("torch", "tensorflow"), ("shap",)
    reference = "Lundberg & Lee 2017 (SHAP); Erion et al. 2021 (expected gradients = GradientExplainer)"
    explainers = (GradientShap, PermutationShap, KernelShap, PartitionShap)
    # SHAP's estimates stop at max_nsamples: additive within 10% on half the samples (the median) is enough here
    defaults = {"batch_size": 1000, "baseline": "auto", "methods": "auto", "additivity_min_fraction": 0.5}
    sanity_cost = 2.5
    extra_options = (Option("explainer", str, "auto", "which SHAP explainer: auto (gradient, or permutation for "
                            "tables), gradient, permutation, kernel or partition",
                            choices=("auto", "gradient", "permutation", "kernel", "partition")),)
    not_offered = {"DeepExplainer": "fails its own additivity check on Keras 3 models under torch "
                                    "(Keras activations are not nn.ReLU modules)"}

    def choose(self, opts, view, x):
        if opts["methods"] != "auto":
            return super().choose(opts, view, x)
        pick = opts["explainer"] if opts["explainer"] != "auto" else "permutation" if view.kind == "tabular" else "gradient"
        return [f"{pick}_shap"]


@diagnostics.hookimpl
def register_analyzers(register):
    register(ShapExplanations)
