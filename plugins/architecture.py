"""Built-in plugin: the ``architecture`` analyzer (layers, parameters, specs, kind, wiring mistakes)."""

from __future__ import annotations

import diagnostics
from diagnostics import Context, Finding, HealthAnalyzer, Measure, Measurements, Scope, Severity, Value

PROBABILITY_OUTPUTS = ("softmax", "sigmoid")


class Architecture(HealthAnalyzer):
    """Describes the model and flags wiring mistakes that no amount of training fixes.

    Detects a probability output (softmax/sigmoid) trained with a loss that expects logits
    (``from_logits=True``): the loss then applies a second softmax, gradients shrink and the
    model trains badly while looking fine.
    """

    name = "architecture"
    options = ()
    category = "model"
    description = "Layers, parameters, input/output specs, model kind, and output/loss mismatches."
    data = "none"
    reference = "Keras losses documentation: from_logits"
    # Its findings are wiring mistakes (an output activation beside a loss that contradicts it), not
    # thresholds on a number: they are extra findings. The one number per layer is shown, never judged.
    measures = (Measure("parameters", "Parameters per layer", unit="weights", scale="log", scope=Scope.LAYER, format=",.0f"),)

    def measure(self, context: Context) -> Measurements:
        model = context.model
        info = context.info
        layers = []
        for layer in model.layers:
            try:
                shape = [None if d is None else int(d) for d in layer.output.shape]
            except (AttributeError, ValueError, TypeError):
                shape = None
            layers.append({"name": layer.name, "class": type(layer).__name__, "params": int(layer.count_params()),
                           "output_shape": shape})
        trainable = int(sum(int(_size(w)) for w in model.trainable_weights))
        findings = []
        loss = (info.loss or "")
        if info.output_activation in PROBABILITY_OUTPUTS and "from_logits=True" in loss:
            findings.append(Finding(
                code="architecture.softmax_logits_loss", severity=Severity.ERROR, where=model.layers[-1].name,
                message=(f"the output applies {info.output_activation} but the loss is {loss}: the loss treats "
                         f"probabilities as logits, squashing them twice, so gradients are tiny and calibration is "
                         f"wrong — use from_logits=False, or remove the output activation")))
        elif info.output_activation in (None, "linear") and loss and "from_logits=False" in loss and "Crossentropy" in loss:
            findings.append(Finding(
                code="architecture.logits_without_from_logits", severity=Severity.WARNING, where=model.layers[-1].name,
                message=f"the output is linear (logits) but the loss is {loss}: set from_logits=True"))
        metrics = {
            "kind": info.kind, "n_params": info.n_params, "n_trainable": trainable, "n_layers": info.n_layers,
            "input_shapes": info.input_shapes, "input_dtypes": info.input_dtypes, "output_shapes": info.output_shapes,
            "output_activation": info.output_activation, "loss": info.loss, "layers": layers,
            # The model card's inputs and outputs by name (what a data file's x_val.<name> keys must match).
            "inputs": [{"name": n, "shape": sh, "dtype": dt} for n, sh, dt in
                       zip(info.input_names, info.input_shapes, info.input_dtypes)],
            "outputs": [{"name": n, "shape": sh} for n, sh in zip(info.output_names, info.output_shapes)],
        }
        values = [Value("parameters", l["params"], where=l["name"]) for l in layers if l["params"] > 0]
        return Measurements(values=values, findings=findings, metrics=metrics)


def _size(w) -> int:
    n = 1
    for d in w.shape:
        n *= int(d)
    return n


@diagnostics.hookimpl
def register_analyzers(register):
    register(Architecture)
