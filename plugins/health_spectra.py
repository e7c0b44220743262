"""Built-in plugin: the ``health.spectra`` analyzer (weight health without data).

For each dense and conv kernel, reshaped to a 2-D (fan-in, units) matrix: the empirical spectral
density (eigenvalues of W^T W), its power-law tail exponent alpha (Clauset–Shalizi–Newman fit, the
estimator weightwatcher uses), stable rank, and Frobenius and spectral norms. NaN/zero checks are
the core ``weights`` analyzer's job and are not repeated here.
"""

from __future__ import annotations

import math
from typing import Any

import diagnostics
from diagnostics import Context, Direction, Finding, HealthAnalyzer, Measure, Measurements, Scope, Severity, Value
from diagnostics.options import health_options


class WeightSpectra(HealthAnalyzer):
    """Heavy-tailed self-regularisation metrics per layer (Martin & Mahoney, 2021).

    Well-trained layers show a power-law ESD tail with 2 <= alpha <= 6: alpha above 6 looks like a
    random matrix (the layer learnt little), below 2 like a very heavy tail (over-fitted or
    over-trained). Layers with fewer eigenvalues than ``min_eigenvalues`` are reported as
    insufficient: a tail fit on a handful of values is noise.
    """

    name = "health.spectra"
    options = health_options("spectra")
    description = "Per-layer weight spectra: power-law alpha (CSN fit), stable rank, norms; needs no data."
    data = "none"
    reference = "Martin & Mahoney 2021 (Nature Communications 12:4122); Clauset, Shalizi & Newman 2009"
    threshold_section = "spectra"
    measures = (
        Measure("alpha", "Power-law exponent alpha of the weight spectrum", scope=Scope.LAYER, direction=Direction.BAND,
                warning=("alpha_low", "alpha_high"),
                reference="Martin & Mahoney 2021: well-trained layers have 2 <= alpha <= 6", format=".2f"),
        Measure("stable_rank", "Stable rank (sum of eigenvalues / largest)", unit="directions", scope=Scope.LAYER),
    )

    def measure(self, context: Context) -> Measurements:
        import numpy as np

        from diagnostics.health import finite_or_none, thresholds

        t = thresholds(context.options, "spectra")
        layers = kernel_layers(context.model)
        if not layers:
            return Measurements.skip("the model has no dense or convolution kernels")
        rows, values, insufficient = [], [], []
        for i, layer in enumerate(layers):
            context.progress(i, len(layers), layer.name)
            k = np.asarray(layer.kernel.numpy(), np.float64)
            row = {"layer": layer.name, "class": type(layer).__name__, "kernel_shape": list(k.shape)}
            if not np.isfinite(k).all():
                row["skipped"] = "non-finite weights (see the weights analyzer)"
                rows.append(row)
                values.append(Value("alpha", None, where=layer.name, note=row["skipped"]))
                continue
            m = as_matrix(k)
            ev = eigenvalues(m)
            fit = powerlaw_alpha(ev, int(t["min_eigenvalues"]))
            row.update({"matrix_shape": list(m.shape), "eigenvalues": int(len(ev)),
                        "frobenius_norm": float(np.sqrt(ev.sum())), "spectral_norm": float(np.sqrt(ev.max())) if ev.size else 0.0,
                        "stable_rank": stable_rank(ev), **{key: finite_or_none(v) if isinstance(v, float) else v for key, v in fit.items()}})
            rows.append(row)
            values.append(Value("stable_rank", row["stable_rank"], where=layer.name))
            alpha = fit.get("alpha")
            if alpha is None:
                insufficient.append(f"{layer.name} ({len(ev)})")
                values.append(Value("alpha", None, where=layer.name,
                                    note=f"{len(ev)} eigenvalues, fewer than {int(t['min_eigenvalues'])}: not fitted"))
                continue
            note = f"fitted on {fit['tail']} of {len(ev)} eigenvalues"
            # What each side of the band means, said with the number (the host judges it against the same
            # thresholds, read above for min_eigenvalues).
            if alpha < t["alpha_low"]:
                note += ("; a very heavy tail, typical of over-training or a too-large learning rate — regularise "
                         "(weight decay), lower the learning rate, or stop earlier")
            elif alpha > t["alpha_high"]:
                note += ("; the layer looks close to its random initialisation, so it has learnt little — train longer "
                         "or with a larger learning rate, or shrink it")
            values.append(Value("alpha", alpha, where=layer.name, note=note, interval=alpha_interval(alpha, fit["tail"])))
        findings = []
        if insufficient:
            # Not a threshold on a value: the layers where there is no value to judge, named together.
            findings.append(Finding(
                "health.spectra.insufficient", Severity.INFO, where=", ".join(l.split(" ")[0] for l in insufficient),
                message=f"{len(insufficient)} layer(s) have fewer than {int(t['min_eigenvalues'])} eigenvalues, too few for a "
                        f"power-law fit, so no alpha is reported for them: {', '.join(insufficient)}"))
        fitted = [r for r in rows if r.get("alpha") is not None]
        metrics = {"layers": rows, "fitted_layers": len(fitted),
                   "mean_alpha": float(np.mean([r["alpha"] for r in fitted])) if fitted else None}
        context.progress(len(layers), len(layers), "done")
        return Measurements(values=values, findings=findings, metrics=metrics)


