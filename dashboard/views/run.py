"""Run a diagnosis from the browser: a zoo model or an uploaded one, through the core runner.

One run at a time per server, each in a process of its own (:mod:`diagnostics_dashboard.jobs`). The tab
that started it can cancel it; every other tab says who holds the lock (which model, since when), may
cancel it too, and gets its button back when it ends; a run whose tab has gone is cancelled. The report
is written under the folder the dashboard was opened on (``runs/<model>-<time>``), where every tab's
picker finds it; when it ends, its tab shows the verdict table and opens it in every page.
"""

import shutil
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st

from diagnostics._exitcodes import ExitCode
from diagnostics._runner import RunConfig
from diagnostics._textsafe import visible
from diagnostics_dashboard import charts, jobs, reports, ui
from diagnostics_dashboard.reports import md_escape, md_line

POLL_S = 1.0  #: how often a page redraws its run panel while any run is in progress

st.title("Run a diagnosis", anchor=False)
st.caption("Runs exactly what `diagnose MODEL` runs: the static pre-scan, safe loading and the analyzers in worker "
           "processes. Code stored in a model file never runs from here: such a model is refused with the reason "
           "(use the command line with `--trust` if you trust its author).")


def session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def owner_alive(sid: str | None):
    """Whether this browser tab is still connected, asked from the job's own thread (the runtime says it is
    safe from any thread); None where there is no server runtime (AppTest), which cannot tell."""
    from streamlit import runtime

    if sid is None or not runtime.exists():
        return None
    rt = runtime.get_instance()
    return lambda: rt.is_active_session(sid)


def runs_root() -> Path:
    """``runs/`` under the folder the dashboard was opened on (the report's folder when opened on one)."""
    start = reports.start_path()
    return (start.parent if start.is_file() else start).absolute() / "runs"


def when(job: jobs.Job) -> str:
    return f"{md_escape(job.model)}, started {job.started_at:%H:%M:%S}"


def verdict_table(report) -> None:
    rows = [{"analyzer": r.name, "status": r.status, "worst": r.worst.value if r.worst else "none",
             "findings": len(r.findings), "duration (s)": round(r.duration_s, 2), "reason": r.reason}
            for r in report.analyzers]
    df = pd.DataFrame(rows, columns=["analyzer", "status", "worst", "findings", "duration (s)", "reason"])
    colours = {"status": charts.STATUS_COLOURS, "worst": {**charts.SEVERITY_COLOURS, None: charts.SEVERITY_COLOURS[None]}}
    st.dataframe(ui._styled(df, colours), hide_index=True, key="run-verdicts",
                 column_config={"reason": st.column_config.TextColumn(width="large"),
                                "duration (s)": st.column_config.NumberColumn(format="%.2f")})


def show_outcome(j: jobs.Job) -> None:
    """A run of this tab that has ended: why it stopped, or its verdict table."""
    if j.error:
        st.error(f"The run stopped: {md_escape(j.error)}")
        return
    o = j.outcome
    code = ExitCode(int(o.exit_code))
    if j.cancelled and o.report is None:
        who = "in this tab" if j.cancelled_by == me else "from another tab" if j.cancelled_by else md_escape(j.cancelled)
        st.warning(f"**Cancelled** after {j.elapsed():.0f} s ({who}). Nothing was written.", icon=":material/cancel:")
        return
    if o.report is None:
        title = "Model refused" if code == ExitCode.MODEL_REFUSED else "Data refused" if code == ExitCode.DATA_REFUSED else "No report"
        reason = o.message.split(": ", 1)[1] if o.message.lower().startswith(title.lower() + ": ") else o.message
        st.error(f"**{title}** (exit code {int(code)} {code.name}): {md_escape(reason)}", icon=":material/block:")
        return
    out = Path(j.config.out_dir)
    if st.session_state.get("run-opened") != j.id:  # once: the picker follows, then the page is drawn again
        st.session_state["run-opened"] = j.id
        listed = {Path(d).resolve() for d in ui.available_reports().values()}
        if out.resolve() not in listed:  # not under the folder the pickers search: this session lists it
            st.session_state.setdefault("runs", {})[out.name] = str(out)
        ui.open_report(out)
        st.rerun()
    report = o.report
    worst = report.worst.value if report.worst else None
    unfinished = [r.name for r in report.analyzers if r.status in ("failed", "timed_out", "crashed")]
    but = f", but {len(unfinished)} analyzer{'s' if len(unfinished) != 1 else ''} did not finish" if unfinished else ""
    st.success(f"Done in {j.elapsed():.0f} s: verdict {ui.badge(worst or 'clean', worst)}{md_escape(but)}, exit code "
               f"{int(code)} {code.name}. The report is now open in every page.")
    verdict_table(report)
    st.caption(f"Written to {md_escape(out)}.")
    st.page_link(ui.PAGES["overview"][0], label="Open the Overview", icon=ui.PAGES["overview"][2])


