"""Built-in plugin: the ``health.gan`` analyzer (generators).

Judges a generator by what it produces: mode coverage and diversity as a classifier sees them
(the sidecar's ``classifier`` companion, or ``--option health.gan.classifier=judge.keras``), the
discriminator's accuracy on real vs generated samples (``discriminator`` companion), the G/D loss
balance from the training history, and the gradient health of both networks.

Every number is a value of a declared measure, judged by the host (:class:`diagnostics.HealthAnalyzer`).
Two of today's two-sided checks are measured as one-sided values so that they keep their thresholds
and comparisons exactly: the discriminator's *separation* max(accuracy, 1 − accuracy) (>= the warning
threshold: it wins, at accuracy >= 0.9, or it is fooled, at accuracy <= 0.1) and the loss *ratio* of
the larger mean loss over the smaller (>= 5: either network dominates).
"""

from __future__ import annotations

import diagnostics
from diagnostics import (Context, Direction, Finding, HealthAnalyzer, Measure, Measurements, Option, Scope, Severity,
                         Value)
from diagnostics.options import health_options

MODE_ADVICE = ("lower the generator's learning rate or steps per discriminator step, use minibatch discrimination, "
               "a Wasserstein loss with gradient penalty, or spectral normalisation")


class GanHealth(HealthAnalyzer):
    """Mode collapse, discriminator dominance, loss balance and gradient health of a GAN.

    Coverage follows the classifier-based mode counting of Srivastava et al. (2017, VEEGAN) and
    Metz et al. (2017): draw samples, keep those the judge classifies confidently, count the classes
    they cover and how concentrated they are. Diversity is the mean pairwise distance of generated
    samples relative to that of real ones (1.0: as varied as the data).
    """

    name = "health.gan"
    options = health_options("gan", "gradients", classifier=Option("classifier", str, "", "judge classifier model file"),
                             discriminator=Option("discriminator", str, "", "discriminator model file"))
    description = "GAN health: mode coverage and diversity (classifier-judged), discriminator accuracy, G/D loss balance, gradients."
    model_kinds = frozenset({"generator"})
    data = "none"
    reference = "Metz et al. 2017 (Unrolled GANs, mode counting); Srivastava et al. 2017 (VEEGAN); Goodfellow et al. 2014"
    threshold_section = "gan"
    measures = (
        Measure("coverage", "Share of the judge's classes with a confident generated sample",
                direction=Direction.LOWER_IS_WORSE, warning="coverage_warning", error="coverage_error", format=".0%",
                reference="classifier-based mode counting, Srivastava et al. 2017 (VEEGAN), Metz et al. 2017",
                advice=MODE_ADVICE),
        Measure("top2_share", "Share of confident generated samples in the two most frequent classes",
                direction=Direction.HIGHER_IS_WORSE, warning="top2_warning", error="top2_error", format=".0%",
                reference="20% for ten balanced classes; Metz et al. 2017", advice=MODE_ADVICE),
        Measure("class_histogram", "Confidently classified generated samples per class", unit="samples",
                scope=Scope.CLASS, format=".0f"),
        Measure("diversity", "Mean pairwise L2 distance of generated samples over that of real ones",
                direction=Direction.LOWER_IS_WORSE, warning="diversity_warning", format=".0%",
                reference="100%: as varied as the data",
                advice="see health.gan.coverage and health.gan.class_histogram for which classes it misses"),
        Measure("discriminator_separation", "Discriminator's separation of real from generated samples",
                direction=Direction.HIGHER_IS_WORSE, warning="discriminator_warning", format=".2f",
                reference="the larger of its accuracy and 1 − accuracy: near 0.5 is balance; Goodfellow et al. 2014"),
        Measure("discriminator_accuracy", "Discriminator accuracy", format=".2f"),
        Measure("loss_ratio", "Larger over smaller mean loss of generator and discriminator, last quarter of training",
                direction=Direction.HIGHER_IS_WORSE, warning="loss_ratio_warning", format=".2f",
                reference="one network dominates, and the other learns little",
                advice="rebalance their learning rates or update steps"),
        Measure("loss", "Loss per epoch", scope=Scope.EPOCH, format=".4g"),
        Measure("grad_norm", "Global gradient norm", unit="L2 norm", scale="log", direction=Direction.HIGHER_IS_WORSE,
                warning="exploding_warning", error="exploding_error", thresholds="gradients",
                reference="the generator's non-saturating loss −log D(G(z)), the discriminator's cross-entropy on real "
                          "and generated samples; updates this large destabilise adversarial training",
                advice="lower its learning rate, clip gradients, or use spectral normalisation"),
        Measure("layer_grad_norm", "Gradient norm per layer", unit="L2 norm", scale="log", scope=Scope.LAYER),
    )

    def measure(self, context: Context) -> Measurements:
        import numpy as np

        from diagnostics.health import finite_or_none, forward, thresholds

        t = thresholds(context.options, "gan")
        g = context.model
        latent_shape = [d or 1 for d in context.info.input_shapes[0][1:]]
        n = int(t["samples"])
        z = np.random.default_rng(context.seed).standard_normal((n, *latent_shape)).astype(np.float32)
        context.progress(0, 4, "generating")
        fake = forward(g, z).astype(np.float32)
        values: list[Value] = []
        findings: list[Finding] = []
        metrics: dict = {"samples": n, "latent": f"standard normal {latent_shape}"}
        notes = []
        if not np.isfinite(fake).all():
            findings.append(Finding("health.gan.nonfinite_samples", Severity.ERROR,
                                    message=f"{int((~np.isfinite(fake.reshape(n, -1))).any(axis=1).sum())} of {n} generated "
                                            f"samples contain NaN or Inf: restore a checkpoint from before training diverged"))
            return Measurements(findings=findings, metrics=metrics)
        real = None
        if context.data is not None and context.data.x is not None:
            real = np.asarray(context.data.x, np.float32)[:512]
        # -- judged by a classifier ----------------------------------------------------------------
        context.progress(1, 4, "classifying samples")
        judge, judge_name = _load(context, "classifier")
        if judge is None:
            notes.append(judge_name)
        else:
            probs = forward(judge, fake).reshape(n, -1)
            k = probs.shape[1]
            confident = probs.max(axis=1) >= t["confidence"]
            hist = np.bincount(probs.argmax(axis=1)[confident], minlength=k)
            covered = int(np.sum(hist > 0))
            share = hist / max(1, hist.sum())
            top2 = float(np.sort(share)[-2:].sum())
            entropy = float(-np.sum(share[share > 0] * np.log(share[share > 0])))
            metrics["modes"] = {"judge": judge_name, "classes": k, "class_histogram": [int(c) for c in hist],
                                "classes_covered": covered, "coverage": covered / k, "top2_share": top2,
                                "confident_fraction": float(confident.mean()), "effective_classes": float(np.exp(entropy)),
                                "confidence": t["confidence"]}
            n_confident, hist_list = int(confident.sum()), [int(c) for c in hist]
            values.append(Value("coverage", covered / k, note=(
                f"{n_confident} of {n} generated samples are classified by {judge_name} with confidence >= {t['confidence']:g}; "
                f"they cover {covered} of {k} classes (histogram {hist_list}): the generator produces a few modes only")))
            values.append(Value("top2_share", top2, note=(
                f"the two most frequent of the {k} classes hold {top2:.0%} of the {n_confident} generated samples {judge_name} "
                f"classifies with confidence >= {t['confidence']:g} (histogram {hist_list}): the generator produces a "
                f"few modes only")))
            values.extend(Value("class_histogram", int(c), where=str(i)) for i, c in enumerate(hist))
        # -- diversity -----------------------------------------------------------------------------
        if real is not None and real.shape[1:] == fake.shape[1:]:
            d_fake = _mean_pairwise(fake[:256])
            d_real = _mean_pairwise(real[:256])
            ratio = d_fake / d_real if d_real > 0 else None
            metrics["diversity"] = {"generated_mean_pairwise_l2": d_fake, "real_mean_pairwise_l2": d_real, "ratio": ratio}
            values.append(Value("diversity", ratio, n=len(fake[:256]),
                                note=f"generated samples are on average {d_fake:.3g} apart (L2) against {d_real:.3g} "
                                     f"for {len(real[:256])} real ones: the generator covers a small part of the data "
                                     f"distribution"))
        # -- discriminator -------------------------------------------------------------------------
        context.progress(2, 4, "discriminator")
        disc, disc_name = _load(context, "discriminator")
        if disc is None:
            notes.append(disc_name)
        else:
            p_fake = forward(disc, fake).reshape(-1)
            entry = {"discriminator": disc_name, "fake_accuracy": float(np.mean(p_fake < 0.5))}
            values.append(Value("discriminator_accuracy", entry["fake_accuracy"], series="generated", n=len(p_fake)))
            if real is not None:
                p_real = forward(disc, real).reshape(-1)
                entry["real_accuracy"] = float(np.mean(p_real >= 0.5))
                entry["accuracy"] = (entry["real_accuracy"] * len(p_real) + entry["fake_accuracy"] * len(p_fake)) / (len(p_real) + len(p_fake))
                acc, n_all = entry["accuracy"], len(p_real) + len(p_fake)
                values.append(Value("discriminator_accuracy", entry["real_accuracy"], series="real", n=len(p_real)))
                values.append(Value("discriminator_accuracy", acc, series="all", n=n_all))
                detail = f"(real {entry['real_accuracy']:.2f}, generated {entry['fake_accuracy']:.2f})"
                wins = acc >= 1 - acc
                note = (f"{disc_name} tells real from generated samples with accuracy {acc:.2f} {detail}: the "
                        f"generator's gradient vanishes when the discriminator is this sure — balance the learning "
                        f"rates, add label smoothing or instance noise"
                        if wins else
                        f"{disc_name} is right on only {acc:.0%} of real and generated samples {detail}: it no longer "
                        f"tells them apart the right way round, so it gives the generator no useful signal — typical "
                        f"after the generator outran it; give the discriminator more steps or a higher learning rate")
                values.append(Value("discriminator_separation", max(acc, 1 - acc), n=n_all, note=note))
            metrics["discriminator"] = entry
        # -- loss balance from history ---------------------------------------------------------------
        h = context.history or {}
        if h.get("g_loss") and h.get("d_loss"):
            for key, series in (("g_loss", "generator"), ("d_loss", "discriminator")):
                values.extend(Value("loss", finite_or_none(v), where=str(e), series=series) for e, v in enumerate(h[key], start=1))
            gl = np.array([np.nan if v is None else v for v in h["g_loss"]], np.float64)
            dl = np.array([np.nan if v is None else v for v in h["d_loss"]], np.float64)
            q = max(1, len(gl) // 4)
            ratio = float(np.nanmean(gl[-q:]) / np.nanmean(dl[-q:])) if np.nanmean(dl[-q:]) > 0 else None
            metrics["loss_balance"] = {"epochs": len(gl), "g_loss_last_quarter": finite_or_none(np.nanmean(gl[-q:])),
                                       "d_loss_last_quarter": finite_or_none(np.nanmean(dl[-q:])),
                                       "g_over_d": finite_or_none(ratio)}
            if ratio is not None and np.isfinite(ratio) and ratio > 0:
                # >= the threshold either way round: ratio >= t or ratio <= 1/t, as one number
                larger = "generator" if ratio >= 1 else "discriminator"
                smaller = "discriminator" if ratio >= 1 else "generator"
                values.append(Value("loss_ratio", max(ratio, 1 / ratio),
                                    note=f"over the last {q} epochs the {larger}'s loss averaged {max(ratio, 1 / ratio):.2f} "
                                         f"times the {smaller}'s (generator over discriminator {ratio:.3g})"))
        # -- gradient health of both -----------------------------------------------------------------
        context.progress(3, 4, "gradients")
        if disc is not None:
            metrics["gradients"] = _gradients(context, g, disc, z[:256], real, values, findings)
        if notes:
            metrics["not_measured"] = notes
        artifacts = {}
        if "modes" in metrics:
            artifacts["samples"] = _sample_grid(context.artifact_dir / "samples.png", fake[:32])
        context.progress(4, 4, "done")
        return Measurements(values=values, findings=findings, metrics=metrics,
                            artifacts={k: v for k, v in artifacts.items() if v})


def _load(context: Context, role: str):
    """(model, name) for a companion: the option ``role=PATH`` first, then the sidecar's companion."""
    path = context.options.get(role)
    try:
        if path:  # a file named on the command line: the same pre-scan as the model itself
            from diagnostics import load_checked

            return load_checked(str(path)), str(path).rsplit("/", 1)[-1]
        model = context.companion(role)
        return model, (context.metadata.get("companions") or {}).get(role, role)
    except Exception as e:  # noqa: BLE001 - missing or unloadable companion: say so, measure the rest
        return None, f"no {role}: {e} (name one with --option health.gan.{role}=FILE.keras)"


def _mean_pairwise(x) -> float:
    import numpy as np

    f = x.reshape(len(x), -1).astype(np.float64)
    sq = (f * f).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0)
    n = len(f)
    return float(np.sqrt(d2)[np.triu_indices(n, 1)].mean()) if n > 1 else 0.0