# -- the spectra (this analyzer's own math; the tests check alpha against weightwatcher's) ------------
def as_matrix(kernel):
    """A dense or conv kernel as a 2-D matrix: (fan_in, units), conv taps folded into fan_in."""
    import numpy as np

    k = np.asarray(kernel, np.float64)
    return k.reshape(-1, k.shape[-1]) if k.ndim >= 2 else k.reshape(1, -1)


def eigenvalues(matrix):
    """The empirical spectral density's support: eigenvalues of W^T W (squared singular values), ascending.

    Computed as the eigenvalues of the smaller Gram matrix in float64 (as exact as the SVD for the
    tail that alpha is fitted on, and several times cheaper for tall conv kernels)."""
    import numpy as np

    m = np.asarray(matrix, np.float64)
    # einsum, not @: for kernels this small, a multi-threaded BLAS call costs more in thread wake-ups
    # than the arithmetic (10-30x on a busy 2-core machine).
    gram = np.einsum("ij,ik->jk", m, m) if m.shape[0] >= m.shape[1] else np.einsum("ji,ki->jk", m, m)
    return np.sort(np.clip(np.linalg.eigvalsh(gram), 0.0, None))


def powerlaw_alpha(evals, min_eigenvalues: int = 20, threshold: float = 1e-5) -> dict[str, Any]:
    """Clauset–Shalizi–Newman (2009) continuous power-law fit of the ESD tail.

    For each candidate ``xmin`` among the eigenvalues, alpha is the MLE ``1 + n / sum(log(x / xmin))``
    over the tail ``x >= xmin``; the chosen ``xmin`` minimises the Kolmogorov–Smirnov distance between
    the tail and the fitted CDF. Eigenvalues below ``threshold`` (numerical zeros) are dropped first,
    as weightwatcher does. Returns ``{"alpha", "xmin", "D", "tail"}``, or ``{"alpha": None,
    "insufficient": n}`` when fewer than ``min_eigenvalues`` remain: too few to fit, not guessed.
    """
    import numpy as np

    x = np.sort(np.asarray(evals, np.float64))
    x = x[np.isfinite(x) & (x > threshold)]
    n_all = len(x)
    if n_all < max(min_eigenvalues, 3):
        return {"alpha": None, "insufficient": int(n_all)}
    logx = np.log(x)
    best = (np.inf, None, None, None)
    suffix = np.cumsum(logx[::-1])[::-1]  # sum of log x[i:]
    for i in range(n_all - 1):
        n = n_all - i
        denom = suffix[i] - n * logx[i]
        if denom <= 0:
            continue
        alpha = 1.0 + n / denom
        tail = x[i:]
        d = float(np.max(np.abs(1.0 - (tail / x[i]) ** (1.0 - alpha) - np.arange(n) / n)))
        if d < best[0]:
            best = (d, alpha, x[i], n)
    if best[1] is None:
        return {"alpha": None, "insufficient": int(n_all)}
    return {"alpha": float(best[1]), "xmin": float(best[2]), "D": float(best[0]), "tail": int(best[3])}


def alpha_interval(alpha: float, tail: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% interval of a power-law MLE fitted on ``tail`` values: alpha ± z (alpha − 1) / sqrt(tail), the
    estimator's standard error (Clauset, Shalizi & Newman 2009, eq. 3.2). A small layer's tail holds a few dozen
    eigenvalues, so its alpha is known to about ±0.4: the band is crossed only when the whole interval is
    outside it (the healthy zoo resnet's 32-eigenvalue layer fits 1.78 [1.40, 2.16])."""
    half = z * (alpha - 1.0) / math.sqrt(tail)
    return alpha - half, alpha + half


def stable_rank(evals) -> float:
    """sum(eigenvalues) / max(eigenvalue) = ||W||_F^2 / ||W||_2^2: how many directions carry the norm."""
    import numpy as np

    e = np.asarray(evals, np.float64)
    return float(e.sum() / e.max()) if e.size and e.max() > 0 else 0.0


def kernel_layers(model) -> list:
    """Layers with a 2-D-or-more ``kernel`` (dense, conv), in model order, nested models flattened."""
    from diagnostics.health import flatten_layers

    out = []
    for layer in flatten_layers(model):
        k = getattr(layer, "kernel", None)
        if k is not None and len(k.shape) >= 2:
            out.append(layer)
    return out


@diagnostics.hookimpl
def register_analyzers(register):
    register(WeightSpectra)
