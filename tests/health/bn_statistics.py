"""A third-party health check written as one class with its measures (issue 24's test plugin).

BatchNormalization normalises with the running mean and variance it accumulated in training. When the
data the model now sees (the validation split) has other statistics — a preprocessing change, a
drifted input, running statistics frozen at initialisation — every later layer gets inputs it was
not trained on. This measures, per BatchNormalization layer, how far the validation batch's mean is
from the running mean (in running standard deviations) and the ratio of the variances.

It imports only the public API and declares no view: the host judges the values, names the findings
``bn.statistics.<measure>`` and draws one chart per measure; the reports, the dashboard, the sweep index,
MLflow and JUnit show it with no edit.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Direction, HealthAnalyzer, Measure, Measurements, Scope, Value


class BatchNormStatistics(HealthAnalyzer):
    name = "bn.statistics"
    description = "BatchNorm running statistics against the batch statistics of the validation data."
    data = "none"  # the validation inputs when the run has data, else inputs drawn from the input spec
    reference = "Ioffe & Szegedy 2015 (Batch Normalization); Li et al. 2016 (AdaBN: revising statistics on a new domain)"
    default_thresholds = {"shift_warning": 0.5, "shift_error": 2.0, "variance_low": 0.25, "variance_high": 4.0}
    measures = (
        Measure("mean_shift", "Validation mean − running mean", unit="running std", scope=Scope.LAYER,
                direction=Direction.HIGHER_IS_WORSE, warning="shift_warning", error="shift_error", format=".2f",
                reference="a shift of half a standard deviation moves every later activation visibly; two move it out "
                          "of the range the next layers were trained on",
                advice="re-estimate the running statistics on data like the validation split (AdaBN), or check "
                       "that the inputs are preprocessed as in training"),
        Measure("variance_ratio", "Validation variance / running variance", scope=Scope.LAYER, direction=Direction.BAND,
                warning=("variance_low", "variance_high"), scale="log", format=".2f",
                reference="outside 1/4–4 the normalised activations are half or twice as spread as in training",
                advice="re-estimate the running statistics, or check the input scaling"),
    )

    def measure(self, context) -> Measurements:
        import keras
        import numpy as np

        from diagnostics.health import select_batch

        layers = [ly for ly in context.model.layers if isinstance(ly, keras.layers.BatchNormalization)]
        if not layers:
            return Measurements.skip("the model has no BatchNormalization layer")
        x, _, source = select_batch(context, 256)
        x = np.asarray(x)
        probe = keras.Model(context.model.inputs, [ly.input for ly in layers])
        outs = probe.predict(x, verbose=0)
        outs = outs if isinstance(outs, list) else [outs]
        values = []
        for layer, a in zip(layers, outs):
            a = np.asarray(a, np.float64).reshape(-1, np.shape(a)[-1])
            running_mean = np.asarray(layer.moving_mean.numpy(), np.float64)
            running_var = np.asarray(layer.moving_variance.numpy(), np.float64) + layer.epsilon
            shift = float(np.mean(np.abs(a.mean(axis=0) - running_mean) / np.sqrt(running_var)))
            ratio = float(np.median(a.var(axis=0) / running_var))
            note = f"mean over {a.shape[1]} channels, on {source}"
            values.append(Value("mean_shift", shift, where=layer.name, n=len(x), note=note))
            values.append(Value("variance_ratio", ratio, where=layer.name, n=len(x)))
        return Measurements(values=values)


@diagnostics.hookimpl
def register_analyzers(register):
    register(BatchNormStatistics)
