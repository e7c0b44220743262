"""Built-in plugin: LIME (Ribeiro, Singh & Guestrin, 2016) for images, tables, token sequences and
time series, with every perturbation batch sent through the model in one compiled call.

The ``lime`` package calls its classifier once per ``batch_size`` perturbations (10 by default):
with ``model.predict`` that is ~100 Keras predict calls per image. Here the classifier is a batched
``predict_on_batch`` over fixed-size chunks (traced once), and all perturbations of an explanation
go through it together.

- images: the ``lime`` package's image explainer on a grid of ``patch`` x ``patch`` superpixels
  (graph segmentations such as quickshift give a handful of odd segments on 28x28 digits);
- tables: the ``lime`` package's tabular explainer on the training data;
- token sequences: features are token positions, a hidden token becomes the baseline token (0);
- time series: features are segments of ``segment`` consecutive steps, hidden as zeros.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity

DEFAULTS = {"samples": 8, "num_samples": 1000, "patch": 4, "segment": 2, "baseline_token": 0, "kernel_width": 0.25,
            "sanity": True, "faithfulness": True, "batch_size": 1000}
#: R² of LIME's local linear fit below this makes the explanation doubtful.
LOCAL_FIT_MIN = 0.2


class BatchedPredict:
    """``predict(x) -> (n, classes)`` through ``model.predict_on_batch`` in fixed-size chunks (the
    last padded), so the compiled predict function traces once. One-unit sigmoid outputs become
    two columns (1 − p, p) as LIME expects of a classifier."""

    def __init__(self, model, batch_size: int = 1000, sigmoid: bool | None = None, channels: int | None = None):
        self.model = model
        self.batch_size = int(batch_size)
        self.sigmoid = sigmoid
        shape = tuple(model.inputs[0].shape)
        self.channels = channels if channels is not None else (shape[-1] if len(shape) == 4 else None)
        self.calls = 0

    def __call__(self, x):
        import numpy as np

        x = np.asarray(x)
        if self.channels is not None and x.ndim == 4 and x.shape[-1] != self.channels:
            x = x[..., : self.channels]  # lime's image explainer hands RGB copies of gray images
        if np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        self.calls += -(-len(x) // max(1, min(self.batch_size, len(x))))  # compiled calls made below
        from diagnostics import explain as E
        p = E.predict_batched(self.model, x, self.batch_size).astype(np.float64)
        if p.shape[1] == 1 and self.sigmoid is not False:
            p = np.concatenate([1 - p, p], axis=1)
        return p


def grid_segments(image, patch: int = 4):
    """Superpixels for small images: a regular grid of ``patch`` x ``patch`` cells."""
    import numpy as np

    h, w = image.shape[:2]
    rows = (np.arange(h) // patch)[:, None]
    cols = (np.arange(w) // patch)[None, :]
    return (rows * ((w + patch - 1) // patch) + cols).astype(np.int64)


def weighted_ridge(X, y, w, alpha: float = 1.0):
    """Ridge regression with an intercept and sample weights, as ``sklearn.linear_model.Ridge``
    (which LIME uses, alpha=1): returns (coefficients, intercept, weighted R²)."""
    import numpy as np

    X, y, w = np.asarray(X, np.float64), np.asarray(y, np.float64), np.asarray(w, np.float64)
    sw = w / w.sum()
    xm, ym = sw @ X, sw @ y
    A = (X - xm) * np.sqrt(w)[:, None]
    b = (y - ym) * np.sqrt(w)
    coef = np.linalg.solve(A.T @ A + alpha * np.eye(X.shape[1]), A.T @ b)
    pred = X @ coef + (ym - xm @ coef)
    ss_res = np.sum(w * (y - pred) ** 2)
    ss_tot = np.sum(w * (y - ym) ** 2)
    return coef, ym - xm @ coef, float(1 - ss_res / ss_tot) if ss_tot > 0 else 0.0


def lime_image(predict, image, target=None, num_samples: int = 1000, seed: int = 0, patch: int = 4,
               kernel_width: float = 0.25):
    """LIME on one image (H, W, C), vectorised: the ``lime`` package's image algorithm (uniform
    on/off superpixel masks from ``RandomState(seed)``, the first all on; hidden superpixels black;
    cosine distance to the full image; kernel sqrt(exp(−d²/0.25²)); weighted ridge, alpha 1), with
    the perturbed images built in one array operation and predicted in one batched call instead of
    a Python loop and batches of 10. Same seed, same masks, same weights as the package
    (tests/explain). Returns (per-pixel weights (H, W), the explained class, R² of the local fit)."""
    import numpy as np

    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    seg = grid_segments(img, patch)
    n_seg = int(seg.max()) + 1
    masks = np.random.RandomState(seed).randint(0, 2, num_samples * n_seg).reshape((num_samples, n_seg))
    masks[0, :] = 1
    batch = np.where(masks[:, seg][..., None].astype(bool), img[None], np.float32(0))
    preds = np.asarray(predict(batch), np.float64)
    label = int(target) if target is not None else int(np.argmax(preds[0]))
    on = masks.sum(1).astype(np.float64)
    cos = np.divide(on, np.sqrt(on) * np.sqrt(n_seg), out=np.zeros_like(on), where=on > 0)
    distances = 1.0 - cos
    weights = np.sqrt(np.exp(-(distances ** 2) / kernel_width ** 2))
    coef, _, r2 = weighted_ridge(masks, preds[:, label], weights, alpha=1.0)
    return coef[seg], label, r2


def lime_features(predict, x, label: int, hide, feature_of, n_features: int, num_samples: int, seed: int,
                  kernel_width: float):
    """LIME on one sample whose features are groups of input positions (tokens, time segments):
    random on/off masks over the features, hidden features replaced by ``hide``, one batched
    prediction, a weighted ridge fit through ``lime.lime_base.LimeBase``. ``feature_of`` maps each
    input position (first axis) to its feature. Returns (per-position weights, R² of the fit)."""
    import numpy as np
    from lime.lime_base import LimeBase

    rng = np.random.default_rng(seed)
    masks = rng.random((num_samples, n_features)) < rng.random((num_samples, 1))  # varied sparsity, as lime text
    masks[0] = True
    keep = masks[:, feature_of]  # (num_samples, positions)
    keep = keep.reshape(keep.shape + (1,) * (x.ndim - 1))
    batch = np.where(keep, x[None], np.asarray(hide)[None])
    preds = predict(batch)
    distances = 1.0 - masks.sum(1) / n_features  # fraction hidden, in [0, 1]

    def kernel(d):
        return np.sqrt(np.exp(-(d ** 2) / kernel_width ** 2))

    base = LimeBase(kernel, random_state=seed)
    _, exp, score, _ = base.explain_instance_with_data(masks.astype(float), preds, distances, label, n_features)
    w = np.zeros(n_features)
    for f, v in exp:
        w[f] = v
    return w[feature_of], float(score)


class LimeExplanations(Analyzer):
    """LIME for images, tables, token sequences and time series, batched, with a trust verdict
    (local fit, randomisation, faithfulness, ground truth, stability across seeds)."""

    name = "explain.lime"
    category = "explanation"
    description = "LIME for images, tables, tokens and time segments (batched compiled predictions), with a trust verdict."
    model_kinds = frozenset({"image", "sequence", "token", "tabular"})
    data = "x"
    backends = ("tensorflow", "torch")
    requires = ("lime",)
    reference = "Ribeiro, Singh & Guestrin 2016, \"Why Should I Trust You?\""

    def run(self, context: Context) -> Result:
        import numpy as np

        from diagnostics import explain as E

        opts = dict(DEFAULTS)
        opts.update({k: v for k, v in context.options.items() if k in DEFAULTS or k == "target"})
        model = context.model
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            return Result.skip("LIME here supports single-input, single-output models")
        x_all = np.asarray(context.data.x)
        from diagnostics import budget  # as many samples as fit the time budget, said in the report (issue 11)

        opts["samples"] = budget.fit_samples(context, min(int(opts["samples"]), len(x_all)), _work(opts, x_all),
                                             x=x_all[:1], minimum=2)
        idx = E.select_samples(len(x_all), int(opts["samples"]), context.seed)
        x = x_all[idx]
        sigmoid = context.info.output_activation == "sigmoid"
        predict = BatchedPredict(model, int(opts["batch_size"]), sigmoid=sigmoid or None,
                                 channels=x.shape[-1] if x.ndim == 4 else None)
        raw = predict(x)
        failed = E.nonfinite_predictions(raw, "explain.lime.failed")
        if failed is not None:
            return failed
        units = int(np.prod(model.outputs[0].shape[1:]))
        targets = E.select_targets(raw[:, 1:] if units == 1 and sigmoid else raw, opts.get("target"),
                                   context.info.output_activation)
        # the class column LIME explains (sigmoid: column 1 is p, column 0 is 1 - p)
        labels = np.where(targets.sign > 0, 1, 0) if units == 1 and sigmoid else targets.index
        kind = "image" if x.ndim == 4 else "token" if np.issubdtype(x.dtype, np.integer) else (
            "sequence" if x.ndim == 3 else "tabular")

        def explain(m, seed):
            p = predict if m is model else BatchedPredict(m, int(opts["batch_size"]), sigmoid=sigmoid or None,
                                                         channels=predict.channels)
            return self._explain(kind, p, x, labels, opts, seed, context)

        context.progress(0, 3, "LIME")
        maps, fits, extra = explain(model, context.seed)
        checks = {"finite": bool(np.all(np.isfinite(maps))),
                  "local_fit_r2": {"median": float(np.median(fits)), "min": float(np.min(fits))}}
        sanity_skip = None
        if opts["sanity"]:
            import keras

            context.progress(1, 3, "LIME with another seed, and on a randomised model")
            maps2, _, _ = explain(model, context.seed + 1)
            checks["stability"] = E.stability(maps, maps2)
            try:
                keras.utils.set_random_seed(context.seed + 12345)
                rand = keras.models.clone_model(model)
            except Exception as e:  # noqa: BLE001
                rand, sanity_skip = None, f"the model could not be cloned: {e}"
            if rand is not None:
                rmaps, _, _ = explain(rand, context.seed)
                checks["randomisation"] = E.randomisation_check(maps, rmaps)
        # faithfulness and ground truth, per position (image pixels, tokens, time steps, features)
        hide = extra["hide"]
        forward_targets = labels
        fx = predict(x)[np.arange(len(x)), forward_targets]
        fb = predict(np.broadcast_to(hide, x.shape).copy())[np.arange(len(x)), forward_targets]
        informative = E.informative_samples(fx, fb)
        if opts["faithfulness"]:
            keep = informative if informative.sum() >= 2 else np.ones(len(x), bool)

            def forward(xb, tb):
                return predict(xb)[np.arange(len(xb)), tb]

            fs = extra["feature_shape"]
            checks["faithfulness"] = E.perturbation_curves(
                forward, x[keep], np.broadcast_to(hide, x.shape)[keep], maps[keep], forward_targets[keep],
                seed=context.seed, feature_shape=fs)
        mask = context.data.extras.get("mask_val") if context.data.x_val is not None else None
        if mask is not None and np.asarray(mask).shape[0] == len(x_all):
            mask = np.asarray(mask)[idx].reshape(len(idx), -1)
            if mask.shape[1] == maps.shape[1]:
                checks["ground_truth"] = E.ground_truth_scores(maps, mask, informative)
            else:
                mask = None
        else:
            mask = None
        status, reasons = E.verdict(finite=checks["finite"], randomisation=checks.get("randomisation"),
                                    faithfulness=checks.get("faithfulness"), ground_truth=checks.get("ground_truth"),
                                    stability_corr=checks.get("stability"))
        if checks["local_fit_r2"]["median"] < LOCAL_FIT_MIN:
            reasons.append(f"LIME's local linear fit explains little of the model (median R² "
                           f"{checks['local_fit_r2']['median']:.2f})")
            status = E.DOUBTFUL if status == E.TRUSTED else status
        context.progress(3, 3, "writing maps")
        artifacts = self._write(context, kind, x, idx, maps, status, labels, mask, extra)
        findings = [Finding(f"explain.lime.{status}", Severity.WARNING if status == E.FAILED else Severity.INFO,
                            where="lime", message=f"LIME explanations are {status}: "
                            + ("; ".join(reasons) if reasons else "passed every check that applies"))]
        metrics = {"samples": len(idx), "sample_indices": idx.tolist(), "target": targets.description,
                   "explained_columns": labels.tolist(), "num_samples": int(opts["num_samples"]),
                   "features": extra["features"], "verdict": status, "reasons": reasons, "checks": checks,
                   "predict_calls": predict.calls, "sanity_skipped": sanity_skip,
                   "informative_samples": int(informative.sum())}
        return Result(findings=findings, metrics=E.json_round(metrics), artifacts=artifacts)

    def _explain(self, kind, predict, x, labels, opts, seed, context):
        """(per-position maps (n, positions), local-fit R² per sample, extras)."""
        import numpy as np

        n = len(x)
        ns = int(opts["num_samples"])
        if kind == "image":
            maps, fits = [], []
            for i in range(n):
                m, _, r2 = lime_image(predict, x[i], labels[i], ns, seed + i, int(opts["patch"]))
                maps.append(m.reshape(-1))
                fits.append(r2)
            return np.array(maps), np.array(fits), {
                "hide": np.zeros(x.shape[1:], x.dtype), "feature_shape": x.shape[1:3],
                "features": f"{opts['patch']}x{opts['patch']} pixel cells"}
        if kind == "tabular":
            from lime.lime_tabular import LimeTabularExplainer

            train = np.asarray(context.data.x_train if context.data.x_train is not None else x, np.float64)
            explainer = LimeTabularExplainer(train, mode="classification", discretize_continuous=True,
                                             random_state=seed)
            maps, fits = np.zeros((n, x.shape[1])), []
            for i in range(n):
                exp = explainer.explain_instance(x[i].astype(np.float64), predict, labels=(int(labels[i]),),
                                                 num_features=x.shape[1], num_samples=ns)
                for f, v in exp.local_exp[int(labels[i])]:
                    maps[i, f] = v
                fits.append(float(exp.score))
            return maps, np.array(fits), {"hide": train.mean(0).astype(x.dtype), "feature_shape": x.shape[1:],
                                          "features": "table columns (discretised by quartiles)"}
        if kind == "token":
            positions = x.shape[1]
            feature_of = np.arange(positions)
            hide = np.full(x.shape[1:], int(opts["baseline_token"]), x.dtype)
            desc = f"token positions (hidden = token {opts['baseline_token']})"
        else:
            positions = x.shape[1]
            seg = max(1, int(opts["segment"]))
            feature_of = np.arange(positions) // seg
            hide = np.zeros(x.shape[1:], x.dtype)
            desc = f"time segments of {seg} steps (hidden = 0)"
        nf = int(feature_of.max()) + 1
        maps, fits = [], []
        for i in range(n):
            w, r2 = lime_features(predict, x[i], int(labels[i]), hide, feature_of, nf, ns, seed + i,
                                  float(opts["kernel_width"]))
            maps.append(w)
            fits.append(r2)
        return np.array(maps), np.array(fits), {"hide": hide, "feature_shape": (positions,), "features": desc}

    def _write(self, context, kind, x, idx, maps, status, labels, mask, extra):
        import numpy as np

        from diagnostics import explain as E

        d = context.artifact_dir
        np.save(d / "lime.npy", maps.astype(np.float32))
        np.save(d / "sample_indices.npy", idx)
        artifacts = {"lime attributions": "lime.npy", "sample indices": "sample_indices.npy"}
        if kind == "image":
            E.save_image_overlays(d / "overlays.png", x, {"lime": maps.reshape((-1,) + tuple(x.shape[1:3]))},
                                  {"lime": status}, captions=[f"#{i} → {t}" for i, t in zip(idx, labels)])
            artifacts["overlays"] = "overlays.png"
        elif kind in ("token", "sequence"):
            E.save_heat_strips(d / "heat_strips.png", {"lime": maps}, {"lime": status}, mask=mask,
                               xlabel="token position" if kind == "token" else "time step",
                               tokens=x if kind == "token" else None)
            artifacts["heat strips"] = "heat_strips.png"
        else:
            E.save_global_importance(d / "global_importance.png", [f"f{i}" for i in range(maps.shape[1])],
                                     np.abs(maps).mean(0), title=f"Global importance: mean |LIME weight| ({status})")
            artifacts["global importance"] = "global_importance.png"
        return artifacts


def _work(opts: dict, x) -> float:
    """Gradient evaluations per explained sample (a forward counts a third), for the time budget (issue 11)."""
    # x3: the perturbations are built and fitted in numpy too (uncalibrated guess; see budget.py)
    return int(opts["num_samples"]) * (2 if opts.get("sanity") else 1) * (1.5 if opts.get("faithfulness") else 1)


@diagnostics.hookimpl
def register_analyzers(register):
    register(LimeExplanations)
