"""Token sequences as counts: what the data analyzers compare of a token model's inputs (drift between the splits,
a token that is the label), so both read one view of the ids."""

from __future__ import annotations

from typing import Any


def token_counts(xt: Any, xv: Any, top: int = 50) -> tuple[tuple[Any, Any], list[str], dict[str, Any]]:
    """Per-sequence counts of the ``top`` most frequent token ids of the training split, of all other ids seen
    in training, of ids never seen in training, and (when id 0 occurs, taken as padding and left out of the id
    columns) of the non-zero ids (the length before padding): one column each, named ``token id 17``, ``other ids``, ``ids never seen in training``,
    ``length (non-zero ids)``. Per sequence, because the tokens of one sequence are not independent draws."""
    import numpy as np

    it, iv = np.asarray(xt).astype(np.int64), np.asarray(xv).astype(np.int64)
    it, iv = it.reshape(len(it), -1), iv.reshape(len(iv), -1)
    ids, freq = np.unique(it, return_counts=True)
    pad = bool((it == 0).any() or (iv == 0).any())
    # id 0 is padding when it occurs: the length column counts it, no id column does
    order = [k for k in ids[np.argsort(-freq, kind="stable")] if not (pad and k == 0)]
    kept = np.asarray(order[:top], np.int64)

    def columns(x):
        cols = [(x == k).sum(axis=1) for k in kept]
        seen = np.isin(x, ids)
        cols.append((seen & ~np.isin(x, kept) & ((x != 0) if pad else True)).sum(axis=1))
        cols.append((~seen).sum(axis=1))
        if pad:
            cols.append((x != 0).sum(axis=1))
        return np.stack(cols, axis=1).astype(np.float64)

    names = [f"token id {int(k)}" for k in kept] + ["other ids", "ids never seen in training"]
    names += ["length (non-zero ids)"] if pad else []
    unseen = float((~np.isin(iv, ids)).mean())
    return (columns(it), columns(iv)), names, {"vocabulary_in_training": int(len(ids)), "compared": int(len(kept)),
                                                "unseen_share_in_validation": unseen}
