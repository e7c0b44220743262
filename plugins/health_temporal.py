"""Built-in plugin: gradients through time (``health.temporal``), a :class:`diagnostics.HealthAnalyzer`
whose measures the host judges, charts and reports.

It differentiates each sample's loss with respect to each input time step
(:func:`diagnostics.backends.get().input_loss_gradients`; token models at their embedding's output) and
reads vanishing and exploding gradients *through time*: the early/late ratio of the per-step norms and
the effective memory length. It uses validation data when the run has some, else synthetic inputs drawn
from the input spec (said in the report). The method's math (the float-input view, the per-step norms,
their summary) lives here, its only consumer.
"""

from __future__ import annotations

from typing import Any

import diagnostics
from diagnostics import Context, Direction, Finding, HealthAnalyzer, Measure, Measurements, Scope, Severity, Value
from diagnostics.options import health_options


_BAND = Direction.BAND


class TemporalGradientHealth(HealthAnalyzer):
    """The loss gradient reaching each input time step: vanishing and exploding *through time*.

    Per-layer norms (``health.gradients``) miss it: a stack of tanh RNNs has healthy first/last layer
    ratios while the gradient reaching the early steps is orders of magnitude below the late ones
    (Bengio, Simard & Frasconi, 1994; Pascanu, Mikolov & Bengio, 2013). Measured as the norm of the
    per-sample loss gradient w.r.t. each step of the input (token models: of the embedding's output),
    averaged over samples, summarised by the early/late ratio and the effective memory length.
    """

    name = "health.temporal"
    description = "Loss-gradient norm per input time step: vanishing/exploding through time, effective memory length."
    model_kinds = frozenset({"sequence", "token"})
    data = "none"
    reference = "Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013 (On the difficulty of training RNNs)"
    options = health_options("temporal")
    # Cause before symptom: an output that sees one position makes every map pile up there whatever the weights,
    # so a method fails its randomisation check on this model (the zoo-free test: saliency's maps correlate 1.00
    # with the randomised model's) and the explainer would be blamed for the model's fault.
    explains = {
        "explain.*.failed": {
            "health.temporal.focus": "the model's output depends on one input position, so a map that puts its "
                                     "attribution there is right whatever the weights, and the randomisation and "
                                     "perturbation checks cannot tell a faithful explainer from a broken one on this "
                                     "model: the fault is the model's, not the explainer's — fix the mask or pooling, "
                                     "then judge the explanations again"},
    }
    threshold_section = "temporal"
    measures = (
        # A band: below it the gradient vanishes on its way back through time, above it it explodes
        # (the comparisons are strict on both sides, as ratio < vanishing_* and ratio > exploding_*).
        Measure("early_late_ratio", "Early ÷ late input-gradient norm", scale="log", direction=_BAND,
                warning=("vanishing_warning", "exploding_warning"), error=("vanishing_error", "exploding_error"),
                format=".1e",
                reference="Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013: the product of step "
                          "Jacobians shrinks or grows geometrically with the distance back in time",
                advice="below the band almost no gradient reaches the early steps through the recurrence, so whatever "
                       "they carry cannot be learnt: use LSTM/GRU cells instead of SimpleRNN, fewer stacked recurrent "
                       "layers, attention or a Conv1D front end, or shorter sequences (truncate, pool, or reverse them "
                       "if the signal is early); above it the backward signal grows at every step back (recurrent "
                       "Jacobian with spectral radius above 1) and training diverges: clip gradients (clipnorm=1.0), "
                       "use tanh/sigmoid-gated cells with orthogonal recurrent initialisation, and lower the learning rate"),
        Measure("focus", "Share of the input gradient on its largest step", unit="fraction",
                direction=Direction.HIGHER_IS_WORSE, warning="focus_warning", error="focus_error", format=".0%",
                reference="the zoo's healthy lstm puts 11% on one step of 50, the transformer 4% of 24; over 90% the "
                          "other steps barely move the output, over 99% it sees one position",
                advice="the model cannot use the rest of the sequence: check the attention mask and the pooling (a "
                       "causal mask with first-position pooling lets the output see only the first token), the "
                       "slicing of the sequence output (return_sequences, a [:, 0] or [:, -1]), and whether the task "
                       "needs the sequence at all"),
        Measure("memory_length", "Effective memory length", unit="steps", format=".0f"),
        # where: the step index, 0 = the first
        Measure("step_grad_norm", "Loss-gradient norm per time step", unit="L2 norm", scale="log", scope=Scope.FEATURE),
    )

    def measure(self, context: Context) -> Measurements:
        import numpy as np

        from diagnostics.health import finite_or_none, select_batch, thresholds

        t = thresholds(context.options, "temporal")
        context.progress(0, 3, "preparing the batch")
        x, y, source = select_batch(context, int(t["max_samples"]))
        context.progress(1, 3, "input gradients per time step")
        tg = temporal_gradients(context, x, y)
        s = temporal_summary(tg["norms"], t["edge_fraction"], t["memory_floor"])
        context.progress(2, 3, "profile")
        layer = _sequence_layer(context.model)
        steps, k, ratio = s["steps"], s["edge_steps"], s["early_late_ratio"]
        first = s["first_step_above_floor"]
        space = f"the output of {tg['embedding']}" if tg["embedding"] else "the input"
        findings: list[Finding] = []
        if not s["finite"]:
            bad = int(np.sum(~np.isfinite(tg["norms"]).all(axis=0)))
            findings.append(Finding(
                "health.temporal.early_late_ratio", Severity.ERROR, where=f"{layer}, {bad} of {steps} steps",
                message=f"the loss gradient w.r.t. {space} is NaN or Inf at {bad} of {steps} time steps on {source}: the "
                        f"backward signal overflows on its way back through time — clip gradients (clipnorm=1.0), use "
                        f"tanh cells with orthogonal recurrent initialisation, and lower the learning rate"))
        # The early steps the value is about: when the gradient shrinks back in time, those under the memory
        # floor (the steps it does not reach); else the first k.
        early = f"steps 0-{first - 1}" if ratio is not None and ratio < 1 and first else f"steps 0-{k - 1}"
        note = ""
        if ratio is not None:
            note = (f"the loss gradient w.r.t. {space} at the first {k} of {steps} steps is {ratio:.1e} times that at "
                    f"the last {k} on {source}")
            if first:
                note += (f"; its effective memory is the last {s['memory_length']} steps (the gradient at steps "
                         f"0-{first - 1} is under {t['memory_floor']:.0%} of its peak)")
        values = [Value("early_late_ratio", ratio, where=f"{layer}, {early}", note=note)]
        if s["focus"] is not None and steps > 1:
            alone = ""
            if s["focus"] >= t["focus_error"]:
                alone = ": the output depends on that one position"
            elif s["focus"] >= t["focus_warning"]:
                alone = ": the output depends on that position almost alone"
            # A gradient that vanishes (or explodes) through time piles up at one end: the early/late ratio
            # names that cause, so the focus it makes is shown beside it and not judged a second time.
            through_time = ratio is not None and not t["vanishing_warning"] <= ratio <= t["exploding_warning"]
            if through_time:
                alone += "; the early/late ratio outside its band is why"
            values.append(Value(
                "focus", s["focus"], where=f"{layer}, step {s['focus_step']}",
                ceiling=Severity.INFO if through_time else None,
                note=f"of the loss gradient w.r.t. {space} on {source}, summed over the {steps} steps, step "
                     f"{s['focus_step']} gets {s['focus']:.0%} and the other {steps - 1} share the rest{alone}"))
        values.append(Value("memory_length", s["memory_length"],
                            note=f"steps back from the last whose gradient is at least {t['memory_floor']:.0%} of the "
                                 f"peak"))
        profile = [finite_or_none(v) for v in s["profile"]]
        values += [Value("step_grad_norm", v, where=str(i)) for i, v in enumerate(profile)]
        metrics = {"inputs": source, "targets": tg["targets_from"], "loss": tg["loss_desc"], "layer": layer,
                   "differentiated": "embedding output (" + tg["embedding"] + ")" if tg["embedding"] else "input",
                   "steps": steps, "edge_steps": k, "early_grad_norm": finite_or_none(s["early"]),
                   "late_grad_norm": finite_or_none(s["late"]), "early_late_ratio": finite_or_none(ratio),
                   "memory_length": s["memory_length"], "memory_floor": t["memory_floor"],
                   "profile": profile, "backend": context.backend}
        artifacts = {}
        # The host draws one bar per step (at most 60 bars, the rest dropped); the profile's shape over all
        # the steps, on a line, is what shows how far back the gradient reaches, so it stays.
        if any(v is not None and v > 0 for v in profile):
            artifacts["gradient through time"] = _profile_plot(
                context.artifact_dir / "temporal_grad.png", [v if v and v > 0 else None for v in profile],
                title=f"Loss-gradient norm per time step ({source.split(' (')[0]})")
        context.progress(3, 3, "done")
        return Measurements(values=values, findings=findings, metrics=metrics, artifacts=artifacts)


