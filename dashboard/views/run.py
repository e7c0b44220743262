"""Run a diagnosis from the browser: a zoo model or an uploaded one, through the core runner."""

from pathlib import Path

import streamlit as st

from diagnostics.exitcodes import ExitCode
from diagnostics.runner import RunConfig
from diagnostics.textsafe import visible
from diagnostics_dashboard import jobs, ui
from diagnostics_dashboard.reports import md_escape, md_line

st.title("Run a diagnosis", anchor=False)
st.caption("Runs exactly what `diagnose MODEL` runs: the static pre-scan, safe loading and the analyzers in worker "
           "processes. Code stored in a model file never runs from here: such a model is refused with the reason "
           "(use the command line with `--trust` if you trust its author).")


@st.cache_resource
def job_registry() -> dict:
    """Jobs of this server, by id (the page polls them; they survive reruns and reconnections)."""
    return {}


@st.cache_resource
def workspace() -> Path:
    """Private (0700) directory for this server's uploads and reports."""
    return jobs.private_dir("diagnostics-dashboard-")


registry = job_registry()
host = ui.plugin_host()
running = [j for j in registry.values() if j.running]

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
if st.button("Diagnose", type="primary", disabled=not ready or bool(running), key="run-go"):
    run_dir = jobs.private_dir("diagnostics-run-")
    try:
        if upload is not None:
            model_path = jobs.save_upload(upload.getvalue(), upload.name, run_dir, "model")
            data_path = jobs.save_upload(data_upload.getvalue(), data_upload.name, run_dir, "data") if data_upload else None
            label = f"upload: {Path(upload.name).name}"
        else:
            model_path, data_path, label = zoo[model_choice], None, f"zoo: {model_choice}"
    except jobs.UploadRefused as e:
        st.error(f"Refused: {md_escape(e)}")
        st.stop()
    n = len(st.session_state.get("runs", {})) + 1
    out = workspace() / f"run-{n}-{model_path.name.split('.')[0]}"
    config = RunConfig(model_path=str(model_path), out_dir=out, data_path=str(data_path) if data_path else None,
                       only=tuple(only), timeout_s=float(timeout), seed=int(seed), trust=False)
    job = jobs.start(config, f"run {n} · {label}", registry)
    st.session_state["run-job"] = job.id

job = registry.get(st.session_state.get("run-job", ""))


@st.fragment(run_every=1.0 if job is not None and job.running else None)
def show_job():
    j = registry.get(st.session_state.get("run-job", ""))
    if j is None:
        return
    st.subheader(md_line(j.label), anchor=False)
    p = j.progress
    if j.running:
        cur = f" — {md_line(p.current[0])} {p.current[1]}/{p.current[2]}" if p.current else ""
        st.progress(p.fraction, text=f"{p.done}/{p.total or '?'} analyzers{cur} · {j.elapsed():.0f} s")
    if p.lines:
        st.code("\n".join(visible(line) for line in p.lines[-40:]), language=None)  # one line each, as said
    if j.running:
        return
    if j.error:
        st.error(f"The run stopped: {md_escape(j.error)}")
        return
    o = j.outcome
    code = ExitCode(int(o.exit_code))
    if o.report is None:
        title = "Model refused" if code == ExitCode.MODEL_REFUSED else "Data refused" if code == ExitCode.DATA_REFUSED else "No report"
        reason = o.message.split(": ", 1)[1] if o.message.lower().startswith(title.lower() + ": ") else o.message
        st.error(f"**{title}** (exit code {int(code)} {code.name}): {md_escape(reason)}", icon=":material/block:")
        return
    runs = st.session_state.setdefault("runs", {})
    if j.label not in runs:
        runs[j.label] = str(j.config.out_dir)
        st.session_state["report_dir"] = str(j.config.out_dir)
        st.session_state.pop("report_label", None)  # the sidebar picker follows report_dir
        st.rerun()  # the whole app, so the sidebar lists the new report
    worst = o.report.worst.value if o.report.worst else None
    st.success(f"Done in {j.elapsed():.0f} s: verdict {ui.badge(worst or 'clean', worst)}, exit code "
               f"{int(code)} {code.name}. The report is now open in every page.")
    st.page_link(ui.PAGES["overview"][0], label="Open the Overview", icon=ui.PAGES["overview"][2])


show_job()
