"""The HTML report as a demanding reader uses it: a table of contents, the true labels of the explained
samples, a summary line that agrees with the figures, and a page that survives being shared alone (arrays
embedded as downloads when small, a report.zip beside it when not, and the page says which)."""

from __future__ import annotations

import base64
import html as html_lib
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from diagnostics import AnalyzerRecord, ExitCode, Finding, Report
from diagnostics.html import ARCHIVE, EMBED_LIMIT, render_html, write_archive
from diagnostics.verdicts import Check, MethodExplanation

from ..conftest import run_diagnose
from .conftest import analyzer_source, install_plugin

SCRIPT = "<script>alert(1)</script>"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _publish(out: Path, report: Report) -> str:
    """The report folder as a run leaves it: report.json, report.html, and report.zip when it needs one."""
    page = render_html(report, out)
    (out / "report.html").write_text(page, encoding="utf-8")
    (out / "report.json").write_text(report.to_json(), encoding="utf-8")
    write_archive(out)
    return page


def _report(out: Path, array_bytes: int, name: str = "explain.gradients") -> Report:
    """An explanation analyzer with a figure, four explained samples (one of them explained as another class
    than its label), an array of ``array_bytes``, and a shortcut-like analyzer with a figure and no finding."""
    art = out / "artifacts" / "ex"
    art.mkdir(parents=True)
    (art / "overlays.png").write_bytes(PNG)
    np.save(art / "labels.npy", np.array([3, 1, 4, 1]))
    np.save(art / "ig.npy", np.zeros(max(1, (array_bytes - 128) // 4), "float32"))
    (out / "artifacts" / "sc").mkdir()
    (out / "artifacts" / "sc" / "shortcut.png").write_bytes(PNG)
    section = MethodExplanation(
        "integrated_gradients", "trusted", checks=(Check("finite", 1.0, 1.0, "passed"),), sample_indices=(7, 18, 33, 77),
        targets=(3, 1, 9, 1), target="predicted class",
        artifacts={"attributions": "artifacts/ex/ig.npy", "labels": "artifacts/ex/labels.npy"})
    records = (
        AnalyzerRecord(name=name, plugin="explain_gradients", category="explanation", status="ok", duration_s=1.0,
                       findings=(Finding("explain.gradients.saliency.failed", "warning", "maps do not move", "saliency"),),
                       artifacts={"overlays": "artifacts/ex/overlays.png", "ig attributions": "artifacts/ex/ig.npy"},
                       explanations=(section,)),
        AnalyzerRecord(name="explain.shortcut", plugin="shortcut", category="explanation", status="ok", duration_s=1.0,
                       artifacts={"shortcut region": "artifacts/sc/shortcut.png"}, metrics={"concentrated": False}),
        AnalyzerRecord(name="health.gan", plugin="health_gan", category="health", status="skipped",
                       reason="applies to generator models; this is an image model"),
        AnalyzerRecord(name="weights", plugin="weights", category="health", status="failed", reason="plugin 'weights': boom"),
    )
    return Report(model={"name": "cnn.keras", "info": {"kind": "image"}}, data=None, environment={}, plugins=(),
                  analyzers=records, seed=0, fail_on="error", exit_code=int(ExitCode.ANALYZER_FAILED))


def test_contents_link_every_section_with_its_state(tmp_path):
    page = _publish(tmp_path, _report(tmp_path, 1000))
    toc = page.split("<nav class=toc", 1)[1].split("</nav>", 1)[0]
    entries = re.findall(r"<li><a href='#([^']+)'>([^<]+)</a>(?: <span class=\"pill\" style=\"background:(#\w+)\">([^<]+))?", toc)
    assert [(a, n, s) for a, n, _, s in entries] == [
        ("verdicts", "Verdicts", ""), ("a-explain.gradients", "explain.gradients", "warning"),
        ("a-explain.shortcut", "explain.shortcut", "clean"), ("a-health.gan", "health.gan", "skipped"),
        ("a-weights", "weights", "failed"), ("timings", "Timings", ""), ("environment", "Environment", "")]
    assert [c for *_, c, _ in entries[1:5]] == ["#ef6c00", "#2e7d32", "#757575", "#c62828"]
    for anchor, *_ in entries:  # every link lands on a section, which links back
        assert f"id='{anchor}'" in page
    assert page.count("<a class=top href='#top'>") == 2 + 4 and "<h1 id='top'>" in page


def test_explained_samples_show_their_true_label(tmp_path):
    page = _publish(tmp_path, _report(tmp_path, 1000))
    table = page.split("<summary>Samples explained", 1)[1].split("</table>", 1)[0]
    assert "<th>output explained (predicted class)</th><th>true label</th>" in table
    rows = re.findall(r"<tr><td>#(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(.)</td></tr>", table)
    assert rows == [("7", "3", "3", "✓"), ("18", "1", "1", "✓"), ("33", "9", "4", "✗"), ("77", "1", "1", "✓")]


def test_a_figure_without_findings_is_a_measurement_not_a_problem(tmp_path):
    """The shortcut analyzer draws its candidate region in red even when its test rejects it: the page must
    not say 'No findings.' above it and leave the reader to guess; the summary and the caption say the same."""
    page = _publish(tmp_path, _report(tmp_path, 1000))
    section = page.split("<h2 id='a-explain.shortcut'>", 1)[1].split("<h2", 1)[0]
    assert "<p class=muted>No findings.</p>" not in section
    assert ("No findings: nothing this analyzer measured crossed its thresholds. The figure below shows what it "
            "measured, not a problem found.") in section
    assert re.search(r"<figcaption>shortcut region — <span class=\"pill\"[^>]*>measured, no finding</span>", section)
    flagged = page.split("<h2 id='a-explain.gradients'>", 1)[1].split("<h2", 1)[0]
    assert re.search(r"<figcaption>overlays — <span class=\"pill\"[^>]*>warning</span> illustrates "
                     r"explain.gradients.saliency.failed</figcaption>", flagged)
    assert "No findings" not in flagged


def test_small_arrays_are_embedded_so_the_page_can_be_shared_alone(tmp_path):
    page = _publish(tmp_path, _report(tmp_path, 100_000))
    assert not (tmp_path / ARCHIVE).exists() and ARCHIVE not in page
    assert "This page is self-contained" in page
    links = dict((n, (f, u)) for f, u, n in re.findall(
        r"<a download='([^']+)' href='data:application/octet-stream;base64,([^']+)'>([^<]+)</a>", page))
    assert set(links) == {"ig attributions", "labels"}  # each array once, whichever record names it
    for name, rel in (("ig attributions", "artifacts/ex/ig.npy"), ("labels", "artifacts/ex/labels.npy")):
        filename, data = links[name]
        assert filename == Path(rel).name and base64.b64decode(data) == (tmp_path / rel).read_bytes()
    # the shared page alone, in another folder: nothing it shows points at a file beside it
    assert not re.findall(r"(?:href|src)='(?!data:|#)", page)


def test_large_arrays_go_to_a_report_zip_that_the_page_names(tmp_path):
    page = _publish(tmp_path, _report(tmp_path, EMBED_LIMIT + 1))
    assert "data:application/octet-stream" not in page and "data:image/png;base64," in page  # pictures stay inside
    note = html_lib.unescape(re.sub("<[^>]+>", "", page.split("<p class=note>", 1)[1].split("</p>", 1)[0]))
    assert note == ("The pictures are inside this page, but its arrays (2.0 MB) are too large to embed (over 2.0 MB): "
                    "the file links open them in the artifacts folder beside this page, and report.zip beside it holds "
                    "the whole report (this page, report.json and every artifact). To share the report, send report.zip.")
    assert "<a href='artifacts/ex/ig.npy'>ig attributions</a>" in page
    with zipfile.ZipFile(tmp_path / ARCHIVE) as z:
        names = sorted(z.namelist())
        assert names == ["artifacts/ex/ig.npy", "artifacts/ex/labels.npy", "artifacts/ex/overlays.png",
                         "artifacts/sc/shortcut.png", "report.html", "report.json"]
        assert z.read("artifacts/ex/ig.npy") == (tmp_path / "artifacts/ex/ig.npy").read_bytes()
        assert z.read("report.html").decode() == page
        assert np.load(io.BytesIO(z.read("artifacts/ex/labels.npy"))).tolist() == [3, 1, 4, 1]
    # the next run's page embeds again: the stale archive goes
    (tmp_path / "artifacts" / "ex" / "ig.npy").write_bytes(b"small")
    _publish(tmp_path, Report.load(tmp_path))
    assert not (tmp_path / ARCHIVE).exists()


def test_names_are_escaped_in_the_contents_anchors_downloads_and_samples(tmp_path):
    report = _report(tmp_path, 1000, name=f"ex'{SCRIPT}")
    page = _publish(tmp_path, report)
    assert "<script>" not in page
    assert not [v for v in re.findall(r"='([^']*)'", page) if "<" in v or ">" in v]  # no attribute is broken out of
    assert "id='a-ex--script-alert-1---script-'" in page and "href='#a-ex--script-alert-1---script-'" in page
    assert f"ex&#x27;{SCRIPT}".replace("<", "&lt;").replace(">", "&gt;") in page
    # an artifact path that leaves the report folder is neither embedded nor linked, nor read as an image
    evil = AnalyzerRecord(name="evil", plugin="evil", category="health", status="ok",
                          artifacts={"passwd": "../../etc/passwd", "pic": "/etc/hostname.png"})
    page = render_html(Report(model={"name": "m"}, data=None, environment={}, plugins=(), analyzers=(evil,), seed=0,
                              fail_on="error"), tmp_path)
    assert "passwd (../../etc/passwd)" in page and "<img" not in page and "download=" not in page


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """A real run whose throwaway analyzer writes a 3 MB array and a figure: the CLI writes report.zip."""
    d = tmp_path_factory.mktemp("big")
    body = ("import numpy as np\nnp.save(context.artifact_dir / 'big.npy', np.zeros(3 * 2**20 // 4, 'float32'))\n"
            "return Result(artifacts={'big array': 'big.npy'})")
    env = install_plugin(d / "site", "bigarray", analyzer_source("bigarray", body))
    from ..conftest import ZOO_DIR

    proc = run_diagnose(ZOO_DIR / "mlp.keras", "--only", "bigarray,architecture", "--out", d / "out", "-q", env=env)
    return proc, d / "out"


def test_a_run_with_large_arrays_writes_report_zip_beside_the_page(big_run):
    proc, out = big_run
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "report.html", "report.json", "report.zip"]
    page = (out / "report.html").read_text()
    assert "send report.zip" in page and "<a href='artifacts/bigarray/big.npy'>big array</a>" in page
    with zipfile.ZipFile(out / "report.zip") as z:
        assert z.read("artifacts/bigarray/big.npy") == (out / "artifacts/bigarray/big.npy").read_bytes()
        assert z.read("report.json") == (out / "report.json").read_bytes()
        assert "artifacts/architecture/parameters.png" in z.namelist()
