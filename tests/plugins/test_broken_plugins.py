"""Third-party plugins that misbehave, installed through real entry points (diagnostics.testing's
register_plugin fixture), run through the real `diagnose` CLI.

tests/core covers a plugin that raises, hangs, crashes, returns garbage or fails to import. These
cover what a third-party plugin adds: NaN metrics, a changed model, a hook API version mismatch,
metadata the host refuses, a misspelled hook, and --strict-plugins for each runtime failure.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from diagnostics import ExitCode, Report

from ..conftest import run_diagnose

ANALYZER = '''
import diagnostics
from diagnostics import Analyzer, Result

class Plugged(Analyzer):
    name = "{name}"
    description = "a throwaway third-party analyzer"
    def run(self, context):
{body}

@diagnostics.hookimpl
def register_analyzers(register):
    register(Plugged)
'''


def analyzer(name: str, body: str) -> str:
    return ANALYZER.format(name=name, body="\n".join("        " + line for line in body.strip().splitlines()))


NAN_METRICS = analyzer("nan_metrics", 'return Result(metrics={"score": float("nan"), "curve": [0.5, float("inf")]})')
MUTATOR = analyzer("mutator", """
import numpy as np
layer = context.model.layers[-1]
layer.kernel.assign(np.zeros(layer.kernel.shape, dtype="float32"))
return Result(metrics={"changed": True})
""")
# Runs after `mutator` (analyzers run in name order): it must see the weights as the file has them.
PRISTINE = analyzer("pristine", """
import numpy as np
total = float(sum(np.asarray(w).astype("float64").sum() for w in context.model.get_weights()))
return Result(metrics={"weight_sum": total})
""")
# Changes the weights and then raises (e.g. a randomisation test that fails before restoring them).
MIDWAY = analyzer("midway", """
layer = context.model.layers[-1]
layer.kernel.assign(layer.kernel * 3.0)
raise RuntimeError("gave up halfway")
""")
MIDWAY_CHECK = PRISTINE.replace('name = "pristine"', 'name = "midway_check"')  # runs right after `midway`
# Normalises the data in place; `data_sum` runs next and must see the data as the file has them.
DATA_INPLACE = analyzer("data_inplace", "context.data.x_val -= context.data.x_val.mean()\nreturn Result()")
DATA_SUM = analyzer("data_sum", 'return Result(metrics={"x_val_sum": float(context.data.x_val.astype("float64").sum())})')
SLEEPER = analyzer("sleeper", "import time\ntime.sleep(60)\nreturn Result()")
API_V2 = analyzer("from_the_future", "return Result()") + "\nDIAGNOSTICS_API_VERSION = 2\n"
BAD_METADATA = analyzer("Bad Name", "return Result()").replace('description = "a throwaway third-party analyzer"',
                                                                'description = ""')
MISSPELLED_HOOK = '''
import diagnostics

@diagnostics.hookimpl
def register_analysers(register):
    pass
'''

API_V2_MESSAGE = ("plugin 'from_the_future': declares hook API version 2, but this diagnostics provides version 1: "
                  "install a release of the plugin made for API 1, or a diagnostics that provides API 2")
BAD_METADATA_MESSAGE = ("plugin 'bad_metadata': register_analyzers raised ValueError: analyzer Plugged: name must be a "
                        "non-empty lower-case identifier, got 'Bad Name'; description is empty")


@pytest.fixture
def broken(register_plugin):
    for module, source in (("nan_metrics", NAN_METRICS), ("mutator", MUTATOR), ("pristine", PRISTINE),
                           ("midway", MIDWAY), ("midway_check", MIDWAY_CHECK), ("data_inplace", DATA_INPLACE),
                           ("data_sum", DATA_SUM),
                           ("sleeper", SLEEPER), ("from_the_future", API_V2), ("bad_metadata", BAD_METADATA),
                           ("misspelled_hook", MISSPELLED_HOOK)):
        register_plugin(module, source=source, version="1.2.3")


def test_plugins_command_names_each_load_time_problem(broken):
    proc = run_diagnose("plugins")
    assert proc.returncode == ExitCode.PLUGIN_ERROR
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert rows["from_the_future"].endswith("ERROR: " + API_V2_MESSAGE.split(": ", 1)[1])
    assert rows["bad_metadata"].endswith("ERROR: " + BAD_METADATA_MESSAGE.split(": ", 1)[1])
    assert re.search(r"ERROR: invalid hook implementation: unknown hook 'register_analysers' in plugin", rows["misspelled_hook"])
    for ok in ("nan_metrics", "mutator", "pristine", "sleeper", "midway", "midway_check", "data_inplace", "data_sum"):
        assert re.match(rf"{ok}\s+1\.2\.3\s+analyzers\s+{ok}\s+ok$", rows[ok]), rows[ok]


def test_nan_metrics_and_weight_changes_are_reported_and_the_run_completes(broken, tiny, tmp_path):
    out = tmp_path / "o"
    proc = run_diagnose(tiny["keras"], "--data", tiny["data"], "--out", out, "--only", "nan_metrics", "--only", "mutator",
                        "--only", "pristine", "--only", "midway", "--only", "midway_check", "--only", "data_inplace",
                        "--only", "data_sum", "--only", "weights")
    assert proc.returncode == ExitCode.ANALYZER_FAILED, proc.stderr
    report = Report.load(out)
    assert report.exit_code == ExitCode.ANALYZER_FAILED
    by = {r.name: r for r in report.analyzers}
    assert (by["nan_metrics"].status, by["nan_metrics"].reason) == (
        "failed", "plugin 'nan_metrics': returned a malformed result: metrics['score'] is not a finite number; "
                  "metrics['curve'][1] is not a finite number")
    assert by["nan_metrics"].metrics == {}  # nothing of a malformed result reaches the report
    assert (by["mutator"].status, by["mutator"].reason) == (
        "failed", "plugin 'mutator': returned a malformed result: changed the model's weights "
                  "(analyzers must leave the model as they found it)")
    # The next analyzer saw the weights as the file has them: the worker reloaded the model.
    expected = float(sum(w.astype("float64").sum() for w in tiny["model"].get_weights()))
    assert by["pristine"].status == "ok"
    assert by["pristine"].metrics["weight_sum"] == pytest.approx(expected, rel=1e-6)
    assert by["weights"].status == "ok"
    # An analyzer that changes the weights and then raises: both are said, and the model is reloaded too.
    assert (by["midway"].status, by["midway"].reason) == (
        "failed", "plugin 'midway': raised RuntimeError: gave up halfway; it had also changed the model's weights "
                  "(reloaded for the next analyzer)")
    assert by["midway_check"].metrics["weight_sum"] == pytest.approx(expected, rel=1e-6)
    # Data are shared by the analyzers of a worker: changing them in place is refused, loudly.
    assert (by["data_inplace"].status, by["data_inplace"].reason) == (
        "failed", "plugin 'data_inplace': raised ValueError: output array is read-only")
    with np.load(tiny["data"]) as z:
        assert by["data_sum"].metrics["x_val_sum"] == pytest.approx(float(z["x_val"].astype("float64").sum()), rel=1e-9)
    # Load-time problems are named in the report, the HTML and the terminal.
    assert sorted(report.plugin_problems) == sorted([
        BAD_METADATA_MESSAGE, API_V2_MESSAGE,
        next(p for p in report.plugin_problems if p.startswith("plugin 'misspelled_hook': invalid hook implementation: "
                                                              "unknown hook 'register_analysers'"))])
    html = (out / "report.html").read_text()
    assert "<h2>Plugin problems</h2>" in html
    assert "plugin &#x27;from_the_future&#x27;: declares hook API version 2" in html
    assert "plugin &#x27;mutator&#x27;: returned a malformed result: changed the model&#x27;s weights" in html
    assert "from_the_future" not in {r.name for r in report.analyzers}  # refused: its analyzer never registered
    assert "plugin 'from_the_future': declares hook API version 2" in proc.stdout + proc.stderr


def test_strict_plugins_refuses_an_incompatible_api_version_before_any_work(register_plugin, tiny, tmp_path):
    register_plugin("from_the_future", source=API_V2)
    proc = run_diagnose(tiny["keras"], "--out", tmp_path / "o", "--strict-plugins")
    assert proc.returncode == ExitCode.PLUGIN_ERROR
    assert proc.stderr.strip() == f"diagnose: {API_V2_MESSAGE} (--strict-plugins)"
    assert not (tmp_path / "o" / "report.json").exists()


@pytest.mark.parametrize("bad, source, status, reason", [
    ("nan_metrics", NAN_METRICS, "failed", "returned a malformed result: metrics['score'] is not a finite number"),
    pytest.param("mutator", MUTATOR, "failed", "returned a malformed result: changed the model's weights",
                 marks=pytest.mark.slow),  # the same 'failed' path as nan_metrics: kept out of the default budget
    ("sleeper", SLEEPER, "timed_out", "exceeded its 2 s budget and was stopped"),
])
def test_strict_plugins_makes_each_runtime_failure_fatal(register_plugin, tiny, tmp_path, bad, source, status, reason):
    register_plugin(bad, source=source)
    register_plugin("pristine", source=PRISTINE.replace('name = "pristine"', 'name = "zz_after"'))
    out = tmp_path / "o"
    proc = run_diagnose(tiny["keras"], "--out", out, "--only", bad, "--only", "zz_after", "--timeout", "2",
                        "--strict-plugins")
    assert proc.returncode == ExitCode.PLUGIN_ERROR, proc.stderr
    report = Report.load(out)
    assert report.exit_code == ExitCode.PLUGIN_ERROR
    rec = report.record(bad)
    assert rec.status == status and rec.reason.startswith(f"plugin {bad!r}: {reason}"), rec.reason
    after = report.record("zz_after")
    assert (after.status, after.reason) == ("skipped", "not run: the run was stopped by --strict-plugins")


def test_the_host_refuses_an_incompatible_api_version_in_process():
    """The same check through the API (PluginHost's ``extra``), for both a too-new and a too-old plugin."""
    import types

    import diagnostics
    from diagnostics._plugin_manager import PluginError, PluginHost

    for declared in (2, 0):
        plugin = types.SimpleNamespace(DIAGNOSTICS_API_VERSION=declared, __name__="other_era")
        host = PluginHost(extra=(("other_era", plugin),)).load()
        assert host.records["other_era"].error == (
            f"declares hook API version {declared}, but this diagnostics provides version 1: install a release of the "
            f"plugin made for API 1, or a diagnostics that provides API {declared}")
        with pytest.raises(PluginError, match=f"plugin 'other_era': declares hook API version {declared}"):
            PluginHost(strict=True, extra=(("other_era", plugin),)).load()
    current = types.SimpleNamespace(DIAGNOSTICS_API_VERSION=diagnostics.HOOK_API_VERSION, __name__="this_era")
    assert PluginHost(extra=(("this_era", current),)).load().records["this_era"].error is None


def test_a_plugin_object_that_cannot_reach_the_workers_is_refused_by_name(tiny, tmp_path):
    """RunConfig.extra_plugins with an object (not an import path): workers could not load it, and its
    analyzer used to crash the worker with 'unknown analyzer'. Now: a usage error saying what to pass."""
    import types

    import diagnostics
    from diagnostics._runner import Progress, RunConfig, importable_plugins, run_file

    plugin = types.SimpleNamespace(__name__="in_memory_only", register_analyzers=diagnostics.hookimpl(lambda register: None))
    outcome = run_file(RunConfig(model_path=str(tiny["keras"]), out_dir=tmp_path / "o",
                                 extra_plugins=(("in_memory_only", plugin),)), Progress(quiet=True))
    assert outcome.exit_code == ExitCode.USAGE
    assert outcome.message.startswith("plugin 'in_memory_only' was given as an in-process object (SimpleNamespace); "
                                      "analyzers run in worker processes, which load plugins by import path")
    # An importable module is passed on by its name.
    assert importable_plugins((("json", __import__("json")), ("x", "pkg.mod:attr"))) == (("json", "json"), ("x", "pkg.mod:attr"))


WORKER_ONLY_FAILURE = analyzer("early_shy", "return Result()").replace("import diagnostics\n", """import diagnostics
import multiprocessing
if multiprocessing.current_process().name.startswith("diagnostics-"):
    raise ImportError("libfoo.so: cannot open shared object file")
""", 1)


def test_a_plugin_that_imports_in_the_cli_but_not_in_the_worker_fails_by_name(register_plugin, tiny, tmp_path):
    """Imported fine by the parent (so its analyzer is planned) but not by the worker process: the
    analyzer fails with the worker's import error, and the worker lives on for the next analyzer."""
    register_plugin("worker_shy", source=WORKER_ONLY_FAILURE)
    out = tmp_path / "o"
    proc = run_diagnose(tiny["keras"], "--out", out, "--only", "early_shy", "--only", "weights")  # in this order
    assert proc.returncode == ExitCode.ANALYZER_FAILED, proc.stderr
    report = Report.load(out)
    rec = report.record("early_shy")
    assert (rec.status, rec.reason) == ("failed", "plugin 'worker_shy': could not be loaded in the tensorflow worker "
                                                  "process: worker_shy: failed to import worker_shy: ImportError: "
                                                  "libfoo.so: cannot open shared object file")
    assert report.record("weights").status == "ok"
    assert "crashed" not in rec.reason
