"""The diagnose command end to end: every exit code, the report files, plugins that misbehave,
an unwritable output directory, an interrupted run, determinism, data validation, cold start."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from diagnostics import ExitCode, Report
from diagnostics.report import strip_timings

from ..conftest import DIAGNOSE, interrupt_when, read_report, run_diagnose
from .conftest import analyzer_source, install_plugin

CORE = ("--only", "architecture", "--only", "weights")  # the core's own analyzers: tests here test the core


def children_cpu_s() -> float:
    """CPU seconds of the child processes this process has reaped (each with the descendants it reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_clean_model_exits_ok_and_writes_json_and_html(tiny, tmp_path):
    out = tmp_path / "out"
    proc = run_diagnose(tiny["keras"], "--data", tiny["data"], "--out", out, *CORE)
    assert proc.returncode == ExitCode.OK, proc.stderr
    report = Report.load(out)
    assert [r.name for r in report.analyzers] == ["architecture", "weights"]
    arch = report.record("architecture")
    assert arch.status == "ok" and arch.metrics["n_params"] == 4 * 8 + 8 + 8 * 3 + 3
    assert arch.metrics["kind"] == "tabular"
    assert report.data["shapes"]["x_val"] == [16, 4]
    html = (out / "report.html").read_text()
    assert "<h2 id='a-architecture'>architecture" in html and "data:image/png;base64," in html
    assert "verdict: clean (fail on error) -> exit 0" in proc.stdout
    assert (out / arch.measure("parameters").chart).is_file()  # the host draws the per-layer measure
    # Nothing but the report, its artifacts and nothing half-written is left behind.
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "report.html", "report.json"]


def test_h5_and_keras_give_the_same_architecture(tiny, tmp_path):
    reports = []
    for fmt in ("keras", "h5"):
        out = tmp_path / fmt
        assert run_diagnose(tiny[fmt], "--only", "architecture", "--out", out).returncode == 0
        reports.append(read_report(out)["analyzers"][0]["metrics"])
    assert reports[0]["n_params"] == reports[1]["n_params"]
    assert reports[0]["output_shapes"] == reports[1]["output_shapes"] == [[None, 3]]


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory, keras_tf):
    keras = keras_tf
    d = tmp_path_factory.mktemp("nan")
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")], name="nanny")
    w, b = m.layers[0].get_weights()
    w[0, 0] = np.nan
    m.layers[0].set_weights([w, b])
    m.save(d / "nan.keras")
    return d / "nan.keras"


def test_findings_exit_code_and_fail_on(nan_model, tmp_path):
    out = tmp_path / "out"
    proc = run_diagnose(nan_model, "--out", out, "--only", "weights")
    assert proc.returncode == ExitCode.FINDINGS, proc.stderr
    assert "ERROR weights.nonfinite [dense/kernel]: 1 of 12 weights are NaN or Inf" in proc.stdout
    assert read_report(out)["exit_code"] == 1
    # --fail-on never: the same finding is reported but does not fail the run.
    proc = run_diagnose(nan_model, "--out", out, "--only", "weights", "--fail-on", "never")
    assert proc.returncode == ExitCode.OK


def test_usage_errors(tiny, tmp_path):
    proc = run_diagnose(tiny["keras"], "--only", "no_such_analyzer", "--out", tmp_path / "o")
    assert proc.returncode == ExitCode.USAGE
    assert proc.returncode == ExitCode.USAGE
    assert "diagnose: unknown analyzer 'no_such_analyzer'; installed: " in proc.stderr
    proc = run_diagnose(tiny["keras"], "--fail-on", "sometimes")
    assert proc.returncode == ExitCode.USAGE
    assert "diagnose: invalid value for '--fail-on'" in proc.stderr


