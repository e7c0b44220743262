"""Built-in plugin: the ``health.gan`` analyzer (generators).

Judges a generator by what it produces: mode coverage and diversity as a classifier sees them
(the sidecar's ``classifier`` companion, or ``--option health.gan.classifier=judge.keras``), the
discriminator's accuracy on real vs generated samples (``discriminator`` companion), the G/D loss
balance from the training history, and the gradient health of both networks.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Option, Result, Severity
from diagnostics.options import health_options


class GanHealth(Analyzer):
    """Mode collapse, discriminator dominance, loss balance and gradient health of a GAN.

    Coverage follows the classifier-based mode counting of Srivastava et al. (2017, VEEGAN) and
    Metz et al. (2017): draw samples, keep those the judge classifies confidently, count the classes
    they cover and how concentrated they are. Diversity is the mean pairwise distance of generated
    samples relative to that of real ones (1.0: as varied as the data).
    """

    name = "health.gan"
    options = health_options("gan", "gradients", classifier=Option("classifier", str, "", "judge classifier model file"),
                             discriminator=Option("discriminator", str, "", "discriminator model file"))
    category = "health"
    description = "GAN health: mode coverage and diversity (classifier-judged), discriminator accuracy, G/D loss balance, gradients."
    model_kinds = frozenset({"generator"})
    data = "none"
    reference = "Metz et al. 2017 (Unrolled GANs, mode counting); Srivastava et al. 2017 (VEEGAN); Goodfellow et al. 2014"

    def run(self, context: Context) -> Result:
        import numpy as np

        from diagnostics.health import finite_or_none, forward, thresholds

        t = thresholds(context.options, "gan")
        g = context.model
        latent_shape = [d or 1 for d in context.info.input_shapes[0][1:]]
        n = int(t["samples"])
        z = np.random.default_rng(context.seed).standard_normal((n, *latent_shape)).astype(np.float32)
        context.progress(0, 4, "generating")
        fake = forward(g, z).astype(np.float32)
        findings: list[Finding] = []
        metrics: dict = {"samples": n, "latent": f"standard normal {latent_shape}"}
        notes = []
        if not np.isfinite(fake).all():
            findings.append(Finding("gan.nonfinite_samples", Severity.ERROR,
                                    message=f"{int((~np.isfinite(fake.reshape(n, -1))).any(axis=1).sum())} of {n} generated "
                                            f"samples contain NaN or Inf: restore a checkpoint from before training diverged"))
            return Result(findings=findings, metrics=metrics)
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
            cov = covered / k
            sev = None
            if cov < t["coverage_error"] or top2 > t["top2_error"]:
                sev = Severity.ERROR
            elif cov < t["coverage_warning"] or top2 > t["top2_warning"]:
                sev = Severity.WARNING
            if sev is not None:
                findings.append(Finding(
                    "gan.mode_collapse", sev,
                    message=f"of {n} generated samples, {int(confident.sum())} are classified by {judge_name} with "
                            f"confidence >= {t['confidence']:g}; they cover {covered} of {k} classes and the two most "
                            f"frequent hold {top2:.0%} (histogram {[int(c) for c in hist]}): the generator produces a "
                            f"few modes only — lower the generator's learning rate or steps per discriminator step, "
                            f"use minibatch discrimination, a Wasserstein loss with gradient penalty, or spectral normalisation"))
        # -- diversity -----------------------------------------------------------------------------
        if real is not None and real.shape[1:] == fake.shape[1:]:
            d_fake = _mean_pairwise(fake[:256])
            d_real = _mean_pairwise(real[:256])
            ratio = d_fake / d_real if d_real > 0 else None
            metrics["diversity"] = {"generated_mean_pairwise_l2": d_fake, "real_mean_pairwise_l2": d_real, "ratio": ratio}
            if ratio is not None and ratio < t["diversity_warning"]:
                findings.append(Finding(
                    "gan.low_diversity", Severity.WARNING,
                    message=f"generated samples are on average {d_fake:.3g} apart (L2, 256 samples) against {d_real:.3g} "
                            f"for real ones: {ratio:.0%} of the data's diversity — the generator covers a small part "
                            f"of the data distribution (see gan.mode_collapse for which classes)"))
        # -- discriminator -------------------------------------------------------------------------
        context.progress(2, 4, "discriminator")
        disc, disc_name = _load(context, "discriminator")
        if disc is None:
            notes.append(disc_name)
        else:
            p_fake = forward(disc, fake).reshape(-1)
            entry = {"discriminator": disc_name, "fake_accuracy": float(np.mean(p_fake < 0.5))}
            if real is not None:
                p_real = forward(disc, real).reshape(-1)
                entry["real_accuracy"] = float(np.mean(p_real >= 0.5))
                entry["accuracy"] = (entry["real_accuracy"] * len(p_real) + entry["fake_accuracy"] * len(p_fake)) / (len(p_real) + len(p_fake))
                if entry["accuracy"] >= t["discriminator_warning"]:
                    findings.append(Finding(
                        "gan.discriminator_wins", Severity.WARNING,
                        message=f"{disc_name} tells real from generated samples with accuracy {entry['accuracy']:.2f} "
                                f"(real {entry['real_accuracy']:.2f}, generated {entry['fake_accuracy']:.2f}): the "
                                f"generator's gradient vanishes when the discriminator is this sure — balance the learning "
                                f"rates, add label smoothing or instance noise"))
                elif entry["accuracy"] <= 1 - t["discriminator_warning"]:
                    findings.append(Finding(
                        "gan.discriminator_fooled", Severity.WARNING,
                        message=f"{disc_name} is right on only {entry['accuracy']:.0%} of real and generated samples "
                                f"(real {entry['real_accuracy']:.2f}, generated {entry['fake_accuracy']:.2f}): it no longer "
                                f"separates them, so it gives the generator no useful signal — typical after the "
                                f"generator outran it; give the discriminator more steps or a higher learning rate"))
            metrics["discriminator"] = entry
        # -- loss balance from history ---------------------------------------------------------------
        h = context.history or {}
        if h.get("g_loss") and h.get("d_loss"):
            gl = np.array([np.nan if v is None else v for v in h["g_loss"]], np.float64)
            dl = np.array([np.nan if v is None else v for v in h["d_loss"]], np.float64)
            q = max(1, len(gl) // 4)
            ratio = float(np.nanmean(gl[-q:]) / np.nanmean(dl[-q:])) if np.nanmean(dl[-q:]) > 0 else None
            metrics["loss_balance"] = {"epochs": len(gl), "g_loss_last_quarter": finite_or_none(np.nanmean(gl[-q:])),
                                       "d_loss_last_quarter": finite_or_none(np.nanmean(dl[-q:])),
                                       "g_over_d": finite_or_none(ratio)}
            if ratio is not None and np.isfinite(ratio) and (ratio >= t["loss_ratio_warning"] or ratio <= 1 / t["loss_ratio_warning"]):
                findings.append(Finding(
                    "gan.loss_imbalance", Severity.WARNING,
                    message=f"over the last {q} epochs the generator's loss averaged {ratio:.2f} times the "
                            f"discriminator's: one network dominates, and the other learns little — rebalance their "
                            f"learning rates or update steps"))
        # -- gradient health of both -----------------------------------------------------------------
        context.progress(3, 4, "gradients")
        if disc is not None:
            metrics["gradients"] = _gradients(context, g, disc, z[:256], real, findings)
        if notes:
            metrics["not_measured"] = notes
        artifacts = {}
        if "modes" in metrics:
            from diagnostics.health import bar_plot

            artifacts["generated classes"] = bar_plot(
                context.artifact_dir / "modes.png", [str(i) for i in range(metrics["modes"]["classes"])],
                metrics["modes"]["class_histogram"], title=f"Confidently classified generated samples per class ({n} drawn)",
                ylabel="samples")
            artifacts["samples"] = _sample_grid(context.artifact_dir / "samples.png", fake[:32])
        context.progress(4, 4, "done")
        return Result(findings=findings, metrics=metrics, artifacts={k: v for k, v in artifacts.items() if v})


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


def _gradients(context: Context, g, d, z, real, findings) -> dict:
    """Per-network gradient norms: the generator's non-saturating loss -log D(G(z)), and the
    discriminator's cross-entropy on real (label 1) and generated (label 0) samples."""
    import keras
    import numpy as np

    from diagnostics import backends
    from diagnostics.health import finite_or_none, flatten_layers, forward, thresholds

    tg = thresholds(context.options, "gradients")
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
        if not np.isfinite(total) or total >= tg["exploding_warning"]:
            sev = Severity.ERROR if (not np.isfinite(total) or total >= tg["exploding_error"]) else Severity.WARNING
            findings.append(Finding(
                "gradients.exploding", sev, where=label,
                message=f"the {label}'s gradient norm is {total:.3g}: updates this large destabilise adversarial "
                        f"training — lower its learning rate, clip gradients, or use spectral normalisation"))
    return out


def _sample_grid(path, images) -> str | None:
    import numpy as np

    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    cols = 8
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9), dpi=100)
    for ax, img in zip(np.ravel(axes), images):
        ax.imshow(np.clip(img.squeeze(), 0, 1), cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
    for ax in np.ravel(axes):
        ax.axis("off")
    fig.suptitle("Generated samples", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path.name


@diagnostics.hookimpl
def register_analyzers(register):
    register(GanHealth)
