"""The dashboard in a real browser: `diagnose dashboard` on a free port, driven by Playwright + Debian's chromium.

Needs /usr/bin/chromium (``.ci/browser-deps`` installs it; ``playwright install`` is not used: it would
download a browser). Screenshots go to test-artifacts/dashboard/.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from diagnostics.report import Report
from diagnostics_dashboard import reports

REPO = Path(__file__).resolve().parents[2]
DIAGNOSE = str(Path(sys.executable).parent / "diagnose")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "test-artifacts" / "dashboard"
WAIT_MS = 300_000  # a ceiling for each wait on the page: Streamlit reruns take seconds, a loaded machine minutes
RUN_MS = 400_000  # a run's worker imports TensorFlow: seconds alone, minutes on a loaded machine

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(path, tmp_path, env=None):
    """``diagnose dashboard PATH``, the real command as a user starts it; yields (url, log path, port);
    stopped with SIGTERM afterwards. ``env``: variables added to its environment."""
    port = _free_port()
    log = tmp_path / f"dashboard-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([DIAGNOSE, "dashboard", str(path), "--port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # a ceiling: the loop ends when the server answers
        while True:
            assert proc.poll() is None, f"diagnose dashboard exited {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the dashboard did not come up: {log.read_text()[-2000:]}"
            time.sleep(0.3)
        yield url, log, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture
def dashboard(report_root, tmp_path):
    """The dashboard on the CLI's reports."""
    with serve(report_root, tmp_path) as running:
        yield running


@pytest.fixture
def context():
    """A browser window of its own (its tabs share it, as a user's do)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run .ci/browser-deps (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1440, "height": 900})  # a laptop screen
            ctx.set_default_timeout(WAIT_MS)
            yield ctx
        finally:
            browser.close()


@pytest.fixture
def page(context):
    return context.new_page()


def choose(page, box, option: str) -> None:
    """Open a select box and pick ``option``, once the page is idle: a click that lands while the script
    reruns opens a list the rerun closes again, and the option never shows. The option's name is typed
    first: the list draws only the options in view (the zoo's 26 models put ``mlp`` 12th, below them)."""
    settle(page)
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).click()


def nav(page, title: str):
    """The sidebar's link to a page (the Overview also links to pages from its details)."""
    return page.get_by_test_id("stSidebarNavItems").get_by_role("link", name=title, exact=True)


def settle(page, timeout_s: float = 300) -> None:
    """Wait until Streamlit has finished running the script and every element has replaced its skeleton."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 3:
        busy = page.get_by_test_id("stStatusWidget").count() + page.get_by_test_id("stSkeleton").count()
        quiet = 0 if busy else quiet + 1
        assert time.monotonic() < deadline, "the page kept running"
        page.wait_for_timeout(200)


def shot(page, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its own container, so grow the window."""
    settle(page)
    page.set_viewport_size({"width": 1440, "height": 2400})
    page.wait_for_timeout(500)
    settle(page)
    page.screenshot(path=str(SHOTS / name))
    page.set_viewport_size({"width": 1440, "height": 900})


