"""Every page of the dashboard under streamlit.testing.v1.AppTest, on real reports written by the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from diagnostics.report import Report

from tests.conftest import ZOO_DIR
from diagnostics_dashboard import jobs
from diagnostics._measures import Scope
from diagnostics_dashboard import charts
from diagnostics_dashboard.reports import health_records, md_escape, md_line, metric_rows


from streamlit.testing.v1 import AppTest  # noqa: E402

RUN_WAIT_S = 400  # a run spawns a worker that imports TensorFlow: seconds alone, minutes on a loaded machine


def wait_for(at: AppTest, done, what: str, timeout_s: float = RUN_WAIT_S) -> None:
    """Rerun the page (as its poll does) until ``done()``; the run itself goes on in its own process."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert not at.exception, [e.value for e in at.exception]
        assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s for {what}"
        time.sleep(0.5)
        at.run()
    assert not at.exception, [e.value for e in at.exception]


def our_temp_dirs() -> set[str]:
    """What the dashboard could leave in the temp folder (uploads, and the workspace it used to make)."""
    return {p.name for p in Path(tempfile.gettempdir()).iterdir()
            if p.name.startswith(("diagnostics-dashboard-", "diagnostics-upload-", "diagnostics-run-"))}


@pytest.fixture(autouse=True)
def no_run_outlives_its_test():
    """Runs belong to the server (here: this process): one a test left going would lock the next test's page."""
    yield
    for job in list(jobs.REGISTRY.values()):
        jobs.cancel(job, "the test ended")
        if job.thread is not None:
            job.thread.join(60)


