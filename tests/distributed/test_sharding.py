"""Sharded explanations (diagnostics.sharding): the split, per-sample randomness, and a 1-way run
against a 4-way run (local workers, then Ray actors) giving the same report and the same maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics import ExitCode
from diagnostics.report import strip_timings
from diagnostics._runner import Progress, RunConfig, run_file
from diagnostics.sharding import merge, sample_rng, split

from ..conftest import ZOO_DIR
from .conftest import comparable

DEMO = (("sharded_demo", "diagnostics.testing.sharded"),)
MAPS = "artifacts/testing.smoothgrad/maps.npy"


@pytest.mark.parametrize("n, shards, unit", [(100, 4, 16), (100, 1, 16), (7, 4, 1), (5, 4, 16), (64, 3, 16), (0, 4, 16)])
def test_split_covers_every_sample_in_order_on_unit_boundaries(n, shards, unit):
    ranges = split(n, shards, unit)
    assert [i for a, b in ranges for i in range(a, b)] == list(range(n))
    assert all(a % unit == 0 for a, _ in ranges) and len(ranges) <= max(shards, 1)
    assert split(100, 4, 16) == [(0, 16), (16, 48), (48, 80), (80, 100)]


def test_per_sample_randomness_depends_on_the_sample_not_the_stream():
    a = sample_rng(3, "testing.smoothgrad", 41).standard_normal(5)
    sample_rng(3, "testing.smoothgrad", 40).standard_normal(1000)  # another sample's draws change nothing
    assert np.array_equal(a, sample_rng(3, "testing.smoothgrad", 41).standard_normal(5))
    assert not np.array_equal(a, sample_rng(3, "testing.smoothgrad", 42).standard_normal(5))
    assert not np.array_equal(a, sample_rng(4, "testing.smoothgrad", 41).standard_normal(5))
    assert not np.array_equal(a, sample_rng(3, "explain.other", 41).standard_normal(5))


def test_merge_concatenates_in_the_given_order_and_refuses_mismatched_shards():
    m = merge([{"maps": np.zeros((2, 3)), "i": np.array([0, 1])}, {"maps": np.ones((1, 3)), "i": np.array([2])}])
    assert m["i"].tolist() == [0, 1, 2] and m["maps"].sum() == 3
    with pytest.raises(ValueError, match="different arrays"):
        merge([{"a": np.zeros(1)}, {"b": np.zeros(1)}])


def _run(out, shards, **kw):
    outcome = run_file(RunConfig(model_path=str(ZOO_DIR / "mlp.keras"), out_dir=out, only=("testing.smoothgrad",),
                                 extra_plugins=DEMO, shards=shards, options={"testing.smoothgrad": {"samples": 100}}, **kw),
                       Progress(quiet=True))
    assert outcome.exit_code == ExitCode.OK, outcome.message
    return json.loads((out / "report.json").read_text()), (out / MAPS).read_bytes()


@pytest.fixture(scope="module")
def one_way(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("one-way"), 1)


def test_a_4_way_split_gives_the_1_way_report_and_maps(one_way, tmp_path):
    report, maps = one_way
    rec = report["analyzers"][0]
    assert rec["status"] == "ok" and rec["metrics"]["samples"] == 100 and rec["metrics"]["indices_in_order"]
    assert rec["metrics"]["finite"] and rec["metrics"]["half_stability"] > 0.5
    four, four_maps = _run(tmp_path / "four", 4)
    assert strip_timings(four) == strip_timings(report)
    assert four_maps == maps  # bit for bit
    assert not (tmp_path / "four" / ".shards").exists()  # the shards' files stay in the staging directory


def test_a_4_way_split_on_ray_actors_gives_the_1_way_report(one_way, ray_address, tmp_path):
    report, maps = one_way
    four, four_maps = _run(tmp_path / "ray", 4, executor="ray", workers=2)
    assert comparable(four) == comparable(report)
    assert four_maps == maps


CRASHY = '''
import os

import diagnostics
from diagnostics.sharding import SampleSharded


class Crashy(SampleSharded, diagnostics.Analyzer):
    name = "crashy"
    description = "its second shard kills its worker"

    def sample_count(self, options, data):
        return 8

    def run_shard(self, context, indices):
        if indices[0] >= 4:
            os._exit(9)
        return {"i": indices}

    def finish(self, context, merged):
        return diagnostics.Result(metrics={"n": len(merged["i"])})


@diagnostics.hookimpl
def register_analyzers(register):
    register(Crashy)
'''


def test_a_shard_whose_worker_dies_makes_the_analyzer_crashed_naming_the_shard(tiny, tmp_path, monkeypatch):
    """The shard's own status is the analyzer's: crashed (read from the job result, not from the words of
    the reason, which begin with the shard's range)."""
    from diagnostics import Report, Status

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "crashy_sharded.py").write_text(CRASHY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))  # the spawned workers get this process's path
    outcome = run_file(RunConfig(model_path=str(tiny["keras"]), out_dir=tmp_path / "o", only=("crashy",), shards=2,
                                 extra_plugins=(("crashy", "crashy_sharded"),)), Progress(quiet=True))
    assert outcome.exit_code == ExitCode.ANALYZER_FAILED, outcome.message
    rec = Report.load(tmp_path / "o").record("crashy")
    assert rec.status is Status.CRASHED
    assert rec.reason.startswith("plugin 'crashy': shard [4, 8) of 2: crashed: the worker process died (exit code 9)"), rec.reason


def test_sharding_is_deprecated_and_says_so():
    """Issue 24: sample sharding leaves the core in the next release; a subclass warns, naming itself."""
    from diagnostics.sharding import SampleSharded

    with pytest.warns(DeprecationWarning, match=r"\.<locals>\.Mine: diagnostics.sharding.SampleSharded is deprecated and goes in "
                                                r"the next release \(docs/ray.md, 'Sharded explanations'\)$"):
        class Mine(SampleSharded):
            pass
