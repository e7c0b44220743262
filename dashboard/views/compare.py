"""Compare: two reports side by side (e.g. before and after a fix), with what changed highlighted.

The gate at the top is ``diagnose compare``'s own :class:`~diagnostics._compare.Comparison`, computed from
the two chosen reports (no model is loaded): what regressed, improved or cannot be compared, by the same
rules as the command (docs/compare.md). An analyzer that ran in A and was skipped in B is "not comparable",
never "worse": a check that did not run did not get worse.
"""

import pandas as pd
import streamlit as st

from diagnostics._compare import Change, Kind, compare
from diagnostics_dashboard import charts, reports, ui
from diagnostics_dashboard.reports import md_escape, md_line

st.title("Compare two reports", anchor=False)
options = ui.available_reports()
if len(options) < 2:
    ui.placeholder("Comparing needs two reports.",
                   "Start the dashboard on a folder holding several (`diagnose dashboard reports/`), or run a "
                   "second diagnosis from the **Run a diagnosis** page.")
    st.stop()
labels = list(options)
current = st.session_state.get("report_dir")
a_index = next((i for i, l in enumerate(labels) if str(options[l]) == current), 0)
c1, c2 = st.columns(2)
a_label = c1.selectbox("Before (A)", labels, index=a_index, key="cmp-a")
b_label = c2.selectbox("After (B)", labels, index=1 if a_index == 0 else 0, key="cmp-b")
try:
    a, b = ui.load_report(options[a_label]), ui.load_report(options[b_label])
except ValueError as e:
    st.error(md_escape(e))
    st.stop()

CHANGED = "background-color: #fff3e0"
WORSE = f"background-color: {charts.SEVERITY_COLOURS['error']}; color: white"
BETTER = f"background-color: {charts.SEVERITY_COLOURS[None]}; color: white"
NOT_COMPARABLE = "background-color: #eeeeee; color: #616161"


# -- model ---------------------------------------------------------------------------------------
st.subheader("Model", anchor=False)
ia, ib = a.model.get("info") or {}, b.model.get("info") or {}
rows = []
for key, va, vb in [("name", a.model.get("name"), b.model.get("name")), ("sha256", (a.model.get("sha256") or "")[:16], (b.model.get("sha256") or "")[:16]),
                    *[(k, ia.get(k), ib.get(k)) for k in ("kind", "n_params", "n_layers", "output_activation", "loss")],
                    ("data", (a.data or {}).get("source"), (b.data or {}).get("source")), ("seed", a.seed, b.seed),
                    ("exit code", a.exit_code, b.exit_code),
                    ("verdict", a.worst.value if a.worst else "clean", b.worst.value if b.worst else "clean")]:
    rows.append({"": key, "A": "" if va is None else str(va), "B": "" if vb is None else str(vb)})
model_df = pd.DataFrame(rows)
st.dataframe(model_df.style.apply(lambda r: [""] + [CHANGED if r["A"] != r["B"] else ""] * 2, axis=1),
             hide_index=True, key="cmp-model")

# -- the gate: diagnose compare's items ------------------------------------------------------------
st.subheader("Regression gate", anchor=False)
comparison = compare(a, b, directories=(str(options[a_label]), str(options[b_label])))
GATE_STYLE = {"regressed": WORSE, "improved": BETTER, "changed": CHANGED}
st.markdown(" ".join(ui.badge(f"{comparison.count(c)} {c.value.replace('_', ' ')}",
                              "error" if c is Change.REGRESSED and comparison.count(c) else
                              None if c is Change.IMPROVED else "info" if c is Change.CHANGED else "skipped")
                     for c in Change))
gate_rows = [{"change": i.change.value.replace("_", " "), "severity": i.severity.value if i.severity else "",
              "kind": i.kind.value, "item": i.label, "A": i.shown("baseline"), "B": i.shown("candidate"), "why": i.note}
             for i in comparison.items if i.change is not Change.UNCHANGED]
if gate_rows:
    order = {"regressed": 0, "improved": 1, "changed": 2, "not comparable": 3}
    gate_rows.sort(key=lambda r: order[r["change"]])
    gdf = pd.DataFrame(gate_rows, columns=["change", "severity", "kind", "item", "A", "B", "why"])
    st.dataframe(gdf.style.map(lambda v: GATE_STYLE.get(v, ""), subset=["change"]), hide_index=True, key="cmp-gate")
else:
    st.caption(f"All {len(comparison.items)} compared items are unchanged.")
st.caption("Regressed: a finding appeared or rose, a verdict got worse, or a measured value moved beyond its "
           "95% interval (or across its threshold) to the worse side. `diagnose compare A B` gives the same "
           "items, with an exit code for CI.")

# -- verdicts ------------------------------------------------------------------------------------
st.subheader("Verdicts", anchor=False)
names = list(dict.fromkeys([r.name for r in a.analyzers] + [r.name for r in b.analyzers]))
ra = {r.name: r for r in a.analyzers}
rb = {r.name: r for r in b.analyzers}
by_analyzer: dict[str, set] = {}
for i in comparison.items:
    if i.kind is not Kind.ANALYZER:
        by_analyzer.setdefault(i.analyzer, set()).add(i.change)
