"""Built-in plugin: gradient health (``health.gradients``) and unit activity (``health.units``).

``health.gradients`` differentiates the model's loss on a batch with the shared compiled primitive
(:func:`diagnostics.backends.get().loss_gradients`) and reads per-layer gradient norms: vanishing
(first/last layer ratio), exploding (large or non-finite), and gradient-to-weight ratios.
``health.units`` runs the batch forward and counts dead ReLU units, saturated sigmoid/tanh units and
saturated LSTM gates. ``health.temporal`` differentiates each sample's loss with respect to each input
time step (:func:`diagnostics.backends.get().input_loss_gradients`) and reads vanishing and exploding
gradients *through time*. All use validation data when the run has some, else synthetic inputs drawn
from the input spec (said in the report).
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity
from diagnostics.options import health_options

NON_GENERATOR = frozenset({"image", "sequence", "token", "tabular"})


class GradientHealth(Analyzer):
    """Per-layer gradient norms of the loss on a batch: vanishing, exploding, gradient/weight ratios.

    Vanishing is the ratio of the first to the last layer's kernel-gradient norm (Glorot & Bengio,
    2010: with saturating activations and no normalisation it shrinks geometrically with depth).
    Exploding is a global norm above a threshold or any non-finite gradient (Pascanu et al., 2013).
    """

    name = "health.gradients"
    options = health_options("gradients", "units")
    category = "health"
    description = "Per-layer loss-gradient norms: vanishing and exploding gradients, gradient/weight ratios."
    model_kinds = NON_GENERATOR
    data = "none"
    reference = "Glorot & Bengio 2010; Pascanu, Mikolov & Bengio 2013 (On the difficulty of training RNNs)"

    def run(self, context: Context) -> Result:
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
        findings: list[Finding] = []
        grad_series = training_series(context.history, "health/grad_norm")
        ratio_series = training_series(context.history, "health/first_last_ratio")
        grew = development(grad_series, t["exploding_warning"], True, what="the global gradient norm")
        shrank = development(ratio_series, t["vanishing_warning"], False, ".1e", what="the first/last ratio")
        n_nonfinite = sum(l["nonfinite"] for l in layers)
        where_n = f"on {source}"
        if n_nonfinite or not np.isfinite(global_norm):
            bad = [l["layer"] for l in layers if l["nonfinite"]]
            findings.append(Finding(
                "gradients.exploding", Severity.ERROR, where=", ".join(bad[:5]),
                message=f"{n_nonfinite} gradient values are NaN or Inf ({', '.join(bad[:5])}) {where_n} "
                        f"(loss {loss_value:.4g}): one update makes the weights NaN — check for NaN "
                        f"weights or inputs, lower the learning rate, and clip gradients (clipnorm=1.0)"))
        elif global_norm >= t["exploding_warning"]:
            sev = Severity.ERROR if global_norm >= t["exploding_error"] else Severity.WARNING
            top = max(layers, key=lambda l: l["grad_norm"])
            findings.append(Finding(
                "gradients.exploding", sev, where=top["layer"],
                message=f"global gradient norm {global_norm:.3g} {where_n} (threshold {t['exploding_warning']:g}; largest in "
                        f"{top['layer']}: {top['grad_norm']:.3g}): updates this large overshoot and training diverges — "
                        f"clip gradients (clipnorm=1.0), lower the learning rate, and for RNNs use tanh cells and "
                        f"orthogonal recurrent initialisation" + (f"; {grew}" if grew else "")))
        with_kernel = [l for l in layers if l["kernel_grad_norm"] is not None]
        ratio = None
        if len(with_kernel) >= 2 and not n_nonfinite:
            first, last = with_kernel[0], with_kernel[-1]
            if last["kernel_grad_norm"] > 0:
                ratio = first["kernel_grad_norm"] / last["kernel_grad_norm"]
                if ratio < t["vanishing_warning"]:
                    sev = Severity.ERROR if ratio < t["vanishing_error"] else Severity.WARNING
                    findings.append(Finding(
                        "gradients.vanishing", sev, where=first["layer"],
                        message=f"the first layer's kernel gradient ({first['layer']}: {first['kernel_grad_norm']:.3g}) is "
                                f"{ratio:.1e} times the last layer's ({last['layer']}: {last['kernel_grad_norm']:.3g}) "
                                f"{where_n}: the early layers barely learn — use ReLU-family activations with He "
                                f"initialisation, add batch normalisation or residual connections, or make the network shallower"
                                + (f"; {shrank}" if shrank else "")))
        if not n_nonfinite:
            for l in layers:
                r = l["grad_weight_ratio"]
                if r is not None and r >= t["update_ratio_warning"]:
                    findings.append(Finding(
                        "gradients.update_ratio", Severity.WARNING, where=l["layer"],
                        message=f"layer {l['layer']}: gradient norm is {r:.3g} times its weight norm {where_n}: a step at "
                                f"learning rate 0.1 would change it by more than its own size — lower the learning "
                                f"rate or clip gradients"))
        metrics = {
            "inputs": source, "targets": target_source, "loss": loss_desc, "loss_value": finite_or_none(loss_value),
            "global_grad_norm": finite_or_none(global_norm), "first_last_ratio": finite_or_none(ratio),
            "layers": [{k: (finite_or_none(v) if isinstance(v, float) else v) for k, v in l.items()} for l in layers],
            "backend": context.backend,
        }
        if grad_series or ratio_series:
            metrics["during_training"] = {"grad_norm": grad_series, "first_last_ratio": ratio_series}
        artifacts = {}
        plotted = [l for l in layers if finite_or_none(l["grad_norm"])]
        if plotted:
            from diagnostics.health import bar_plot

            artifacts["gradient norms"] = bar_plot(
                context.artifact_dir / "grad_norms.png", [l["layer"] for l in plotted], [max(l["grad_norm"], 1e-30) for l in plotted],
                title=f"Loss-gradient norm per layer ({source.split(' (')[0]})", ylabel="L2 norm", log=True)
        context.progress(3, 3, "done")
        return Result(findings=findings, metrics=metrics, artifacts=artifacts)


class UnitHealth(Analyzer):
    """Dead ReLU units, saturated sigmoid/tanh units and saturated LSTM gates, per layer, on a batch.

    A ReLU unit (a channel, for convolutions) that is <= 0 for every sample gets no gradient and
    never recovers (Lu et al., 2019, "Dying ReLU"). A sigmoid/tanh output within 1% of its asymptote
    passes back less than 2% of the gradient. The output layer is exempt: a confident classifier's
    output is meant to saturate.
    """

    name = "health.units"
    options = health_options("units")
    category = "health"
    description = "Dead ReLU units, saturated sigmoid/tanh units and LSTM gate saturation per layer."
    model_kinds = NON_GENERATOR
    data = "none"
    reference = "Lu et al. 2019, Dying ReLU and initialization; Glorot & Bengio 2010"

    def run(self, context: Context) -> Result:
        import numpy as np

        from diagnostics.health import (development, finite_or_none, health_pass, select_batch, thresholds, to_numpy,
                                        training_series, unit_layers)

        t = thresholds(context.options, "units")
        model = context.model
        relu, sat, lstm = unit_layers(model)
        if not (relu or sat or lstm):
            return Result.skip("the model has no ReLU, sigmoid/tanh hidden layers or LSTMs to inspect")
        x, y, source = select_batch(context, int(t["max_samples"]))
        context.progress(0, 2, "forward pass")
        level = t["saturation_level"]
        units = {}
        if relu or sat:
            p = health_pass(context, x, y, level)
            if not p["probed"]:
                return Result.skip("the model's layer outputs cannot be probed: a functional or Sequential model is needed")
            units = p["units"]
        context.progress(1, 2, "counting units")
        findings: list[Finding] = []
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
                if finite and dead >= t["dead_warning"]:
                    sev = Severity.ERROR if dead >= t["dead_error"] else Severity.WARNING
                    how = development(series, t["dead_warning"], True, ".0%", what="the dead share")
                    findings.append(Finding(
                        "units.dead", sev, where=layer.name,
                        message=f"layer {layer.name}: {dead:.0%} of {u['units']} ReLU units never activate on {source} — "
                                f"they get no gradient and stay dead: lower the learning rate, or use LeakyReLU/He initialisation"
                                + (f"; {how}" if how else "")))
            for layer, act in sat:
                u = units[layer.name]
                frac = float(np.sum(u["saturated"]) / (u["positions"] * u["units"]))
                per_layer.append({"layer": layer.name, "activation": act, "units": u["units"], "saturated_fraction": frac})
                if frac >= t["saturated_warning"]:
                    sev = Severity.ERROR if frac >= t["saturated_error"] else Severity.WARNING
                    findings.append(Finding(
                        "units.saturated", sev, where=layer.name,
                        message=f"layer {layer.name}: {frac:.0%} of {act} outputs on {source} are within "
                                f"{1 - level:.0%} of ±1{' (0/1)' if act == 'sigmoid' else ''}, where the derivative is "
                                f"below 0.02 — scale the inputs, use Glorot initialisation, or add batch normalisation"))
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
                    if (gates[worst] or 0) >= t["gate_saturated_warning"]:
                        findings.append(Finding(
                            "units.lstm_gates_saturated", Severity.WARNING, where=layer.name,
                            message=f"LSTM {layer.name}: {gates[worst]:.0%} of its {worst} gate values on {source} are "
                                    f"below 0.01 or above 0.99: the gate is stuck open or shut and passes almost no "
                                    f"gradient — scale the inputs, clip gradients, and keep the default orthogonal "
                                    f"recurrent initialisation"))
        from diagnostics import inputs as I

        metrics = {"inputs": source, "samples": I.n_samples(x),
                   "layers": [{k: (finite_or_none(v) if isinstance(v, float) else v) for k, v in l.items()} for l in per_layer]}
        artifacts = {}
        rows = [l for l in per_layer if "dead_fraction" in l or "saturated_fraction" in l]
        if rows:
            from diagnostics.health import bar_plot

            vals = [l.get("dead_fraction", l.get("saturated_fraction")) for l in rows]
            artifacts["dead and saturated units"] = bar_plot(
                context.artifact_dir / "units.png", [f"{l['layer']} ({l['activation']})" for l in rows],
                [100 * v for v in vals], title="Dead (ReLU) or saturated (sigmoid/tanh) units, %", ylabel="%",
                colours=["#c62828" if v >= 0.5 else "#ef6c00" if v >= 0.25 else "#1565c0" for v in vals])
        context.progress(2, 2, "done")
        return Result(findings=findings, metrics=metrics, artifacts=artifacts)


class TemporalGradientHealth(Analyzer):
    """The loss gradient reaching each input time step: vanishing and exploding *through time*.

    Per-layer norms (``health.gradients``) miss it: a stack of tanh RNNs has healthy first/last layer
    ratios while the gradient reaching the early steps is orders of magnitude below the late ones
    (Bengio, Simard & Frasconi, 1994; Pascanu, Mikolov & Bengio, 2013). Measured as the norm of the
    per-sample loss gradient w.r.t. each step of the input (token models: of the embedding's output),
    averaged over samples, summarised by the early/late ratio and the effective memory length.
    """

    name = "health.temporal"
    category = "health"
    description = "Loss-gradient norm per input time step: vanishing/exploding through time, effective memory length."
    model_kinds = frozenset({"sequence", "token"})
    data = "none"
    reference = "Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013 (On the difficulty of training RNNs)"
    options = health_options("temporal")

    def run(self, context: Context) -> Result:
        import numpy as np

        from diagnostics.health import (finite_or_none, line_plot, select_batch, temporal_gradients, temporal_summary,
                                        thresholds)

        t = thresholds(context.options, "temporal")
        context.progress(0, 3, "preparing the batch")
        x, y, source = select_batch(context, int(t["max_samples"]))
        context.progress(1, 3, "input gradients per time step")
        tg = temporal_gradients(context, x, y)
        s = temporal_summary(tg["norms"], t["edge_fraction"], t["memory_floor"])
        context.progress(2, 3, "profile")
        layer = _sequence_layer(context.model)
        steps, k, ratio = s["steps"], s["edge_steps"], s["early_late_ratio"]
        space = f"the output of {tg['embedding']}" if tg["embedding"] else "the input"
        what = (f"the loss gradient w.r.t. {space} at the first {k} of {steps} steps is {{:.1e}} times that at the "
                f"last {k} on {source}")
        findings: list[Finding] = []
        if not s["finite"]:
            bad = int(np.sum(~np.isfinite(tg["norms"]).all(axis=0)))
            findings.append(Finding(
                "gradients.exploding_through_time", Severity.ERROR, where=f"{layer}, {bad} of {steps} steps",
                message=f"the loss gradient w.r.t. {space} is NaN or Inf at {bad} of {steps} time steps on {source}: the "
                        f"backward signal overflows on its way back through time — clip gradients (clipnorm=1.0), use "
                        f"tanh cells with orthogonal recurrent initialisation, and lower the learning rate"))
        elif ratio is not None and ratio < t["vanishing_warning"]:
            sev = Severity.ERROR if ratio < t["vanishing_error"] else Severity.WARNING
            first = s["first_step_above_floor"]
            dead = f"steps 0-{first - 1}" if first else f"steps 0-{k - 1}"
            findings.append(Finding(
                "gradients.vanishing_through_time", sev, where=f"{layer}, {dead}",
                message=what.format(ratio) + f"; its effective memory is the last {s['memory_length']} steps (the "
                        f"gradient at {dead} is under {t['memory_floor']:.0%} of its peak): whatever the early steps "
                        f"carry cannot be learnt, because almost no gradient reaches them through the recurrence — use "
                        f"LSTM/GRU cells instead of SimpleRNN, fewer stacked recurrent layers, attention or a "
                        f"Conv1D front end, or shorter sequences (truncate, pool, or reverse them if the signal is early)"))
        elif ratio is not None and ratio > t["exploding_warning"]:
            sev = Severity.ERROR if ratio > t["exploding_error"] else Severity.WARNING
            findings.append(Finding(
                "gradients.exploding_through_time", sev, where=f"{layer}, steps 0-{k - 1}",
                message=what.format(ratio) + ": the backward signal grows at every step back in time (recurrent "
                        "Jacobian with spectral radius above 1), so updates are dominated by the oldest steps and "
                        "training diverges — clip gradients (clipnorm=1.0), use tanh/sigmoid-gated cells with "
                        "orthogonal recurrent initialisation, and lower the learning rate"))
        profile = [finite_or_none(v) for v in s["profile"]]
        metrics = {"inputs": source, "targets": tg["targets_from"], "loss": tg["loss_desc"], "layer": layer,
                   "differentiated": "embedding output (" + tg["embedding"] + ")" if tg["embedding"] else "input",
                   "steps": steps, "edge_steps": k, "early_grad_norm": finite_or_none(s["early"]),
                   "late_grad_norm": finite_or_none(s["late"]), "early_late_ratio": finite_or_none(ratio),
                   "memory_length": s["memory_length"], "memory_floor": t["memory_floor"],
                   "profile": profile, "backend": context.backend}
        artifacts = {}
        if any(v is not None and v > 0 for v in profile):
            artifacts["gradient through time"] = line_plot(
                context.artifact_dir / "temporal_grad.png", {"mean ||dL/dx_t||": [v if v and v > 0 else None for v in profile]},
                title=f"Loss-gradient norm per time step ({source.split(' (')[0]})", xlabel="time step (1 = first)",
                ylabel="L2 norm", log=True)
        context.progress(3, 3, "done")
        return Result(findings=findings, metrics=metrics, artifacts=artifacts)


_SEQUENCE_LAYERS = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "RNN", "Conv1D", "MultiHeadAttention", "Attention")


def _sequence_layer(model) -> str:
    """The first layer that mixes time steps (recurrent, convolutional or attention), named in findings."""
    layers = [l for l in getattr(model, "layers", []) if type(l).__name__ != "InputLayer"]
    for l in layers:
        kind = type(l).__name__
        if kind in _SEQUENCE_LAYERS or any(w in kind.lower() for w in ("rnn", "attention", "encoder", "transformer")):
            return l.name
    return layers[0].name if layers else "input"


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
    register(TemporalGradientHealth)
