"""Reports with real health measure sections, for the dashboard's tests, written without running a model.

``Probe`` is a :class:`~diagnostics.HealthAnalyzer` declared here; :func:`write_report` judges the values
it measured through the host's own pipeline (:func:`diagnostics._measures.judge`, which also draws each
measure's PNG) and writes the report as the runner does: the sections' charts relocated under
``artifacts/<analyzer>/``, the JSON with sorted keys. So each section has exactly what ``diagnose``
writes, and the right answer of every outcome is known from the thresholds below.

:func:`write_schema2_report` writes a report as the release before typed health sections did.
"""

from __future__ import annotations

import json
from pathlib import Path

from diagnostics import Direction, Finding, HealthAnalyzer, Measure, Measurements, Report, Scope, Severity, Value
from diagnostics._measures import judge, thresholds_of
from diagnostics.report import ARTIFACTS, AnalyzerRecord

LOSS = {"train": [2.0, 1.2, 0.8, 0.5, 0.3], "validation": [2.1, 1.4, 1.1, 1.2, 1.5]}
#: layer -> gradient norm: passed, warning (at or above 10), error (at or above 1000)
NORMS = {"dense_1": 0.5, "dense_2": 50.0, "out": 5000.0}
ALPHA = {"dense_1": 3.0, "dense_2": 7.5}  #: inside and outside the band 2–6
COUNTS = {"0": 40.0, "1": 35.0, "2": 5.0, "3": 0.0}


class Probe(HealthAnalyzer):
    name = "probe.health"
    description = "a health analyzer declared by the dashboard's tests"
    default_thresholds = {"norm_warning": 10.0, "norm_error": 1000.0, "alpha_low": 2.0, "alpha_high": 6.0,
                          "coverage_warning": 0.8}
    measures = (
        Measure("loss", "Loss", scope=Scope.EPOCH),
        Measure("grad_norm", "Gradient norm", unit="L2 norm", scale="log", scope=Scope.LAYER,
                direction=Direction.HIGHER_IS_WORSE, warning="norm_warning", error="norm_error",
                reference="Pascanu et al. 2013"),
        Measure("alpha", "Power-law exponent alpha", scope=Scope.LAYER, direction=Direction.BAND,
                warning=("alpha_low", "alpha_high"), reference="Martin & Mahoney 2021"),
        Measure("coverage", "Classes covered", unit="fraction", direction=Direction.LOWER_IS_WORSE,
                warning="coverage_warning"),
        Measure("per_class", "Samples per class", unit="samples", scope=Scope.CLASS),
    )

    def measure(self, context):  # judged directly by write_report
        raise NotImplementedError


def measured(layer_names: dict[str, str] | None = None, norms: dict[str, float] | None = None) -> Measurements:
    """What Probe measured; ``layer_names`` renames layers (a hostile report's names), ``norms`` replaces
    the gradient norms (a second run)."""
    rename = layer_names or {}
    values = [Value("loss", y, where=str(epoch), series=series)
              for series, ys in LOSS.items() for epoch, y in enumerate(ys, start=1)]
    values += [Value("grad_norm", v, where=rename.get(k, k), n=32) for k, v in (norms or NORMS).items()]
    values += [Value("alpha", v, where=rename.get(k, k)) for k, v in ALPHA.items()]
    values.append(Value("coverage", 0.6, interval=(0.5, 0.7), n=200, note="6 of 10 classes"))
    values += [Value("per_class", v, where=k) for k, v in COUNTS.items()]
    extra = Finding("probe.health.nonfinite_outputs", Severity.ERROR, "2 of 32 outputs are NaN", where="out")
    return Measurements(values=values, findings=(extra,), metrics={"batch": 32, "details": {"seed": 0}})


def record(directory: Path, cls: type[HealthAnalyzer] = Probe, **measure_kw) -> AnalyzerRecord:
    """``cls`` judged by the host into the record the runner writes, its charts under ``directory``
    (``measure_kw``: see :func:`measured`)."""
    art = Path(directory) / ARTIFACTS / cls.name
    art.mkdir(parents=True, exist_ok=True)
    result = judge(cls, measured(**measure_kw), thresholds_of(cls, {}), art)
    return AnalyzerRecord(name=cls.name, plugin="probe", category=cls.category, status="ok", duration_s=0.1,
                          findings=result.findings, metrics=result.metrics,
                          measures=tuple(s.relocated(f"{ARTIFACTS}/{cls.name}") for s in result.measures))


def write_report(directory: Path, *extra: AnalyzerRecord, name: str = "probe_model.keras",
                 norms: dict[str, float] | None = None) -> Report:
    """A report of Probe, an analyzer without sections (``health.legacy``) and ``architecture`` (and ``extra``
    records) in ``directory``; returns it as written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    unported = AnalyzerRecord(name="health.legacy", plugin="legacy", category="health", status="ok", duration_s=0.2,
                              findings=(Finding("health.legacy.drift", Severity.WARNING, "inputs drifted by 0.4 std",
                                                where="features"),),
                              metrics={"drift": 0.4, "per_feature": [{"feature": "a", "shift": 0.4}]})
    model = AnalyzerRecord(name="architecture", plugin="core", category="model", status="ok", duration_s=0.05,
                           metrics={"layers": 3})
    report = Report(model={"name": name, "info": {"kind": "tabular", "n_params": 120, "n_layers": 3}}, data=None,
                    environment={}, plugins=({"name": "probe", "version": "0.1"},),
                    analyzers=(model, record(directory, norms=norms), unported, *extra), seed=0, fail_on="error", exit_code=1)
    (directory / "report.json").write_text(report.to_json())
    return report


def write_schema2_report(directory: Path) -> dict:
    """A report of schema version 2, as diagnose wrote it before typed health sections: free-form metrics,
    findings under the old codes, no ``measures``. Returns the JSON written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    d = {"schema_version": 2, "model": {"name": "old_cnn.h5", "info": {"kind": "image", "n_params": 1000, "n_layers": 4}},
         "data": None, "environment": {}, "plugins": [{"name": "builtin", "version": "0.9"}], "seed": 0,
         "fail_on": "error", "exit_code": 1, "timings": {"total_s": 3.0},
         "analyzers": [
             {"name": "health.gradients", "plugin": "builtin", "category": "health", "status": "ok",
              "duration_s": 1.5, "artifacts": {}, "explanations": [], "resource_notes": [], "reason": "",
              "backend": "tensorflow",
              "findings": [{"code": "gradients.vanishing", "severity": "error", "where": "conv1",
                            "message": "first/last gradient ratio 1.2e-06 below 1e-05"}],
              "metrics": {"global_grad_norm": 0.0123, "first_last_ratio": 1.2e-06,
                          "layers": [{"layer": "conv1", "grad_norm": 1e-8}, {"layer": "out", "grad_norm": 0.01}]}},
             {"name": "health.gan", "plugin": "builtin", "category": "health", "status": "skipped",
              "duration_s": 0.0, "artifacts": {}, "explanations": [], "resource_notes": [], "backend": "",
              "reason": "applies to generator models; this is a image model", "findings": [], "metrics": {}},
         ]}
    (directory / "report.json").write_text(json.dumps(d, sort_keys=True, indent=2))
    return d
