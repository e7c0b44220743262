"""diagnose sweep on the zoo's checkpoints: steps from names and sidecars, the index, resuming after
an interrupt, and the same index from Ray actors as from local workers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from diagnostics import ExitCode, Report
from diagnostics._sweep import SweepError, find_checkpoints, numbers_from_name
from diagnostics.report import SCHEMA_VERSION

from ..conftest import CHECKPOINTS, DIAGNOSE, interrupt_when, run_diagnose
from ..history_probe import probe_sweep as run_probe_sweep

EPOCHS = [1, 3, 6, 10, 16, 25, 40]
STEPS = [4 * e for e in EPOCHS]  # 50 training digits in batches of 16: 4 optimizer steps per epoch


@pytest.mark.parametrize("name, epoch_step", [
    ("model.07-0.45.keras", (7, None)), ("cnn_overfit_small.25-0.90.keras", (25, None)),
    ("weights.epoch=12.keras", (12, None)), ("run3_step1200.h5", (None, 1200)), ("ckpt-0.45-epoch07.keras", (7, None)),
    ("final.keras", (None, None)), ("model.0.45.keras", (None, None)),
])
def test_epoch_and_step_from_modelcheckpoint_style_names(name, epoch_step):
    assert numbers_from_name(name) == epoch_step


def test_find_checkpoints_reads_sidecars_directories_and_globs(tmp_path):
    found = find_checkpoints([str(CHECKPOINTS)])
    assert [c.epoch for c in found] == EPOCHS and [c.step for c in found] == STEPS
    assert {c.epoch_source for c in found} == {c.step_source for c in found} == {"sidecar"}
    assert [c.path.name for c in find_checkpoints([str(CHECKPOINTS / "*.keras")])] == [c.path.name for c in found]
    # Without sidecars the epoch comes from the ModelCheckpoint name, and files sort by it, not by name.
    for c in found[::3]:
        shutil.copy(c.path, tmp_path / c.path.name)
    plain = find_checkpoints([str(p) for p in sorted(tmp_path.iterdir(), reverse=True)])
    assert [(c.epoch, c.epoch_source, c.step) for c in plain] == [(1, "name", None), (10, "name", None), (40, "name", None)]
    with pytest.raises(SweepError, match="no file matches"):
        find_checkpoints([str(tmp_path / "*.h5")])
    with pytest.raises(SweepError, match="no such file or directory"):
        find_checkpoints([str(tmp_path / "missing.keras")])


def _entry(name, epoch, *findings, verdict=None):
    fs = [{"analyzer": "a", "code": c, "severity": sev, "where": ""} for c, sev in findings]
    worst = max((f["severity"] for f in fs), key=["info", "warning", "error"].index, default="clean")
    return {"checkpoint": name, "epoch": epoch, "step": None, "findings": fs, "verdict": verdict or worst}


def test_changes_say_why_the_verdict_moved_and_intervals_keep_the_gaps():
    from diagnostics._sweep import arrange, describe_changes, describe_intervals, first_seen

    entries = arrange([  # given out of order, as lanes finish
        _entry("m.06.keras", 6, ("chance", "error"), ("calib", "warning")),
        _entry("m.01.keras", 1, ("chance", "error"), ("note", "info")),
        _entry("m.03.keras", 3, ("note", "info")),
        _entry("m.08.keras", 8, verdict="refused"),
        _entry("m.09.keras", 9, ("chance", "warning"), ("calib", "warning")),
        _entry("m.12.keras", 12, ("calib", "error")),
    ], "epoch")
    assert [(e["at"], e["position"], e["since"]) for e in entries] == [
        (1, 1, None), (3, 2, "m.01.keras"), (6, 3, "m.03.keras"), (8, 4, None), (9, 5, "m.06.keras"), (12, 6, "m.09.keras")]
    assert [describe_changes(e) for e in entries] == [
        "chance (error) appeared", "chance (error) gone", "chance (error) appeared; calib (warning) appeared", "",
        "chance error -> warning", "calib warning -> error; chance (warning) gone"]
    by = {f["code"]: f for f in first_seen(entries)}
    assert [(i["from"], i["to"], i["severity"]) for i in by["chance"]["intervals"]] == [(1, 1, "error"), (6, 9, "error")]
    assert describe_intervals(by["chance"], "epoch") == "epochs 1, 6\u20139"  # the refused epoch 8 splits nothing
    assert (by["chance"]["present"], by["chance"]["of"], by["chance"]["at"]) == (3, 5, 1)
    assert describe_intervals(by["note"], "epoch") == "epochs 1\u20133"
    assert describe_intervals(by["calib"], "epoch") == "epochs 6\u201312" and by["calib"]["worst"] == "error"
    assert [f["code"] for f in first_seen(entries)] == ["chance", "note", "calib"]


def test_the_axis_is_what_every_checkpoint_states(tmp_path):
    from diagnostics._sweep import axis_of

    for name in ("run_step200.keras", "run_step100.keras", "final.keras"):
        (tmp_path / name).write_bytes(b"x")
    found = find_checkpoints([str(tmp_path)])
    assert [(c.path.name, c.step) for c in found] == [("run_step100.keras", 100), ("run_step200.keras", 200),
                                                      ("final.keras", None)]
    assert axis_of(found) == "position" and axis_of(found[:2]) == "step"


def _sections(*values, measures):
    """Real measure sections: ``values`` judged by the host's pipeline for a throwaway health analyzer."""
    from diagnostics import HealthAnalyzer, Measurements
    from diagnostics._measures import judge

    class Tiny(HealthAnalyzer):
        name = "tiny"
        description = "measures what the test gives it"
        default_thresholds = {"high": 1.0}

    Tiny.measures = measures
    return [s.to_dict() for s in judge(Tiny, Measurements(values=values), {"tiny": {"high": 1.0}}).measures]


