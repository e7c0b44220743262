"""A second analyzer of this package: one attribution method added to the suite through the
``Explainer`` type. It writes no check of its own: completeness does not apply (the method has no
axiom), and randomisation, stability (it is exact, so none), faithfulness, ground truth, agreement,
the verdict, the findings and the pictures all come from ``diagnostics.ExplanationAnalyzer``.

Leave-one-out (Zeiler & Fergus, 2014, occlusion with a one-feature window): the attribution of a
feature is how much the explained output drops when that feature alone is set to the baseline.
"""

from __future__ import annotations

from diagnostics import ExplanationAnalyzer, Explainer


class LeaveOneOut(Explainer):
    name = "leave_one_out"
    reference = "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks (occlusion)"

    def attribute(self, view, x, targets, seed):
        import numpy as np

        feats = view.feature_shape(x)
        count = int(np.prod(feats))
        base = view.baseline_like(x)
        # one copy per feature, that feature at the baseline (channels / the rest of the sample move together)
        hide = np.eye(count, dtype=bool).reshape((count,) + feats + (1,) * (x.ndim - 1 - len(feats)))
        out = np.zeros((len(x), count))
        full = view.forward(x, targets)
        for i in range(len(x)):
            copies = np.where(hide, base[i][None], x[i][None])
            out[i] = full[i] - view.forward(copies, np.full(count, targets[i]))
        return out.reshape((len(x),) + feats)


class LeaveOneOutExplanations(ExplanationAnalyzer):
    """Leave-one-out attributions with a trust verdict from the host's pipeline."""

    name = "explain.leave_one_out"
    description = "Leave-one-out attributions (one feature at the baseline at a time), with a trust verdict."
    backends = ("tensorflow", "torch")
    reference = LeaveOneOut.reference
    explainers = (LeaveOneOut,)
