"""Built-in plugin: LIME (Ribeiro, Singh & Guestrin, 2016) for images (the ``lime`` image algorithm,
vectorised here: :func:`lime_image`, on the core's grid of ``patch`` x ``patch`` superpixels),
tables (the ``lime`` package's tabular explainer), token positions and time segments (``LimeBase``),
with every perturbation batch sent through the model in one compiled call. LIME's own check is the
local fit's R²; the rest of the trust pipeline comes from :class:`diagnostics.ExplanationAnalyzer`.
"""

from __future__ import annotations

import diagnostics
from diagnostics import ExplanationAnalyzer, Explainer, Option

#: The most time segments LIME fits for one sequence: its ridge regression holds num_samples x features
#: floats, and a 200,000-step series in segments of 2 made a 100,000-column fit (gigabytes, issue 22).
MAX_SEQUENCE_FEATURES = 1024
#: Bytes of perturbed copies built at once: the perturbations are predicted chunk by chunk.
CHUNK_BYTES = 256 * 2**20


def classifier(view):
    """``predict(x) -> (n, classes)`` as LIME expects: gray copies of the RGB images lime's image
    explainer hands over, and two columns (1 − p, p) for a one-unit output."""
    import numpy as np

    channels = view.model.inputs[0].shape[-1] if len(view.model.inputs[0].shape) == 4 else None

    def predict(x):
        x = np.asarray(x)
        if channels is not None and x.ndim == 4 and x.shape[-1] != channels:
            x = x[..., :channels]
        p = view.predict(x)
        return np.concatenate([1 - p, p], axis=1) if p.shape[1] == 1 else p

    return predict


def lime_features(predict, x, label: int, hide, feature_of, n_features: int, num_samples: int, seed: int,
                  kernel_width: float):
    """LIME on one sample whose features are groups of input positions (``feature_of`` maps each position
    of the first axis to its feature): on/off masks of varied sparsity, hidden features set to ``hide``,
    one batched prediction, a weighted ridge fit by ``LimeBase``. Returns (per-position weights, R²)."""
    import numpy as np
    from lime.lime_base import LimeBase

    rng = np.random.default_rng(seed)
    masks = rng.random((num_samples, n_features)) < rng.random((num_samples, 1))
    masks[0] = True
    rows = max(1, CHUNK_BYTES // max(1, x.nbytes))  # one chunk for every zoo model

    def perturbed(chunk):
        keep = chunk[:, feature_of]
        return np.where(keep.reshape(keep.shape + (1,) * (x.ndim - 1)), x[None], np.asarray(hide)[None])

    preds = np.concatenate([predict(perturbed(masks[s:s + rows])) for s in range(0, num_samples, rows)])
    base = LimeBase(lambda d: np.sqrt(np.exp(-(d ** 2) / kernel_width ** 2)), random_state=seed)
    _, exp, score, _ = base.explain_instance_with_data(masks.astype(float), preds, 1.0 - masks.sum(1) / n_features,
                                                       label, n_features)
    w = np.zeros(n_features)
    for f, v in exp:
        w[f] = v
    return w[feature_of], float(score)


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
    (tests/explain). The superpixels are the core's grid (``diagnostics.explain.grid_segments``), the
    one ``feature_groups`` gives every perturbation method. Returns (per-pixel weights (H, W), the
    explained class, R² of the local fit)."""
    import numpy as np

    from diagnostics import explain as E

    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    seg = E.grid_segments(img, patch)
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


class Lime(Explainer):
    name = "lime"
    work, scalable = 350.0, {"num_samples": 100}  # ~1,000 perturbed forward passes per sample
    reference = "Ribeiro, Singh & Guestrin 2016, \"Why Should I Trust You?\""
    sampling, backward = True, False
    options = (Option("num_samples", int, 1000, "perturbations per sample"),
               Option("patch", object, "auto", "superpixel side for images, or 'auto' (4 px; a 7 x 7 grid on large ones)"),
               Option("segment", int, 2, "time steps per feature for sequences"),
               Option("kernel_width", float, 0.25, "width of LIME's proximity kernel"))

    def attribute(self, view, x, targets, seed):
        import numpy as np

        from diagnostics import explain as E

        predict, o, n = classifier(view), self.opts, len(x)
        one_unit = int(np.prod(view.model.outputs[0].shape[1:])) == 1
        labels = np.ones_like(targets) if one_unit else np.asarray(targets)  # one unit: column 1 is p
        maps, fits = [], []
        if view.kind == "tabular":
            from lime.lime_tabular import LimeTabularExplainer

            lte = LimeTabularExplainer(np.asarray(view.train, np.float64), mode="classification",
                                       discretize_continuous=True, random_state=seed)
            for i in range(n):
                exp = lte.explain_instance(x[i].astype(np.float64), predict, labels=(int(labels[i]),),
                                           num_features=x.shape[1], num_samples=int(o["num_samples"]))
                row = np.zeros(x.shape[1])
                for f, v in exp.local_exp[int(labels[i])]:
                    row[f] = v
                maps.append(row)
                fits.append(float(exp.score))
        for i in range(n) if view.kind == "image" else ():
            m, _, r2 = lime_image(predict, x[i], labels[i], int(o["num_samples"]), seed + i, E.patch_side(o["patch"], x.shape[1:]),
                                  float(o["kernel_width"]))
            maps.append(m)
            fits.append(r2)
        if view.kind in ("token", "sequence"):
            segment = 1 if view.tokens else max(1, int(o["segment"]))
            if not view.tokens and -(-x.shape[1] // segment) > MAX_SEQUENCE_FEATURES:
                from diagnostics import memory

                wider = -(-x.shape[1] // MAX_SEQUENCE_FEATURES)
                memory.note(f"lime: time segments of {wider} steps instead of {segment}, so that {x.shape[1]:,} steps "
                            f"make at most {MAX_SEQUENCE_FEATURES} features")
                segment = wider
            feature_of = np.arange(x.shape[1]) // segment
            for i in range(n):
                w, r2 = lime_features(predict, x[i], int(labels[i]), view.baseline_like(x[:1])[0], feature_of,
                                      int(feature_of.max()) + 1, int(o["num_samples"]), seed + i, float(o["kernel_width"]))
                maps.append(w)
                fits.append(r2)
        self.notes["local_fit_r2"] = fits
        return np.array(maps)

    def extra_checks(self, limits):
        import numpy as np

        from diagnostics import Outcome
        from diagnostics.explainers import sample_check

        r2 = np.asarray(self.notes["local_fit_r2"], np.float64)  # one per sample explained so far
        return [sample_check("local_fit", r2, limits["local_fit_min"], self.level, reasons={
            Outcome.DOUBTFUL: "LIME's local linear fit explains little of the model (R² {value:.2f} {interval}, {n} samples)"},
            detail={"median": float(np.median(r2)), "min": float(np.min(r2))})]


class LimeExplanations(ExplanationAnalyzer):
    """LIME for images, tables, token sequences and time series, batched, with a trust verdict."""

    name = "explain.lime"
    description = "LIME for images, tables, tokens and time segments (batched compiled predictions), with a trust verdict."
    backends, requires = ("tensorflow", "torch"), ("lime",)
    reference = "Ribeiro, Singh & Guestrin 2016, \"Why Should I Trust You?\""
    explainers = (Lime,)
    defaults = {"batch_size": 1000, "baseline": "auto"}


@diagnostics.hookimpl
def register_analyzers(register):
    register(LimeExplanations)
