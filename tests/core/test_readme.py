"""The README's code blocks are run for real, so that what a new user copies works.

Every fenced block of README.md is one of:
- a shell line ``diagnose ...``: run with the installed executable, its exit code and the files it says it
  writes checked;
- a Python block: run in a fresh interpreter, its ``report`` checked;
- a Python block defining ``test_...`` functions: written to a test file and run by pytest in a subprocess,
  which finds the ``diagnose`` fixture through the package's own pytest plugin (its ``pytest11`` entry point);
- one of the lines in ``NOT_EXECUTED`` below, with the reason. The test fails on a block of any other kind, so
  a new block cannot slip by unexecuted.

The blocks run in a folder that holds what they name: ``my_model.keras`` is the zoo's cnn (copied, without
its sidecar, as a user's own model would be) and ``data.npz`` its dataset's four arrays.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ..conftest import REPO, ZOO_DIR, run_diagnose

README = REPO / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", TEXT, re.S | re.M)]

#: README lines that are not executed, and why. They are the contract with CI (.ci/run calls `make test`)
#: and must stay exactly as written: both create .venv and pip-install the project, and `make test` runs
#: this very suite, so running them here would install into the developer's tree and recurse.
NOT_EXECUTED = {
    "make demo": "installs the project into .venv (pip), then runs the full demo; the contract with users",
    "make test": "installs the project into .venv (pip), then runs this test suite itself; the contract with CI",
}
THE_TWO_COMMANDS = """\
make demo    # creates .venv, installs (pinned by constraints.txt), diagnoses the zoo CNN -> reports/demo/
make test    # creates .venv, installs, runs the test suite (slow tests: make test-slow)
"""

#: The exit code each `diagnose` line of the README must give on the zoo cnn, and the files it must write
#: (relative to the folder it runs in). A line missing here fails test_every_block_is_executed_or_excluded.
EXPECTED = {
    "diagnose my_model.keras --data data.npz": (0, ["reports/my_model/report.html", "reports/my_model/report.json"]),
    "diagnose my_model.keras --data data.npz --junit-xml diagnose.xml --summary-md diagnose.md":
        (0, ["diagnose.xml", "diagnose.md", "reports/my_model/report.html"]),
}

#: The model-level runs keep every data-cheap analyzer and leave out the explanation plugins, through the
#: documented switch (DIAGNOSTICS_DISABLE_PLUGINS), so the README's command lines run exactly as written:
#: with them a full run of the cnn takes 25 s on a quiet 2-core machine and over 2 minutes on a loaded one
#: (SHAP alone 54 s), three times. The pytest example selects its own analyzers (explanations included).
FAST = {"DIAGNOSTICS_DISABLE_PLUGINS": "explain_gradients,explain_captum,explain_lime,explain_shap,shortcut"}


def shell_lines(body: str) -> list[str]:
    """The commands of a shell block, without their trailing ``# comment``."""
    return [line.split("  #", 1)[0].strip() for line in body.splitlines() if line.strip()]


def classify() -> dict[str, list]:
    kinds: dict[str, list] = {"diagnose": [], "python": [], "pytest": [], "not executed": [], "unknown": []}
    for lang, body in BLOCKS:
        if lang in ("bash", "sh", "shell", "console"):
            for line in shell_lines(body):
                kind = "diagnose" if line.startswith("diagnose ") else "not executed" if line in NOT_EXECUTED else "unknown"
                kinds[kind].append(line)
        elif lang == "python":
            kinds["pytest" if re.search(r"^def test_\w+\(", body, re.M) else "python"].append(body)
        else:
            kinds["unknown"].append(f"```{lang}\n{body}```")
    return kinds


KINDS = classify()


def test_every_block_is_executed_or_excluded():
    assert not KINDS["unknown"], (
        f"README blocks this test does not know how to run: {KINDS['unknown']}; run them here, or add them to "
        "NOT_EXECUTED with the reason")
    assert sorted(KINDS["not executed"]) == sorted(NOT_EXECUTED), "NOT_EXECUTED must list exactly the README's"
    assert sorted(KINDS["diagnose"]) == sorted(EXPECTED), "EXPECTED must list exactly the README's diagnose lines"
    assert len(KINDS["python"]) == 1 and len(KINDS["pytest"]) == 1, KINDS


def test_the_two_commands_are_unchanged():
    """`make demo` and `make test` are what CI and users type; their block stays exactly this."""
    assert ("bash", THE_TWO_COMMANDS) in BLOCKS


def test_readme_size_links_and_images():
    assert len(TEXT.encode()) <= 8192, f"README.md is {len(TEXT.encode())} bytes; keep it within 8 kB, move detail to docs/"
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT)
    local = [t for t in targets if "://" not in t]
    assert any(t.endswith(".png") for t in local) and any(t.startswith("docs/") for t in local)
    for target in local:
        path = REPO / target
        assert path.is_file(), f"README links to {target}, which does not exist"
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", target
            assert path.stat().st_size < 200_000, f"{target} is {path.stat().st_size} bytes; keep screenshots < 200 kB"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", sorted(p.name for p in (REPO / "docs").glob("*.md")) + ["../README.md"])
