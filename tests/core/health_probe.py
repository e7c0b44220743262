"""A health analyzer declared by the tests (no built-in is named): its sections are judged and drawn by the
host's own pipeline (:func:`diagnostics._measures.judge`), as a run would, and placed in a report folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from diagnostics import AnalyzerRecord, Direction, HealthAnalyzer, Measure, Measurements, Report, Scope, Value
from diagnostics._measures import judge, thresholds_of


class Probe(HealthAnalyzer):
    name = "probe.health"
    description = "a health analyzer the views have never heard of"
    default_thresholds = {"norm_warning": 1.0, "norm_error": 10.0, "alpha_low": 2.0, "alpha_high": 6.0, "gap_warning": 0.1}
    measures = (
        Measure("norm", "Gradient norm", unit="L2 norm", scope=Scope.LAYER, direction=Direction.HIGHER_IS_WORSE,
                warning="norm_warning", error="norm_error", reference="Pascanu et al. 2013"),
        Measure("alpha", "Tail exponent", scope=Scope.LAYER, direction=Direction.BAND, warning=("alpha_low", "alpha_high")),
        Measure("loss", "Loss", scope=Scope.EPOCH),
        Measure("gap", "Accuracy gap", unit="fraction", direction=Direction.HIGHER_IS_WORSE, warning="gap_warning"),
    )

    def measure(self, context):  # the tests judge fixed values directly
        raise NotImplementedError


def probe_values() -> list[Value]:
    """21 layer norms (dense_10..dense_19 at or above the warning, ``big`` above the error), a band with one
    layer outside it, a loss per epoch for two series, and a model-wide gap with an interval."""
    values = [Value("norm", i / 10, where=f"dense_{i}") for i in range(20)] + [Value("norm", 40.0, where="big")]
    values += [Value("alpha", 7.0, where="attn", interval=(6.5, 7.5), n=100), Value("alpha", 4.0, where="mlp",
                                                                                     interval=(3.0, 5.0), n=100)]
    values += [Value("loss", 1 / e, where=str(e), series=s) for e in range(1, 4) for s in ("train", "validation")]
    values += [Value("gap", 0.25, interval=(0.15, 0.35), n=512, note="on 512 validation samples")]
    return values


def probe_record(out: Path, cls: type[HealthAnalyzer] = Probe, values=None) -> AnalyzerRecord:
    """``cls`` judged on ``values`` (default :func:`probe_values`), its charts drawn into
    ``out/artifacts/<name>/`` and its sections relocated there, as the runner does."""
    art = out / "artifacts" / cls.name
    art.mkdir(parents=True, exist_ok=True)
    result = judge(cls, Measurements(values=probe_values() if values is None else values), thresholds_of(cls, {}), art)
    return AnalyzerRecord(name=cls.name, plugin="probe", category="health", status="ok", duration_s=0.5,
                          findings=result.findings, metrics={},
                          measures=tuple(s.relocated(f"artifacts/{cls.name}") for s in result.measures))


def report_of(*records: AnalyzerRecord, name: str = "probe.keras") -> Report:
    report = Report(model={"name": name}, data=None, environment={}, plugins=(), analyzers=records, seed=0,
                    fail_on="error")
    return dataclasses.replace(report, exit_code=int(report.compute_exit_code()))
