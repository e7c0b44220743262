"""``diagnose compare`` (issue 26): known answers on reports built here, the real CLI's exit codes and table
lines, and the zoo: every planted-fault twin against its healthy model regresses and names its fault, and a
healthy model against a copy retrained with another seed does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from diagnostics import codes
from diagnostics._compare import Change, Comparison, Item, Kind, compare, table
from diagnostics._exitcodes import ExitCode
from diagnostics._measures import Judged, MeasureSection
from diagnostics._verdicts import Check, MethodExplanation
from diagnostics.analyzer import Finding, Severity
from diagnostics.report import AnalyzerRecord, Report
from tests.conftest import run_diagnose

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "models" / "artifacts"


# -- reports built here -------------------------------------------------------------------------------------
def section(values, direction="higher_is_worse", code="health.units.dead_fraction", scope="layer"):
    return MeasureSection(measure=code.rpartition(".")[2], code=code, title="Dead units", scope=scope,
                          direction=direction, thresholds={"warning": 0.3, "error": 0.5}, values=tuple(values),
                          format=".2f")


def record(name="health.units", status="ok", findings=(), measures=(), explanations=(), reason=""):
    return AnalyzerRecord(name=name, plugin="builtin", category="health", status=status, reason=reason,
                          findings=tuple(findings), measures=tuple(measures), explanations=tuple(explanations))


def report(*records, name="m.keras", seed=0):
    return Report(model={"name": name, "sha256": "0" * 64}, data={"source": "dataset d (seed 0)"}, environment={},
                  plugins=(), analyzers=tuple(records), seed=seed, fail_on="error")


def only(comparison: Comparison, kind: Kind) -> list[Item]:
    return [i for i in comparison.items if i.kind is kind]


def test_overlapping_intervals_are_unchanged_however_far_apart_the_values():
    a = report(record(measures=[section([Judged(0.10, "conv1", interval=(0.02, 0.30))])]))
    b = report(record(measures=[section([Judged(0.25, "conv1", interval=(0.12, 0.40))])]))
    [item] = only(compare(a, b), Kind.MEASURE)
    assert (item.change, item.severity, item.note) == (Change.UNCHANGED, None, "the 95% intervals overlap")


@pytest.mark.parametrize("direction, candidate, outcome, change, note", [
    ("higher_is_worse", (0.35, (0.31, 0.40)), "doubtful", Change.REGRESSED,
     "the 95% intervals do not overlap (passed -> doubtful)"),
    ("higher_is_worse", (0.25, (0.21, 0.28)), "passed", Change.CHANGED,
     "the 95% intervals do not overlap, to the worse side, within the thresholds"),
    ("higher_is_worse", (0.01, (0.00, 0.05)), "passed", Change.IMPROVED, "the 95% intervals do not overlap"),
    ("lower_is_worse", (0.35, (0.31, 0.40)), "passed", Change.IMPROVED, "the 95% intervals do not overlap"),
    ("lower_is_worse", (0.01, (0.00, 0.05)), "failed", Change.REGRESSED,
     "the 95% intervals do not overlap (passed -> failed)"),
])
def test_disjoint_intervals_regress_or_improve_by_the_measures_direction(direction, candidate, outcome, change, note):
    """Disjoint intervals: the value moved. To the better side it improved; to the worse side it regressed when
    the candidate no longer passes, and merely changed while both pass (an interval is one model's sampling
    noise, not the spread between two trainings)."""
    a = report(record(measures=[section([Judged(0.10, "conv1", interval=(0.07, 0.13))], direction)]))
    b = report(record(measures=[section([Judged(candidate[0], "conv1", interval=candidate[1], outcome=outcome)],
                                        direction)]))
    [item] = only(compare(a, b), Kind.MEASURE)
    assert (item.change, item.note) == (change, note)
    assert item.severity is (Severity.WARNING if change is Change.REGRESSED else None)
    assert (item.baseline_interval, item.candidate_interval) == ((0.07, 0.13), candidate[1])


def test_disjoint_intervals_of_a_measure_without_thresholds_regress_on_the_worse_side():
    bare = lambda v, i: MeasureSection(measure="accuracy", code="probe.accuracy", title="Accuracy",  # noqa: E731
                                       scope="class", direction="lower_is_worse", values=(Judged(v, "cat", interval=i),))
    [item] = only(compare(report(record(measures=[bare(0.95, (0.93, 0.97))])),
                          report(record(measures=[bare(0.85, (0.82, 0.88))]))), Kind.MEASURE)
    assert (item.change, item.severity, item.note) == (Change.REGRESSED, Severity.WARNING,
                                                       "the 95% intervals do not overlap")


def test_without_intervals_a_value_changes_only_when_it_crosses_a_threshold():
    a = report(record(measures=[section([Judged(0.0, "conv1"), Judged(0.1, "conv2")])]))
    b = report(record(measures=[section([Judged(0.2, "conv1"), Judged(0.9, "conv2", outcome="failed", threshold=0.5)])]))
    items = {i.where: i for i in only(compare(a, b), Kind.MEASURE)}
    assert items["conv1"].change is Change.UNCHANGED  # 0 -> 0.2: moved, crossed nothing
    assert items["conv2"].change is Change.REGRESSED
    assert items["conv2"].note == "crossed a threshold: passed -> failed"


def test_neutral_measures_are_not_compared_and_a_one_sided_value_is_not_comparable():
    neutral = section([Judged(7.8, "conv1")], direction="neutral", code="weights.norm")
    a = report(record(measures=[neutral, section([Judged(0.0, "conv1")])]))
    b = report(record(measures=[section([Judged(0.0, "conv1"), Judged(0.0, "conv9")])]))
    items = {i.where: i for i in only(compare(a, b), Kind.MEASURE)}
    assert sorted(items) == ["conv1", "conv9"]
    assert (items["conv9"].change, items["conv9"].note) == (Change.NOT_COMPARABLE, "no value in the baseline")


def test_a_new_error_finding_regresses_at_its_severity_and_a_vanished_one_improves():
    dead = Finding("health.units.dead_fraction", Severity.ERROR, "94% dead", where="conv2")
    gone = Finding("health.units.saturated_fraction", Severity.WARNING, "saturated", where="dense")
    comparison = compare(report(record(findings=[gone])), report(record(findings=[dead])))
    items = {i.name: i for i in only(comparison, Kind.FINDING)}
    assert (items[dead.code].change, items[dead.code].severity) == (Change.REGRESSED, Severity.ERROR)
    assert items[dead.code].note == "appeared: 94% dead"
    assert (items[gone.code].change, items[gone.code].severity) == (Change.IMPROVED, None)
    assert comparison.with_fail_on("error").exit_code == ExitCode.FINDINGS
    assert [i.name for i in comparison.regressions("error")] == [dead.code]


def test_a_finding_that_rises_in_severity_regresses():
    a = report(record(findings=[Finding("health.gradients.grad_norm", Severity.WARNING, "large")]))
    b = report(record(findings=[Finding("health.gradients.grad_norm", Severity.ERROR, "huge")]))
    [item] = only(compare(a, b), Kind.FINDING)
    assert (item.change, item.severity, item.baseline, item.candidate) == (Change.REGRESSED, Severity.ERROR, "warning", "error")
    assert item.note == "rose from warning: huge"


def test_ok_to_skipped_is_not_comparable_and_compares_nothing_inside():
    a = report(record(findings=[Finding("health.units.dead_fraction", Severity.ERROR, "dead")],
                      measures=[section([Judged(0.9, "conv1", outcome="failed")])]))
    b = report(record(status="skipped", reason="applies to image models"))
    comparison = compare(a, b)
    assert [(i.kind, i.change) for i in comparison.items] == [(Kind.ANALYZER, Change.NOT_COMPARABLE)]
    assert comparison.items[0].note == "ok -> skipped: applies to image models; nothing in it is compared"
    assert comparison.regressions("info") == [] and comparison.exit_code == ExitCode.OK


def _method(verdict, checks=(), method="saliency", indices=(1, 2, 3), artifacts=None):
    return MethodExplanation(method=method, verdict=verdict, checks=tuple(checks), sample_indices=indices,
                             artifacts=artifacts or {})


def test_a_worse_verdict_regresses_and_its_finding_is_one_item_that_rose():
    check = lambda value, outcome: Check("randomisation", value, 0.3, outcome, higher_is_better=False)  # noqa: E731
    a = report(record("explain.gradients", explanations=[_method("doubtful", [check(0.4, "doubtful")])],
                      findings=[Finding("explain.gradients.saliency.doubtful", Severity.INFO, "doubtful", "saliency")]))
    b = report(record("explain.gradients", explanations=[_method("failed", [check(0.7, "failed")])],
                      findings=[Finding("explain.gradients.saliency.failed", Severity.WARNING, "failed", "saliency")]))
    comparison = compare(a, b)
    [verdict] = only(comparison, Kind.VERDICT)
    assert (verdict.change, verdict.severity, verdict.baseline, verdict.candidate) == \
        (Change.REGRESSED, Severity.WARNING, "doubtful", "failed")
    [check_item] = only(comparison, Kind.CHECK)
    assert (check_item.name, check_item.change) == ("saliency/randomisation", Change.REGRESSED)
    [finding] = only(comparison, Kind.FINDING)
    assert (finding.name, finding.change, finding.severity) == ("explain.gradients.saliency.failed", Change.REGRESSED,
                                                               Severity.WARNING)


def test_checks_with_overlapping_intervals_are_unchanged_even_when_their_outcome_flips():
    a_check = Check("stability", 0.81, 0.8, "passed")
    b_check = Check("stability", 0.79, 0.8, "doubtful")
    object.__setattr__(a_check, "interval", (0.74, 0.88))
    object.__setattr__(b_check, "interval", (0.72, 0.86))
    comparison = compare(report(record("explain.gradients", explanations=[_method("trusted", [a_check])])),
                         report(record("explain.gradients", explanations=[_method("trusted", [b_check])])))
    [item] = only(comparison, Kind.CHECK)
    assert (item.change, item.note) == (Change.UNCHANGED, "the 95% intervals overlap")


def test_attribution_shift_is_the_rank_correlation_on_the_same_samples(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 8, 8))
    dirs = []
    for name, m in (("a", maps), ("same", maps * 2 + 1), ("reversed", -maps)):
        d = tmp_path / name
        (d / "artifacts").mkdir(parents=True)
        np.save(d / "artifacts" / "saliency.map.npy", m)
        r = report(record("explain.gradients", explanations=[
            _method("trusted", artifacts={"map": "artifacts/saliency.map.npy"})]))
        (d / "report.json").write_text(r.to_json())
        dirs.append(Report.load(d))
    same = [i for i in compare(dirs[0], dirs[1]).items if i.kind is Kind.ATTRIBUTION][0]
    assert (same.change, same.candidate) == (Change.UNCHANGED, pytest.approx(1.0))
    moved = [i for i in compare(dirs[0], dirs[2]).items if i.kind is Kind.ATTRIBUTION][0]
    assert (moved.change, moved.candidate, moved.severity) == (Change.CHANGED, pytest.approx(-1.0), None)
    other = report(record("explain.gradients", explanations=[
        _method("trusted", indices=(4, 5, 6), artifacts={"map": "artifacts/saliency.map.npy"})]))
    object.__setattr__(other, "directory", str(tmp_path / "a"))
    item = [i for i in compare(dirs[0], other).items if i.kind is Kind.ATTRIBUTION][0]
    assert item.change is Change.NOT_COMPARABLE
    assert item.note.startswith("fewer than 2 samples explained on both sides (3 and 3 explained, 0 in common)")
    # a run that explained more rows (a method explains until its checks decide): compared on the shared ones,
    # matched by row index, not by position
    more = tmp_path / "more"
    (more / "artifacts").mkdir(parents=True)
    np.save(more / "artifacts" / "saliency.map.npy", np.concatenate([maps[2:], rng.normal(size=(1, 8, 8)), maps[:2]]))
    (more / "report.json").write_text(report(record("explain.gradients", explanations=[
        _method("trusted", indices=(3, 9, 1, 2), artifacts={"map": "artifacts/saliency.map.npy"})])).to_json())
    item = [i for i in compare(dirs[0], Report.load(more)).items if i.kind is Kind.ATTRIBUTION][0]
    assert (item.change, item.candidate) == (Change.UNCHANGED, pytest.approx(1.0))
    assert item.note == "rank correlation of the two maps over 3 samples"


def test_the_comparison_round_trips_through_json_with_sorted_keys():
    a = report(record(measures=[section([Judged(0.1, "conv1", interval=(0.0, 0.2))])]))
    b = report(record(findings=[Finding("health.units.dead_fraction", Severity.ERROR, "dead", "conv1")],
                      measures=[section([Judged(0.9, "conv1", interval=(0.8, 1.0), outcome="failed")])]))
    comparison = compare(a, b)
    text = comparison.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    assert Comparison.from_dict(json.loads(text)) == comparison
    assert json.loads(text)["counts"] == {"regressed": 2, "improved": 0, "unchanged": 1, "changed": 0,
                                          "not_comparable": 0}
    with pytest.raises(ValueError, match="compare report schema 99 is not supported"):
        Comparison.from_dict({**json.loads(text), "schema": 99})


def test_the_table_escapes_names_from_the_file():
    a = report(record(findings=[]))
    b = report(record(findings=[Finding("health.units.dead_fraction", Severity.ERROR, "x", where="conv\x1b[8m\n::x")]))
    text = table(compare(a, b))
    assert "\x1b" not in text and "\nverdict" not in text
    assert "conv\\x1b[8m\\n::x" in text


# -- the real CLI on report directories ------------------------------------------------------------------
def _write(tmp_path: Path, name: str, rep: Report) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "report.json").write_text(rep.to_json())
    return d


def test_cli_exit_codes_and_table_lines_on_report_directories(tmp_path):
    healthy = report(record(measures=[section([Judged(0.0, "conv1")])]))
    dead = report(record(findings=[Finding("health.units.dead_fraction", Severity.ERROR, "94% dead", where="conv1")],
                         measures=[section([Judged(0.94, "conv1", outcome="failed", threshold=0.5)])]))
    a, b = _write(tmp_path, "a", healthy), _write(tmp_path, "b", dead)
    out = tmp_path / "out"
    start = time.perf_counter()
    proc = run_diagnose("compare", a, b, "--out", out, timeout=120)
    wall = time.perf_counter() - start
    assert proc.returncode == ExitCode.FINDINGS, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.split() == ["regressed", "(error)", "finding", "health.units.dead_fraction", "[conv1]", "-", "error"]
               for line in lines), proc.stdout
    assert any(line.split() == ["regressed", "(warning)", "measure", "health.units.dead_fraction", "[conv1]", "0.00",
                                "0.94"] for line in lines), proc.stdout
    assert lines[-1] == "compare: 2 regressed at or above warning -> exit 1"
    assert Comparison.load(out).exit_code == 1 and (out / "compare.html").is_file()
    # the other way round: an improvement, exit 0; --fail-on never: exit 0 even with regressions
    assert run_diagnose("compare", b, a, "--out", out, timeout=120).returncode == ExitCode.OK
    assert run_diagnose("compare", a, b, "--out", out, "--fail-on", "never", timeout=120).returncode == ExitCode.OK
    # a measure regression alone is a warning: it does not fail --fail-on error
    warn_only = report(record(measures=[section([Judged(0.94, "conv1", outcome="failed", threshold=0.5)])]))
    c = _write(tmp_path, "c", warn_only)
    assert run_diagnose("compare", a, c, "--out", out, "--fail-on", "error", timeout=120).returncode == ExitCode.OK
    # generous ceiling for a loaded machine; the figure is in the report
    assert wall < 30, wall


def test_comparing_report_directories_imports_no_framework(tmp_path):
    a = _write(tmp_path, "a", report(record()))
    b = _write(tmp_path, "b", report(record()))
    script = ("import sys\nfrom diagnostics._cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
              "    code = e.code\nprint('frameworks', sorted({m.split('.')[0] for m in sys.modules} & "
              "{'keras', 'tensorflow', 'torch', 'jax'}), 'exit', code)")
    proc = subprocess.run([sys.executable, "-c", script, "compare", str(a), str(b), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.splitlines()[-1] == "frameworks [] exit 0", proc.stdout + proc.stderr


def test_cli_refuses_what_is_neither_a_report_nor_a_model(tmp_path):
    a = _write(tmp_path, "a", report(record()))
    proc = run_diagnose("compare", a, tmp_path / "missing", "--out", tmp_path / "out", timeout=120)
    assert proc.returncode == ExitCode.USAGE
    assert proc.stderr.strip().splitlines()[-1] == (
        f"diagnose: the candidate {str(tmp_path / 'missing')!r} is neither a report directory (with report.json) "
        f"nor a model file")


def test_cli_outputs_junit_and_markdown(tmp_path):
    a = _write(tmp_path, "a", report(record()))
    b = _write(tmp_path, "b", report(record(findings=[Finding("health.units.dead_fraction", Severity.ERROR, "dead")])))
    proc = run_diagnose("compare", a, b, "--out", tmp_path / "out", "--junit-xml", tmp_path / "j.xml",
                        "--summary-md", tmp_path / "s.md", timeout=120)
    assert proc.returncode == ExitCode.FINDINGS, proc.stderr
    import xml.etree.ElementTree as ET

    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "1", "0")
    [failure] = suite.iter("failure")
    assert failure.get("type") == "error" and failure.get("message") == "regressed (error): - -> error"
    md = (tmp_path / "s.md").read_text()
    assert md.startswith("### diagnose compare `m.keras` → `m.keras`: ❌ 1 regressed")


# -- the dashboard's Compare page (AppTest reads the table cells the browser draws on a canvas) -----------
def test_dashboard_compare_page_reads_the_comparison(open_app, tmp_path):
    _write(tmp_path, "a", report(record(), record("health.gradients")))
    _write(tmp_path, "b", report(record(findings=[Finding("health.units.dead_fraction", Severity.ERROR, "94% dead",
                                                          "conv2")]),
                                 record("health.gradients", status="skipped", reason="no labels")))
    at = open_app(tmp_path, "compare")
    assert (at.selectbox(key="cmp-a").value, at.selectbox(key="cmp-b").value) == ("a", "b")
    gate = next(e.value for e in at.dataframe if "why" in e.value.columns)
    assert gate[["change", "severity", "kind", "item"]].to_dict("records") == [
        {"change": "regressed", "severity": "error", "kind": "finding", "item": "health.units.dead_fraction [conv2]"},
        {"change": "not comparable", "severity": "", "kind": "analyzer", "item": "health.gradients: status"}]
    verdicts = next(e.value for e in at.dataframe if "status A" in e.value.columns).set_index("analyzer")
    assert verdicts.loc["health.gradients", "change"] == "not comparable"  # ok -> skipped is not "worse"
    assert verdicts.loc["health.units", "change"] == "worse"


def test_a_model_wide_value_is_compared_wherever_it_is_worst():
    grad = lambda v, where: section([Judged(v, where)], code="health.gradients.grad_norm", scope="model")  # noqa: E731
    [item] = only(compare(report(record(measures=[grad(0.28, "dense")])), report(record(measures=[grad(1.19, "conv3")]))),
                  Kind.MEASURE)
    assert (item.where, item.change, item.baseline, item.candidate) == ("", Change.UNCHANGED, 0.28, 1.19)
    assert item.note == "passed on both sides (worst at dense, then at conv3)"


# -- the zoo ---------------------------------------------------------------------------------------------
#: Each planted-fault twin and the healthy model it is a broken copy of (same architecture family; each is
#: diagnosed on its own sidecar's dataset, as `diagnose MODEL` does). rnn_vanishing has no healthy twin in the
#: zoo (a SimpleRNN on its own task), so it has no pair.
TWINS = {"cnn_dead_relu": "cnn", "cnn_overfit": "cnn", "cnn_shortcut": "cnn", "lstm_exploding": "lstm",
         "mlp_chance": "mlp", "mlp_leak": "mlp", "mlp_logits": "mlp", "mlp_nan": "mlp", "mlp_saturated": "mlp",
         "mlp_vanishing": "mlp", "gan_collapsed": "gan", "gan_collapsed_discriminator": "gan_discriminator"}

#: Builds the zoo's mlp exactly as models/train.py does, but seeded with 1 instead of 0 (the data split stays
#: seed 0): a healthy model retrained with another seed.
_RETRAIN = """
import pathlib, sys
import diagnostics_zoo.train as T
out = pathlib.Path(sys.argv[1])
T._enable_op_determinism()
T.seed_everything(1)
for art in T.RECIPES["mlp"](T.Context(out=out)):
    T.write_artifact(art, out)