def test_each_value_of_a_measure_is_one_label_in_the_index():
    from diagnostics import Direction, Measure, Scope, Value
    from diagnostics._sweep import measure_values

    norm, gap, loss, moving = _sections(
        Value("norm", 0.5, where="conv1"), Value("norm", 2.0, where="dense"), Value("norm", None, where="out"),
        Value("gap", 0.25, where="dense"),  # model-wide: where only says where it is worst, not a line of its own
        *[Value("loss", v, where=str(e), series=s) for s, curve in (("train", [3.0, 2.0, 1.0]), ("validation", [3.5, 3.0, 2.5]))
          for e, v in zip((10, 9, 11), curve)],  # given out of epoch order: the last epoch is 11, not the last given
        Value("moving", 1.0, where="dense"), Value("moving", 3.0, where="conv1"),  # two values of one model-wide measure
        measures=(Measure("norm", "Norm", scope=Scope.LAYER, direction=Direction.HIGHER_IS_WORSE, warning="high"),
                  Measure("gap", "Gap"), Measure("loss", "Loss", scope=Scope.EPOCH), Measure("moving", "Moving")))
    assert measure_values(norm) == {"conv1": 0.5, "dense": 2.0, "out": None}
    assert norm["values"][1]["outcome"] == "doubtful"  # judged by the host, and the index keeps the value as it is
    assert measure_values(gap) == {"value": 0.25}
    assert measure_values(loss) == {"train": 1.0, "validation": 2.5}
    assert measure_values(moving) == {"dense": 1.0, "conv1": 3.0}  # "value" twice would merge them: named by where


@pytest.fixture(scope="module")
def probe_sweep(tmp_path_factory):
    """`diagnose sweep` of three zoo checkpoints (epochs 6, 16, 25) with only the throwaway health analyzer
    of tests/history_probe.py, which measures what the checkpoints' sidecars state."""
    return run_probe_sweep(tmp_path_factory.mktemp("probe-sweep"))