status_change = {i.analyzer: i.change for i in comparison.items if i.kind is Kind.ANALYZER}
rows = []
for n in names:
    x, y = ra.get(n), rb.get(n)
    wx = (x.worst.value if x.worst else "none") if x else "—"
    wy = (y.worst.value if y.worst else "none") if y else "—"
    if x is None or y is None:
        change = "only in " + ("B" if x is None else "A")
    elif status_change.get(n) is Change.NOT_COMPARABLE:
        change = "not comparable"  # ok -> skipped (or failed): nothing in it was compared, nothing got worse
    elif Change.REGRESSED in by_analyzer.get(n, ()):
        change = "worse"
    elif Change.IMPROVED in by_analyzer.get(n, ()):
        change = "better"
    elif {(f.code, f.where, f.severity) for f in x.findings} != {(f.code, f.where, f.severity) for f in y.findings}:
        change = "changed"
    else:
        change = ""
    rows.append({"analyzer": n, "status A": x.status if x else "—", "status B": y.status if y else "—",
                 "worst A": wx, "worst B": wy, "findings A": len(x.findings) if x else 0,
                 "findings B": len(y.findings) if y else 0,
                 "time A (s)": round(x.duration_s, 2) if x else None, "time B (s)": round(y.duration_s, 2) if y else None,
                 "change": change})
vdf = pd.DataFrame(rows)
style = {"worse": WORSE, "better": BETTER, "changed": CHANGED, "not comparable": NOT_COMPARABLE}
st.dataframe(vdf.style.map(lambda v: style.get(v, CHANGED if v.startswith("only") else "") if isinstance(v, str) else "",
                           subset=["change"]),
             hide_index=True, key="cmp-verdicts",
             column_config={c: st.column_config.NumberColumn(format="%.2f") for c in ("time A (s)", "time B (s)")})
n_worse, n_better = sum(r["change"] == "worse" for r in rows), sum(r["change"] == "better" for r in rows)
st.markdown(f"{ui.badge(f'{n_worse} worse', 'error' if n_worse else None)} "
            f"{ui.badge(f'{n_better} better', None)} "
            f"{ui.badge(str(sum(r['change'] not in ('', 'not comparable') for r in rows)) + ' changed', 'info')}")

# -- findings ------------------------------------------------------------------------------------
st.subheader("Findings that appeared or went away", anchor=False)
fa = {(r.name, f.code, f.where): f for r, f in reports.iter_findings(a)}
fb = {(r.name, f.code, f.where): f for r, f in reports.iter_findings(b)}
rows = [{"change": "new in B", "severity": fb[k].severity.value, "analyzer": k[0], "code": k[1], "where": k[2],
         "message": fb[k].message} for k in fb if k not in fa]
rows += [{"change": "gone in B", "severity": fa[k].severity.value, "analyzer": k[0], "code": k[1], "where": k[2],
          "message": fa[k].message} for k in fa if k not in fb]
rows += [{"change": f"{fa[k].severity.value} → {fb[k].severity.value}", "severity": fb[k].severity.value, "analyzer": k[0],
          "code": k[1], "where": k[2], "message": fb[k].message} for k in fa if k in fb and fa[k].severity != fb[k].severity]
if rows:
    fdf = pd.DataFrame(rows, columns=["change", "severity", "analyzer", "code", "where", "message"])
    st.dataframe(ui._styled(fdf, {"severity": charts.SEVERITY_COLOURS})
                 .map(lambda v: WORSE if v == "new in B" else BETTER if v == "gone in B" else CHANGED, subset=["change"]),
                 hide_index=True, key="cmp-findings")
else:
    st.caption("The same findings in both reports.")

# -- measures ------------------------------------------------------------------------------------
st.subheader("Measures that changed", anchor=False)
rows = [row for n in names if n in ra and n in rb for row in reports.measure_changes(ra[n], rb[n])]
if rows:
    mdf = pd.DataFrame(rows, columns=["analyzer", "measure", "where", "A", "B", "B − A", "outcome A", "outcome B"])
    st.dataframe(ui._styled(mdf, {"outcome A": reports.OUTCOME_COLOURS, "outcome B": reports.OUTCOME_COLOURS}),
                 hide_index=True, key="cmp-measures")
elif any(ra[n].measures or rb[n].measures for n in names if n in ra and n in rb):
    st.caption("Every measured value is the same in both reports.")
else:
    st.caption("Neither report has measure sections for the same analyzer.")

# -- metrics -------------------------------------------------------------------------------------
st.subheader("Metrics that changed", anchor=False)
rows = []
for n in names:
    if n not in ra or n not in rb:
        continue
    sa, sb = reports.scalars(ra[n].metrics), reports.scalars(rb[n].metrics)
    for k in dict.fromkeys([*sa, *sb]):
        va, vb = sa.get(k), sb.get(k)
        if va != vb:
            delta = vb - va if reports.is_number(va) and reports.is_number(vb) else None
            rows.append({"analyzer": n, "metric": k, "A": "" if va is None else str(va), "B": "" if vb is None else str(vb),
                         "B − A": delta})
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="cmp-metrics")
else:
    st.caption("No scalar metric differs.")

# -- side by side ----------------------------------------------------------------------------------
st.subheader("Side by side", anchor=False)
common = [n for n in names if n in ra and n in rb]
if common:
    pick = st.selectbox("Analyzer", common, key="cmp-analyzer")
    left, right = st.columns(2)
    with left:
        st.caption(f"A: {md_line(a_label)}")
        ui.analyzer_section(ra[pick], options[a_label], key=f"cmp-a-{pick}")
    with right:
        st.caption(f"B: {md_line(b_label)}")
        ui.analyzer_section(rb[pick], options[b_label], key=f"cmp-b-{pick}")
