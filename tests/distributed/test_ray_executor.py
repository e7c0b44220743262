"""--executor ray against the local executor: misbehaving plugins, streamed progress, the install hint,
and the same report on the zoo models."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from diagnostics import ExitCode, Report

from .conftest import comparable
from ..conftest import ZOO_DIR, read_report, run_diagnose
from ..core.conftest import analyzer_source, install_plugin
from ..plugins.test_broken_plugins import WORKER_ONLY_FAILURE

CORE = ("--only", "architecture", "--only", "weights")


def executor_args(executor: str, address: str | None) -> list[str]:
    return ["--executor", "ray", "--ray-address", address] if executor == "ray" else []


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory):
    """Plugins that raise, hang, return garbage, crash the worker, or import only outside workers."""
    site = tmp_path_factory.mktemp("site")
    env = install_plugin(site, "raiser", analyzer_source("raiser", 'raise RuntimeError("boom")'))
    env = install_plugin(site, "sleeper", analyzer_source("sleeper", "import time\ntime.sleep(60)\nreturn Result()"))
    env = install_plugin(site, "garbage", analyzer_source("garbage", 'return {"not": "a Result"}'))
    env = install_plugin(site, "crasher", analyzer_source("crasher", "import os\nos._exit(9)"))
    env = install_plugin(site, "worker_shy", WORKER_ONLY_FAILURE)
    env = install_plugin(site, "broken_import", "import diagnostics\nraise ImportError('missing dependency: frobnicate')\n")
    return env


# The local half repeats tests/core/test_cli.py::test_misbehaving_plugins_are_isolated_and_named (in the
# default suite): kept here, slow, so that one test states the parity.
@pytest.mark.parametrize("executor", [pytest.param("local", marks=pytest.mark.slow), "ray"])
def test_misbehaving_plugins_behave_the_same_on_both_executors(executor, misbehaving, tiny, tmp_path, request):
    address = request.getfixturevalue("ray_address") if executor == "ray" else None
    out = tmp_path / "o"
    mine = [a for n in ("crasher", "early_shy", "garbage", "raiser", "sleeper") for a in ("--only", n)]
    proc = run_diagnose(tiny["keras"], "--out", out, "--timeout", "3", *CORE, *mine, *executor_args(executor, address),
                        env=misbehaving)
    assert proc.returncode == ExitCode.ANALYZER_FAILED, proc.stderr
    by = {r.name: r for r in Report.load(out).analyzers}
    assert (by["raiser"].status, by["raiser"].reason) == ("failed", "plugin 'raiser': raised RuntimeError: boom")
    assert (by["sleeper"].status, by["sleeper"].reason) == ("timed_out", "plugin 'sleeper': exceeded its 3 s budget and was stopped")
    # stopped at its 3 s budget and 2 s grace (seconds more on a loaded machine), not after its 60 s sleep
    assert by["sleeper"].duration_s < 45, by["sleeper"].duration_s
    assert (by["garbage"].status, by["garbage"].reason) == (
        "failed", "plugin 'garbage': returned a malformed result: run() returned dict, expected diagnostics.Result")
    assert by["crasher"].status == "crashed"
    assert by["crasher"].reason.startswith("plugin 'crasher': crashed: the worker process died ("), by["crasher"].reason
    # Imported by the CLI, not by the worker: the worker names every plugin it could not import.
    assert (by["early_shy"].status, by["early_shy"].reason) == (
        "failed", "plugin 'worker_shy': could not be loaded in the tensorflow worker process: broken_import: failed "
                  "to import broken_import: ImportError: missing dependency: frobnicate; worker_shy: failed to import "
                  "worker_shy: ImportError: libfoo.so: cannot open shared object file")
    # The healthy analyzers ran after the crash and the timeout replaced the worker (or actor).
    assert by["architecture"].status == "ok" and by["weights"].status == "ok"
    assert Report.load(out).plugin_problems == [
        "plugin 'broken_import': failed to import broken_import: ImportError: missing dependency: frobnicate"]


def test_the_local_ray_runs_its_workers_at_normal_priority(ray_address):
    """Ray starts workers at nice 15 by default; the Ray this project starts is the run's work, as local
    workers are (the driver's priority, nice 0 in CI). At nice 15 beside a CPU load the parity test above waited 600 s for an actor
    whose TensorFlow import got a few percent of a CPU; at nice 0 it ran in 68 s at the same load."""
    import ray

    @ray.remote
    def niceness() -> int:
        return os.nice(0)

    # the priority of the process that started Ray (0 in CI; a developer running the tests under nice sees theirs)
    assert ray.get(niceness.remote(), timeout=600) == os.nice(0)


def test_executor_ray_without_ray_is_a_usage_error_naming_the_install(tiny, tmp_path):
    code = ("import sys\nsys.modules['ray'] = None  # as if Ray were not installed\n"
            "from diagnostics._cli import main\n"
            f"main([{str(tiny['keras'])!r}, '--out', {str(tmp_path / 'o')!r}, '--executor', 'ray'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)  # a ceiling: a loaded import takes a minute
    assert proc.returncode == ExitCode.USAGE
    assert proc.stderr.strip() == ("diagnose: --executor ray needs Ray, which is not installed: "
                                   "pip install 'diagnostics[ray]'")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["plugins"]])
def test_help_imports_no_ray(argv):
    code = ("import sys\nfrom diagnostics._cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
            "print('\\nRAY', code, 'ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)  # a ceiling: a loaded import takes a minute
    assert out.stdout.strip().splitlines()[-1] == "RAY 0 False", out.stdout[-2000:] + out.stderr[-2000:]


def _full_runs(name: str, address: str, root) -> dict[str, tuple[int, dict]]:
    """A full default run of zoo model ``name`` with each executor, both at once (they share the CPUs)."""
    import concurrent.futures

    jobs = {"local": [], "ray": ["--executor", "ray", "--ray-address", address]}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        procs = {k: pool.submit(run_diagnose, ZOO_DIR / f"{name}.keras", "--out", root / k, "-q", *args, timeout=900)
                 for k, args in jobs.items()}
        done = {k: f.result() for k, f in procs.items()}
    return {k: (p.returncode, read_report(root / k) if (root / k / "report.json").is_file() else {"stderr": p.stderr})
            for k, p in done.items()}


def _assert_same(runs):
    (code_l, local), (code_r, remote) = runs["local"], runs["ray"]
    assert code_l == code_r, (code_l, code_r)
    assert [a["status"] for a in local["analyzers"]].count("ok") >= 8, "a full run: the explainers and health checks ran"
    assert comparable(remote) == comparable(local)


@pytest.fixture(scope="module")
def mlp_runs(ray_address, tmp_path_factory):
    root = tmp_path_factory.mktemp("mlp-runs")
    return _full_runs("mlp", ray_address, root), root


def test_ray_report_equals_local_report_on_the_zoo_mlp(mlp_runs):
    runs, root = mlp_runs
    _assert_same(runs)
    # The artifacts came back from the actors byte for byte.
    local_files = {p.relative_to(root / "local"): p.read_bytes() for p in (root / "local" / "artifacts").rglob("*") if p.is_file()}
    ray_files = {p.relative_to(root / "ray"): p.read_bytes() for p in (root / "ray" / "artifacts").rglob("*") if p.is_file()}
    assert local_files and sorted(ray_files) == sorted(local_files)
    assert all(ray_files[k] == local_files[k] for k in local_files if k.suffix != ".png")


def test_ray_report_equals_local_report_on_the_zoo_cnn(ray_address, tmp_path):
    _assert_same(_full_runs("cnn", ray_address, tmp_path))


def test_progress_messages_stream_back_from_the_actor(ray_address, tiny, tmp_path, monkeypatch):
    from diagnostics._runner import Progress, RunConfig, run_file

    body = "import time\nfor i in range(4):\n    context.progress(i + 1, 4, f'part {i + 1}')\n    time.sleep(0.4)\nreturn Result()"
    env = install_plugin(tmp_path / "site", "chatty", analyzer_source("chatty", body))
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])  # forwarded to the actors
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    class Recording(Progress):
        def __init__(self):
            super().__init__(quiet=True)
            self.steps, self.times = [], []

        def step(self, name, done, total, message=""):
            self.steps.append((name, done, total, message))
            self.times.append(time.monotonic())

    progress = Recording()
    outcome = run_file(RunConfig(model_path=str(tiny["keras"]), out_dir=tmp_path / "o", only=("chatty",), executor="ray"),
                       progress)
    assert outcome.exit_code == ExitCode.OK, outcome.message
    assert progress.steps == [("chatty", i, 4, f"part {i}") for i in (1, 2, 3, 4)]
    assert progress.times[-1] - progress.times[0] > 0.8, "they arrived while the analyzer ran, not all at its end"


def test_model_bytes_are_checked_against_the_prescan_on_both_ends(ray_address, tiny, tmp_path):
    import ray

    from diagnostics._ray_executor import ActorBody, RayExecutor
    from diagnostics.safety import ModelRefused, scan

    data = tiny["keras"].read_bytes()
    digest = scan(tiny["keras"]).sha256
    # The driver refuses a file that changed between the pre-scan and shipping it.
    executor = RayExecutor()
    try:
        with pytest.raises(ModelRefused, match=r"tiny.keras changed on disk after the pre-scan"):
            executor._blob(str(tiny["keras"]), "0" * 64, "model")
        assert executor._blob(str(tiny["keras"]), digest, "model")["sha256"] == digest
    finally:
        executor.close()
    # The actor refuses bytes that are not those the pre-scan hashed (here: one byte changed in transit).
    body = ActorBody.__new__(ActorBody)  # its state only: no keras, no process renaming in this test process
    body.root, body.inputs, body.files = tmp_path, tmp_path / "in", {}
    good = {"name": "tiny.keras", "sha256": digest, "ref": ray.put(data)}
    assert body._materialize(good).read_bytes() == data
    body.files = {}
    with pytest.raises(ModelRefused, match=r"tiny.keras: the bytes received \(sha256 .*\) are not those the pre-scan "
                                           r"checked"):
        body._materialize({**good, "ref": ray.put(data[:-1] + bytes([data[-1] ^ 1]))})