def test_data_refused_with_shape_message(tiny, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_val=np.zeros((10, 5), "float32"), y_val=np.zeros(10, "int64"))
    cpu0 = children_cpu_s()
    proc = run_diagnose(tiny["keras"], "--data", bad, "--out", tmp_path / "o")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert proc.stderr == "diagnose: data refused: x_val has shape (n, 5); the model expects (None, 4): save x_val with samples of shape (4,)\n"
    # CPU seconds, not wall: a loaded machine stretches the wall clock, not the work. Refused from the config,
    # the whole process tree costs ~1 s; a worker left to import TensorFlow costs ~7 s more on its own
    cpu = children_cpu_s() - cpu0
    assert cpu < 4, f"{cpu:.1f} CPU s: shape misfits are refused from the config; workers still importing are stopped"
    for fmt in ("h5",):  # the legacy config declares the input shape too
        proc = run_diagnose(tiny[fmt], "--data", bad, "--out", tmp_path / "o")
        assert proc.stderr == "diagnose: data refused: x_val has shape (n, 5); the model expects (None, 4): save x_val with samples of shape (4,)\n"
    labels = tmp_path / "labels.npz"
    np.savez(labels, x_val=np.zeros((10, 4), "float32"), y_val=np.full(10, 7))
    proc = run_diagnose(tiny["keras"], "--data", labels, "--out", tmp_path / "o")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert "y_val holds labels in [7, 7]; the model has 3 classes (0..2)" in proc.stderr
    nan = tmp_path / "nan.npz"
    x = np.zeros((10, 4), "float32")
    x[3, 2] = np.inf
    np.savez(nan, x=x)
    proc = run_diagnose(tiny["keras"], "--data", nan, "--out", tmp_path / "o")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert "x_val contains 1 NaN or Inf value(s); clean the data first" in proc.stderr
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    proc = run_diagnose(tiny["keras"], "--data", pickled, "--out", tmp_path / "o")
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert "holds pickled Python objects, which are refused" in proc.stderr


def test_without_data_data_needing_analyzers_are_skipped_with_reason(tiny, tmp_path, plugin_dir):
    env = install_plugin(plugin_dir, "needs_data", analyzer_source("needs_data", "return Result()").replace(
        'description = "a throwaway analyzer for a test"', 'description = "x"\n    data = "xy"'))
    out = tmp_path / "o"
    proc = run_diagnose(tiny["keras"], "--only", "needs_data", "--only", "weights", "--out", out, env=env)
    assert proc.returncode == ExitCode.OK, proc.stderr
    rec = Report.load(out).record("needs_data")
    assert rec.status == "skipped"
    assert rec.reason == "needs input samples with labels (--data FILE.npz); none given"