"""


@pytest.fixture(scope="session")
def zoo_report(tmp_path_factory):
    """``zoo_report(stem)``: the report directory of ``diagnose models/artifacts/STEM.keras``, run once per
    session (every comparison below reads directories: no model is loaded twice)."""
    root = tmp_path_factory.mktemp("zoo-reports")
    done: dict[str, Path] = {}

    def get(stem: str, model: Path | None = None) -> Path:
        if stem not in done:
            proc = run_diagnose(model or ZOO / f"{stem}.keras", "--out", root / stem, "-q", timeout=1800)
            assert proc.returncode in (ExitCode.OK, ExitCode.FINDINGS), proc.stdout[-3000:] + proc.stderr[-3000:]
            done[stem] = root / stem
        return done[stem]

    return get


@pytest.fixture(scope="session")
def mlp_other_seed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mlp-seed1")
    proc = subprocess.run([sys.executable, "-c", _RETRAIN, str(out)], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "mlp.keras"


def _gate(tmp_path, baseline: Path, candidate: Path) -> tuple[subprocess.CompletedProcess, Comparison]:
    out = tmp_path / f"compare-{baseline.name}-{candidate.name}"
    proc = run_diagnose("compare", baseline, candidate, "--out", out, timeout=600)
    return proc, Comparison.load(out)


def _names_the_fault(twin: str, comparison: Comparison) -> list[str]:
    """The twin's planted fault (its sidecar's expected findings, old codes read through diagnostics.codes)
    among the regressed findings at their expected severity."""
    expected = json.loads((ZOO / f"{twin}.meta.json").read_text())["expected_findings"]
    assert expected, f"{twin} plants no fault"
    return [i.name for i in comparison.regressions() if i.kind is Kind.FINDING
            for e in expected if codes.matches(i.name, e["code"]) and i.severity.value == e["severity"]]


def _check_twin(twin: str, zoo_report, tmp_path) -> None:
    baseline, candidate = zoo_report(TWINS[twin]), zoo_report(twin)
    start = time.perf_counter()
    proc, comparison = _gate(tmp_path, baseline, candidate)
    wall = time.perf_counter() - start
    print(f"diagnose compare {TWINS[twin]} {twin}: {wall:.2f} s wall, {len(comparison.items)} items")
    assert wall < 30, wall  # issue 26 asks < 3 s; a generous ceiling for a loaded CI machine
    assert proc.returncode == ExitCode.FINDINGS, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _names_the_fault(twin, comparison), (twin, [i.label for i in comparison.regressions()])
    assert proc.stdout.splitlines()[-1].startswith("compare: ") and proc.stdout.splitlines()[-1].endswith("-> exit 1")


@pytest.mark.slow  # 80 s each (both models diagnosed whole): the default suite keeps the healthy pair below
@pytest.mark.parametrize("twin", sorted(TWINS))
def test_zoo_every_twin_regresses_against_its_healthy_model(twin, zoo_report, tmp_path):
    _check_twin(twin, zoo_report, tmp_path)


def test_zoo_healthy_model_against_a_copy_retrained_with_another_seed_is_no_regression(zoo_report, mlp_other_seed,
                                                                                        tmp_path):
    proc, comparison = _gate(tmp_path, zoo_report("mlp"), zoo_report("mlp_seed1", mlp_other_seed))
    assert proc.returncode == ExitCode.OK, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert [i.label for i in comparison.items if i.change is Change.REGRESSED] == []
    assert proc.stdout.splitlines()[-1] == "compare: 0 regressed at or above warning -> exit 0"


def test_model_sides_are_run_once_and_then_reused_and_weights_are_compared(mlp_other_seed, tmp_path):
    """Model files as sides: each run through the pipeline into OUT/baseline and OUT/candidate (here with only the
    quick analyzers), reused the second time; the weights of the same architecture moved in every layer."""
    out = tmp_path / "out"
    args = ("compare", ZOO / "mlp.keras", mlp_other_seed, "--out", out, "--only", "architecture,weights")
    first = run_diagnose(*args, timeout=900)
    assert first.returncode == ExitCode.OK, first.stdout[-3000:] + first.stderr[-3000:]
    assert "baseline: diagnosing" in first.stderr and "candidate: diagnosing" in first.stderr
    weights = [i for i in Comparison.load(out).items if i.kind is Kind.WEIGHTS]
    assert [i.name for i in weights] == ["dense", "dense_1", "dense_2"]
    assert all(i.change is Change.CHANGED and i.candidate > 0.1 for i in weights), [(i.name, i.candidate) for i in weights]
    second = run_diagnose(*args, timeout=900)
    assert second.returncode == ExitCode.OK
    assert "baseline: reusing" in second.stderr and "candidate: reusing" in second.stderr
    # other settings (a seed) are another run: not reused
    third = run_diagnose(*args, "--seed", "1", timeout=900)
    assert "baseline: diagnosing" in third.stderr


def test_diagnose_with_baseline_gates_the_run_in_one_command(tmp_path):
    out = tmp_path / "run"
    proc = run_diagnose(ZOO / "mlp.keras", "--only", "architecture,weights", "--out", out, "--baseline",
                        ZOO / "mlp.keras", "--fail-on", "warning", timeout=900)
    assert proc.returncode == ExitCode.OK, proc.stdout[-3000:] + proc.stderr[-3000:]
    comparison = Comparison.load(out)
    assert comparison.count(Change.REGRESSED) == 0
    assert {i.change for i in comparison.items if i.kind is Kind.WEIGHTS} == {Change.UNCHANGED}
    assert proc.stdout.splitlines()[-1] == "compare: 0 regressed at or above warning -> exit 0"


def test_cli_compare_html_and_mlflow_read_back(tmp_path):
    """compare.html shows every changed item with its values, names escaped; --mlflow logs compare.json and the
    counts into a real on-disk store, read back with MLflow's own client."""
    hostile = "conv<script>alert(1)</script>"
    a = _write(tmp_path, "a", report(record(measures=[section([Judged(0.0, hostile)])])))
    b = _write(tmp_path, "b", report(record(findings=[Finding("health.units.dead_fraction", Severity.ERROR, "dead",
                                                              hostile)],
                                            measures=[section([Judged(0.9, hostile, outcome="failed")])])))
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "MLFLOW_EXPERIMENT_NAME": "gates"}
    out = tmp_path / "out"
    proc = run_diagnose("compare", a, b, "--out", out, "--mlflow", env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == ExitCode.FINDINGS, proc.stderr
    page = (out / "compare.html").read_text()
    assert "<script>alert" not in page and "conv&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<h2 id='regressed'>Regressed (2)</h2>" in page
    assert "<h2 id='unchanged'>Unchanged (1)</h2><details>" in page  # folded
    import re

    from mlflow.tracking import MlflowClient

    run_id = re.search(r"^mlflow: logged to run ([0-9a-f]{32})$", proc.stderr, re.M).group(1)
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    run = client.get_run(run_id)
    assert run.data.metrics["compare.regressed"] == 2.0 and run.data.metrics["compare.unchanged"] == 1.0
    assert run.data.tags["diagnostics.compare.exit_code"] == "1"
    assert sorted(f.path for f in client.list_artifacts(run_id, "diagnostics")) == [
        "diagnostics/compare.html", "diagnostics/compare.json"]


def test_weights_are_read_in_a_confined_child_and_match_the_arrays(tmp_path):
    """The layer distances come from diagnostics._weights_probe in a child process confined to reading the
    two files: the child cannot read a canary beside them, and its numbers are the arrays' own."""
    import json as json_
    import subprocess
    import sys

    import h5py
    import numpy as np

    from diagnostics._compare import weights_items

    def h5(path, scale):
        with h5py.File(path, "w") as f:
            f["dense/dense/kernel:0"] = np.full((3, 2), scale, np.float32)
            f["dense/dense/bias:0"] = np.zeros(2, np.float32)
        return path

    a, b = h5(tmp_path / "a.h5", 1.0), h5(tmp_path / "b.h5", 1.5)
    [item] = weights_items(a, b)
    assert (item.name, item.change.value, item.candidate) == ("dense", "changed", pytest.approx(0.5))
    assert item.note == "relative change of 2 array(s), 8 weights"
    canary = tmp_path / "canary.txt"
    canary.write_text("secret")
    probe = Path(sys.modules["diagnostics._compare"].__file__).with_name("_weights_probe.py")
    code = (f"import sys, runpy; sys.argv = ['p', {json_.dumps(json_.dumps({'a': str(a), 'b': str(b), 'memory': 2 << 30}))}]\n"
            f"m = runpy.run_path({str(probe)!r})\nm['confine'](({str(a)!r}, {str(b)!r}))\n"
            f"try:\n    open({str(canary)!r}).read(); print('READ')\nexcept OSError:\n    print('DENIED')\n")
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "DENIED", proc.stderr[-2000:]