_SEQUENCE_LAYERS = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "RNN", "Conv1D", "MultiHeadAttention", "Attention")


def _sequence_layer(model) -> str:
    """The first layer that mixes time steps (recurrent, convolutional or attention), named in findings."""
    layers = [l for l in getattr(model, "layers", []) if type(l).__name__ != "InputLayer"]
    for l in layers:
        kind = type(l).__name__
        if kind in _SEQUENCE_LAYERS or any(w in kind.lower() for w in ("rnn", "attention", "encoder", "transformer")):
            return l.name
    return layers[0].name if layers else "input"


def float_input_view(model, x):
    """``(net, x_float, embedding_layer_name or None)``: the model as a function of float inputs.

    Integer (token) inputs have no gradient, so for them the model is split after its first layer
    (the embedding): ``net`` maps the embedding's output to the model's output and ``x_float`` is that
    output for ``x``; otherwise ``(model, x as float32, None)``."""
    import keras
    import numpy as np

    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        return model, x.astype(np.float32), None
    first = next((l for l in model.layers if type(l).__name__ != "InputLayer"), None)
    if first is None:
        raise TypeError("the model has integer inputs but no layer after them to differentiate through")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    embed = keras.Model(inputs, first.output)
    net = keras.Model(first.output, model.outputs[0])
    out = np.concatenate([np.asarray(embed.predict_on_batch(x[s:s + 256])) for s in range(0, len(x), 256)])
    return net, out.astype(np.float32), first.name