def _text(at: AppTest) -> str:
    """Everything the page says in markdown, alerts, titles and captions, as one string."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def test_overview_shows_model_card_and_every_analyzer(open_app, report_root):
    report = Report.load(report_root / "main")
    at = open_app(report_root)
    assert at.selectbox(key="report_label").options == ["main", "twin"]
    assert at.title[0].value == md_line(report.model["name"])  # escaped Markdown: it reads as the name
    frames = [e.value for e in at.dataframe]
    verdicts = next(f for f in frames if "analyzer" in f.columns and "status" in f.columns)
    assert list(verdicts["analyzer"]) == [r.name for r in report.analyzers]
    assert list(verdicts["status"]) == [r.status for r in report.analyzers]
    card = next(f for f in frames if "value" in f.columns)
    assert str(report.model["info"]["n_params"]) in " ".join(card["value"]) or \
        f"{report.model['info']['n_params']:,}" in [m.value for m in at.metric]
    # Clicking through: choosing an analyzer shows its own section.
    at.selectbox(key="overview-analyzer").select("weights").run()
    assert not at.exception
    assert "weights" in [s.value for s in at.subheader]


def test_report_picker_switches_every_page_to_the_other_report(open_app, report_root):
    at = open_app(report_root)
    at.selectbox(key="report_label").select("twin").run()
    twin = Report.load(report_root / "twin")
    verdicts = next(e.value for e in at.dataframe if "analyzer" in e.value.columns and "status" in e.value.columns)
    assert list(verdicts["analyzer"]) == [r.name for r in twin.analyzers] == ["architecture", "weights"]


def test_plugins_page_lists_report_and_installed_plugins(open_app, report_root):
    at = open_app(report_root / "main", "plugins")
    values = [e.value for e in at.dataframe]  # in page order: the report's plugins first
    report = Report.load(report_root / "main")
    in_report = values[0]
    assert sorted(in_report["plugin"]) == sorted(p["name"] for p in report.plugins)
    analyzers = next(v for v in values if "analyzer" in v.columns and "description" in v.columns)
    assert {"architecture", "weights"} <= set(analyzers["analyzer"])
    assert set(r.name for r in report.analyzers) <= set(analyzers["analyzer"])


def test_explanations_page_shows_every_method_with_its_verdict(open_app, report_root):
    report = Report.load(report_root / "main")
    (rec,) = [r for r in report.analyzers if r.category == "explanation"]
    at = open_app(report_root / "main", "explanations")
    methods = [s.method for s in rec.explanations]
    assert methods == ["integrated_gradients", "saliency", "input_x_gradient"]
    assert at.radio(key="ex-focus").options == [md_line(m) for m in methods]  # option labels are Markdown
    table = next(e.value for e in at.dataframe if "verdict" in e.value.columns)
    assert list(table["method"]) == methods
    assert list(table["verdict"]) == [s.verdict.value for s in rec.explanations]  # the typed verdicts, as written
    checks = next(e.value for e in at.dataframe if "check" in e.value.columns)
    first = rec.explanations[0]
    assert list(checks["check"]) == [c.name for c in first.checks]
    assert list(checks["threshold"].fillna(-1)) == [c.threshold if c.threshold is not None else -1 for c in first.checks]
    # Choosing another method shows it in the detail view.
    other = methods[1]
    at.radio(key="ex-focus").set_value(other).run()
    assert not at.exception
    assert [m.value for m in at.markdown if m.value.startswith("####")] == [f"#### {md_escape(other)}"]
    assert at.get("plotly_chart"), "attribution maps are drawn from the saved arrays"
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith("Faithfulness") for t in titles), titles  # deletion/insertion against random order


def _heading(section) -> str:
    return section.title + (f" ({section.unit})" if section.unit else "")


def test_health_page_draws_every_section_the_cli_wrote(open_app, report_root):
    """Each health analyzer of the real CLI report, chosen on the page: its measures from their sections alone
    (heading, a chart per measure of several values, a table row per value), else its metrics as a table."""
    report = Report.load(report_root / "main")
    records = health_records(report)
    assert {"health.gradients", "health.units", "health.overfitting", "health.spectra", "health.gan",
            "weights"} <= {r.name for r in records}
    at = open_app(report_root / "main", "health")
    assert sorted(at.radio(key="analyzer").options) == sorted(md_line(r.name) for r in records)
    for r in records:
        at.radio(key="analyzer").set_value(r.name).run()
        assert not at.exception, [e.value for e in at.exception]
        assert [s.value for s in at.subheader] == [md_line(r.name)]
        headings = [m.value for m in at.markdown if m.value.startswith("#### ")]
        assert headings == [f"#### {md_line(_heading(s))}" for s in r.measures], r.name
        drawn = [s for s in r.measures if len(s.values) > 1 and any(v.value is not None for v in s.values)]
        titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
        assert titles == [charts.label(_heading(s)) for s in drawn], r.name
        tables = [e.value for e in at.dataframe if "value" in e.value.columns and "metric" not in e.value.columns]
        assert [len(t) for t in tables] == [len(s.values) for s in r.measures], r.name
        if not r.measures:
            metrics = [e.value for e in at.dataframe if list(e.value.columns) == ["metric", "value"]]
            assert [m.to_dict("records") for m in metrics] == ([metric_rows(r)] if metric_rows(r) else []), r.name
    # health.spectra's alpha: a band measure, drawn with its band from the section's thresholds
    alpha = report.record("health.spectra").measure("alpha")
    at.radio(key="analyzer").set_value("health.spectra").run()
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"] == charts.label(_heading(alpha)))
    assert [(s["y0"], s["y1"]) for s in spec["layout"]["shapes"]] == [tuple(alpha.thresholds["warning"])]
    bars = {x: t["name"] for t in spec["data"] if t["type"] == "bar" for x in t["x"]}
    assert bars == {charts.label(v.label): {"passed": "passed", "doubtful": "warning", "failed": "error"}[v.outcome.value]
                    for v in alpha.values if v.value is not None}


def test_compare_highlights_what_changed(open_app, report_root):
    at = open_app(report_root, "compare")
    assert at.selectbox(key="cmp-a").value == "main" and at.selectbox(key="cmp-b").value == "twin"
    verdicts = next(e.value for e in at.dataframe if "change" in e.value.columns and "status A" in e.value.columns)
    main, twin = Report.load(report_root / "main"), Report.load(report_root / "twin")
    row = verdicts.set_index("analyzer").loc["weights"]
    assert row["change"] == "worse"  # the twin's dead filters raise weights.zero_units
    assert any(f.code == "weights.zero_units" for f in twin.record("weights").findings)
    only_main = {r.name for r in main.analyzers} - {r.name for r in twin.analyzers}
    for name in only_main:
        assert verdicts.set_index("analyzer").loc[name]["change"] == "only in A"
    findings = next(e.value for e in at.dataframe if "change" in e.value.columns and "code" in e.value.columns)
    assert "weights.zero_units" in set(findings[findings["change"] == "new in B"]["code"])
    # the measured values behind it: the zeroed layer's share of all-zero units, from the weights sections
    zero = twin.record("weights").measure("zero_units")
    dead = {v.where: (v.value, v.outcome) for v in zero.values if v.outcome.value != "passed"}
    assert dead, "the twin's zeroed filters make dead units"
    measures = next(e.value for e in at.dataframe if "outcome A" in e.value.columns)
    rows = measures[(measures["analyzer"] == "weights") & (measures["measure"] == zero.title)]
    words = {"doubtful": "warning", "failed": "error"}
    assert {w: (b, o) for w, b, o in zip(rows["where"], rows["B"], rows["outcome B"]) if w in dead} == {
        w: (value, words[outcome.value]) for w, (value, outcome) in dead.items()}
    assert set(rows[rows["where"].isin(list(dead))]["outcome A"]) == {"passed"}


def test_run_page_refuses_a_hostile_upload_with_the_reason(open_app, tmp_path, hostile_model):
    at = open_app(tmp_path, "run")
    at.radio(key="run-source").set_value("Upload").run()
    at.file_uploader(key="run-upload").set_value(("innocent_looking.keras", hostile_model.read_bytes(), "application/octet-stream"))
    at.run()
    at.button(key="run-go").click().run()
    wait_for(at, lambda: at.error, "the refusal")
    message = at.error[0].value
    assert message.startswith("**Model refused** (exit code 4 MODEL_REFUSED): the file holds code that would run on loading")
    assert "Lambda" in message and "doubler" in message
    assert message.lower().count("model refused") == 1
    assert not (tmp_path / "runs").exists()  # a refused run leaves no folder behind
    assert at.button(key="run-go").disabled is False


def test_run_page_refuses_a_file_that_is_not_a_model_by_its_content(open_app, tmp_path):
    before = our_temp_dirs()
    at = open_app(tmp_path, "run")
    at.radio(key="run-source").set_value("Upload").run()
    at.file_uploader(key="run-upload").set_value(("model.keras", b"#!/bin/sh\necho not a model\n", "application/octet-stream"))
    at.run()
    at.button(key="run-go").click().run()
    assert "not a Keras model file" in at.error[0].value
    assert not jobs.REGISTRY or jobs.active(jobs.REGISTRY) is None  # nothing started
    assert our_temp_dirs() == before  # the upload's folder is gone with it


def test_untrusted_text_is_never_markup(open_app, report_root, tmp_path):
    """A plugin's message with HTML, a markdown image and a colour directive is shown as plain text."""
    d = json.loads((report_root / "twin" / "report.json").read_text())
    evil = "<img src=x onerror=alert(1)> ![t](http://evil.example/t.png) :red[alarm] [click](javascript:alert(1))"
    d["analyzers"][0]["findings"] = [{"code": "x.evil", "severity": "error", "message": evil, "where": "<b>layer</b>"}]
    d["analyzers"][0]["reason"] = evil
    d["analyzers"][0]["status"] = "failed"
    out = tmp_path / "evil"
    out.mkdir()
    (out / "report.json").write_text(json.dumps(d))
    at = open_app(out)
    at.selectbox(key="overview-analyzer").select(d["analyzers"][0]["name"]).run()
    rendered = [e.value for kind in ("markdown", "warning", "error", "caption") for e in getattr(at, kind)]
    shown = [t for t in rendered if "onerror" in t]
    assert shown, "the reason is shown"
    assert all(t == md_escape(evil) for t in shown), shown  # exactly the escaped text, nothing else
    findings = next(e.value for e in at.dataframe if "message" in e.value.columns)
    assert findings["message"].iloc[0] == evil  # data frames show text verbatim, never as markup


