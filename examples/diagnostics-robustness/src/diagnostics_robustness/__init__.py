"""An example third-party diagnostics plugin: prediction stability under Gaussian input noise.

The analyzer adds zero-mean Gaussian noise to the evaluation inputs at several levels (fractions
of the data's own standard deviation) and measures how often the predicted class changes (the
flip rate) and, with labels, how accuracy falls. It imports only the public API of
``diagnostics`` at module level; numpy and matplotlib are imported inside :meth:`run`, so
``diagnose --help`` and ``diagnose plugins`` stay instant.

Reference: D. Hendrycks and T. Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 — Gaussian noise is one of their corruptions.
"""

from __future__ import annotations

from typing import Any

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity

__version__ = "0.1.0"
#: The hook API this plugin was written against; a diagnostics providing another refuses it clearly.
DIAGNOSTICS_API_VERSION = 1

DEFAULTS: dict[str, Any] = {
    "levels": [0.02, 0.05, 0.1, 0.2, 0.5],
    "samples": 256,
    "repeats": 2,
    "reference_level": 0.1,
    "max_flip_rate": 0.1,
    "clip": True,
}
#: Above this many input values per predict call, the noisy copies are predicted level by level.
MAX_VALUES_PER_CALL = 1 << 25


class Robustness(Analyzer):
    """Flip rate and accuracy of a classifier under Gaussian input noise, at several noise levels.

    The noise standard deviation at level ``l`` is ``l`` times the data's standard deviation (per
    feature for tabular models, over all values for images and sequences), so levels are
    comparable across models. Each sample gets ``repeats`` independent draws per level; noisy
    inputs are clipped to the observed data range unless ``clip`` is false.

    Verdict: ``robustness.noise_sensitive`` (warning) when more than ``max_flip_rate`` of the
    predictions change at ``reference_level`` — noise a tenth the size of the data's natural
    spread should not change what a healthy model predicts.
    """

    name = "robustness"
    category = "health"
    description = "Prediction flip rate and accuracy under Gaussian input noise at several levels, with a plot."
    model_kinds = frozenset({"image", "sequence", "tabular"})
    data = "x"
    backends = ("tensorflow", "torch")
    reference = "Hendrycks & Dietterich, Benchmarking Neural Network Robustness to Common Corruptions and Perturbations, ICLR 2019"

    def run(self, context: Context) -> Result:
        import numpy as np

        opts = _options(context.options)
        info = context.info
        if len(info.input_shapes) != 1:
            return Result.skip(f"handles models with one input; this one has {len(info.input_shapes)}")
        threshold = _decision_threshold(info)
        if threshold is None:
            return Result.skip("measures changes of the predicted class; this model has a single linear output "
                               "and no classification loss, so it looks like a regressor")
        x_all = np.asarray(context.data.x)
        if not np.issubdtype(x_all.dtype, np.floating):
            return Result.skip(f"adds Gaussian noise to real-valued inputs; these inputs are {x_all.dtype}")
        rng = np.random.default_rng(context.seed)
        n = min(int(opts["samples"]), len(x_all))
        index = np.sort(rng.choice(len(x_all), size=n, replace=False))
        x = x_all[index].astype(np.float32)
        y = _labels(context.data.y, index)

        scale = x.std(axis=0) if info.kind == "tabular" else np.float32(x.std())
        if not np.any(scale > 0):
            return Result.skip("the evaluation inputs are constant, so there is no scale to set noise levels against")
        lo, hi = float(x.min()), float(x.max())
        levels = [float(l) for l in opts["levels"]]
        repeats = int(opts["repeats"])

        batches = [x]
        for level in levels:
            noisy = np.repeat(x, repeats, axis=0)
            noisy += rng.normal(size=noisy.shape).astype(np.float32) * (level * scale)
            if opts["clip"]:
                np.clip(noisy, lo, hi, out=noisy)
            batches.append(noisy)
        outputs = _predict(context, batches)
        base = outputs[0]
        if not np.all(np.isfinite(base)):
            return Result.skip("the model's outputs on clean inputs are NaN or Inf, so prediction changes are "
                               "undefined (see the weights and health analyzers for the cause)")
        base_cls = _classes(base, threshold)
        flip_rate, accuracy, by_class = [], [], {}
        for level, out in zip(levels, outputs[1:]):
            cls = _classes(out, threshold)
            ref = np.repeat(base_cls, repeats, axis=0)
            flips = cls != ref
            flip_rate.append(round(float(flips.mean()), 6))
            if y is not None:
                accuracy.append(round(float((cls == np.repeat(y, repeats, axis=0)).mean()), 6))
            if level == float(opts["reference_level"]):
                for c in np.unique(ref):
                    by_class[str(int(c))] = round(float(flips[ref == c].mean()), 6)

        metrics: dict[str, Any] = {
            "levels": levels,
            "flip_rate": flip_rate,
            "samples": n,
            "repeats": repeats,
            "reference_level": float(opts["reference_level"]),
            "flip_rate_by_class": by_class,
            "noise_scale": "per-feature std" if info.kind == "tabular" else "global std",
        }
        if y is not None:
            metrics["clean_accuracy"] = round(float((base_cls == y).mean()), 6)
            metrics["accuracy"] = accuracy

        findings = []
        ref_rate = flip_rate[levels.index(float(opts["reference_level"]))]
        if ref_rate > float(opts["max_flip_rate"]):
            worst = max(by_class, key=by_class.get) if by_class else None
            findings.append(Finding(
                "robustness.noise_sensitive", Severity.WARNING,
                message=(f"{ref_rate:.0%} of predictions change under Gaussian noise of {opts['reference_level']:g}× the "
                         f"data's standard deviation (threshold {float(opts['max_flip_rate']):.0%})"
                         + (f"; class {worst} is the least stable ({by_class[worst]:.0%})" if worst is not None else "")
                         + " — the model relies on fine input detail; train with noise or data augmentation, "
                           "or add regularisation (dropout, weight decay)"),
                where="inputs"))

        artifacts = {}
        if _has_matplotlib():
            _plot(context.artifact_dir / "robustness.png", levels, flip_rate, accuracy or None,
                  metrics.get("clean_accuracy"), float(opts["reference_level"]), float(opts["max_flip_rate"]))
            artifacts["flip rate under noise"] = "robustness.png"
        context.progress(len(levels), len(levels), "done")
        return Result(findings=findings, metrics=metrics, artifacts=artifacts)


