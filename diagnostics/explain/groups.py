"""The features perturbation methods move together: superpixel grids for images, time steps or tokens
for sequences, columns for tables, and the side of the image blocks (``patch``). LIME's image algorithm
(diagnostics_plugins.explain_lime) takes its superpixels from ``grid_segments`` too."""

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
