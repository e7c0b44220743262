"""A throwaway health analyzer for the tests of what reads measure sections (the sweep index, the Sweep
page, MLflow, JUnit): it measures what the model's sidecar history states, so every value has a known
answer, and it declares its measures as any third party would. No reader names it: it appears in each
through its report's measure sections alone.

Installed with ``tests.core.conftest.install_plugin(root, "history_probe", SOURCE)``.
"""

from pathlib import Path

SOURCE = Path(__file__).read_text(encoding="utf-8").split("# -- the plugin --\n", 1)[1]


def probe_sweep(d: Path, epochs=(6, 16, 25)):
    """`diagnose sweep` of the zoo checkpoints of ``epochs`` into ``d/sweep`` with only this analyzer,
    installed under ``d/site``: (the completed process, the sweep folder, the environment that installs it)."""
    from tests.conftest import CHECKPOINTS, run_diagnose
    from tests.core.conftest import install_plugin

    env = install_plugin(d / "site", "history_probe", SOURCE)
    picked = [next(CHECKPOINTS.glob(f"*.{e:02d}-*.keras")) for e in epochs]
    proc = run_diagnose("sweep", *picked, "--only", "probe.history", "--out", d / "sweep", env=env, timeout=600)
    return proc, d / "sweep", env

# -- the plugin --
import diagnostics  # noqa: E402
from diagnostics import Direction, HealthAnalyzer, Measure, Measurements, Scope, Value  # noqa: E402


class HistoryProbe(HealthAnalyzer):
    name = "probe.history"
    description = "the last epoch's gaps, the loss per epoch and each kernel's norm (a test analyzer)"
    default_thresholds = {"accuracy_gap_warning": 0.1, "accuracy_gap_error": 0.25,
                          "loss_gap_warning": 0.5, "loss_gap_error": 1.0}
    measures = (
        Measure("accuracy_gap", "Train − validation accuracy", unit="fraction", direction=Direction.HIGHER_IS_WORSE,
                warning="accuracy_gap_warning", error="accuracy_gap_error", format=".3f",
                reference="a test threshold", advice="stop earlier"),
        Measure("loss_gap", "Validation − train loss", unit="nats", direction=Direction.HIGHER_IS_WORSE,
                warning="loss_gap_warning", error="loss_gap_error", format=".3f"),
        Measure("loss", "Loss per epoch", scope=Scope.EPOCH),
        Measure("kernel_norm", "Kernel norm", unit="L2 norm", scale="log", scope=Scope.LAYER),
    )

    def measure(self, context):
        import numpy as np

        h = context.history
        if not h or not h.get("val_loss"):
            return Measurements.skip("the model has no training history with validation")
        values = [Value("accuracy_gap", h["accuracy"][-1] - h["val_accuracy"][-1]),
                  Value("loss_gap", h["val_loss"][-1] - h["loss"][-1])]
        for series, key in (("train", "loss"), ("validation", "val_loss")):
            values += [Value("loss", v, where=str(i), series=series) for i, v in enumerate(h[key], 1)]
        for layer in context.model.layers:
            kernel = getattr(layer, "kernel", None)
            if kernel is not None:
                values.append(Value("kernel_norm", float(np.linalg.norm(np.asarray(kernel))), where=layer.name))
        return Measurements(values=values)


@diagnostics.hookimpl
def register_analyzers(register):
    register(HistoryProbe)
