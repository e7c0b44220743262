"""The HTML report as a demanding reader uses it: a table of contents, the true labels of the explained
samples, a summary line that agrees with the figures, a page that survives being shared alone (arrays
embedded as downloads when small, a report.zip beside it when not, and the page says which), and one
block per health measure of an analyzer no view names (its chart, thresholds and values)."""

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
from diagnostics._html import ARCHIVE, EMBED_LIMIT, MAX_ROWS, render_html, write_archive
from diagnostics._verdicts import Check, MethodExplanation

from ..conftest import run_diagnose
from .conftest import analyzer_source, install_plugin
from .health_probe import probe_record, report_of

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


# -- health measures: one block each, read from the sections ------------------------------------------------
def _block(page: str, title: str) -> str:
    """The HTML of the measure block titled ``title``."""
    start = page.index(f"<b>{title}</b>")
    return page[page.rindex("<div class='measure'", 0, start):page.index("<div class='measure'", start)
                if "<div class='measure'" in page[start:] else page.index("<h2", start)]


def _rows(html: str) -> list[list[str]]:
    """Each table row's cells as text (tags dropped, entities read)."""
    return [[html_lib.unescape(re.sub("<[^>]+>", "", c)).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", html)]


def test_each_health_measure_is_a_block_with_its_chart_thresholds_and_values(tmp_path):
    record = probe_record(tmp_path)
    page = _publish(tmp_path, report_of(record))
    section = page.split("<h2 id='a-probe.health'>", 1)[1].split("<h2", 1)[0]
    assert re.findall(r"<div style='[^']*'><b>([^<]+)</b>", section) == ["Gradient norm", "Tail exponent", "Loss", "Accuracy gap"]
    norm = _block(page, "Gradient norm")
    assert re.search(r"<b>Gradient norm</b> <span[^>]*>\(L2 norm\)</span> <span[^>]*>error</span>", norm)
    assert ("<code>probe.health.norm</code> · one per layer · warning at ≥ 1, error at ≥ 10 · reference: Pascanu et al. "
            "2013") in html_lib.unescape(norm)
    # the host's chart, embedded: the very file beside the report
    chart = tmp_path / record.measure("norm").chart
    assert chart.name == "measure_norm.png"
    assert re.findall(r"src='data:image/png;base64,([^']+)'", norm) == [base64.b64encode(chart.read_bytes()).decode()]
    # 21 layers: the 11 that did not pass are listed, errors first; all 21 are folded below
    shown, folded = norm.split("<details>", 1)
    assert "11 of 21 values did not pass:" in shown
    assert _rows(shown) == [["layer", "value", "outcome"], ["big", "40", "error ≥ 10"]] + [
        [f"dense_{i}", f"{i / 10:.3g}", "warning ≥ 1"] for i in range(10, 20)]
    assert "<summary>All 21 values</summary>" in folded
    assert [r[0] for r in _rows(folded)[1:]] == [f"dense_{i}" for i in range(20)] + ["big"]
    assert _rows(folded)[1] == ["dense_0", "0", "passed"]
    # a band, with intervals and sample counts; the 2 values are not folded
    alpha = _block(page, "Tail exponent")
    assert "one per layer · warning outside 2–6" in html_lib.unescape(alpha) and "<details>" not in alpha
    assert _rows(alpha) == [["layer", "value", "95% interval", "n", "outcome"], ["attn", "7", "6.5–7.5", "100", "warning outside 2–6"],
                            ["mlp", "4", "3–5", "100", "passed"]]
    # a neutral measure is shown, never judged: no outcome column; a series column where values have one
    loss = _block(page, "Loss")
    assert "one per epoch · shown, not judged" in loss and re.search(r"<b>Loss</b> <span[^>]*>shown</span>", loss)
    assert _rows(loss)[:3] == [["epoch", "series", "value"], ["1", "train", "1"], ["1", "validation", "1"]]
    # one model-wide value: no chart, no where column, its note kept
    gap = _block(page, "Accuracy gap")
    assert "<img" not in gap and "model-wide · warning at ≥ 0.1" in html_lib.unescape(gap)
    assert _rows(gap) == [["value", "95% interval", "n", "outcome", "note"],
                          ["0.25", "0.15–0.35", "512", "warning ≥ 0.1", "on 512 validation samples"]]
    assert "Metrics</summary>" not in section  # nothing was read from free-form metrics: there are none


def test_a_long_list_that_passed_is_folded_and_says_so(tmp_path):
    from diagnostics import Value

    values = [Value("norm", 0.5, where=f"d{i}") for i in range(MAX_ROWS + 1)] + [Value("gap", 0.0)]
    page = _publish(tmp_path, report_of(probe_record(tmp_path, values=values)))
    norm = _block(page, "Gradient norm")
    shown, folded = norm.split("<details>", 1)
    assert "All 13 values passed." in shown and "<table" not in shown and len(_rows(folded)) == 1 + 13
    section = page.split("<h2 id='a-probe.health'>", 1)[1].split("<h2", 1)[0]
    assert ("No findings: nothing this analyzer measured crossed its thresholds. The figure below shows what it "
            "measured, not a problem found.") in section


def test_a_chart_path_that_leaves_the_report_folder_is_not_read(tmp_path):
    import dataclasses

    (tmp_path / "outside.png").write_bytes(PNG)
    record = probe_record(tmp_path / "r")
    norm = dataclasses.replace(record.measure("norm"), chart="../outside.png")
    record = dataclasses.replace(record, measures=(norm,))
    page = render_html(report_of(record), tmp_path / "r")
    assert "<b>Gradient norm</b>" in page and "<img" not in page


def test_a_schema_2_report_without_sections_renders_as_before(tmp_path):
    import json

    d = {"schema_version": 2, "model": {"name": "old"}, "environment": {}, "plugins": [], "seed": 0, "fail_on": "error",
         "analyzers": [{"name": "health.gradients", "plugin": "builtin", "category": "health", "status": "ok",
                        "findings": [{"code": "gradients.exploding", "severity": "error", "message": "m", "where": "d"}],
                        "metrics": {"global_grad_norm": 4e3}, "explanations": []}]}
    page = render_html(Report.from_dict(json.loads(json.dumps(d))), tmp_path)
    assert "class='measure'" not in page and "<code>gradients.exploding</code>" in page
    assert "&quot;global_grad_norm&quot;: 4000.0" in page  # its free-form metrics, still shown as they were


#: A third-party health analyzer written as one class with its measures: no view names it.
WIDTH_PLUGIN = '''
import diagnostics
from diagnostics import Direction, HealthAnalyzer, Measure, Measurements, Scope, Value


class Width(HealthAnalyzer):
    name = "probe.width"
    description = "weights per layer, against a test's own limit"
    default_thresholds = {"wide": 100}
    measures = (Measure("weights", "Weights per layer", unit="weights", scope=Scope.LAYER,
                        direction=Direction.HIGHER_IS_WORSE, warning="wide", reference="the test's own limit"),)

    def measure(self, context):
        return Measurements(values=[Value("weights", layer.count_params(), where=layer.name)
                                    for layer in context.model.layers])


@diagnostics.hookimpl
def register_analyzers(register):
    register(Width)
'''


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """A real run whose throwaway analyzer writes a 3 MB array and a figure: the CLI writes report.zip. A
    throwaway health analyzer runs beside it (one process start for both)."""
    d = tmp_path_factory.mktemp("big")
    body = ("import numpy as np\nnp.save(context.artifact_dir / 'big.npy', np.zeros(3 * 2**20 // 4, 'float32'))\n"
            "return Result(artifacts={'big array': 'big.npy'})")
    env = install_plugin(d / "site", "bigarray", analyzer_source("bigarray", body))
    install_plugin(d / "site", "probewidth", WIDTH_PLUGIN)
    from ..conftest import ZOO_DIR

    proc = run_diagnose(ZOO_DIR / "mlp.keras", "--only", "bigarray,architecture,probe.width", "--out", d / "out", "-q",
                        env=env)
    return proc, d / "out"


def test_a_new_health_analyzer_appears_in_the_page_of_a_real_run(big_run):
    proc, out = big_run
    report = Report.load(out)
    section = report.record("probe.width").measure("weights")
    page = (out / "report.html").read_text()
    block = _block(page, "Weights per layer")
    assert section.chart == "artifacts/probe.width/measure_weights.png"
    assert re.findall(r"src='data:image/png;base64,([^']+)'", block) == [
        base64.b64encode((out / section.chart).read_bytes()).decode()]
    # the zoo MLP's layers, with their weight counts (known from its definition)
    assert _rows(block) == [["layer", "value", "outcome"], ["features", "0", "passed"], ["dense1", "992", "warning ≥ 100"],
                            ["dense2", "528", "warning ≥ 100"], ["prob", "17", "passed"]]
    assert "warning at ≥ 100 · reference: the test&#x27;s own limit" in block
    assert {f.code for f in report.record("probe.width").findings} == {"probe.width.weights"}


def test_a_run_with_large_arrays_writes_report_zip_beside_the_page(big_run):
    proc, out = big_run
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "report.html", "report.json", "report.zip"]
    page = (out / "report.html").read_text()
    assert "send report.zip" in page and "<a href='artifacts/bigarray/big.npy'>big array</a>" in page
    with zipfile.ZipFile(out / "report.zip") as z:
        assert z.read("artifacts/bigarray/big.npy") == (out / "artifacts/bigarray/big.npy").read_bytes()
        assert z.read("report.json") == (out / "report.json").read_bytes()
        # every file of the folder, the pictures (architecture's chart among them) too
        files = sorted(p.relative_to(out).as_posix() for p in (out / "artifacts").rglob("*") if p.is_file())
        assert sorted(n for n in z.namelist() if n.startswith("artifacts/")) == files
        assert [n for n in files if n.startswith("artifacts/architecture/") and n.endswith(".png")]