def test_the_index_carries_each_measure_by_code_and_a_catalogue_to_chart_it(probe_sweep):
    proc, out, _ = probe_sweep
    assert proc.returncode == ExitCode.FINDINGS, proc.stderr[-3000:]
    index = json.loads((out / "sweep.json").read_text())
    assert index["schema"] == 3 and [e["epoch"] for e in index["checkpoints"]] == [6, 16, 25]
    assert index["catalogue"] == {
        "probe.history.accuracy_gap": {
            "analyzer": "probe.history", "measure": "accuracy_gap", "title": "Train \u2212 validation accuracy",
            "unit": "fraction", "scale": "linear", "scope": "model", "direction": "higher_is_worse",
            "thresholds": {"warning": 0.1, "error": 0.25}, "reference": "a test threshold"},
        "probe.history.loss_gap": {
            "analyzer": "probe.history", "measure": "loss_gap", "title": "Validation \u2212 train loss", "unit": "nats",
            "scale": "linear", "scope": "model", "direction": "higher_is_worse",
            "thresholds": {"warning": 0.5, "error": 1.0}, "reference": ""},
        "probe.history.loss": {
            "analyzer": "probe.history", "measure": "loss", "title": "Loss per epoch", "unit": "", "scale": "linear",
            "scope": "epoch", "direction": "neutral", "thresholds": {}, "reference": ""},
        "probe.history.kernel_norm": {
            "analyzer": "probe.history", "measure": "kernel_norm", "title": "Kernel norm", "unit": "L2 norm",
            "scale": "log", "scope": "layer", "direction": "neutral", "thresholds": {}, "reference": ""},
    }
    for e in index["checkpoints"]:
        h = json.loads((CHECKPOINTS / e["checkpoint"].replace(".keras", ".meta.json")).read_text())["history"]
        m = e["measures"]
        assert m["probe.history.accuracy_gap"] == {"value": pytest.approx(h["accuracy"][-1] - h["val_accuracy"][-1])}
        assert m["probe.history.loss_gap"] == {"value": pytest.approx(h["val_loss"][-1] - h["loss"][-1])}
        assert m["probe.history.loss"] == {"train": h["loss"][-1], "validation": h["val_loss"][-1]}  # the last epoch's
        section = Report.load(out / e["report"]).record("probe.history").measure("kernel_norm")
        assert m["probe.history.kernel_norm"] == {v.where: v.value for v in section.values}
        assert list(m["probe.history.kernel_norm"]) == ["conv1", "conv2", "dense", "probs"]
        assert e["analyzers"] == {"probe.history": {"status": "ok"}}  # the free-form metrics stay in the reports
    # the findings are the host's, coded <analyzer>.<measure>: the accuracy gap opens at epoch 16 (0.278 >= 0.25)
    # and narrows to a warning at 25 (0.242), where the loss gap (0.564 >= 0.5) appears
    assert [e["verdict"] for e in index["checkpoints"]] == ["clean", "error", "warning"]
    assert [(c["code"], c["change"]) for c in index["checkpoints"][2]["changes"]] == [
        ("probe.history.loss_gap", "appeared"), ("probe.history.accuracy_gap", "better")]
    assert [(f["code"], f["at"], f["worst"]) for f in index["first_seen"]] == [
        ("probe.history.accuracy_gap", 16, "error"), ("probe.history.loss_gap", 25, "warning")]


def test_a_report_written_before_measures_is_run_again(probe_sweep, tmp_path):
    _, out, env = probe_sweep
    copy = tmp_path / "sweep"
    shutil.copytree(out, copy)
    index = json.loads((copy / "sweep.json").read_text())
    old = copy / index["checkpoints"][1]["report"] / "report.json"
    report = json.loads(old.read_text())
    report["schema_version"] = 2  # as the diagnostics before measures wrote it: no measure sections
    for rec in report["analyzers"]:
        rec.pop("measures")
    old.write_text(json.dumps(report))
    picked = [CHECKPOINTS / e["checkpoint"] for e in index["checkpoints"]]
    proc = run_diagnose("sweep", *picked, "--only", "probe.history", "--out", copy, env=env, timeout=600)
    assert proc.returncode == ExitCode.FINDINGS, proc.stderr[-3000:]
    assert "resuming: 2 of 3 checkpoint(s) already have their report" in proc.stderr, proc.stderr
    again = json.loads((copy / "sweep.json").read_text())
    assert json.loads(old.read_text())["schema_version"] == SCHEMA_VERSION  # written again, by this version
    assert [e["measures"] for e in again["checkpoints"]] == [e["measures"] for e in index["checkpoints"]]