def start_run() -> str | None:
    """Start the chosen run; the reason when it cannot start."""
    upload_dir = None
    try:
        if upload is not None:
            upload_dir = jobs.private_dir("diagnostics-upload-")  # removed when the run ends
            model_path = jobs.save_upload(upload.getvalue(), upload.name, upload_dir, "model")
            data_path = jobs.save_upload(data_upload.getvalue(), data_upload.name, upload_dir, "data") if data_upload else None
            label, model = f"upload: {Path(upload.name).name}", Path(upload.name).name
        else:
            model_path, data_path, label, model = zoo[model_choice], None, f"zoo: {model_choice}", model_choice
        out = jobs.new_run_dir(runs_root(), model_path.name.split(".")[0])
        config = RunConfig(model_path=str(model_path), out_dir=out, data_path=str(data_path) if data_path else None,
                           only=tuple(only), timeout_s=float(timeout), seed=int(seed), trust=False)
        job = jobs.start(config, label, registry, owner=me, owner_alive=owner_alive(session_id()),
                         cleanup=(upload_dir,) if upload_dir else (), model=model)
    except (jobs.UploadRefused, jobs.Busy) as e:
        if upload_dir is not None:
            shutil.rmtree(upload_dir, ignore_errors=True)
        return f"Refused: {md_escape(e)}" if isinstance(e, jobs.UploadRefused) else f"Not started: {md_escape(e)}."
    st.session_state["run-job"] = job.id
    st.session_state.pop("run-watched", None)
    return None


registry = jobs.REGISTRY
host = ui.plugin_host()
me = st.session_state.setdefault("run-tab", uuid.uuid4().hex)  # this tab, as owner of its runs

source = st.radio("Model", ["Zoo model", "Upload"], horizontal=True, key="run-source")
zoo = jobs.zoo_models()
model_choice = upload = data_upload = None
if source == "Zoo model":
    if zoo:
        model_choice = st.selectbox("Zoo model", list(zoo), key="run-zoo",
                                    help="Trained reference models; their data and history come with them.")
    else:
        st.info("No trained zoo models here (models/artifacts is empty): run `make zoo`, or upload a model.")
else:
    upload = st.file_uploader("Model file (.keras or .h5)", key="run-upload",
                              help="Checked by its content (zip or HDF5 signature), not its name.")
    data_upload = st.file_uploader("Data (optional: .npz with x_val/y_val…, or CSV)", key="run-data")

with st.expander("Options"):
    names = sorted(host.analyzers)
    only = st.multiselect("Analyzers (empty: all that apply)", names, key="run-only")
    timeout = st.number_input("Seconds per analyzer", min_value=5, max_value=3600, value=300, step=5, key="run-timeout")
    seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="run-seed")

ready = (model_choice is not None) or (upload is not None)
seen = jobs.active(registry)  # the run in progress as this page was drawn: the panel polls while there is one


@st.fragment(run_every=POLL_S if seen is not None else None)
def run_panel():
    current = jobs.active(registry)
    if current is not seen:  # a run started or ended since the page was drawn: buttons, polling and picker follow
        st.rerun()
    if current is not None and current.owner != me:
        st.session_state["run-watched"] = current.id
        st.warning(f"A run started in another tab is in progress ({when(current)}; {current.elapsed():.0f} s so far). "
                   "**Diagnose** comes back when it ends; cancel it to start yours now.", icon=":material/lock:")
        if st.button("Cancel that run", key="run-cancel-other", icon=":material/cancel:"):
            jobs.cancel(current, "cancelled from another tab", by=me)
            st.rerun()
    else:
        watched = registry.get(st.session_state.get("run-watched", ""))
        if watched is not None and not watched.running:  # why the button came back
            end = (f"was cancelled: {md_escape(watched.cancelled)}" if watched.cancelled and
                   (watched.outcome is None or watched.outcome.report is None) else "has ended")
            st.info(f"The run started in another tab ({when(watched)}) {end}.", icon=":material/lock_open:")
    mine = registry.get(st.session_state.get("run-job", ""))
    left, right = st.columns([1, 5])
    with left:
        go = st.button("Diagnose", type="primary", disabled=not ready or current is not None, key="run-go",
                       help="One run at a time on this server." if current is not None else None)
    if mine is not None and mine.running:
        with right:
            if st.button("Cancel", key="run-cancel", icon=":material/cancel:", disabled=mine.cancelled is not None):
                jobs.cancel(mine, "cancelled in its tab", by=me)
    if go:
        refused = start_run()
        if refused:
            st.error(refused)
            return
        st.rerun()
    if mine is None:
        return
    st.subheader(md_line(mine.label), anchor=False)
    p = mine.progress
    if mine.running:
        cur = f" — {md_line(p.current[0])} {p.current[1]}/{p.current[2]}" if p.current else ""
        state = "cancelling…" if mine.cancelled else f"{p.done}/{p.total or '?'} analyzers{cur}"
        st.progress(p.fraction, text=f"{state} · {mine.elapsed():.0f} s")
    if p.lines:
        st.code("\n".join(visible(line) for line in p.lines[-40:]), language=None)  # one line each, as said
    if not mine.running:
        show_outcome(mine)


run_panel()
