"""The seeded fuzzer: every mutant of a real model ends within its deadline, refused or clean —
never a hang, a crash or an internal error. The campaign's figures are printed for the record."""

from __future__ import annotations

import pytest

from diagnostics import ExitCode

from . import fuzz
from .conftest import run_measured

DEADLINE_S = 20.0  # per mutant, generous for a loaded machine: a clean scan takes ~10 ms in-process


def _run(plain, tmp_path, count: int, seed: int):
    paths = fuzz.write_mutants(plain["keras"], plain["h5"], tmp_path, count, seed)
    result = fuzz.campaign(paths, DEADLINE_S)
    print(f"\nfuzz seed={seed}: tried {result.tried}, refused {result.refused}, clean {len(result.clean)}, "
          f"errors {len(result.errors)}, hangs {len(result.hangs)}; slowest refusal {result.slowest_refusal_s:.3f} s "
          f"({result.slowest_name}); campaign {result.wall_s:.1f} s")
    assert result.tried == count
    assert result.hangs == [], result.hangs
    assert result.errors == [], result.errors[:5]
    assert result.refused + len(result.clean) == count
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
        run = run_measured(p, "--out", tmp_path / "out", timeout=120)
        lines = [l for l in run["stderr"].splitlines() if l.strip()]
        assert run["rc"] == int(ExitCode.MODEL_REFUSED) and len(lines) == 1, (p.name, run["stderr"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_slow_campaign(plain, tmp_path, seed):
    result = _run(plain, tmp_path, 2000, seed=seed)
    for p in result.clean[:2]:  # mutants the pre-scan admits: the worker loads them or refuses them, cleanly
        run = run_measured(p, "--only", "architecture", "--load-timeout", "120", "--out", tmp_path / "out", timeout=600)
        assert run["rc"] in (0, 1, 3, 4), (p.name, run["rc"], run["stderr"][-2000:])
