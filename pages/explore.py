"""Explore: CSU → its specialties ranked by £ → a specialty's metrics ranked by £ → Metric detail.

Selections (table rows, chart bars or the pickers) write the URL's query parameters, so every
step is a deep link and the back button works.
"""
import altair as alt
import streamlit as st

import ui
from opportunity_engine.analysis.opportunities import csu_list, view
from opportunity_engine.delivery import schemes
from opportunity_engine.formatting import gbp_short, plain
from opportunity_engine.reports import views
from opportunity_engine.reports.export import opportunities_workbook

user = ui.require_user()
basis = ui.basis()
cur = ui.cursor()
csus = dict(csu_list(cur, user.scope))
st.title("Explore")
if not csus:
    st.info("No CSU data is available to you yet. An admin can load extracts on the Data page.")
    st.stop()

csu = ui.param("csu")
ui.check_scope(user, csu)  # a link naming another CSU stops here with "not available to you"
if csu is None or csu not in csus:
    csu = next(iter(csus))
codes = list(csus)
picked = st.selectbox("CSU", codes, index=codes.index(csu), format_func=lambda c: f"{csus[c]} ({c})",
                      help="Clinical service unit. CSU users see only their own.")
if picked != ui.param("csu"):
    st.query_params["csu"] = picked
    if picked != csu and "specialty" in st.query_params:
        del st.query_params["specialty"]
csu = picked

specialty = ui.specialty_from_param(ui.param("specialty"))
parts = view(cur, user.scope, basis, views.explore_parts, basis, specialty, csu=csu)
specs = parts.specialties
labels = dict(zip(specs["specialty_code"], specs["specialty_name"]))
nets = dict(zip(specs["specialty_code"], specs["net"]))
present = ui.presenting()


def specialty_bars(specs):
    return alt.Chart(specs).mark_bar(color="#005EB8").encode(
        x=alt.X("net_gbp:Q", title="Net opportunity a year (£)", axis=alt.Axis(labelExpr=ui.GBP_LABELS, tickCount=4)),
        y=alt.Y("specialty_name:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=220)),
        tooltip=[alt.Tooltip("specialty_name:N", title="Specialty"), alt.Tooltip("net:N", title="Net")],
    ).add_params(alt.selection_point(name="pick", fields=["specialty_code"])).properties(height=max(120, 34 * len(specs)))


crumb = f"Trust › **{plain(csus[csu])}**"
if specialty is not None:
    crumb += f" › **{plain(labels.get(specialty, specialty))}**"
st.markdown(crumb)
st.caption(plain(basis.label))
ui.target_notice(parts.missing_note)
t = parts.totals
c1, c2, c3 = st.columns(3)
ui.annual_metric(c1, f"{plain(csus[csu])}: net opportunity", t.net_gbp, help="Net of overlap, at the chosen target.")
ui.annual_metric(c2, "Gross", t.gross_gbp, help="Every metric's opportunity summed, overlaps included.")
ui.annual_metric(c3, "Cash-releasing", t.cash_gbp, help="Money leaves the ledger (e.g. agency premium).")
st.subheader("Specialties by net opportunity")
left, right = st.columns([3, 2])
with left:
    spec_table = specs.rename(columns={"specialty_code": "Code", "specialty_name": "Specialty", "net_gbp": "Net £",
                                       "gross_gbp": "Gross £", "opportunities": "Opportunities"})
    table_event = ui.money_table(
        spec_table[["Net £", "Specialty", "Opportunities"] if present else ["Net £", "Gross £", "Specialty", "Code", "Opportunities"]],
        ["Net £", "Gross £"], help={"Net £": "A year, net of overlap. Click a row for its metrics."},
        on_select="rerun", selection_mode="single-row", key="specialty_table")
with right:
    chart_event = ui.clickable_chart(specialty_bars, specs, key="specialty_chart")

clicked = ui.selected_value(specs, table_event, "specialty_code") or ui.selected_value(specs, chart_event, "specialty_code")
spec_codes = list(specs["specialty_code"])
if clicked is not None and clicked != specialty:
    ui.link(specialty=ui.specialty_param(clicked))
ui.linked_select("Specialty", [None, *spec_codes], specialty, "specialty", to_param=ui.specialty_param,
                 format_func=lambda c: "Choose a specialty…" if c is None else f"{labels[c]} ({nets[c]})",
                 help="Or click a row or a bar above.")

if specialty is not None:
    rows = parts.metric_rows
    st.subheader(f"{plain(labels.get(specialty, specialty))}: metrics by opportunity")
    metric_event = ui.money_table(
        rows[["Opportunity £", "Metric", "Actual", "Target", "Gap"] if present else
             ["Opportunity £", "Metric", "Domain", "Actual", "Target", "Gap", "Type", "Flags"]],
        ["Opportunity £"], help={"Opportunity £": "A year, at the chosen target. Click a row for its detail."},
        on_select="rerun", selection_mode="single-row", key="metric_table", height="content")
    picked_metric = ui.selected_value(rows, metric_event, "metric_id")
    metric_names = dict(zip(rows["metric_id"], rows["Metric"]))
    names = {m: f"{metric_names[m]} ({gbp_short(v)})" for m, v in zip(rows["metric_id"], rows["Opportunity £"])}
    metric = st.selectbox("Metric", list(names), format_func=lambda m: names.get(m, m),
                          help="Or click a row above.")
    b1, b2 = st.columns([1, 1])
    if picked_metric or b1.button("Open metric detail", icon=":material/monitoring:", type="primary",
                                  help="Trend, distribution, how it was calculated and scheme ideas."):
        st.switch_page("pages/metric.py", query_params=ui.view_params(
            csu=csu, specialty=ui.specialty_param(specialty), metric=picked_metric or metric))
    if ui.editing(user) and b2.button("Add this metric to the shortlist", icon=":material/playlist_add:",
                                  help="Creates a shortlisted scheme from the chosen metric, keeping today's figures."):
        made = schemes.create(cur, user, f"{metric_names[metric]}: {labels.get(specialty, specialty)}", csu,
                              specialty=specialty, metric=metric, basis=basis, status="shortlisted")
        st.success(f"Added to the shortlist as scheme {made.scheme_id}.")
        st.page_link("pages/shortlist.py", label="Open it in Shortlist & plans", icon=":material/arrow_forward:",
                     query_params=ui.view_params(csu=csu, scheme=str(made.scheme_id)))

cursor_factory = ui.cursor
ui.excel_download(f"Download {csu} briefing pack (Excel)",
                  lambda: opportunities_workbook(cursor_factory(), user.scope, basis, user.name, csu=csu),
                  views.export_name("briefing-pack", csu),
                  "All of this CSU's opportunities, summary by specialty with a chart, and definitions.",
                  "explore", f"briefing pack {csu}")
