"""Whole-run bounds: --deadline (budgets shrink to what is left, what comes after it is not run), and the
memory ceiling of the diagnose process itself."""

from __future__ import annotations

import time

from diagnostics import ExitCode, Report

from ..conftest import run_diagnose
from .conftest import analyzer_source, install_plugin

SLEEP = "import time\ntime.sleep(600)\nreturn Result()"


def test_the_deadline_cuts_the_run_short_and_says_so(tiny, tmp_path):
    env = install_plugin(tmp_path / "site", "sleepy_a", analyzer_source("sleepy_a", SLEEP))
    env = install_plugin(tmp_path / "site", "sleepy_b", analyzer_source("sleepy_b", SLEEP))
    out = tmp_path / "o"
    t0 = time.monotonic()
    proc = run_diagnose(tiny["keras"], "--only", "sleepy_a", "--only", "sleepy_b", "--timeout", "500",
                        "--deadline", "45", "-q", "--out", out, env=env)
    wall = time.monotonic() - t0
    assert proc.returncode == ExitCode.ANALYZER_FAILED, proc.stderr
    by = {r.name: r for r in Report.load(out).analyzers}
    first, second = by["sleepy_a"], by["sleepy_b"]  # run in name order on one worker
    assert first.status == "timed_out", first
    if first.reason.startswith("plugin 'sleepy_a': exceeded its "):  # its budget was cut to what was left ...
        assert float(first.reason.split("exceeded its ")[1].split(" s")[0]) < 45, first.reason
    else:  # ... or, on a machine so loaded that starting the worker took the whole deadline, it never started
        assert first.reason == "not run: the run's --deadline of 45 s had passed", first.reason
    assert (second.status, second.reason) == ("timed_out", "not run: the run's --deadline of 45 s had passed")
    assert wall < 400, f"the run took {wall:.0f} s: the 500 s budget, not the deadline, ended it"


MEMORY_BOUND = """
import resource, sys
import diagnostics._runner as runner
from diagnostics._runner import RunConfig, run_file

def greedy(config, metadata, host):  # what an inflating data file would do
    return bytearray(3 << 30)

runner._resolve_data = greedy
resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, resource.RLIM_INFINITY))
outcome = run_file(RunConfig(model_path=sys.argv[1], out_dir=sys.argv[2], only=("architecture",)))
print(int(outcome.exit_code), outcome.message)
"""


def test_a_file_that_needs_more_than_the_process_ceiling_is_refused_not_a_crash(tiny, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", MEMORY_BOUND, str(tiny["keras"]), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == (f"{int(ExitCode.DATA_REFUSED)} data refused: reading the data needs more memory "
                                   f"than this process may use (--max-worker-memory)")
