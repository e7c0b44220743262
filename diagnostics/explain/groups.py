"""The features perturbation methods move together: superpixel grids for images, time steps or tokens
for sequences, columns for tables, and the side of the image blocks (``patch``). LIME's vectorised image
algorithm (Ribeiro, Singh & Guestrin, 2016), on the grid segments, is here until it moves into its plugin
(diagnostics_plugins.explain_lime)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

def grid_segments(image, patch: int = 4):
    """Superpixels for small images: a regular grid of ``patch`` x ``patch`` cells."""
    h, w = image.shape[:2]
    rows = (np.arange(h) // patch)[:, None]
    cols = (np.arange(w) // patch)[None, :]
    return (rows * ((w + patch - 1) // patch) + cols).astype(np.int64)


def patch_side(patch: Any, shape: Sequence[int]) -> int:
    """The side of the pixel blocks perturbation methods move for an (H, W, ...) input: ``patch`` when it
    is a number; for ``"auto"``, 4 px on small images (up to 55 px) and a grid of about 7 x 7 blocks on
    larger ones (``max(4, min(H, W) // 7)``), so that a 224 x 224 image costs 49 perturbations, not 3,136."""
    if patch == "auto":
        return max(4, min(int(shape[0]), int(shape[1])) // 7) if len(shape) >= 2 else 4
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or int(patch) < 1:
        raise ValueError(f"option 'patch' takes a positive integer or 'auto', got {patch!r}")
    return int(patch)


def feature_groups(shape: Sequence[int], patch: int = 4) -> np.ndarray:
    """One group id per input element, for perturbation methods that move features together: ``patch`` x
    ``patch`` pixel blocks (all channels) for an (H, W, C) image, one time step or token for a 2-D
    sequence, one column for a table. Shape ``shape``."""
    shape = tuple(shape)
    if len(shape) == 3:
        return np.broadcast_to(grid_segments(np.empty(shape[:2]), patch)[:, :, None], shape).copy()
    if len(shape) == 2:
        return np.broadcast_to(np.arange(shape[0])[:, None], shape).copy()
    return np.arange(int(np.prod(shape))).reshape(shape)


def weighted_ridge(X, y, w, alpha: float = 1.0):
    """Ridge regression with an intercept and sample weights, as ``sklearn.linear_model.Ridge``
    (which LIME uses, alpha=1): returns (coefficients, intercept, weighted R²)."""
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