def test_browser_report_explanations_and_hostile_upload(dashboard, page, report_root, hostile_model):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)  # a busy CI machine: Streamlit reruns can take seconds
    url, log, port = dashboard
    t0 = time.monotonic()
    steps = {}
    SHOTS.mkdir(parents=True, exist_ok=True)
    report = Report.load(report_root / "main")

    # Bound to 127.0.0.1 only: another address of this machine is refused.
    host = socket.gethostbyname(socket.gethostname())
    if not host.startswith("127."):
        with pytest.raises(OSError), socket.create_connection((host, port), timeout=2):
            pass

    # Open the report: the Overview shows the model's name and the verdict table.
    page.goto(url)
    expect(page.get_by_role("heading", name=report.model["name"], level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Verdicts")).to_be_visible()
    # Clicking a row of the verdict table opens that analyzer's details (row marker column, 35 px rows).
    settle(page)
    names = [r.name for r in report.analyzers]
    table = page.get_by_test_id("stDataFrame").nth(2 if report.data else 1)
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    row = names.index("weights")
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 35 * row + 17)
    expect(page.locator("h3").last).to_have_text("weights")
    shot(page, "overview.png")
    steps["overview"] = time.monotonic() - t0

    # Explanations: choose another method and see it in the detail view.
    nav(page, "Explanations").click()
    expect(page.get_by_role("heading", name="Explanations", level=1)).to_be_visible()
    methods = [m.name for m in reports.explanation_methods(report)]
    assert len(methods) >= 2, f"the CLI report has explanation methods {methods}"
    detail = page.locator("h4")
    expect(detail).to_have_text(methods[0])
    other = methods[-1]
    page.get_by_role("radiogroup").filter(has_text=methods[0]).get_by_text(other, exact=True).click()
    expect(detail).to_have_text(other)
    verdict = next(m for m in reports.explanation_methods(report) if m.name == other).verdict[0]
    if verdict:
        expect(page.get_by_text(f"Trust verdict: {verdict}")).to_be_visible()
    shot(page, "explanations.png")
    steps["explanations"] = time.monotonic() - t0

    # Upload a hostile model (a Lambda layer): refused with its reason, nothing loaded.
    nav(page, "Run a diagnosis").click()
    page.get_by_text("Upload", exact=True).click()
    expect(page.get_by_text("100MB per file").first).to_be_visible()  # the shipped config is in effect
    page.locator("input[type=file]").first.set_input_files(str(hostile_model))
    expect(page.get_by_role("button", name="Diagnose")).to_be_enabled()  # disabled until the upload arrived
    page.get_by_role("button", name="Diagnose").click()
    refused = page.get_by_text("Model refused")
    expect(refused).to_be_visible()
    alert = page.get_by_role("alert").filter(has_text="Model refused")
    expect(alert).to_contain_text("Lambda")
    expect(alert).to_contain_text("doubler")
    expect(alert).to_contain_text("--trust")
    shot(page, "hostile-upload.png")
    steps["hostile upload"] = time.monotonic() - t0
    print("browser steps (s since the page opened):", {k: round(v, 1) for k, v in steps.items()})

    assert "Traceback" not in log.read_text(errors="replace")


def test_browser_health_page_from_sections_and_a_schema_2_report(page, tmp_path):
    """The Health page in a real browser: a report whose health analyzer has measure sections (judged by the
    host's pipeline), reached from the Overview's link, every measure drawn; then a report of schema 2, which
    opens and shows its findings."""
    from playwright.sync_api import expect

    from tests.dashboard import health_reports as hr

    expect.set_options(timeout=WAIT_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    folder = tmp_path / "reports"
    report = hr.write_report(folder / "probe")
    old = hr.write_schema2_report(folder / "old")
    rec = report.record("probe.health")
    with serve(folder, tmp_path) as (url, log, _):
        page.goto(url)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_role("combobox", name="Report")).to_have_value("old")  # the first found
        choose(page, sidebar.get_by_test_id("stSelectbox").filter(has_text="Report"), "probe")
        expect(page.get_by_role("heading", name="probe_model.keras", level=1)).to_be_visible()
        # The Overview's details show the worst analyzer first (probe.health): follow its link.
        expect(page.locator("h3").last).to_have_text("probe.health")
        settle(page)
        page.get_by_role("link", name="Open it on the Health page").click()
        expect(page.get_by_role("heading", name="Health", level=1)).to_be_visible()
        expect(page).to_have_url(re.compile(r"/health\?analyzer=probe\.health$"))
        for s in rec.measures:
            expect(page.get_by_role("heading", name=s.title + (f" ({s.unit})" if s.unit else ""), level=4)).to_be_visible()
        settle(page)
        charted = [s for s in rec.measures if len(s.values) > 1]
        assert page.get_by_test_id("stPlotlyChart").count() == len(charted) == 4
        expect(page.get_by_test_id("stMetricValue")).to_have_text("0.6 fraction")  # the heading names it
        shot(page, "health.png")
        # The other analyzer (no sections): its findings and its metrics; the URL follows the choice.
        page.get_by_role("radiogroup").get_by_text("health.legacy", exact=True).click()
        expect(page.locator("h3").last).to_have_text("health.legacy")
        expect(page).to_have_url(re.compile(r"\?analyzer=health\.legacy$"))
        # Streamlit drops the previous analyzer's charts only when the rerun ends: wait for it, then count
        settle(page)
        expect(page.get_by_test_id("stPlotlyChart")).to_have_count(0)

        # A report of schema 2: it opens, and the Health page shows its findings without sections.
        choose(page, sidebar.get_by_test_id("stSelectbox").filter(has_text="Report"), "old")
        expect(page.locator("h3").last).to_have_text("health.gradients")
        expect(page.get_by_text("No analyzer in this report has measure sections")).to_be_visible()
        # its findings and metrics tables (their cells are a canvas: the AppTest reads them, test_dashboard_health)
        expect(page.get_by_test_id("stDataFrame")).to_have_count(2)
        nav(page, "Overview").click()
        expect(page.get_by_role("heading", name=old["model"]["name"], level=1)).to_be_visible()
        shot(page, "schema2-overview.png")
        assert "Traceback" not in log.read_text(errors="replace")


def test_streamlit_run_uses_the_shipped_config(tmp_path):
    """`streamlit run dashboard/app.py -- DIR` (no flags) still binds to 127.0.0.1 only, from the shipped config."""
    port = _free_port()
    streamlit = str(Path(sys.executable).parent / "streamlit")
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([streamlit, "run", str(REPO / "dashboard" / "app.py"), "--server.port", str(port), "--",
                                 str(tmp_path)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a ceiling: the loop ends when the server answers
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.read() == b"ok"
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        local = [cols[1] for cols in listening if cols[3] == "0A" and int(cols[1].split(":")[1], 16) == port]
        assert local == ["0100007F:%04X" % port], local  # 127.0.0.1 only, not 0.0.0.0
        assert "gather usage stats" not in log.read_text().lower()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_browser_sweep_page_plots_the_checkpoints_and_opens_one(zoo_sweep, page, tmp_path):
    """The Sweep page of a real `diagnose sweep` (the zoo's checkpoints), and its click-through."""
    import json

    from playwright.sync_api import expect

    from diagnostics_dashboard import sweeps

    expect.set_options(timeout=WAIT_MS)
    proc, out = zoo_sweep
    index = json.loads((out / "sweep.json").read_text())
    entries = index["checkpoints"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serve(out, tmp_path) as (url, log, _):
        page.goto(url)
        nav(page, "Sweep").click()
        expect(page.get_by_role("heading", name="Checkpoint sweep", level=1)).to_be_visible()
        expect(page.get_by_role("heading", name="Health over training")).to_be_visible()
        expect(page.get_by_role("heading", name="First appearance of each finding")).to_be_visible()
        settle(page)
        # one chart per measure the index holds a number for (gradients, alpha, gap, dead units...)
        assert page.get_by_test_id("stPlotlyChart").count() == len(sweeps.catalogue(index)) > 4
        shot(page, "sweep.png")
        # The last checkpoint is preselected: open its report.
        page.get_by_role("button", name="Open its report").click()
        expect(page.get_by_role("heading", name=entries[-1]["checkpoint"], level=1)).to_be_visible()
        expect(page.get_by_role("heading", name="Verdicts")).to_be_visible()
        assert "Traceback" not in log.read_text(errors="replace")


def _dashboard_temp_dirs() -> set[str]:
    """What a dashboard could leave in the system's temp folder (its old workspace, uploads)."""
    return {p.name for p in Path(tempfile.gettempdir()).iterdir()
            if p.name.startswith(("diagnostics-dashboard-", "diagnostics-upload-", "diagnostics-run-"))}


def test_browser_run_page_two_tabs(context, tmp_path):
    """Tab A starts a run; tab B sees the locked button and why; A closes; the run is cancelled, B gets its
    button back and runs; the report lands under the dashboard's folder and nothing is left in temp."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    folder = tmp_path / "reports"
    folder.mkdir()
    private_tmp = tmp_path / "tmp"  # the server's TMPDIR: whatever it or its runs leave in temp shows here
    private_tmp.mkdir()
    system_tmp = _dashboard_temp_dirs()
    t0 = time.monotonic()
    steps = {}
    with serve(folder, tmp_path, env={"TMPDIR": str(private_tmp)}) as (url, log, _):
        a = context.new_page()
        a.goto(url)
        nav(a, "Run a diagnosis").click()
        go_a = a.get_by_role("button", name="Diagnose")
        expect(go_a).to_be_enabled()
        # The first zoo model (cnn) with every analyzer: minutes, so it is still going when A is closed.
        expect(a.get_by_role("combobox", name="Zoo model")).to_have_value("cnn")
        go_a.click()
        expect(a.get_by_role("button", name="Cancel", exact=True)).to_be_enabled()
        steps["A running"] = time.monotonic() - t0

        b = context.new_page()
        b.goto(url + "/run")
        lock = b.get_by_test_id("stAlert").filter(has_text="A run started in another tab")
        expect(lock).to_contain_text(re.compile(r"A run started in another tab is in progress \(cnn, started "
                                                r"\d\d:\d\d:\d\d; \d+ s so far\)\. Diagnose comes back when it ends"))
        go_b = b.get_by_role("button", name="Diagnose")
        expect(go_b).to_be_disabled()
        expect(b.get_by_role("button", name="Cancel that run")).to_be_enabled()
        shot(b, "run-locked.png")
        steps["B locked"] = time.monotonic() - t0

        a.close()  # its session goes; after the grace period the run is cancelled
        ended = b.get_by_text(re.compile(r"^The run started in another tab \(cnn, started \d\d:\d\d:\d\d\) was cancelled: "
                                         r"its browser tab was closed\.$"))
        expect(ended).to_be_visible(timeout=RUN_MS)
        # That line is drawn once the run's process has exited and its folder is removed.
        expect(go_b).to_be_enabled()
        assert not (folder / "runs").exists(), list((folder / "runs").rglob("*"))
        steps["B unlocked"] = time.monotonic() - t0

        # B runs the cheapest: the small MLP, one analyzer.
        choose(b, b.get_by_test_id("stSelectbox").filter(has_text="Zoo model"), "mlp")
        expect(b.get_by_role("combobox", name="Zoo model")).to_have_value("mlp")
        settle(b)
        b.get_by_text("Options", exact=True).click()
        choose(b, b.get_by_test_id("stMultiSelect"), "architecture")
        b.keyboard.press("Escape")
        expect(b.get_by_test_id("stMultiSelect")).to_contain_text("architecture")
        go_b.click()
        done = b.get_by_test_id("stAlert").filter(has_text="Done in")
        expect(done).to_contain_text("exit code 0 OK. The report is now open in every page.", timeout=RUN_MS)
        (run_dir,) = (folder / "runs").iterdir()
        assert re.fullmatch(r"mlp-\d{8}-\d{6}", run_dir.name), run_dir.name
        expect(b.get_by_test_id("stDataFrame")).to_be_visible()  # the verdict table (its cells are a canvas)
        expect(b.get_by_test_id("stSidebar").get_by_role("combobox", name="Report")).to_have_value(f"runs/{run_dir.name}")
        expect(b.get_by_text(f"Written to {run_dir}")).to_be_visible()
        shot(b, "run-done.png")
        steps["B done"] = time.monotonic() - t0
        b.close()
    print("two-tab steps (s since the server was up):", {k: round(v, 1) for k, v in steps.items()})

    assert [r.name for r in Report.load(run_dir).analyzers] == ["architecture"]
    assert sorted(p.name for p in (folder / "runs").iterdir()) == [run_dir.name]  # A's run left nothing
    assert list(private_tmp.iterdir()) == []
    assert _dashboard_temp_dirs() <= system_tmp
    text = log.read_text(errors="replace")
    assert "ScriptRunContext" not in text and "Traceback" not in text, text[-3000:]


def test_browser_compare_page_gates_two_reports(page, tmp_path):
    """The Compare page in a real browser on two reports built here: its gate (diagnose compare's items) counts
    the new error finding as the one regression and the analyzer that went ok -> skipped as not comparable,
    not worse; with A and B swapped the finding is an improvement."""
    from playwright.sync_api import expect

    from diagnostics.analyzer import Finding, Severity
    from diagnostics.report import AnalyzerRecord

    expect.set_options(timeout=WAIT_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    folder = tmp_path / "reports"

    def record(name, status="ok", findings=(), reason=""):
        return AnalyzerRecord(name=name, plugin="builtin", category="health", status=status, reason=reason,
                              findings=tuple(findings))

    for name, records in (("a_before", [record("health.units"), record("health.gradients")]),
                          ("b_after", [record("health.units", findings=[Finding("health.units.dead_fraction",
                                                                                Severity.ERROR, "94% dead", "conv2")]),
                                       record("health.gradients", "skipped", reason="the data has no labels")])):
        (folder / name).mkdir(parents=True)
        (folder / name / "report.json").write_text(Report(
            model={"name": f"{name}.keras", "sha256": "0" * 64}, data=None, environment={}, plugins=(),
            analyzers=tuple(records), seed=0, fail_on="error").to_json())
    with serve(folder, tmp_path) as (url, log, _):
        page.goto(url)
        nav(page, "Compare").click()
        expect(page.get_by_role("heading", name="Regression gate")).to_be_visible()
        expect(page.get_by_role("combobox", name="Before (A)")).to_have_value("a_before")
        expect(page.get_by_role("combobox", name="After (B)")).to_have_value("b_after")
        for text in ("1 regressed", "0 improved", "1 not comparable"):
            expect(page.get_by_text(text, exact=True)).to_be_visible()
        shot(page, "compare.png")
        # swapped: the finding went away (improved); skipped -> ok is still not comparable
        choose(page, page.get_by_test_id("stSelectbox").filter(has_text="Before (A)"), "b_after")
        choose(page, page.get_by_test_id("stSelectbox").filter(has_text="After (B)"), "a_before")
        for text in ("0 regressed", "1 improved", "1 not comparable"):
            expect(page.get_by_text(text, exact=True)).to_be_visible()
        assert "Traceback" not in log.read_text(errors="replace")


def test_browser_data_page_and_the_html_sections_of_the_data_analyzers(page, tmp_path):
    """Issue 25's views in a real browser, on a real run of the data analyzers on the zoo's cnn_unscaled (trained
    on [-1, 1], validated on raw [0, 255]): the Data page lists the three data analyzers (and the Health page
    none of them), draws the drift histogram, the confusion matrix and the reliability diagram with the
    measures' charts; the HTML report has their sections with the same pictures."""
    from playwright.sync_api import expect

    from tests.conftest import ZOO_DIR, run_diagnose

    expect.set_options(timeout=WAIT_MS)
    SHOTS.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "reports" / "cnn_unscaled"
    proc = run_diagnose(ZOO_DIR / "cnn_unscaled.keras", "--only", "data.drift", "--only", "data.leakage", "--only",
                        "predictions.quality", "--out", out, "-q")
    assert proc.returncode == 1, proc.stderr[-2000:]
    with serve(out.parent, tmp_path) as (url, log, _):
        page.goto(url)
        nav(page, "Data").click()
        expect(page.get_by_role("heading", name="Data", level=1)).to_be_visible()
        radios = page.get_by_role("radiogroup")
        for name in ("data.drift", "data.leakage", "predictions.quality"):
            expect(radios.get_by_text(name, exact=True)).to_be_visible()
        # the worst first: data.drift (its range mismatch is an error), with its histogram of the shifted channel
        expect(page.locator("h3").last).to_have_text("data.drift")
        # its findings are a dataframe (a canvas: the AppTest reads their cells, test_dashboard_health)
        _picture_shown(page, "drift")
        shot(page, "data-drift.png")
        radios.get_by_text("predictions.quality", exact=True).click()
        expect(page.locator("h3").last).to_have_text("predictions.quality")
        for picture in ("confusion matrix", "reliability diagram"):
            _picture_shown(page, picture)
        settle(page)
        assert page.get_by_test_id("stPlotlyChart").count() >= 5  # precision, recall, F1, confusion, calibration
        shot(page, "data-quality.png")
        nav(page, "Health").click()
        expect(page.get_by_text("No health analyzer in this report.")).to_be_visible()
        assert "Traceback" not in log.read_text(errors="replace")
    page.goto((out / "report.html").as_uri())
    for name in ("data.drift", "data.leakage", "predictions.quality"):
        expect(page.locator(f"h2[id='a-{name}']")).to_be_visible()
    for alt in ("drift", "confusion matrix", "reliability diagram"):
        image = page.get_by_role("img", name=alt, exact=True).first
        expect(image).to_be_visible()
        assert image.evaluate("i => i.naturalWidth") > 0  # embedded and decoded, not a broken link
    page.locator("h2[id='a-predictions.quality']").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "report-data.png"), full_page=True)


def _picture_shown(page, caption: str) -> None:
    """An analyzer's picture on a dashboard page (``st.image`` with its caption), loaded and decoded."""
    from playwright.sync_api import expect

    image = page.get_by_test_id("stImage").filter(has=page.get_by_test_id("stImageCaption").get_by_text(
        caption, exact=True)).locator("img")
    expect(image).to_be_visible()
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image.element_handle())
