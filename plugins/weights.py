"""Built-in plugin: the ``weights`` analyzer (non-finite weights, dead filters and units, norms)."""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity

#: A unit is dead when every incoming weight is exactly zero: it outputs its bias whatever the input.
DEAD_UNIT_WARNING_FRACTION = 0.10


class Weights(Analyzer):
    """Checks every weight tensor without data: NaN/Inf values, all-zero units and filters, norms.

    A NaN or Inf weight makes every prediction that touches it NaN (error). Units or conv filters
    whose incoming kernel is all zeros contribute nothing (warning above 10% of a layer).
    """

    name = "weights"
    options = ()
    category = "health"
    description = "NaN/Inf weights, all-zero (dead) units and filters, and per-layer weight norms."
    data = "none"

    def run(self, context: Context) -> Result:
        import numpy as np

        findings: list[Finding] = []
        per_layer = []
        for layer in context.model.layers:
            for var in layer.weights:
                a = np.asarray(var.numpy() if hasattr(var, "numpy") else var, dtype=np.float64)
                label = f"{layer.name}/{var.name}"
                bad = int(a.size - np.count_nonzero(np.isfinite(a)))
                finite = np.where(np.isfinite(a), a, 0.0)
                entry = {"layer": layer.name, "variable": var.name, "shape": list(a.shape),
                         # np.sum's pairwise summation, not BLAS (np.linalg.norm), whose result depends on
                         # the thread count: the same weights give the same norm in every worker or Ray actor
                         "norm": float(np.sqrt(np.sum(np.square(finite)))), "nonfinite": bad}
                if bad:
                    findings.append(Finding(
                        "weights.nonfinite", Severity.ERROR, where=label,
                        message=f"{bad} of {a.size} weights are NaN or Inf: every output that depends on them is NaN — "
                                f"retrain with a lower learning rate or gradient clipping, or restore a checkpoint"))
                if "kernel" in var.name and a.ndim >= 2 and a.size:
                    units = a.reshape(-1, a.shape[-1])
                    dead = int(np.sum(np.all(units == 0, axis=0)))
                    entry["dead_units"] = dead
                    entry["units"] = int(a.shape[-1])
                    if dead and dead / a.shape[-1] >= DEAD_UNIT_WARNING_FRACTION:
                        findings.append(Finding(
                            "weights.zero_units", Severity.WARNING, where=layer.name,
                            message=f"{dead} of {a.shape[-1]} units/filters have all-zero incoming weights and compute "
                                    f"nothing — check pruning, initialisation, or an over-strong L1 penalty"))
                per_layer.append(entry)
        artifacts = {}
        kernels = [e for e in per_layer if "kernel" in e["variable"] or "embeddings" in e["variable"]]
        if kernels:
            from diagnostics.plotting import bar_chart

            bar_chart(context.artifact_dir / "norms.png", [e["layer"] for e in kernels],
                      [max(e["norm"], 1e-12) for e in kernels], title="Kernel norm per layer", ylabel="Frobenius norm",
                      log=True, colours=["#c62828" if e["nonfinite"] else "#1565c0" for e in kernels])
            artifacts["kernel norms"] = "norms.png"
        metrics = {"variables": per_layer, "nonfinite_total": int(sum(e["nonfinite"] for e in per_layer))}
        return Result(findings=findings, metrics=metrics, artifacts=artifacts)


@diagnostics.hookimpl
def register_analyzers(register):
    register(Weights)
