"""The explanation analyzers' pictures (image overlays, heat strips over positions, a global importance
chart; matplotlib imported only when drawing), their verdict colours, and ``json_round`` for the
metrics they report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..plotting import pyplot, save_png


VERDICT_COLOURS = {"trusted": "#2e7d32", "undecided": "#546e7a", "doubtful": "#ef6c00", "failed": "#c62828"}


def _overlay_tiles(gray: np.ndarray, maps: np.ndarray | None, gap: int = 2) -> np.ndarray:
    """One row of the overlay grid as an RGB strip: each sample's grey image (35% over white) under its
    map in the ``bwr`` colormap (75%), the map scaled to its own largest |value|; ``maps`` None draws the
    images alone. Composited here in numpy, so the figure draws one image per row, not one per tile."""
    from matplotlib import colormaps

    g = np.asarray(gray, np.float64)
    lo, hi = g.min(axis=(1, 2), keepdims=True), g.max(axis=(1, 2), keepdims=True)
    g = (g - lo) / np.where(hi > lo, hi - lo, 1.0)
    if maps is None:
        tiles = np.repeat(g[..., None], 3, axis=-1)
    else:
        m = np.asarray(maps, np.float64)
        lim = np.max(np.abs(m), axis=(1, 2), keepdims=True)
        colour = colormaps["bwr"]((m / np.where(lim > 0, lim, 1.0) + 1) / 2)[..., :3]
        under = 0.35 * g[..., None] + 0.65
        tiles = 0.75 * colour + 0.25 * under
    k, h, w, _ = tiles.shape
    strip = np.ones((h, k * (w + gap) - gap, 3))
    for j in range(k):
        strip[:, j * (w + gap): j * (w + gap) + w] = tiles[j]
    return strip


def save_image_overlays(path: Path, images: np.ndarray, maps: dict[str, np.ndarray],
                        verdicts: dict[str, str], max_samples: int = 8, captions: Sequence[str] = ()) -> Path:
    """A grid: the inputs on the first row, one row per method with its map over the image (each map
    scaled to its own largest |value|, blue negative, red positive), the method's verdict in its row
    label. ``maps`` are (n, H, W) signed importances."""
    plt = pyplot()
    images = np.asarray(images)
    k = min(max_samples, len(images))
    gray = images[..., 0] if images.ndim == 4 and images.shape[-1] == 1 else images
    if gray.ndim == 4:  # colour images: their luminance under the maps
        gray = gray.mean(-1)
    rows = [("input", "", _overlay_tiles(gray[:k], None))]
    rows += [(name, verdicts.get(name, ""), _overlay_tiles(gray[:k], np.asarray(m)[:k])) for name, m in maps.items()]
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.3 * k + 1.2, 1.35 * len(rows)), dpi=100, squeeze=False)
    for ax, (name, v, strip) in zip(axes[:, 0], rows):
        ax.imshow(strip, interpolation="nearest", aspect="equal")
        ax.set_ylabel(f"{name}\n{v}" if v else name, fontsize=7 if v else 8, color=VERDICT_COLOURS.get(v, "black"))
        ax.set_xticks([])
        ax.set_yticks([])
    w = gray.shape[2]
    for j, caption in enumerate(captions[:k]):
        axes[0, 0].text(j * (w + 2) + w / 2, -1, caption, ha="center", va="bottom", fontsize=7)
    return save_png(fig, path)


def save_heat_strips(path: Path, maps: dict[str, np.ndarray], verdicts: dict[str, str], mask: np.ndarray | None = None,
                     max_samples: int = 8, xlabel: str = "position", tokens: np.ndarray | None = None) -> Path:
    """One strip per sample and method over the positions (time steps or tokens); planted
    ground-truth positions are outlined; token ids are written in the cells when given."""
    plt = pyplot()
    names = list(maps)
    k = min(max_samples, len(next(iter(maps.values()))))
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 0.32 * k * len(names) + 0.9), dpi=100, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        m = np.asarray(maps[name][:k], np.float64)
        lim = float(np.max(np.abs(m))) or 1.0
        ax.imshow(m, cmap="bwr", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        if mask is not None:
            rows, cols = np.nonzero(np.asarray(mask[:k], bool))
            ax.scatter(cols, rows, s=14, facecolors="none", edgecolors="black", linewidths=0.8)
        if tokens is not None and m.shape[1] <= 40:
            for r in range(k):
                for c in range(m.shape[1]):
                    ax.text(c, r, str(int(tokens[r, c])), ha="center", va="center", fontsize=5)
        v = verdicts.get(name, "")
        ax.set_title(f"{name} — {v}" if v else name, fontsize=8, color=VERDICT_COLOURS.get(v, "black"), loc="left")
        ax.set_yticks(range(k))
        ax.set_yticklabels([str(i) for i in range(k)], fontsize=6)
        ax.tick_params(axis="x", labelsize=6)
    axes[-1, 0].set_xlabel(xlabel + ("  (circles: planted ground truth)" if mask is not None else ""), fontsize=8)
    return save_png(fig, path)


def save_global_importance(path: Path, names: Sequence[str], importance: np.ndarray, title: str, top: int = 20) -> Path:
    """Horizontal bars of mean |attribution| per feature, the largest on top."""
    plt = pyplot()
    imp = np.asarray(importance, np.float64)
    order = np.argsort(-imp)[:top]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(order) + 1.0), dpi=100)
    ax.barh(range(len(order))[::-1], imp[order], color="#1565c0")
    ax.set_yticks(range(len(order))[::-1], [names[i] for i in order], fontsize=7)
    ax.set_xlabel("mean |attribution|", fontsize=8)
    ax.set_title(title, fontsize=9)
    return save_png(fig, path)


def json_round(value: Any, digits: int = 6) -> Any:
    """Metrics for the report: floats rounded, numpy scalars converted, non-finite as None."""
    if isinstance(value, dict):
        return {str(k): json_round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_round(v, digits) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return round(v, digits) if np.isfinite(v) else None
    return value
