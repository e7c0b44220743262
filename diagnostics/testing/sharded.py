"""A sample-sharded explanation analyzer, to show and test :mod:`diagnostics.sharding`.

``testing.smoothgrad``: SmoothGrad (Smilkov et al. 2017, *SmoothGrad: removing noise by adding
noise*) whose noise for sample *i* comes from :func:`~diagnostics.sharding.sample_rng` (seed,
analyzer, *i*), batched ``shard_unit`` samples at a time on global sample boundaries, so a 1-way and
a 4-way split compute the very same batches. Its trust checks run once, on the merged maps:
finiteness, and the stability of the global importance between the two halves of the samples.

Not a built-in: load it as a plugin (``extra_plugins=(("sharded_demo", "diagnostics.testing.sharded"),)``
through the API, or install a module that re-exports :func:`register_analyzers`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analyzer import Analyzer, Finding, Result, Severity
from .._hookspecs import hookimpl
from ..sharding import SampleSharded, sample_rng

DEFAULTS = {"samples": 64, "noise_samples": 8, "noise": 0.15}


class SmoothGradSharded(SampleSharded, Analyzer):
    name = "testing.smoothgrad"
    category = "explanation"
    description = "SmoothGrad with per-sample noise, sharded over samples (a demonstration of diagnostics.sharding)"
    model_kinds = frozenset({"image", "tabular", "sequence"})
    data = "x"
    reference = "Smilkov et al. (2017), SmoothGrad: removing noise by adding noise"
    shard_unit = 16

    @staticmethod
    def _opts(options: dict[str, Any]) -> dict[str, Any]:
        return {k: type(v)(options.get(k, v)) for k, v in DEFAULTS.items()}

    def sample_count(self, options, data) -> int:
        return min(self._opts(options)["samples"], len(data.x))

    def run_shard(self, context, indices: np.ndarray) -> dict[str, np.ndarray]:
        from .. import backends
        from ..explain import predict_batched

        opts = self._opts(context.options)
        x_all = np.asarray(context.data.x, np.float32)
        k = opts["noise_samples"]
        unit = self.shard_unit
        grads_of = backends.get(context.backend).input_gradients
        maps = np.zeros((len(indices),) + x_all.shape[1:], np.float32)
        targets = np.zeros(len(indices), np.int64)
        # Batches of `unit` samples on global boundaries (padded to one shape): the same batches whatever the split.
        for start in range(0, len(indices), unit):
            idx = indices[start:start + unit]
            x = x_all[idx]
            pad = unit - len(idx)
            if pad:
                x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
            preds = predict_batched(context.model, x, unit)
            t = np.argmax(preds, axis=1) if preds.shape[1] > 1 else np.zeros(len(preds), np.int64)
            span = (x.reshape(unit, -1).max(1) - x.reshape(unit, -1).min(1)).reshape((unit,) + (1,) * (x.ndim - 1))
            sigma = opts["noise"] * np.where(span > 0, span, 1.0)
            rows = [*idx, *([idx[-1]] * pad)]
            eps = np.stack([sample_rng(context.seed, self.name, int(i)).standard_normal((k,) + x.shape[1:]).astype(np.float32)
                            for i in rows])  # (unit, k, ...)
            noisy = (x[:, None] + sigma[:, None] * eps).reshape((unit * k,) + x.shape[1:]).astype(np.float32)
            _, g = grads_of(context.model, noisy, np.repeat(t, k), batch_size=unit * k)
            maps[start:start + len(idx)] = np.asarray(g, np.float64).reshape((unit, k) + x.shape[1:]).mean(1)[: len(idx)]
            targets[start:start + len(idx)] = t[: len(idx)]
            context.progress(start + len(idx), len(indices), "smoothgrad")
        return {"maps": maps, "targets": targets, "indices": indices.astype(np.int64)}

    def finish(self, context, merged: dict[str, np.ndarray]) -> Result:
        from ..explain import rank_correlation

        maps = merged["maps"]
        n = len(maps)
        finite = bool(np.all(np.isfinite(maps)))
        np.save(context.artifact_dir / "maps.npy", maps)
        importance = np.abs(maps.reshape(n, -1)).mean(0)
        half = n // 2
        stability = None
        if half >= 2:
            a = np.abs(maps[:half].reshape(half, -1)).mean(0)
            b = np.abs(maps[half:].reshape(n - half, -1)).mean(0)
            stability = float(rank_correlation(a[None], b[None])[0])
        findings = []
        if not finite:
            findings.append(Finding("testing.smoothgrad.nonfinite", Severity.ERROR, "some SmoothGrad maps are NaN or Inf"))
        return Result(findings=findings, metrics={
            "samples": n, "indices_in_order": bool(np.all(np.diff(merged["indices"]) > 0)),
            "targets": [int(t) for t in merged["targets"]], "finite": finite, "half_stability": stability,
            "importance_top": [int(i) for i in np.argsort(-importance)[:5]],
            "map_sum": float(np.asarray(maps, np.float64).sum()),
        }, artifacts={"maps": "maps.npy"})


@hookimpl
def register_analyzers(register):
    register(SmoothGradSharded)
