"""The Explainer contract: every registered Explainer, on every input kind it declares (image, sequence,
token, tabular), returns finite floats of the float space's shape (or one value per feature), and
the same attributions for the same seed. Each backend runs in its own process (Keras picks its
backend once per process): the gradient family, LIME and SHAP under both, captum under torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from diagnostics import ExplanationAnalyzer, ModelView
    from diagnostics._plugin_manager import PluginHost
    from diagnostics.testing import tiny_case

    backend = sys.argv[1]
    # small settings, so the whole contract takes seconds: the contract is about shapes and seeds
    small = {"steps": 8, "max_steps": 8, "eg_samples": 8, "eg_max_samples": 8, "smoothgrad_samples": 4,
             "num_samples": 64, "nsamples": 16, "max_nsamples": 16, "shapley_samples": 2, "nt_samples": 2, "nt_steps": 4}
    out = []
    for name, entry in sorted(PluginHost().load().analyzers.items()):
        cls = entry.cls
        if not (isinstance(cls, type) and issubclass(cls, ExplanationAnalyzer)) or backend not in cls.backends:
            continue
        for ex_cls in cls.explainers:
            for kind in sorted(ex_cls.input_kinds & set(cls.model_kinds)):
                case = tiny_case(kind)
                data = case.data
                x = np.asarray(data.x_val[:3])
                train = np.asarray(data.x_train)
                base = (np.zeros(x.shape[1:], x.dtype) if kind != "tabular" else train.mean(0).astype(x.dtype))
                view = ModelView(case.model, kind, batch_size=16, baseline=base, background=train[:8], train=train)
                ex = ex_cls(**small)
                row = {"analyzer": name, "method": ex_cls.name, "kind": kind}
                why = ex.unavailable(view, x)
                if why:
                    out.append({**row, "unavailable": why})
                    continue
                p = view.predict(x)
                t = p.argmax(1) if p.shape[1] > 1 else np.zeros(len(x), np.int64)
                a = np.asarray(ex.attribute(view, x, t, 0))
                b = np.asarray(ex.attribute(view, x, t, 0))
                shapes = [list(view.float_space(x).shape), [len(x), *view.feature_shape(x)]]
                out.append({**row, "shape": list(a.shape), "allowed": shapes, "dtype": a.dtype.kind,
                            "finite": bool(np.isfinite(a).all()), "same_seed_same_result": bool(np.allclose(a, b, rtol=1e-6, atol=1e-9)),
                            "nonzero": bool(np.abs(a).sum() > 0)})
    print(json.dumps(out))
""")

EXPECTED = {
    "tensorflow": {"explain.gradients": {"integrated_gradients", "saliency", "smoothgrad", "input_x_gradient",
                                         "expected_gradients"}, "explain.lime": {"lime"},
                   "explain.shap": {"gradient_shap", "permutation_shap", "kernel_shap", "partition_shap"}},
    "torch": {"explain.captum": {"integrated_gradients", "occlusion", "feature_ablation", "shapley_sampling", "gradcam",
                                 "noise_tunnel"},
              "explain.shap": {"gradient_shap", "permutation_shap", "kernel_shap", "partition_shap"}},
}


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("torch", marks=pytest.mark.slow)])
def test_every_explainer_keeps_the_contract_on_every_input_kind_it_declares(backend):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, backend], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "KERAS_BACKEND": backend})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    seen: dict[str, set[str]] = {}
    for r in rows:
        seen.setdefault(r["analyzer"], set()).add(r["method"])
        if "unavailable" in r:
            assert (r["method"], r["kind"]) == ("gradcam", "image") and "convolution" in r["unavailable"], r
            continue
        assert r["shape"] in r["allowed"], r
        assert r["dtype"] == "f" and r["finite"] and r["same_seed_same_result"] and r["nonzero"], r
    # the ones run per backend here, with the running backends in their metadata (tensorflow gets the gradient
    # family and LIME, which also run under torch, and SHAP, which prefers torch; torch gets captum and SHAP)
    for analyzer, methods in EXPECTED[backend].items():
        assert seen.get(analyzer) == methods, (analyzer, seen.get(analyzer))
    kinds = {(r["analyzer"], r["method"]): set() for r in rows}
    for r in rows:
        kinds[(r["analyzer"], r["method"])].add(r["kind"])
    assert kinds[("explain.lime", "lime") if backend == "tensorflow" else ("explain.captum", "occlusion")] == {
        "image", "sequence", "tabular", "token"}
