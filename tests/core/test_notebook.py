"""The report in a notebook: examples/quickstart.ipynb in a real Jupyter kernel, and the inline HTML itself
(the health measures as the HTML report's own blocks)."""

from __future__ import annotations

import base64
import json
import re
import sys
import zipfile
from pathlib import Path

import pytest

from diagnostics import AnalyzerRecord, Finding, Report, Severity
from diagnostics._verdicts import Check, MethodExplanation, Outcome, Verdict

from .health_probe import Probe, probe_record, report_of

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart.ipynb"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _kernel(tmp_path: Path, monkeypatch) -> str:
    """A kernel spec for this interpreter in a private JUPYTER_PATH (nothing written to the user's home:
    the runtime files and IPython's profile go under tmp_path too)."""
    spec = tmp_path / "jupyter" / "kernels" / "diagnostics-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "diagnostics (test)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return "diagnostics-test"


def test_the_quickstart_notebook_renders_its_report_inline(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    kernel = _kernel(tmp_path, monkeypatch)
    tmp, work = tmp_path / "tmp", tmp_path / "work"
    tmp.mkdir()
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the kernel's temporary folder: listed after it exits
    # torch keeps a compile cache in the temporary folder by design (shared by every process, like ~/.cache):
    # elsewhere, so that the listing below shows what diagnostics leaves
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "torchinductor"))
    nb = nbformat.read(QUICKSTART, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    # The timeout is a ceiling for a stuck kernel; the client returns as soon as the last cell has run. After
    # it, the kernel is asked to shut down and waited for until it exits by itself (a ceiling of 600 s): by
    # default it is sent SIGTERM after 2.5 s, before its exit handlers remove the report's temporary folder,
    # and a loaded machine stretches an exit past that (torch's teardown alone took 11-14 s at load 14-24).
    from traitlets.config import Config

    config = Config()
    config.KernelManager.shutdown_wait_time = 1200.0  # SIGTERM after half of it
    NotebookClient(nb, timeout=900, kernel_name=kernel, resources={"metadata": {"path": str(work)}},
                   config=config).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    leaked = [o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert leaked == []
    (cell,) = [c for c in nb.cells if "diagnose" in c.metadata.get("tags", [])]
    progress = [o.data["text/html"] for o in cell.outputs
                if o.output_type == "display_data" and "diagnostics-progress" in o.data.get("text/html", "")]
    assert len(progress) == 1 and "7/7 analyzers" in progress[0] and "verdict: warning (fail on error)" in progress[0]
    (result,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    html = result.data["text/html"]
    assert result.data["text/plain"] == ("<diagnostics.Report cnn: warning, 7 analyzers (7 ok), exit 0; "
                                         "report.show() for the table>")
    assert "<th style=" in html and ">analyzer</th>" in html
    for name in ("architecture", "weights", "health.units", "health.gradients", "health.overfitting",
                 "explain.gradients", "explain.captum"):
        assert re.search(rf"<td[^>]*>{re.escape(name)}</td><td[^>]*><span[^>]*>ok</span>", html), name
    assert "explain.captum: gradcam" in html and "explain.captum: occlusion" in html  # captum ran in memory
    assert "<code>explain.gradients.saliency.failed</code>" in html
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) >= 2 and all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    assert "Explanation maps" in html and "explain.captum: overlays" in html
    # every health analyzer's measures, as the HTML report's blocks, read from the sections
    health = html.split("<b>Health measures</b>", 1)[1].split("<b>Explanation maps</b>", 1)[0]
    assert sorted(re.findall(r"<summary><b>([^<]+)</b>", health)) == ["architecture", "health.gradients",
                                                                     "health.overfitting", "health.units", "weights"]
    for title in ("Parameters per layer", "Kernel norm", "All-zero (dead) units"):
        assert f"<b>{title}</b>" in health, title
    charts = re.findall(r"<figure style='margin:.3rem 0;max-width:100%'><img alt='([^']+)' src='data:image/png", health)
    assert {"architecture.parameters", "weights.norm"} <= set(charts)
    assert list(work.iterdir()) == []  # the notebook writes nothing where it runs
    # the kernel has exited: the report it held went, and its folder with it
    assert sorted(p.name for p in tmp.iterdir()) == []


def _report(directory: Path | None = None, name: str = "cnn") -> Report:
    method = MethodExplanation(method="saliency", reference="Simonyan et al. 2014", verdict=Verdict.FAILED,
                               checks=(Check("randomisation", 0.61, 0.3, Outcome.FAILED, higher_is_better=False),),
                               reasons=("maps barely change",))
    explain = AnalyzerRecord(name="explain.gradients", plugin="explain_gradients", category="explanation", status="ok",
                             findings=(Finding("explain.gradients.saliency.failed", Severity.WARNING,
                                               "saliency <b>cannot</b> be trusted", "saliency"),
                                       Finding("explain.gradients.ok", Severity.INFO, "an info line", "")),
                             artifacts={"overlays": "artifacts/explain.gradients/overlays.png",
                                        "escape": "../outside.png"},
                             explanations=(method,))
    skipped = AnalyzerRecord(name="explain.captum", plugin="explain_captum", category="explanation", status="skipped",
                             reason="runs on the torch backend only")
    report = Report(model={"name": name, "info": {"kind": "image", "n_params": 10, "n_layers": 2}}, data=None,
                    environment={"backends": ["tensorflow"]}, plugins=(), analyzers=(explain, skipped), seed=0,
                    fail_on="error", warnings=("UserWarning: <script>x</script>",))
    if directory is not None:
        object.__setattr__(report, "directory", str(directory))
    return report


def test_the_inline_report_escapes_what_the_model_says_and_embeds_its_images(tmp_path):
    (tmp_path / "artifacts" / "explain.gradients").mkdir(parents=True)
    (tmp_path / "artifacts" / "explain.gradients" / "overlays.png").write_bytes(PNG)
    (tmp_path / "outside.png").write_bytes(PNG)
    html = _report(tmp_path / "", name="<img src=x onerror=alert(1)>\u202e")._repr_html_()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;\\u202e" in html
    assert "saliency &lt;b&gt;cannot&lt;/b&gt; be trusted" in html and "<script>" not in html
    assert "an info line" not in html  # the worst findings are the warnings and errors
    assert html.count("data:image/png;base64," + base64.b64encode(PNG).decode()) == 1  # not ../outside.png
    assert "randomisation 0.61 (&lt; 0.3 wanted)" in html
    assert "runs on the torch backend only" in html
    assert "1 warning(s) printed during the run" in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_show_prints_the_verdict_table_outside_jupyter(capsys):
    _report().show()
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["analyzer", "status", "worst", "findings", "time"]
    assert "explain.captum: skipped: runs on the torch backend only" in out


def test_save_writes_the_report_and_its_artifacts(tmp_path):
    src = tmp_path / "src"
    (src / "artifacts" / "explain.gradients").mkdir(parents=True)
    (src / "artifacts" / "explain.gradients" / "overlays.png").write_bytes(PNG)
    report = _report(src)
    out = report.save(tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b"
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "report.html", "report.json"]
    assert (out / "artifacts" / "explain.gradients" / "overlays.png").read_bytes() == PNG
    assert Report.load(out) == report and Report.load(out).directory == str(out)
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_save_zips_a_report_whose_page_cannot_embed_its_arrays(tmp_path):
    import dataclasses

    import numpy as np

    from diagnostics._html import EMBED_LIMIT

    src = tmp_path / "src"
    (src / "artifacts" / "explain.gradients").mkdir(parents=True)
    np.save(src / "artifacts" / "explain.gradients" / "maps.npy", np.zeros(EMBED_LIMIT // 4 + 1024, np.float32))
    report = _report(src)
    record = dataclasses.replace(report.analyzers[0], artifacts={"maps": "artifacts/explain.gradients/maps.npy"})
    report = dataclasses.replace(report, analyzers=(record, *report.analyzers[1:]))
    object.__setattr__(report, "directory", str(src))
    out = report.save(tmp_path / "shared")
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "report.html", "report.json", "report.zip"]
    with zipfile.ZipFile(out / "report.zip") as z:
        assert "artifacts/explain.gradients/maps.npy" in z.namelist() and "report.html" in z.namelist()


def test_save_is_all_or_nothing(tmp_path, monkeypatch):
    import diagnostics._html

    def broken(report, base_dir):
        raise OSError("disk full")

    previous = _report(tmp_path / "nowhere").save(tmp_path / "kept")
    before = {p.relative_to(previous): p.read_bytes() for p in previous.rglob("*") if p.is_file()}
    monkeypatch.setattr(diagnostics._html, "render_html", broken)
    with pytest.raises(OSError, match="disk full"):
        _report(name="other").save(previous)
    assert {p.relative_to(previous): p.read_bytes() for p in previous.rglob("*") if p.is_file()} == before
    with pytest.raises(OSError, match="disk full"):
        _report().save(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()


def test_a_report_is_one_line_of_plain_text_in_ipython():
    from IPython.lib.pretty import pretty

    assert pretty(_report()) == ("<diagnostics.Report cnn: warning, 2 analyzers (1 ok, 1 skipped), exit 0; "
                                 "report.show() for the table>")


def test_the_inline_report_shows_each_health_measure_as_the_html_report_does(tmp_path):
    """The same blocks as the HTML report (one renderer): the chart embedded, the thresholds, the values; an
    analyzer with a value that did not pass is unfolded, one whose values all passed is folded."""
    import dataclasses

    from diagnostics import Value
    from diagnostics._html import measure_blocks, render_html

    class Calm(Probe):
        name = "calm.health"

    flagged = probe_record(tmp_path)
    calm = probe_record(tmp_path, Calm, values=[Value("norm", 0.5, where="d1"), Value("norm", 0.2, where="d2")])
    report = report_of(flagged, calm)
    object.__setattr__(report, "directory", str(tmp_path))
    html = report._repr_html_()
    blocks = measure_blocks(flagged, tmp_path)
    assert blocks and blocks in html and blocks in render_html(report, tmp_path)  # the very same HTML
    assert "Health measures" in html
    assert re.search(r"<details style='[^']*' open><summary><b>probe.health</b> <span[^>]*>4 measure\(s\), 3 not "
                     r"passed</span></summary>", html)
    assert re.search(r"<details style='[^']*'><summary><b>calm.health</b> <span[^>]*>1 measure\(s\), all passed"
                     r"</span></summary>", html)
    chart = (tmp_path / flagged.measure("norm").chart).read_bytes()
    assert html.count(base64.b64encode(chart).decode()) == 1
    # without its folder (a report built in memory) the blocks are still there, without pictures
    bare = dataclasses.replace(report)
    assert "<b>Gradient norm</b>" in bare._repr_html_() and "data:image/png" not in bare._repr_html_()
