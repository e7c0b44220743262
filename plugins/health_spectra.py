"""Built-in plugin: the ``health.spectra`` analyzer (weight health without data).

For each dense and conv kernel, reshaped to a 2-D (fan-in, units) matrix: the empirical spectral
density (eigenvalues of W^T W), its power-law tail exponent alpha (Clauset–Shalizi–Newman fit, the
estimator weightwatcher uses), stable rank, and Frobenius and spectral norms. NaN/zero checks are
the core ``weights`` analyzer's job and are not repeated here.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity
from diagnostics.options import health_options


class WeightSpectra(Analyzer):
    """Heavy-tailed self-regularisation metrics per layer (Martin & Mahoney, 2021).

    Well-trained layers show a power-law ESD tail with 2 <= alpha <= 6: alpha above 6 looks like a
    random matrix (the layer learnt little), below 2 like a very heavy tail (over-fitted or
    over-trained). Layers with fewer eigenvalues than ``min_eigenvalues`` are reported as
    insufficient: a tail fit on a handful of values is noise.
    """

    name = "health.spectra"
    options = health_options("spectra")
    category = "health"
    description = "Per-layer weight spectra: power-law alpha (CSN fit), stable rank, norms; needs no data."
    data = "none"
    reference = "Martin & Mahoney 2021 (Nature Communications 12:4122); Clauset, Shalizi & Newman 2009"

    def run(self, context: Context) -> Result:
        import numpy as np

        from diagnostics.health import as_matrix, eigenvalues, finite_or_none, kernel_layers, powerlaw_alpha, stable_rank, thresholds

        t = thresholds(context.options, "spectra")
        layers = kernel_layers(context.model)
        if not layers:
            return Result.skip("the model has no dense or convolution kernels")
        rows, findings, insufficient = [], [], []
        for i, layer in enumerate(layers):
            context.progress(i, len(layers), layer.name)
            k = np.asarray(layer.kernel.numpy(), np.float64)
            row = {"layer": layer.name, "class": type(layer).__name__, "kernel_shape": list(k.shape)}
            if not np.isfinite(k).all():
                row["skipped"] = "non-finite weights (see the weights analyzer)"
                rows.append(row)
                continue
            m = as_matrix(k)
            ev = eigenvalues(m)
            fit = powerlaw_alpha(ev, int(t["min_eigenvalues"]))
            row.update({"matrix_shape": list(m.shape), "eigenvalues": int(len(ev)),
                        "frobenius_norm": float(np.sqrt(ev.sum())), "spectral_norm": float(np.sqrt(ev.max())) if ev.size else 0.0,
                        "stable_rank": stable_rank(ev), **{key: finite_or_none(v) if isinstance(v, float) else v for key, v in fit.items()}})
            rows.append(row)
            alpha = fit.get("alpha")
            if alpha is None:
                insufficient.append(f"{layer.name} ({len(ev)})")
            elif alpha < t["alpha_low"]:
                findings.append(Finding(
                    "spectra.alpha_low", Severity.WARNING, where=layer.name,
                    message=f"layer {layer.name}: the weight spectrum's power-law exponent is {alpha:.2f} (< {t['alpha_low']:g}; "
                            f"fitted on {fit['tail']} of {len(ev)} eigenvalues): a very heavy tail, typical of over-training or "
                            f"a too-large learning rate — regularise (weight decay), lower the learning rate, or stop earlier"))
            elif alpha > t["alpha_high"]:
                findings.append(Finding(
                    "spectra.alpha_high", Severity.WARNING, where=layer.name,
                    message=f"layer {layer.name}: the weight spectrum's power-law exponent is {alpha:.2f} (> {t['alpha_high']:g}; "
                            f"fitted on {fit['tail']} of {len(ev)} eigenvalues): the layer looks close to its random "
                            f"initialisation, so it has learnt little — train longer or with a larger learning rate, or shrink it"))
        if insufficient:
            findings.append(Finding(
                "spectra.insufficient", Severity.INFO, where=", ".join(l.split(" ")[0] for l in insufficient),
                message=f"{len(insufficient)} layer(s) have fewer than {int(t['min_eigenvalues'])} eigenvalues, too few for a "
                        f"power-law fit, so no alpha is reported for them: {', '.join(insufficient)}"))
        fitted = [r for r in rows if r.get("alpha") is not None]
        metrics = {"layers": rows, "fitted_layers": len(fitted),
                   "mean_alpha": float(np.mean([r["alpha"] for r in fitted])) if fitted else None}
        artifacts = {}
        if fitted:
            from diagnostics.health import bar_plot

            artifacts["alpha per layer"] = bar_plot(
                context.artifact_dir / "alpha.png", [r["layer"] for r in fitted], [r["alpha"] for r in fitted],
                title=f"Power-law alpha per layer (shaded: healthy {t['alpha_low']:g}–{t['alpha_high']:g})", ylabel="alpha",
                band=(t["alpha_low"], t["alpha_high"]),
                colours=["#ef6c00" if not t["alpha_low"] <= r["alpha"] <= t["alpha_high"] else "#2e7d32" for r in fitted])
        context.progress(len(layers), len(layers), "done")
        return Result(findings=findings, metrics=metrics, artifacts=artifacts)


@diagnostics.hookimpl
def register_analyzers(register):
    register(WeightSpectra)
