"""The seeded fuzzer: every mutant of a real model ends within its deadline, refused or clean —
never a hang, a crash or an internal error. The campaign's figures are printed for the record."""

from __future__ import annotations

import os
import time

import pytest

from diagnostics import ExitCode
from diagnostics._limits import LoadLimits
from diagnostics.safety import ModelRefused, scan

from . import fuzz
from .conftest import run_measured

DEADLINE_S = 20.0  # per mutant, generous for a loaded machine: a clean scan takes ~10 ms in-process


def _run(plain, tmp_path, count: int, seed: int):
    paths = fuzz.write_mutants(plain["keras"], plain["h5"], tmp_path, count, seed)
    result = fuzz.campaign(paths, DEADLINE_S)
    # Mutants that hung or crashed libhdf5 in-process: the real pre-scan must kill its HDF5 child and refuse.
    killed = []
    for path in (result.hangs + result.crashes)[:6]:
        t0 = time.perf_counter()
        with pytest.raises(ModelRefused, match=r"(did not finish within|was killed by signal|ended with exit code)"):
            scan(path, limits=LoadLimits(h5_scan_timeout_s=DEADLINE_S))
        killed.append(time.perf_counter() - t0)
    print(f"\nfuzz seed={seed}: tried {result.tried}, refused {result.refused}, clean {len(result.clean)}, "
          f"errors {len(result.errors)}, libhdf5 hangs {len(result.hangs)}, crashes {len(result.crashes)} "
          f"(refused by the real pre-scan in {', '.join(f'{t:.1f}' for t in killed) or '-'} s); "
          f"slowest refusal {result.slowest_refusal_s:.3f} s ({result.slowest_name}); campaign {result.wall_s:.1f} s")
    assert result.tried == count
    assert result.errors == [], result.errors[:5]
    assert result.refused + len(result.clean) + len(result.hangs) + len(result.crashes) == count
    # each is killed at DEADLINE_S (its start included); a loaded machine's reaping fits in the margin,
    # and a scan that ignored its deadline would never end at all
    assert all(t < DEADLINE_S + 40 for t in killed), killed
    return result


def test_fuzz_default_campaign(plain, tmp_path):
    result = _run(plain, tmp_path, 300, seed=0)
    assert result.refused > 100  # the mutations do reach the checks: most mutants are refused


def test_fuzzed_refusals_exit_4_through_the_cli(plain, tmp_path):
    """A few mutants through the real CLI (HDF5 probe in its own child): exit 4, one line."""
    paths = fuzz.write_mutants(plain["keras"], plain["h5"], tmp_path, 40, seed=1)
    result = fuzz.campaign(paths, DEADLINE_S)
    refused = [p for p in paths if p not in result.clean][:3]
    for p in refused:
        run = run_measured(p, "--out", tmp_path / "out", timeout=600)  # a ceiling for a hung run: it takes seconds
        lines = [l for l in run["stderr"].splitlines() if l.strip()]
        assert run["rc"] == int(ExitCode.MODEL_REFUSED) and len(lines) == 1, (p.name, run["stderr"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_slow_campaign(plain, tmp_path, seed):
    result = _run(plain, tmp_path, 2000, seed=seed)
    for p in result.clean[:2]:  # mutants the pre-scan admits: the worker loads them or refuses them, cleanly
        run = run_measured(p, "--only", "architecture", "--load-timeout", "120", "--out", tmp_path / "out", timeout=600)
        assert run["rc"] in (0, 1, 3, 4), (p.name, run["rc"], run["stderr"][-2000:])


def _libhdf5_hang(plain, tmp_path):
    """Mutant 1257 of seed 1: a bit flip on which libhdf5 loops forever (measured: still running after
    120 s). If a change of Keras or h5py makes it stop hanging, find another with the slow campaign."""
    name, suffix, data = next(m for m in fuzz.mutants(plain["keras"], plain["h5"], 1258, seed=1) if m[0] == "m01257_h5")
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(data)
    return path


def test_a_libhdf5_hang_is_killed_at_the_deadline_and_refused(plain, tmp_path):
    path = _libhdf5_hang(plain, tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(ModelRefused, match=r"m01257_h5.h5: reading it as HDF5 did not finish within 3 s \(a malformed file that makes libhdf5 loop\)"):
        scan(path, limits=LoadLimits(h5_scan_timeout_s=3))
    # Killed at its deadline, not left to loop: the file hangs libhdf5 for good (> 120 s measured), so a
    # bound far above 3 s still tells the two apart, and a loaded machine's slow start and reaping fit in it.
    assert time.perf_counter() - t0 < 60


#: ``diagnose`` as its console script runs it, with the HDF5 probe's deadline (20 s, no flag: users have no
#: reason to change it) raised far past any wait of this test, so that only the interrupt can end the run:
#: on a loaded machine the 20 s came first. The attribute is checked first, so a rename fails here, loudly.
CLI_WITHOUT_PROBE_DEADLINE = """
import dataclasses, sys
from diagnostics import _runner as runner
from diagnostics._cli import main
assert runner.DEFAULT_LIMITS.h5_scan_timeout_s == 20.0, runner.DEFAULT_LIMITS
runner.DEFAULT_LIMITS = dataclasses.replace(runner.DEFAULT_LIMITS, h5_scan_timeout_s=3600.0)
main()
"""


def _child_reading(pid: int, path) -> int | None:
    """The child of ``pid`` that has ``path`` open (the HDF5 probe, inside libhdf5 on it), or None."""
    from pathlib import Path

    target = str(path)
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
    return None


def test_the_cli_answers_ctrl_c_while_libhdf5_hangs(plain, tmp_path):
    import signal
    import subprocess
    import sys

    path = _libhdf5_hang(plain, tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", CLI_WITHOUT_PROBE_DEADLINE, str(path), "--out", str(tmp_path / "out")],
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        ceiling = time.monotonic() + 600  # only for a CLI that never reaches the probe: the loop ends on the signal
        while (child := _child_reading(proc.pid, path)) is None:  # interrupt once the HDF5 child reads the file
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < ceiling, "the HDF5 probe did not open the file within 600 s"
            time.sleep(0.1)
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)  # a ceiling for a CLI deaf to Ctrl-C
        answered = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == int(ExitCode.INTERRUPTED), err
    # The probe would only end at its 3600 s deadline: a minute, which a loaded machine's exit (the child
    # killed, then the interpreter's shutdown) fits in many times over, still says Ctrl-C ended the run.
    assert answered < 60, answered
    assert err.strip().splitlines()[-1].startswith("diagnose: interrupted")
    # The CLI kills its HDF5 child on the way out (it may leave the reaping to init): the child goes, it
    # does not loop on as an orphan. The wait ends when it is gone; 60 s is only a ceiling.
    ceiling = time.monotonic() + 60
    while _running(child):
        assert time.monotonic() < ceiling, "the HDF5 child outlived the CLI"
        time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in "ZX"  # a zombie is dead, waiting to be reaped
    except (OSError, IndexError):
        return False
