"""Plugins: what produced the open report, and what is installed here now."""

import pandas as pd
import streamlit as st

from diagnostics_dashboard import ui
from diagnostics_dashboard.reports import md_escape


def plugin_rows(records):
    rows = []
    for p in records:
        status = "disabled" if p.get("disabled") else f"error: {p['error']}" if p.get("error") else "ok"
        rows.append({"plugin": p.get("name"), "version": p.get("version"), "built-in": bool(p.get("builtin")),
                     "module": p.get("module"), "hooks": ", ".join(h.replace("register_", "") for h in p.get("hooks", [])),
                     "analyzers": ", ".join(p.get("analyzers", [])), "status": status})
    return pd.DataFrame(rows, columns=["plugin", "version", "built-in", "module", "hooks", "analyzers", "status"])


st.title("Plugins", anchor=False)
got = ui.current()
st.subheader("In the open report", anchor=False)
if got is None:
    ui.placeholder("No report is open.", "Pick one in the sidebar to see which plugins produced it.")
else:
    report, _ = got
    st.dataframe(plugin_rows(report.plugins), hide_index=True, key="report-plugins")
    for problem in report.plugin_problems:
        st.error(md_escape(problem))

st.subheader("Installed here", anchor=False)
host = ui.plugin_host()
st.dataframe(plugin_rows([r.to_dict() for r in host.records.values()]), hide_index=True, key="installed-plugins")
for problem in host.problems:
    st.error(md_escape(problem))
rows = [{"analyzer": name, "plugin": e.plugin, "category": e.cls.category, "description": e.cls.description,
         "model kinds": ", ".join(sorted(e.cls.model_kinds)), "data": e.cls.data, "backends": ", ".join(e.cls.backends),
         "requires": ", ".join(e.cls.requires), "reference": e.cls.reference}
        for name, e in sorted(host.analyzers.items())]
st.subheader(f"Analyzers ({len(rows)})", anchor=False)
st.dataframe(pd.DataFrame(rows, columns=["analyzer", "plugin", "category", "description", "model kinds", "data",
                                         "backends", "requires", "reference"]),
             hide_index=True, key="installed-analyzers",
             column_config={"description": st.column_config.TextColumn(width="large")})
st.caption("Third-party plugins install as packages with a `diagnostics` entry point; "
           "`diagnose plugins` lists the same. Block one with `DIAGNOSTICS_DISABLE_PLUGINS=name`.")