def temporal_gradients(context, x, y, batch_size: int = 256) -> dict[str, Any]:
    """The norm of the loss gradient with respect to each input time step, per sample.

    The loss and its targets are the ones the other health checks differentiate
    (:func:`diagnostics.health.loss_and_targets`: the labels, else the model's own predictions), taken
    from the logits when :func:`diagnostics.health.logits_view` applies, so saturated outputs do not
    report a zero gradient. Token models are differentiated at their embedding's output. Returns
    ``{"norms": (n, steps) array, "losses", "loss_desc", "targets_from", "embedding"}``; the norm at a
    step is the L2 norm over every non-time axis (channels, embedding dimensions)."""
    import numpy as np

    from diagnostics import backends
    from diagnostics.health import logits_view, loss_and_targets

    loss, loss_desc, targets, targets_from = loss_and_targets(context, x, y)
    net, xf, embedding = float_input_view(context.model, x)
    if xf.ndim < 3:
        raise ValueError(f"a sequence input (samples, steps, features) is needed; got shape {xf.shape}")
    net, pass_loss = logits_view(net, loss)
    with np.errstate(all="ignore"):
        losses, grads = backends.get(context.backend).input_loss_gradients(net, xf, targets, pass_loss, batch_size)
        g = grads.astype(np.float64).reshape(len(xf), xf.shape[1], -1)
        norms = np.sqrt(np.sum(g * g, axis=2))
    return {"norms": norms, "losses": losses, "loss_desc": loss_desc, "targets_from": targets_from,
            "embedding": embedding}


def temporal_summary(norms, edge_fraction: float = 0.1, memory_floor: float = 0.01) -> dict[str, Any]:
    """Summary of per-sample, per-step gradient norms ``(n, steps)``: the mean profile over samples, the
    early/late ratio (mean of the first ``edge_fraction`` of the steps over the last), and the effective
    memory length: the number of steps, counted back from the last one, from the earliest step whose
    norm is at least ``memory_floor`` of the profile's peak (all steps when the first one is)."""
    import numpy as np

    norms = np.asarray(norms, np.float64)
    with np.errstate(all="ignore"):
        profile = norms.mean(axis=0)
    steps = len(profile)
    k = max(1, int(round(edge_fraction * steps)))
    finite = bool(np.isfinite(profile).all())
    early, late = float(profile[:k].mean()), float(profile[-k:].mean())
    ratio = early / late if finite and late > 0 else None
    total = float(profile.sum()) if finite else 0.0
    focus = float(profile.max() / total) if total > 0 else None
    memory = None
    first = None
    if finite and profile.max() > 0:
        above = np.flatnonzero(profile >= memory_floor * profile.max())
        first = int(above[0])
        memory = steps - first
    return {"profile": profile, "steps": steps, "edge_steps": k, "early": early, "late": late,
            "early_late_ratio": ratio, "memory_length": memory, "first_step_above_floor": first, "finite": finite,
            "focus": focus, "focus_step": int(np.argmax(profile)) if focus is not None else None}


def _profile_plot(path, profile: list, *, title: str) -> str:
    """The mean per-step norm on a log line (``None`` gaps allowed) as a PNG with a fixed layout (no
    ``tight_layout``, which renders the figure twice); returns the file name."""
    from diagnostics.plotting import pyplot, save_png

    plt = pyplot()

    fig = plt.figure(figsize=(5.5, 3.2), dpi=90)
    ax = fig.add_axes((0.12, 0.16, 0.84, 0.74))
    ax.plot(range(1, len(profile) + 1), [float("nan") if v is None else v for v in profile],
            label="mean ||dL/dx_t||", color="#1565c0")
    ax.set_xlabel("time step (1 = first)", fontsize=8)
    ax.set_ylabel("L2 norm", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    return save_png(fig, path, tight=False).name


@diagnostics.hookimpl
def register_analyzers(register):
    register(TemporalGradientHealth)
