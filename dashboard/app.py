"""The dashboard's entry file: a router (``st.navigation``) over one file per page.

Start it with ``diagnose dashboard [REPORT_OR_DIRECTORY]`` (bound to 127.0.0.1 with the shipped
config), or ``streamlit run dashboard/app.py -- [REPORT_OR_DIRECTORY]``.
"""

import streamlit as st

from diagnostics_dashboard import ui

st.set_page_config(page_title="diagnostics dashboard", page_icon=":material/troubleshoot:", layout="wide")

pages = {
    "Report": [st.Page(ui.PAGES[k][0], title=ui.PAGES[k][1], icon=ui.PAGES[k][2], default=(k == "overview"))
               for k in ("overview", "explanations", "health", "data")],
    "Tools": [st.Page(ui.PAGES[k][0], title=ui.PAGES[k][1], icon=ui.PAGES[k][2]) for k in ("compare", "sweep", "run", "plugins")],
}
ui.report_picker()
page = st.navigation(pages)
page.run()