def test_misbehaving_plugins_are_isolated_and_named(tiny, tmp_path, plugin_dir):
    env = install_plugin(plugin_dir, "raiser", analyzer_source("raiser", 'raise RuntimeError("boom")'))
    env = install_plugin(plugin_dir, "sleeper", analyzer_source("sleeper", "import time\ntime.sleep(3600)\nreturn Result()"))
    env = install_plugin(plugin_dir, "garbage", analyzer_source("garbage", 'return {"not": "a Result"}'))
    env = install_plugin(plugin_dir, "crasher", analyzer_source("crasher", "import os\nos._exit(9)"))
    env = install_plugin(plugin_dir, "broken_import", "import diagnostics\nraise ImportError('missing dependency: frobnicate')\n")
    out = tmp_path / "o"
    mine = [a for n in ("raiser", "sleeper", "garbage", "crasher") for a in ("--only", n)]
    # The budget is every analyzer's: 20 s leaves the healthy ones (a fraction of a CPU second each) room on a
    # machine loaded many times over, and the sleeper's hour still ends at the budget.
    proc = run_diagnose(tiny["keras"], "--out", out, "--timeout", "20", *CORE, *mine, env=env)
    assert proc.returncode == ExitCode.ANALYZER_FAILED, proc.stderr
    report = Report.load(out)
    by = {r.name: r for r in report.analyzers}
    assert by["raiser"].status == "failed" and by["raiser"].reason == "plugin 'raiser': raised RuntimeError: boom"
    assert by["sleeper"].status == "timed_out" and by["sleeper"].reason == "plugin 'sleeper': exceeded its 20 s budget and was stopped"
    # stopped at its 20 s budget (seconds more on a loaded machine), not after its hour's sleep
    assert by["sleeper"].duration_s < 300, by["sleeper"].duration_s
    assert by["garbage"].status == "failed"
    assert by["garbage"].reason == "plugin 'garbage': returned a malformed result: run() returned dict, expected diagnostics.Result"
    assert by["crasher"].status == "crashed"  # a dead worker is its own status
    assert by["crasher"].reason.startswith("plugin 'crasher': crashed: the worker process died (exit code 9)")
    # The healthy analyzers still ran, after the crash and the timeout restarted the worker.
    assert by["architecture"].status == "ok" and by["weights"].status == "ok"
    problems = report.plugin_problems
    assert problems == ["plugin 'broken_import': failed to import broken_import: ImportError: missing dependency: frobnicate"]
    assert "plugin 'broken_import': failed to import broken_import" in proc.stdout
    # Strict mode: the first problem is fatal.
    proc = run_diagnose(tiny["keras"], "--out", tmp_path / "strict", "--strict-plugins", *CORE, env=env)
    assert proc.returncode == ExitCode.PLUGIN_ERROR
    assert "diagnose: plugin 'broken_import': failed to import broken_import: ImportError: missing dependency: frobnicate (--strict-plugins)" in proc.stderr
    # Blocking the plugin by name (environment variable) removes the import problem.
    env2 = {**env, "DIAGNOSTICS_DISABLE_PLUGINS": "broken_import,sleeper,crasher,garbage"}
    proc = run_diagnose(tiny["keras"], "--out", tmp_path / "blocked", "--disable", "raiser", *CORE, env=env2)
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    names = {r.name for r in Report.load(tmp_path / "blocked").analyzers}
    assert not names & {"raiser", "sleeper", "garbage", "crasher"}


def test_strict_plugins_stops_at_first_analyzer_failure(tiny, tmp_path, plugin_dir):
    env = install_plugin(plugin_dir, "aaa_raiser", analyzer_source("aaa_raiser", 'raise ValueError("nope")'))
    out = tmp_path / "o"
    proc = run_diagnose(tiny["keras"], "--out", out, "--strict-plugins", "--only", "aaa_raiser", *CORE, env=env)
    assert proc.returncode == ExitCode.PLUGIN_ERROR, proc.stderr
    report = Report.load(out)
    assert report.record("aaa_raiser").status == "failed"
    for name in ("architecture", "weights"):  # applicable to any model, and queued after aaa_raiser
        assert report.record(name).status == "skipped"
        assert report.record(name).reason == "not run: the run was stopped by --strict-plugins"


def test_unwritable_output_directory_detected_before_work(tiny, tmp_path):
    shared = Path(tempfile.mkdtemp(prefix="diag-ro-"))
    try:
        os.chmod(shared, 0o755)
        model = shared / "tiny.keras"
        shutil.copy(tiny["keras"], model)
        os.chmod(model, 0o644)
        readonly = shared / "readonly"
        readonly.mkdir()
        os.chmod(readonly, 0o555)
        user = 65534 if os.geteuid() == 0 else None  # root ignores permission bits: run as nobody
        cpu0 = children_cpu_s()
        proc = run_diagnose(model, "--out", readonly / "report", *CORE, user=user, env={"HOME": str(shared)})
        assert proc.returncode == ExitCode.USAGE, proc.stderr
        assert proc.stderr.strip() == f"diagnose: cannot write the report to {readonly / 'report'}: Permission denied"
        # CPU seconds, which load does not stretch: the refusal costs ~0.4 s; importing TensorFlow alone ~7 s
        cpu = children_cpu_s() - cpu0
        assert cpu < 3, f"{cpu:.1f} CPU s: refused before loading any framework"
    finally:
        os.chmod(shared / "readonly", 0o755)
        shutil.rmtree(shared, ignore_errors=True)


