"""Built-in plugin: gradient health (``health.gradients``) and unit activity (``health.units``), each a
:class:`diagnostics.HealthAnalyzer` whose measures the host judges, charts and reports.

``health.gradients`` differentiates the model's loss on a batch with the shared compiled primitive
(:func:`diagnostics.backends.get().loss_gradients`) and reads per-layer gradient norms: vanishing
(first/last layer ratio), exploding (large or non-finite), and gradient-to-weight ratios.
``health.units`` runs the batch forward and counts dead ReLU units, saturated sigmoid/tanh units and
saturated LSTM gates. Both use validation data when the run has some, else synthetic inputs drawn
from the input spec (said in the report). Gradients through time (``health.temporal``) are
``diagnostics_plugins.health_temporal``.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Context, Direction, Finding, HealthAnalyzer, Measure, Measurements, Scope, Severity, Value
from diagnostics.options import health_options

NON_GENERATOR = frozenset({"image", "sequence", "token", "tabular"})

_HIGHER, _LOWER = Direction.HIGHER_IS_WORSE, Direction.LOWER_IS_WORSE


class GradientHealth(HealthAnalyzer):
    """Per-layer gradient norms of the loss on a batch: vanishing, exploding, gradient/weight ratios.

    Vanishing is the ratio of the first to the last layer's kernel-gradient norm (Glorot & Bengio,
    2010: with saturating activations and no normalisation it shrinks geometrically with depth).
    Exploding is a global norm above a threshold or any non-finite gradient (Pascanu et al., 2013).
    """

    name = "health.gradients"
    options = health_options("gradients", "units")
    description = "Per-layer loss-gradient norms: vanishing and exploding gradients, gradient/weight ratios."
    model_kinds = NON_GENERATOR
    data = "none"
    reference = "Glorot & Bengio 2010; Pascanu, Mikolov & Bengio 2013 (On the difficulty of training RNNs)"
    threshold_section = "gradients"
    measures = (
        # where: the layer with the largest gradient, which the finding names
        Measure("grad_norm", "Global gradient norm", unit="L2 norm", scale="log", direction=_HIGHER,
                warning="exploding_warning", error="exploding_error",
                reference="Pascanu, Mikolov & Bengio 2013; trained nets give < 10, clipping defaults are 1-5",
                advice="updates this large overshoot and training diverges: clip gradients (clipnorm=1.0), lower the "
                       "learning rate, and for RNNs use tanh cells and orthogonal recurrent initialisation"),
        # where: the first layer, whose kernel gradient is the numerator
        Measure("first_last_ratio", "First ÷ last layer kernel-gradient norm", scale="log", direction=_LOWER,
                warning="vanishing_warning", error="vanishing_error", format=".1e",
                reference="Glorot & Bengio 2010; healthy nets stay within two orders of magnitude",
                advice="the early layers barely learn: use ReLU-family activations with He initialisation, add batch "
                       "normalisation or residual connections, or make the network shallower"),
        Measure("update_ratio", "Gradient norm ÷ weight norm", scale="log", scope=Scope.LAYER, direction=_HIGHER,
                warning="update_ratio_warning",
                reference="a step at learning rate 0.1 would change the layer by more than its own size",
                advice="lower the learning rate or clip gradients"),
        Measure("layer_grad_norm", "Loss-gradient norm per layer", unit="L2 norm", scale="log", scope=Scope.LAYER),
        Measure("loss", "Loss on the batch"),
        Measure("grad_norm_during_training", "Global gradient norm during training (HealthCallback)", unit="L2 norm",
                scale="log", scope=Scope.EPOCH),
        Measure("first_last_ratio_during_training", "First ÷ last layer gradient during training (HealthCallback)",
                scale="log", scope=Scope.EPOCH, format=".1e"),
    )

    def measure(self, context: Context) -> Measurements:
        import numpy as np

        from diagnostics.health import (development, finite_or_none, flatten_layers, health_pass, select_batch,
                                        thresholds, training_series)

        t = thresholds(context.options, "gradients")
        context.progress(0, 3, "preparing the batch")
        x, y, source = select_batch(context, int(t["max_samples"]))
        context.progress(1, 3, "loss gradients")
        p = health_pass(context, x, y, thresholds(context.options, "units")["saturation_level"])
        loss_value, grads, loss_desc, target_source = p["loss_value"], p["grads"], p["loss_desc"], p["targets_from"]
        context.progress(2, 3, "norms")
        layers = []
        with np.errstate(all="ignore"):
            for layer in flatten_layers(context.model):
                variables = [v for v in layer.trainable_weights if v.path in grads]
                if not variables:
                    continue
                g_all = [grads[v.path].astype(np.float64) for v in variables]
                w_all = [np.asarray(v.numpy(), np.float64) for v in variables]
                kernels = [i for i, v in enumerate(variables) if v.name in ("kernel", "embeddings", "depthwise_kernel")]
                g_norm = float(np.sqrt(sum(np.sum(g * g) for g in g_all)))
                w_norm = float(np.sqrt(sum(np.sum(w * w) for w in w_all)))
                k_norm = float(np.sqrt(sum(np.sum(g_all[i] ** 2) for i in kernels))) if kernels else None
                nonfinite = int(sum(np.size(g) - np.count_nonzero(np.isfinite(g)) for g in g_all))
                layers.append({"layer": layer.name, "class": type(layer).__name__, "grad_norm": g_norm,
                               "kernel_grad_norm": k_norm, "weight_norm": w_norm,
                               "grad_weight_ratio": g_norm / w_norm if w_norm > 0 else None, "nonfinite": nonfinite})
            global_norm = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values())))
        values: list[Value] = [Value("loss", loss_value, note=loss_desc)]
        findings: list[Finding] = []
        grad_series = training_series(context.history, "health/grad_norm")
        ratio_series = training_series(context.history, "health/first_last_ratio")
        grew = development(grad_series, t["exploding_warning"], True, what="the global gradient norm")
        shrank = development(ratio_series, t["vanishing_warning"], False, ".1e", what="the first/last ratio")
        n_nonfinite = sum(l["nonfinite"] for l in layers)
        where_n = f"on {source}"
        if n_nonfinite or not np.isfinite(global_norm):
            # not a threshold on a number: one NaN is enough, and the norm itself is not a number
            bad = [l["layer"] for l in layers if l["nonfinite"]]
            values.append(Value("grad_norm", None, where=", ".join(bad[:5]), note=f"{n_nonfinite} values NaN or Inf"))
            findings.append(Finding(
                "health.gradients.grad_norm", Severity.ERROR, where=", ".join(bad[:5]),
                message=f"{n_nonfinite} gradient values are NaN or Inf ({', '.join(bad[:5])}) {where_n} "
                        f"(loss {loss_value:.4g}): one update makes the weights NaN — check for NaN "
                        f"weights or inputs, lower the learning rate, and clip gradients (clipnorm=1.0)"))
        else:
            top = max(layers, key=lambda l: l["grad_norm"]) if layers else None
            values.append(Value("grad_norm", global_norm, where=top["layer"] if top else "",
                                note=where_n + (f"; largest in {top['layer']}: {top['grad_norm']:.3g}" if top else "")
                                + (f"; {grew}" if grew else "")))
        with_kernel = [l for l in layers if l["kernel_grad_norm"] is not None]
        ratio = None
        if len(with_kernel) >= 2:
            first, last = with_kernel[0], with_kernel[-1]
            if not n_nonfinite and last["kernel_grad_norm"] > 0:
                ratio = first["kernel_grad_norm"] / last["kernel_grad_norm"]
            values.append(Value(
                "first_last_ratio", ratio, where=first["layer"],
                note=(f"the first layer's kernel gradient ({first['layer']}: {first['kernel_grad_norm']:.3g}) over the "
                      f"last layer's ({last['layer']}: {last['kernel_grad_norm']:.3g}) {where_n}"
                      + (f"; {shrank}" if shrank else ""))))
        for l in layers:
            values.append(Value("layer_grad_norm", l["grad_norm"], where=l["layer"]))
            # with a NaN anywhere the ratios say nothing the NaN finding does not: not judged, as n/a
            values.append(Value("update_ratio", None if n_nonfinite else l["grad_weight_ratio"], where=l["layer"],
                                note=f"gradient norm {l['grad_norm']:.3g}, weight norm {l['weight_norm']:.3g} {where_n}"))
        for measure, series in (("grad_norm_during_training", grad_series), ("first_last_ratio_during_training", ratio_series)):
            values += [Value(measure, v, where=str(epoch)) for epoch, v in enumerate(series or (), start=1)]
        metrics = {
            "inputs": source, "targets": target_source, "loss": loss_desc, "loss_value": finite_or_none(loss_value),
            "global_grad_norm": finite_or_none(global_norm), "first_last_ratio": finite_or_none(ratio),
            "layers": [{k: (finite_or_none(v) if isinstance(v, float) else v) for k, v in l.items()} for l in layers],
            "backend": context.backend,
        }
        if grad_series or ratio_series:
            metrics["during_training"] = {"grad_norm": grad_series, "first_last_ratio": ratio_series}
        context.progress(3, 3, "done")
        return Measurements(values=values, findings=findings, metrics=metrics)


class UnitHealth(HealthAnalyzer):
    """Dead ReLU units, saturated sigmoid/tanh units and saturated LSTM gates, per layer, on a batch.

    A ReLU unit (a channel, for convolutions) that is <= 0 for every sample gets no gradient and
    never recovers (Lu et al., 2019, "Dying ReLU"). A sigmoid/tanh output within 1% of its asymptote
    passes back less than 2% of the gradient. The output layer is exempt: a confident classifier's
    output is meant to saturate.
    """

    name = "health.units"
    options = health_options("units")
    description = "Dead ReLU units, saturated sigmoid/tanh units and LSTM gate saturation per layer."
    model_kinds = NON_GENERATOR
    data = "none"
    reference = "Lu et al. 2019, Dying ReLU and initialization; Glorot & Bengio 2010"
    threshold_section = "units"
    measures = (
        Measure("dead_fraction", "Dead ReLU units", unit="fraction", scope=Scope.LAYER, direction=_HIGHER,
                warning="dead_warning", error="dead_error", format=".0%",
                reference="Lu et al. 2019, Dying ReLU; a quarter is capacity lost, over half a broken layer",
                advice="they get no gradient and stay dead: lower the learning rate, or use LeakyReLU/He initialisation "
                       "with zero biases"),
        Measure("saturated_fraction", "Saturated sigmoid/tanh outputs", unit="fraction", scope=Scope.LAYER,
                direction=_HIGHER, warning="saturated_warning", error="saturated_error", format=".0%",
                reference="Glorot & Bengio 2010: within 1% of the asymptote the derivative is below 0.02",
                advice="scale the inputs, use Glorot initialisation, or add batch normalisation"),
        Measure("gate_saturation", "Saturated LSTM gate values (the worst gate)", unit="fraction", scope=Scope.LAYER,
                direction=_HIGHER, warning="gate_saturated_warning", format=".0%",
                reference="a gate value below 0.01 or above 0.99 passes almost no gradient; forget gates near 1 are "
                          "often intended, 90% of all values stuck is not",
                advice="the gate is stuck open or shut: scale the inputs, clip gradients, and keep the default "
                       "orthogonal recurrent initialisation"),
        Measure("dead_fraction_during_training", "Dead ReLU units during training (HealthCallback)", unit="fraction",
                scope=Scope.EPOCH, format=".0%"),
    )

    def measure(self, context: Context) -> Measurements:
        import numpy as np

        from diagnostics.health import (development, finite_or_none, health_pass, select_batch, thresholds, to_numpy,
                                        training_series, unit_layers)

        t = thresholds(context.options, "units")
        model = context.model
        relu, sat, lstm = unit_layers(model)
        if not (relu or sat or lstm):
            return Measurements.skip("the model has no ReLU, sigmoid/tanh hidden layers or LSTMs to inspect")
        x, y, source = select_batch(context, int(t["max_samples"]))
        context.progress(0, 2, "forward pass")
        level = t["saturation_level"]
        units = {}
        if relu or sat:
            p = health_pass(context, x, y, level)
            if not p["probed"]:
                return Measurements.skip("the model's layer outputs cannot be probed: a functional or Sequential model "
                                         "is needed")
            units = p["units"]
        context.progress(1, 2, "counting units")
        values: list[Value] = []
        per_layer = []
        with np.errstate(all="ignore"):
            for layer in relu:
                u = units[layer.name]
                finite = u["finite"]
                dead = float(np.mean(u["max"] <= 0))
                per_layer.append({"layer": layer.name, "activation": "relu", "units": u["units"],
                                  "dead_fraction": dead, "finite": bool(finite)})
                series = training_series(context.history, f"health/dead/{layer.name}")
                if series:
                    per_layer[-1]["dead_during_training"] = series
                    values += [Value("dead_fraction_during_training", v, where=str(epoch), series=layer.name)
                               for epoch, v in enumerate(series, start=1)]
                how = development(series, t["dead_warning"], True, ".0%", what="the dead share")
                cause = ""
                if finite and dead >= t["dead_warning"]:
                    cause = _bias_cause(model, layer, x, np.asarray(u["max"]) <= 0)
                # with NaN or Inf outputs the count says nothing about the units (the NaN is the fault): n/a
                values.append(Value(
                    "dead_fraction", dead if finite else None, where=layer.name,
                    note=(f"of {u['units']} units, those <= 0 on all {source}" if finite
                          else f"the layer's outputs on {source} are NaN or Inf") + (f"; {how}" if how else "")
                         + (f"; {cause}" if cause else "")))
            for layer, act in sat:
                u = units[layer.name]
                frac = float(np.sum(u["saturated"]) / (u["positions"] * u["units"]))
                per_layer.append({"layer": layer.name, "activation": act, "units": u["units"], "saturated_fraction": frac})
                values.append(Value(
                    "saturated_fraction", frac, where=layer.name,
                    note=f"{act} outputs on {source} within {1 - level:.0%} of ±1{' (0/1)' if act == 'sigmoid' else ''}"))
            if lstm:
                import keras

                probe = keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, [l.input for l in lstm])
                from diagnostics import inputs as I

                outs = []
                xs = I.for_model(model, x)
                for start in range(0, I.n_samples(xs), 256):
                    o = probe(I.slice_(xs, start, start + 256), training=False)
                    outs.append([to_numpy(a) for a in (o if isinstance(o, (list, tuple)) else [o])])
                for i, layer in enumerate(lstm):
                    gates = _lstm_gate_saturation(layer, np.concatenate([b[i] for b in outs]))
                    if gates is None:
                        continue
                    per_layer.append({"layer": layer.name, "activation": "lstm", "units": int(layer.units), "gates": gates})
                    worst = max(gates, key=lambda g: gates[g] or 0)
                    values.append(Value(
                        "gate_saturation", gates[worst] or 0, where=layer.name,
                        note=f"its {worst} gate on {source}, values below 0.01 or above 0.99 (input "
                             f"{gates['input']:.0%}, forget {gates['forget']:.0%}, output {gates['output']:.0%})"))
        from diagnostics import inputs as I

        metrics = {"inputs": source, "samples": I.n_samples(x),
                   "layers": [{k: (finite_or_none(v) if isinstance(v, float) else v) for k, v in l.items()} for l in per_layer]}
        context.progress(2, 2, "done")
        return Measurements(values=values, metrics=metrics)


def _bias_cause(model, layer, x, dead) -> str:
    """Whether a layer's dead units are held off by their biases. Without its bias a unit's pre-activation
    is ``x·W`` (or the convolution of ``x`` with the kernel); a dead unit that would then be positive on a
    real share of the samples (at least ``_WAKES``) is one its bias holds off. The biases are named as the
    cause when they hold off at least half the dead units; otherwise the weights are. Said for a Dense or
    convolution layer with the ReLU inside it; "" where the layer has no kernel and bias of its own."""
    import numpy as np

    kernel, bias = getattr(layer, "kernel", None), getattr(layer, "bias", None)
    kind = type(layer).__name__
    if kernel is None or bias is None or not dead.any() or (kind != "Dense" and not hasattr(layer, "convolution_op")):
        return ""
    import keras

    from diagnostics import inputs as I
    from diagnostics.health import to_numpy

    try:  # a layer called more than once, or a model with no graph, has no one input to probe
        probe = keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, layer.input)
    except (AttributeError, ValueError, TypeError):
        return ""
    channels_first = kind != "Dense" and getattr(layer, "data_format", "channels_last") == "channels_first"
    xs = I.for_model(model, x)
    positive, positions = np.zeros(dead.shape), 0
    for start in range(0, I.n_samples(xs), 256):
        inp = probe(I.slice_(xs, start, start + 256), training=False)
        z = to_numpy(keras.ops.matmul(inp, kernel) if kind == "Dense" else layer.convolution_op(inp, kernel))
        z = np.moveaxis(z, 1, -1) if channels_first else z
        if z.shape[-1] != dead.shape[0]:
            return ""
        z = z.reshape(-1, z.shape[-1])
        positive += (z > 0).sum(axis=0)
        positions += len(z)
    wakes = positive[dead] / max(positions, 1)
    b = np.asarray(to_numpy(bias), np.float64)
    n_dead, n_held = int(dead.sum()), int((wakes >= _WAKES).sum())
    live = f", of the live ones {np.median(b[~dead]):.3g}" if (~dead).any() else ""
    if 2 * n_held >= n_dead:
        return (f"{n_held} of its {n_dead} dead units would fire on at least {_WAKES:.0%} of these samples but for "
                f"their bias (median {np.median(wakes):.0%}; median bias of the dead units {np.median(b[dead]):.3g}"
                f"{live}): the biases hold them off, so reset this layer's biases to zero (bias_initializer='zeros') "
                f"and check how they were initialised")
    return (f"with a zero bias {n_held} of its {n_dead} dead units would fire on at least {_WAKES:.0%} of these "
            f"samples: their weights, not their biases, keep them off")


#: The share of samples on which a dead unit would be positive without its bias for the bias to count as
#: what holds it off (a unit its weights keep negative on nearly every input is not revived by a zero bias).
_WAKES = 0.1


def _lstm_gate_saturation(layer, inputs, return_states: bool = False):
    """Share of input/forget/output gate values < 0.01 or > 0.99, recomputing the LSTM in numpy from
    its weights (Keras' gate order i, f, c, o). With ``return_states`` also the hidden-state sequence,
    so a test can check the recomputation against the layer itself."""
    import numpy as np

    cell = getattr(layer, "cell", layer)
    try:
        kernel = np.asarray(cell.kernel.numpy(), np.float64)
        rec = np.asarray(cell.recurrent_kernel.numpy(), np.float64)
        bias = np.asarray(cell.bias.numpy(), np.float64) if getattr(cell, "use_bias", True) else 0.0
    except AttributeError:
        return None
    if getattr(layer, "go_backwards", False):
        inputs = inputs[:, ::-1]
    ra = getattr(getattr(cell, "recurrent_activation", None), "__name__", "sigmoid")
    act = getattr(getattr(cell, "activation", None), "__name__", "tanh")
    funcs = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
             "hard_sigmoid": lambda z: np.clip(z / 6 + 0.5, 0, 1), "linear": lambda z: z}
    if ra not in funcs or act not in funcs:
        return None
    sig, g = funcs[ra], funcs[act]
    u = int(layer.units)
    n, steps = inputs.shape[0], inputs.shape[1]
    h = np.zeros((n, u))
    c = np.zeros((n, u))
    counts = {"input": 0, "forget": 0, "output": 0}
    total = 0
    states = []
    with np.errstate(all="ignore"):
        xz = np.asarray(inputs, np.float64) @ kernel + bias
        for s in range(steps):
            z = xz[:, s] + h @ rec
            i, f, cc, o = (z[:, k * u:(k + 1) * u] for k in range(4))
            i, f, o = sig(i), sig(f), sig(o)
            c = f * c + i * g(cc)
            h = o * g(c)
            states.append(h)
            for name, v in (("input", i), ("forget", f), ("output", o)):
                counts[name] += int(np.sum((v < 0.01) | (v > 0.99) | ~np.isfinite(v)))
            total += n * u
    fractions = {k: v / total for k, v in counts.items()}
    return (fractions, np.stack(states, axis=1)) if return_states else fractions


@diagnostics.hookimpl
def register_analyzers(register):
    register(GradientHealth)
    register(UnitHealth)