def test_explanations_sample_picker_shows_true_and_predicted_labels(open_app, report_root):
    report = Report.load(report_root / "main")
    rec = next((r for r in report.analyzers if r.category == "explanation" and r.status == "ok"), None)
    assert rec is not None, "the fixture's report has the gradient explanations"
    at = open_app(report_root / "main", "explanations")
    options = at.selectbox(key="ex-sample").options
    idx, targets = rec.explanations[0].sample_indices, rec.explanations[0].targets
    assert len(options) == len(idx)
    for opt, i, t in zip(options, idx, targets):
        assert opt.startswith(f"sample {i} · true ") and opt.endswith(f"· predicted {t}"), opt
    # the run's data is found again, so the attribution is drawn over the input (two heatmap layers)
    assert [s.label for s in at.slider] == ["Overlay opacity"]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["type"] for t in spec["data"]] == ["heatmap", "heatmap"]
    assert spec["data"][1]["opacity"] == 0.6
    at.slider(key="ex-opacity").set_value(0.25).run()
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][1]["opacity"] == 0.25


def test_health_page_draws_the_gan_class_coverage_from_its_section(open_app, tmp_path, diagnose_cli):
    """A real CLI report on the collapsed zoo GAN: the per-class measure is drawn from its section, the sample
    grid (a picture of no single measure) beside it."""
    out = tmp_path / "gan_collapsed"
    proc = diagnose_cli(ZOO_DIR / "gan_collapsed.h5", "--only", "health.gan", "--out", out, "--fail-on", "never", timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = Report.load(out).record("health.gan")
    assert rec.status == "ok" and rec.worst is not None
    (per_class,) = [s for s in rec.measures if s.scope is Scope.CLASS]
    at = open_app(out, "health", query={"analyzer": "health.gan"})
    assert at.radio(key="analyzer").value == "health.gan"
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"] == charts.label(_heading(per_class)))
    drawn = sorted((x, y) for t in spec["data"] if t["type"] == "bar" for x, y in zip(t["x"], t["y"]))
    assert drawn == sorted((v.where, v.value) for v in per_class.values)
    assert len(at.get("image")) >= 1  # the generated-sample grid


def test_run_page_runs_a_zoo_model_and_opens_its_report(open_app, tmp_path):
    before = our_temp_dirs()
    at = open_app(tmp_path, "run")
    assert "mlp" in at.selectbox(key="run-zoo").options
    at.selectbox(key="run-zoo").select("mlp")
    at.multiselect(key="run-only").select("architecture")
    at.run()
    at.button(key="run-go").click().run()
    assert at.get("progress"), "a progress bar while it runs"
    assert at.button(key="run-go").disabled and not at.button(key="run-cancel").disabled
    wait_for(at, lambda: at.success or at.error, "the end of the run")
    assert not at.error, at.error[0].value
    assert "exit code 0 OK" in at.success[0].value
    # Written under the folder the dashboard was opened on, and nowhere else.
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"mlp-\d{8}-\d{6}", run_dir.name), run_dir.name
    assert Path(at.session_state["report_dir"]).resolve() == run_dir.resolve()
    assert our_temp_dirs() == before
    # The verdict table, and the sidebar's picker on the new report.
    verdicts = next(e.value for e in at.dataframe if "analyzer" in e.value.columns and "status" in e.value.columns)
    assert list(verdicts["analyzer"]) == ["architecture"] and list(verdicts["status"]) == ["ok"]
    assert at.selectbox(key="report_label").value == f"runs/{run_dir.name}"
    assert Report.load(run_dir).model["name"] == "mlp.h5"
    at.switch_page("views/overview.py").run()
    assert at.title[0].value == md_line("mlp.h5")
    verdicts = next(e.value for e in at.dataframe if "analyzer" in e.value.columns and "status" in e.value.columns)
    assert list(verdicts["analyzer"]) == ["architecture"]