def test_interrupted_run_keeps_previous_report(tiny, tmp_path, plugin_dir):
    out = tmp_path / "o"
    assert run_diagnose(tiny["keras"], "--out", out, "--only", "architecture").returncode == 0
    before = (out / "report.json").read_bytes()
    before_html = (out / "report.html").read_bytes()
    # The analyzer says it is inside its run with a file in its artifact folder (under the run's staging
    # folder, where a sandboxed worker may write), then sleeps until it is stopped: the test interrupts on
    # that signal, however long the worker took to start on a loaded machine, never on a guess at the clock.
    slow = "import time\n(context.artifact_dir / 'inside').touch()\ntime.sleep(3600)\nreturn Result()"
    env = install_plugin(plugin_dir, "slowpoke", analyzer_source("slowpoke", slow))
    proc = subprocess.Popen([DIAGNOSE, str(tiny["keras"]), "--out", str(out), "--only", "slowpoke", *CORE], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = interrupt_when(proc, lambda: any(out.glob(".staging-*/**/inside")), "the analyzer started")
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    lines = stderr.splitlines()
    assert lines[-1] == "diagnose: interrupted: the previous report, if any, is left as it was", stderr
    # the analyzer the CLI stopped is interrupted, not a crash "killed by SIGTERM" with the worker's log lines
    assert len([line for line in lines if re.fullmatch(r"\[[123]/3\] slowpoke {17}interrupted", line)]) == 1, stderr
    assert not any(word in stderr for word in ("crashed", "SIGTERM", "last output")), stderr
    assert (out / "report.json").read_bytes() == before
    assert (out / "report.html").read_bytes() == before_html
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "report.html", "report.json"]