def test_relative_links_in_the_docs_resolve(doc):
    """The README's sections moved to docs/; a link to a page or a heading that is not there fails."""
    source = (REPO / "docs" / doc).resolve()
    text = re.sub(r"^```.*?^```$", "", source.read_text(encoding="utf-8"), flags=re.S | re.M)
    for target, anchor in re.findall(r"\]\((?!\w+://)([^)#\s]*)(?:#([^)\s]+))?\)", text):
        path = (source.parent / target).resolve() if target else source
        assert path.exists(), f"{doc} links to {target}, which does not exist"
        if anchor and path.suffix == ".md":
            body = re.sub(r"^```.*?^```$", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
            slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", body, re.M)}
            assert anchor in slugs, f"{doc} links to {target or doc}#{anchor}: no such heading ({sorted(slugs)})"


def test_the_ci_page_shows_the_readmes_pytest_example():
    assert KINDS["pytest"][0] in (REPO / "docs" / "ci.md").read_text(encoding="utf-8")


# -- running the blocks ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """The files the README's blocks name: the zoo cnn as `my_model.keras`, its sidecar's dataset and split as
    `data.npz` (the four arrays a user would save), made once for the module."""
    from diagnostics_zoo.datasets import DATASETS

    d = tmp_path_factory.mktemp("readme-files")
    shutil.copyfile(ZOO_DIR / "cnn.keras", d / "my_model.keras")
    meta = json.loads((ZOO_DIR / "cnn.meta.json").read_text())
    arrays = DATASETS[meta["dataset"]](meta["split_seed"])
    np.savez(d / "data.npz", **{k: arrays[k] for k in ("x_train", "y_train", "x_val", "y_val")})
    return d


@pytest.fixture
def workdir(tmp_path, model_files):
    """A fresh folder per block with the files, so no block sees what another wrote."""
    for f in model_files.iterdir():
        os.link(f, tmp_path / f.name)
    return tmp_path


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS")}
    # a temporary folder of the test's own, so nothing a block leaves in TMPDIR outlives the test
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**env, "TMPDIR": str(tmp_path / "tmp"), "PYTHONUNBUFFERED": "1", **extra}


@pytest.mark.parametrize("line", KINDS["diagnose"])
def test_diagnose_lines_run(line, workdir):
    code, files = EXPECTED[line]
    proc = run_diagnose(*line.split()[1:], cwd=workdir, env=_env(workdir, **FAST))
    assert proc.returncode == code, f"`{line}` exited {proc.returncode}, expected {code}:\n{proc.stderr[-3000:]}"
    for f in files:
        assert (workdir / f).is_file(), f"`{line}` did not write {f}"
    if "--junit-xml" in line:
        import junitparser

        suites = list(junitparser.JUnitXml.fromfile(str(workdir / "diagnose.xml")))
        cases = {case.name for suite in suites for case in suite}
        assert {"architecture", "health.gradients", "weights"} <= cases, cases
        assert "Verdict" in (workdir / "diagnose.md").read_text(), "the summary states the verdict"


HARNESS = """
import json, sys
import diagnostics
namespace = {}
exec(compile(open(sys.argv[1]).read(), "README.md", "exec"), namespace)
report = namespace["report"]
assert isinstance(report, diagnostics.Report), type(report)
print(json.dumps({"model": report.model["name"], "statuses": {r.name: str(r.status.value) for r in report.analyzers},
                  "exit_code": int(report.compute_exit_code())}))
"""


def test_python_block_runs(workdir):
    (workdir / "block.py").write_text(KINDS["python"][0])
    proc = subprocess.run([sys.executable, "-c", HARNESS, "block.py"], cwd=workdir, env=_env(workdir, **FAST),
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["model"] == "my_model.keras" and result["exit_code"] == 0, result
    assert result["statuses"]["health.gradients"] == "ok" and result["statuses"]["health.overfitting"] == "ok", result


def test_pytest_example_passes_under_pytest(workdir):
    """The README's pytest example is a test file of its own, run by pytest with the installed plugin; the finding
    its `allow` glob names really occurs on this model, so the glob is what makes it pass."""
    (workdir / "test_model.py").write_text(KINDS["pytest"][0])
    basetemp = workdir / "pytest-tmp"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_model.py",
                           f"--basetemp={basetemp}"], cwd=workdir, env=_env(workdir),
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"^1 passed\b", out, re.M), out[-3000:]
    globs = re.findall(r'allow=\[([^\]]*)\]', KINDS["pytest"][0])
    assert globs, "the example shows an allow list"
    patterns = [p.strip().strip("\"'") for p in globs[0].split(",")]
    (report_json,) = {p.resolve() for p in basetemp.glob("*/diagnose-1/report.json")}  # pytest adds a *current link
    report = json.loads(report_json.read_text())
    codes = [(f["code"], f["severity"]) for a in report["analyzers"] for f in a["findings"]]
    for pattern in patterns:
        matched = [c for c, s in codes if fnmatch.fnmatchcase(c, pattern) and s in ("warning", "error")]
        assert matched, f"allow glob {pattern!r} matches no warning of the run: {codes}"