def test_run_page_cancels_its_run_and_leaves_nothing(open_app, tmp_path):
    at = open_app(tmp_path, "run")
    at.selectbox(key="run-zoo").select("cnn")  # every analyzer: minutes, so the cancel comes first
    at.run()
    at.button(key="run-go").click().run()
    (job,) = [j for j in jobs.REGISTRY.values() if j.running]
    at.button(key="run-cancel").click().run()
    wait_for(at, lambda: at.warning and "Cancelled" in at.warning[0].value, "the cancelled run")
    assert at.warning[0].value.startswith("**Cancelled** after ") and at.warning[0].value.endswith(
        "(in this tab). Nothing was written.")
    assert job.outcome.exit_code == 130 and job.process.poll() is not None
    assert not (tmp_path / "runs").exists()
    assert at.button(key="run-go").disabled is False


def test_a_run_whose_dashboard_is_gone_stops_and_leaves_nothing(tmp_path):
    """The run's process reads its stdin: when the dashboard's end closes (the server was killed), the run
    stops as Ctrl-C stops the CLI and removes the folders it made, with no dashboard left to do it."""
    out = tmp_path / "reports" / "runs" / "cnn-x"
    request = {"config": {"model_path": str(ZOO_DIR / "cnn.h5"), "out_dir": str(out), "data_path": None, "only": [],
                          "skip": [], "fail_on": "error", "timeout_s": 300.0, "seed": 0, "options": {},
                          "label_column": None, "deadline_s": None},
               "cleanup": [], "made": [str(out), str(out.parent), str(out.parent.parent)]}
    proc = subprocess.Popen([sys.executable, "-c", jobs._CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())  # the run has begun: its output folder exists
        assert "loading cnn.h5" in first["say"] and out.is_dir()
        proc.stdin.close()
        last = json.loads(proc.stdout.read().strip().splitlines()[-1])
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert last["outcome"]["exit_code"] == 130 and last["outcome"]["report"] is False
    assert last["outcome"]["message"].startswith("interrupted")
    assert not (tmp_path / "reports").exists()


def test_run_page_shows_another_tabs_run_and_can_cancel_it(open_app, tmp_path):
    """Tab B sees who holds the lock (model, start time), cancels it; tab A says so; B gets its button back."""
    a = open_app(tmp_path, "run")
    a.selectbox(key="run-zoo").select("cnn")
    a.run()
    a.button(key="run-go").click().run()
    (job,) = [j for j in jobs.REGISTRY.values() if j.running]
    b = open_app(tmp_path, "run")
    lock = b.warning[0].value
    assert re.fullmatch(r"A run started in another tab is in progress \(cnn, started \d\d:\d\d:\d\d; \d+ s so far\)\. "
                        r"\*\*Diagnose\*\* comes back when it ends; cancel it to start yours now\.", lock), lock
    assert f"started {job.started_at:%H:%M:%S}" in lock
    assert b.button(key="run-go").disabled
    b.button(key="run-cancel-other").click().run()
    wait_for(b, lambda: b.info and "was cancelled" in b.info[0].value, "B seeing the end of A's run")
    assert b.info[0].value.startswith("The run started in another tab (cnn, started ")
    assert b.info[0].value.endswith("was cancelled: cancelled from another tab.")
    assert b.button(key="run-go").disabled is False
    wait_for(a, lambda: a.warning and "Cancelled" in a.warning[0].value, "A seeing its run cancelled")
    assert a.warning[0].value.endswith("(from another tab). Nothing was written.")
    assert not (tmp_path / "runs").exists()