def test_same_seed_same_json_apart_from_timings(tiny, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert run_diagnose(tiny["keras"], "--data", tiny["data"], "--out", out, "--seed", "3", *CORE).returncode == 0
    ja, jb = read_report(a), read_report(b)
    assert strip_timings(ja) == strip_timings(jb)
    assert ja["timings"] != {} and "duration_s" in ja["analyzers"][0]


def test_internal_error_exit_code(monkeypatch, capsys):
    from diagnostics import _cli as cli, _runner as runner

    def broken(*a, **k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(runner, "run_file", broken)
    with pytest.raises(SystemExit) as e:
        cli.main(["x.keras"])
    assert e.value.code == ExitCode.INTERNAL_ERROR
    assert "diagnose: internal error: RuntimeError: a bug (set DIAGNOSTICS_DEBUG=1 for the traceback" in capsys.readouterr().err


def test_exit_codes_are_documented_in_usage_docs():
    usage = (Path(__file__).resolve().parents[2] / "docs" / "usage.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in usage, f"docs/usage.md lacks exit code {code.name}"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["plugins"], ["plugins", "--json"]])
def test_help_and_plugins_import_no_framework(argv):
    code = (
        "import sys\nfrom diagnostics._cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        "print('\\nMODULES', code, sorted(m for m in ('tensorflow', 'torch', 'keras', 'shap', 'captum', 'lime', 'streamlit', 'mlflow', 'junitparser') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "MODULES 0 []", out.stdout[-2000:] + out.stderr[-2000:]


def test_plugins_command_lists_versions_hooks_analyzers():
    proc = run_diagnose("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    arch = next(p for p in data["plugins"] if p["name"] == "architecture")
    assert arch["builtin"] is True and arch["hooks"] == ["register_analyzers"] and arch["analyzers"] == ["architecture"]
    assert arch["version"] == "0.1.0"
    assert data["analyzers"]["weights"]["data"] == "none"
    table = run_diagnose("plugins").stdout
    assert table.splitlines()[0].split() == ["plugin", "version", "hooks", "analyzers", "status"]


def test_generator_data_are_real_samples_shaped_like_its_output(keras_tf, tmp_path):
    keras = keras_tf
    gen = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="sigmoid"), keras.layers.Reshape((2, 2, 1))],
                           name="gen")
    gen.save(tmp_path / "gen.keras")
    good, bad = tmp_path / "real.npz", tmp_path / "wrong.npz"
    np.savez(good, x_val=np.random.default_rng(0).random((8, 2, 2, 1), dtype=np.float32), y_val=np.arange(8) % 10)
    np.savez(bad, x_val=np.zeros((8, 3, 3, 1), "float32"))
    proc = run_diagnose(tmp_path / "gen.keras", "--data", good, "--out", tmp_path / "o", *CORE)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert Report.load(tmp_path / "o").model["info"]["kind"] == "generator"
    proc = run_diagnose(tmp_path / "gen.keras", "--data", bad, "--out", tmp_path / "o2", *CORE)
    assert proc.returncode == ExitCode.DATA_REFUSED
    assert proc.stderr.strip().endswith("diagnose: data refused: x_val has shape (n, 3, 3, 1); the model expects (None, 2, 2, 1): save x_val with "
                                        "samples of shape (2, 2, 1) "
                                        "(for a generator, the data are real samples shaped like its output)")


def test_every_run_flag_reaches_the_run_config(monkeypatch, tmp_path, capsys):
    """run_command passes the flags named after a RunConfig field straight into it: each one given here must
    arrive with its parsed value (and a new flag named after no field fails here, not in a user's run)."""
    from diagnostics import _cli as cli, _runner as runner

    seen = {}

    def stop(config, progress):
        seen["config"] = config
        return runner.Outcome(None, ExitCode.USAGE, "stopped before the run")

    monkeypatch.setattr(runner, "run_file", stop)
    monkeypatch.setattr("diagnostics._limits.apply_worker_memory_ceiling", lambda limit: seen.setdefault("ceiling", limit))
    args = ["m.keras", "--data", "d.csv", "-o", str(tmp_path / "o"), "--only", "a,b", "--skip", "c", "--fail-on", "warning",
            "--timeout", "7", "--seed", "3", "--deadline", "99", "--target", "2", "--option", "x.k=1", "--backend", "torch",
            "--trust", "--no-sandbox", "--max-model-size", "2MiB", "--max-params", "5", "--load-timeout", "8",
            "--max-worker-memory", "3GiB", "--max-memory", "1GiB", "--strict-plugins", "--disable", "p",
            "--label-column", "y", "-q", "--ray-address", "h:1", "--workers", "2", "--shards", "4"]
    with pytest.raises(SystemExit) as exit_:
        cli.cli.main(args=args, prog_name="diagnose", standalone_mode=False)
    assert exit_.value.code == ExitCode.USAGE and capsys.readouterr().err == (
        f"diagnose: {cli.SHARDS_DEPRECATED}\ndiagnose: stopped before the run\n")  # --shards 4: deprecated, still honoured
    c = seen["config"]
    assert (c.model_path, c.data_path, c.out_dir, c.only, c.skip, c.fail_on, c.timeout_s, c.seed, c.deadline_s) == (
        "m.keras", "d.csv", tmp_path / "o", ("a", "b"), ("c",), "warning", 7.0, 3, 99.0)
    assert c.options == {"x": {"k": 1}, "*": {"target": 2}} and (c.backend, c.trust, c.sandbox) == ("torch", True, False)
    assert (c.max_model_size, c.max_params, c.load_timeout_s, c.max_worker_memory, c.max_memory) == (
        2 << 20, 5, 8.0, 3 << 30, 1 << 30)
    assert (c.strict_plugins, c.disabled, c.label_column, c.confirm_trust) == (True, frozenset({"p"}), "y", cli._confirm_trust)
    assert (c.executor, c.ray_address, c.workers, c.shards, seen["ceiling"]) == ("local", "h:1", 2, 4, 3 << 30)