def test_sweep_of_the_zoo_checkpoints_writes_an_index_and_a_report_per_checkpoint(zoo_sweep):
    proc, out = zoo_sweep
    assert proc.returncode == ExitCode.FINDINGS, proc.stderr[-3000:]  # the gap opens: an error finding
    index = json.loads((out / "sweep.json").read_text())
    # the sweep's axis is the epoch the file names and sidecars state; the optimizer step is kept beside it
    assert index["axis"] == "epoch" and [e["at"] for e in index["checkpoints"]] == EPOCHS
    assert [e["epoch"] for e in index["checkpoints"]] == EPOCHS and [e["step"] for e in index["checkpoints"]] == STEPS
    assert "explain.gradients" not in index["analyzers"] and "health.overfitting" in index["analyzers"]
    for e in index["checkpoints"]:
        report = Report.load(out / e["report"])
        assert report.model["name"] == e["checkpoint"] and report.model["sha256"] == e["sha256"]
        assert {r.name for r in report.analyzers} == set(index["analyzers"])
        # every measure section of the report is in the index, by code and label, with its value
        sections = {s.code: s for r in report.analyzers for s in r.measures}
        assert set(e["measures"]) == set(sections) and set(sections) <= set(index["catalogue"])
        grads = sections["health.gradients.layer_grad_norm"]
        assert e["measures"][grads.code] == {v.where: v.value for v in grads.values} and grads.value("conv1") > 0
    assert index["catalogue"]["health.gradients.layer_grad_norm"]["scale"] == "log"
    gaps = [e["measures"]["health.overfitting.gap"]["value"] for e in index["checkpoints"]]
    assert gaps[-1] > 0.2 and gaps[-1] > gaps[0] + 0.15, gaps  # memorising 50 digits opens the gap
    first = {(f["code"]): f["step"] for f in index["first_seen"] if f["analyzer"] == "health.overfitting"}
    gap_codes = [e for e in index["checkpoints"] if any(f["code"] == "health.overfitting.gap" for f in e["findings"])]
    assert first["health.overfitting.gap"] == gap_codes[0]["step"] and first["health.overfitting.gap"] > STEPS[0]
    assert index["checkpoints"][-1]["verdict"] == "error"
    assert proc.stdout.splitlines()[0].split() == ["epoch", "checkpoint", "verdict", "findings"]
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:]] == [str(e) for e in EPOCHS]
    # every move of the verdict comes with the findings that made it, in the index and on stderr
    entries = index["checkpoints"]
    for before, after in zip(entries, entries[1:]):
        assert after["since"] == before["checkpoint"]
        if after["verdict"] != before["verdict"]:
            assert after["changes"], after
            assert f"epoch {after['epoch']}: {before['verdict']} -> {after['verdict']}: " in proc.stderr, proc.stderr
    # each finding's intervals cover exactly the checkpoints that have it
    for item in index["first_seen"]:
        having = [e["epoch"] for e in entries if any((f["analyzer"], f["code"], f["where"]) ==
                                                     (item["analyzer"], item["code"], item["where"]) for f in e["findings"])]
        covered = [e["epoch"] for e in entries if any(i["from"] <= e["epoch"] <= i["to"] for i in item["intervals"])]
        assert covered == having and item["present"] == len(having) and item["at"] == having[0], item


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    from ..core.conftest import analyzer_source, install_plugin

    out = tmp_path / "sweep"
    args = [DIAGNOSE, "sweep", str(CHECKPOINTS), "--out", str(out), "--only", "architecture", "--only", "weights"]
    # A throwaway analyzer holds the sweep (one lane) inside its third checkpoint and says so with a file
    # in its artifact folder: the interrupt lands there however fast or slow the machine is. Unheld, the
    # sweep of seven small checkpoints could finish between two polls of a loaded test process.
    hold = (f"import time\nif context.metadata.get('epoch') == {EPOCHS[2]}:\n"
            f"    (context.artifact_dir / 'held').touch()\n    time.sleep(3600)\nreturn Result()")
    env = install_plugin(tmp_path / "site", "hold", analyzer_source("hold", hold))
    proc = subprocess.Popen([*args, "--only", "hold"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    _, stderr = interrupt_when(proc, lambda: any(out.rglob("held")), "the third checkpoint's run started")
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    finished = json.loads((out / "sweep.json").read_text())["checkpoints"]  # still a valid index
    assert len(finished) == 2, finished  # the two before the hold; the held one never entered it
    reports = {e["checkpoint"]: (out / e["report"] / "report.json").stat().st_mtime_ns for e in finished}
    again = run_diagnose(*args[1:])  # without the hold: resuming goes by the reports on disk, not the analyzers
    assert again.returncode == ExitCode.OK, again.stderr
    assert f"resuming: 2 of {len(STEPS)} checkpoint(s) already have their report" in again.stderr, again.stderr
    assert f"({len(STEPS) - 2} run, 2 already done" in again.stderr, again.stderr
    index = json.loads((out / "sweep.json").read_text())
    assert [e["step"] for e in index["checkpoints"]] == STEPS
    for name, mtime in reports.items():  # not redone
        entry = next(e for e in index["checkpoints"] if e["checkpoint"] == name)
        assert (out / entry["report"] / "report.json").stat().st_mtime_ns == mtime


@pytest.mark.slow  # Ray's parity is in the default suite through the zoo mlp and the sharded runs
def test_a_sweep_on_ray_actors_gives_the_same_index(ray_address, tmp_path):
    picked = sorted(CHECKPOINTS.glob("*.keras"))[-3:]
    common = [*picked, "--only", "health.units", "--only", "weights"]
    local = run_diagnose("sweep", *common, "--out", tmp_path / "local")
    remote = run_diagnose("sweep", *common, "--out", tmp_path / "ray", "--executor", "ray", "--ray-address", ray_address,
                          "--workers", "2")
    assert local.returncode == remote.returncode == ExitCode.OK, local.stderr[-2000:] + remote.stderr[-2000:]
    a, b = (json.loads((tmp_path / k / "sweep.json").read_text()) for k in ("local", "ray"))
    assert b.pop("executor") == "ray" and a.pop("executor") == "local"
    # Equal up to the last bits of a float: a weight norm summed in another process (another memory
    # alignment, hence another SIMD path in numpy's pairwise sum) may differ by one ulp.
    assert b == _floats_approx(a)


def _floats_approx(value):
    if isinstance(value, dict):
        return {k: _floats_approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_approx(v) for v in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-12, abs=1e-15)
    return value


def test_the_shipped_checkpoints_stay_small_and_named_as_modelcheckpoint_names_them():
    files = sorted(p.name for p in CHECKPOINTS.iterdir())
    assert sum(p.stat().st_size for p in CHECKPOINTS.iterdir()) < 2 * 2**20
    keras_files = [f for f in files if f.endswith(".keras")]
    assert len(keras_files) == len(STEPS) >= 5
    for f in keras_files:
        meta = json.loads((CHECKPOINTS / f.replace(".keras", ".meta.json")).read_text())
        assert f == "cnn_overfit_small.{epoch:02d}-{val_loss:.2f}.keras".format(epoch=meta["epoch"], val_loss=meta["history"]["val_loss"][-1])


def test_sweep_of_nothing_is_a_usage_error(tmp_path):
    proc = run_diagnose("sweep", tmp_path / "no-such-dir", "--out", tmp_path / "o")
    assert proc.returncode == ExitCode.USAGE
    assert proc.stderr.strip() == f"diagnose: no such file or directory: {tmp_path / 'no-such-dir'}"
    (tmp_path / "empty").mkdir()
    proc = run_diagnose("sweep", tmp_path / "empty", "--out", tmp_path / "o")
    assert (proc.returncode, proc.stderr.strip()) == (ExitCode.USAGE, f"diagnose: {tmp_path / 'empty'} holds no .keras or .h5 checkpoint")


def test_every_checkpoint_goes_through_the_prescan(keras_tf, tmp_path):
    """A checkpoint with a Lambda layer in the middle of a run is refused (never loaded); the others run."""
    keras = keras_tf
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(outputs)))
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.05-1.00.keras")
    for p in sorted(CHECKPOINTS.glob("*.keras"))[:2]:
        shutil.copy(p, run / p.name)
    out = tmp_path / "sweep"
    proc = run_diagnose("sweep", run, "--out", out, "--only", "architecture")
    assert proc.returncode == ExitCode.MODEL_REFUSED, proc.stderr
    index = json.loads((out / "sweep.json").read_text())
    by = {e["checkpoint"]: e for e in index["checkpoints"]}
    # names only (the copies left their sidecars behind): epochs, and no optimizer step
    assert [(e["epoch"], e["step"]) for e in index["checkpoints"]] == [(1, None), (3, None), (5, None)]
    refused = by["model.05-1.00.keras"]
    assert (refused["verdict"], refused["exit_code"]) == ("refused", ExitCode.MODEL_REFUSED)
    assert refused["message"].startswith("model refused: the file holds code that would run on loading: Lambda layer")
    assert not (out / refused["report"] / "report.json").exists()
    assert all(by[n]["verdict"] == "clean" for n in by if n != "model.05-1.00.keras")