def _options(given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(DEFAULTS) - {"target"})
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; robustness takes {', '.join(sorted(DEFAULTS))}")
    opts = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS}}
    levels = opts["levels"]
    if not isinstance(levels, list) or not levels or not all(isinstance(l, (int, float)) and l > 0 for l in levels):
        raise ValueError(f"levels must be a non-empty list of positive numbers, e.g. [0.05,0.1,0.3]; got {levels!r}")
    opts["levels"] = sorted(float(l) for l in levels)
    if float(opts["reference_level"]) not in opts["levels"]:
        raise ValueError(f"reference_level {opts['reference_level']!r} must be one of the levels {opts['levels']}")
    for key in ("samples", "repeats"):
        if not isinstance(opts[key], int) or opts[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {opts[key]!r}")
    if isinstance(opts["clip"], str):
        opts["clip"] = opts["clip"].lower() not in ("false", "0", "no")
    return opts


def _decision_threshold(info) -> float | None:
    """How an output becomes a class: None for argmax over several outputs, or a threshold for one."""
    out = info.output_shapes[0] if info.output_shapes else []
    if out and out[-1] not in (None, 1):
        return -1.0  # argmax; the value is unused
    if info.output_activation == "sigmoid":
        return 0.5
    loss = (info.loss or "").lower()
    if "crossentropy" in loss or "hinge" in loss:
        return 0.0  # a single logit
    return None


def _classes(out, threshold: float):
    import numpy as np

    out = np.asarray(out)
    if out.shape[-1] > 1:
        return out.argmax(axis=-1)
    return (out[..., 0] > threshold).astype(np.int64)


def _labels(y, index):
    """Integer class labels for the chosen samples, or None when there are none usable."""
    import numpy as np

    if y is None:
        return None
    y = np.asarray(y)[index]
    if y.ndim >= 2 and y.shape[-1] > 1:
        y = y.argmax(axis=-1)
    elif y.ndim >= 2 and y.shape[-1] == 1:
        y = y[..., 0]
    if not np.issubdtype(y.dtype, np.number):
        return None
    return np.rint(y).astype(np.int64)


def _predict(context: Context, batches: list) -> list:
    """Model outputs for each batch, in as few predict calls as memory allows (each costs ~0.1 s)."""
    import numpy as np

    sizes = [len(b) for b in batches]
    total_values = sum(b.size for b in batches)
    if total_values <= MAX_VALUES_PER_CALL:
        out = _first_output(context.model.predict(np.concatenate(batches), batch_size=512, verbose=0))
        return np.split(out, np.cumsum(sizes)[:-1])
    outs = []
    for i, b in enumerate(batches):
        outs.append(_first_output(context.model.predict(b, batch_size=512, verbose=0)))
        context.progress(i, len(batches), "predicting noisy inputs")
    return outs


def _first_output(out):
    import numpy as np

    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out, dtype=np.float64)


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _plot(path, levels, flip_rate, accuracy, clean_accuracy, reference_level, max_flip_rate) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
    ax.plot(levels, flip_rate, "o-", color="#c62828", label="flip rate")
    if accuracy is not None:
        ax.plot(levels, accuracy, "s-", color="#1565c0", label="accuracy")
        ax.axhline(clean_accuracy, color="#1565c0", linestyle=":", linewidth=1, label="clean accuracy")
    ax.axvline(reference_level, color="#757575", linestyle="--", linewidth=1)
    ax.axhline(max_flip_rate, color="#ef6c00", linestyle="--", linewidth=1, label="flip-rate threshold")
    ax.set_xscale("log")
    ax.set_xticks(levels, [f"{l:g}" for l in levels])
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("noise std / data std")
    ax.set_ylabel("fraction of predictions")
    ax.set_title("Predictions under Gaussian input noise", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


@diagnostics.hookimpl
def register_analyzers(register):
    from .leave_one_out import LeaveOneOutExplanations

    register(Robustness)
    register(LeaveOneOutExplanations)