def _gradients(context: Context, g, d, z, real, values, findings) -> dict:
    """Per-network gradient norms: the generator's non-saturating loss -log D(G(z)), and the
    discriminator's cross-entropy on real (label 1) and generated (label 0) samples."""
    import keras
    import numpy as np

    from diagnostics import backends
    from diagnostics.health import finite_or_none, flatten_layers, forward

    prim = backends.get(context.backend)
    bce = keras.losses.BinaryCrossentropy(reduction=None)
    out = {}
    stacked = keras.Model(g.inputs[0], d(g.outputs[0]), name="gan_health_stacked")
    with np.errstate(all="ignore"):
        _, grads_g = prim.loss_gradients(stacked, z, np.ones((len(z), 1), np.float32), bce)
        fake = forward(g, z).astype(np.float32)
        xs = fake if real is None else np.concatenate([real[:len(z)], fake])
        ys = np.concatenate([np.ones((len(xs) - len(fake), 1)), np.zeros((len(fake), 1))]).astype(np.float32)
        _, grads_d = prim.loss_gradients(d, xs, ys, bce)
    for label, model, grads in (("generator", g, grads_g), ("discriminator", d, grads_d)):
        layers = []
        for layer in flatten_layers(model):
            gs = [grads[v.path].astype(np.float64) for v in layer.trainable_weights if v.path in grads]
            if gs:
                layers.append({"layer": layer.name, "grad_norm": float(np.sqrt(sum(np.sum(x * x) for x in gs)))})
        total = float(np.sqrt(sum(l["grad_norm"] ** 2 for l in layers)))
        out[label] = {"global_grad_norm": finite_or_none(total),
                      "layers": [{**l, "grad_norm": finite_or_none(l["grad_norm"])} for l in layers]}
        values.append(Value("grad_norm", total, where=label, n=len(xs) if label == "discriminator" else len(z)))
        values.extend(Value("layer_grad_norm", l["grad_norm"], where=l["layer"], series=label) for l in layers)
        if not np.isfinite(total):  # no number to judge: NaN or Inf is an error outright
            findings.append(Finding(
                "health.gan.grad_norm", Severity.ERROR, where=label,
                message=f"the {label}'s gradient norm is {total:.3g}: a NaN or Inf gradient destabilises adversarial "
                        f"training — lower its learning rate, clip gradients, or use spectral normalisation"))
    return out


def _sample_grid(path, images) -> str | None:
    import numpy as np

    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        return None
    from diagnostics.plotting import pyplot, save_png

    plt = pyplot()
    cols = 8
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9), dpi=100)
    for ax, img in zip(np.ravel(axes), images):
        ax.imshow(np.clip(img.squeeze(), 0, 1), cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
    for ax in np.ravel(axes):
        ax.axis("off")
    fig.suptitle("Generated samples", fontsize=9)
    return save_png(fig, path).name


@diagnostics.hookimpl
def register_analyzers(register):
    register(GanHealth)
