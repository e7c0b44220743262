"""Built-in plugin: the ``weights`` analyzer (non-finite weights, dead filters and units, norms)."""

from __future__ import annotations

import diagnostics
from diagnostics import Context, Direction, Finding, HealthAnalyzer, Measure, Measurements, Scope, Severity, Value

#: A unit is dead when every incoming weight is exactly zero: it outputs its bias whatever the input.
DEAD_UNIT_WARNING_FRACTION = 0.10


class Weights(HealthAnalyzer):
    """Checks every weight tensor without data: NaN/Inf values, all-zero units and filters, norms.

    A NaN or Inf weight makes every prediction that touches it NaN (error). Units or conv filters
    whose incoming kernel is all zeros contribute nothing (warning above 10% of a layer).
    """

    name = "weights"
    options = ()
    description = "NaN/Inf weights, all-zero (dead) units and filters, and per-layer weight norms."
    data = "none"
    # The dead-unit share is declared as this analyzer's threshold (section "weights") so the report shows
    # what it was judged against; no option sets it: `options` stays empty, as `diagnose plugins --json`
    # has always said, and an option here would be a new contract, not a port.
    default_thresholds = {"zero_units_warning": DEAD_UNIT_WARNING_FRACTION}
    measures = (
        Measure("zero_units", "All-zero (dead) units", unit="fraction", scope=Scope.LAYER,
                direction=Direction.HIGHER_IS_WORSE, warning="zero_units_warning",
                reference="a unit whose incoming weights are all zero outputs its bias whatever the input",
                advice="check pruning, initialisation, or an over-strong L1 penalty", format=".0%"),
        Measure("norm", "Kernel norm", unit="Frobenius norm", scale="log", scope=Scope.LAYER),
    )

    def measure(self, context: Context) -> Measurements:
        import numpy as np

        findings: list[Finding] = []
        values: list[Value] = []
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
                    # Not a threshold on a count: one NaN already makes every output that touches it NaN.
                    findings.append(Finding(
                        "weights.nonfinite", Severity.ERROR, where=label,
                        message=f"{bad} of {a.size} weights are NaN or Inf: every output that depends on them is NaN — "
                                f"retrain with a lower learning rate or gradient clipping, or restore a checkpoint"))
                series = _series(layer, var)
                if "kernel" in var.name and a.ndim >= 2 and a.size:
                    units = a.reshape(-1, a.shape[-1])
                    dead = int(np.sum(np.all(units == 0, axis=0)))
                    entry["dead_units"] = dead
                    entry["units"] = int(a.shape[-1])
                    values.append(Value("zero_units", dead / a.shape[-1], where=layer.name, series=series,
                                        note=f"{dead} of {a.shape[-1]} units/filters have all-zero incoming weights "
                                             f"and compute nothing"))
                if "kernel" in var.name or "embeddings" in var.name:
                    values.append(Value("norm", entry["norm"], where=layer.name, series=series,
                                        note=f"{bad} non-finite weights left out" if bad else ""))
                per_layer.append(entry)
        metrics = {"variables": per_layer, "nonfinite_total": int(sum(e["nonfinite"] for e in per_layer))}
        return Measurements(values=values, findings=findings, metrics=metrics)


def _series(layer, var) -> str:
    """"" for a layer's own ``kernel``/``embeddings``; else the variable's path inside the layer
    (``lstm_cell/recurrent_kernel``, ``query/kernel``), so that the values of one layer stay apart."""
    # Keras 3 paths start with the layer's name, or with the model's when it was built in memory
    # ("model/dense/kernel"); Keras 2 compatible variables may have no path at all.
    parts = str(getattr(var, "path", "") or var.name).split("/")
    inside = "/".join(parts[parts.index(layer.name) + 1:]) if layer.name in parts[:-1] else str(var.name)
    return "" if inside in ("kernel", "embeddings") else inside


@diagnostics.hookimpl
def register_analyzers(register):
    register(Weights)
