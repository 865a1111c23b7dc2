"""Overview: the trust's (or my CSUs') total opportunity, net of overlap, by domain and CSU."""
import altair as alt
import streamlit as st

import ui
from opportunity_engine.analysis.opportunities import opportunities, totals
from opportunity_engine.formatting import gbp_short
from opportunity_engine.reports import views
from opportunity_engine.reports.export import opportunities_workbook

user = ui.require_user()
basis = ui.basis()
df = opportunities(ui.cursor(), user.scope, basis)

st.title("Overview")
if df.empty:
    st.caption(f"{user.scope.label} · {basis.label}")
    st.info("No data yet. An admin can load extracts on the Data page, or build the demo database with "
            "`make run`.")
    st.stop()
st.caption(f"{user.scope.label} · {basis.label} · {views.window(df)}")

t = totals(df)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Total opportunity (net)", gbp_short(t.net_gbp), help="Net of overlap: for each CSU and specialty only "
          "the largest of the metrics that free the same resource counts.")
c2.metric("Gross (all metrics summed)", gbp_short(t.gross_gbp))
c3.metric("Cash-releasing", gbp_short(t.cash_gbp), help="Money leaves the ledger (e.g. agency premium).")
c4.metric("Productivity", gbp_short(t.productivity_gbp), help="Capacity released (bed days, theatre time, clinic "
          "slots): cash only if capacity is removed or refilled with income.")
st.caption(f"Net of overlap. {gbp_short(t.flagged_gbp)} of the net total is from low-volume or not-significant gaps, "
           f"flagged below. {t.opportunities} opportunities in all.")

left, right = st.columns([1, 2])
with left:
    st.subheader("By domain")
    domains = views.by_domain(df)
    st.altair_chart(
        alt.Chart(domains).mark_bar(color="#005EB8").encode(
            x=alt.X("net_gbp:Q", title="Net opportunity (£)", axis=ui.gbp_axis()),
            y=alt.Y("domain:N", sort="-x", title=None),
            tooltip=[alt.Tooltip("domain:N", title="Domain"), alt.Tooltip("net:N", title="Net")]),
        width="stretch")
with right:
    heat, rows = views.heatmap(df)
    st.subheader(f"{rows} × domain")
    base = alt.Chart(heat).encode(x=alt.X("domain:N", title=None, axis=alt.Axis(labelAngle=0)),
                                  y=alt.Y("row:N", title=rows, axis=alt.Axis(labelLimit=220)))
    st.altair_chart(
        base.mark_rect().encode(color=alt.Color("net_gbp:Q", title="Net £", scale=alt.Scale(scheme="blues"),
                                                legend=alt.Legend(labelExpr=ui.GBP_LABELS)),
                                tooltip=[alt.Tooltip("row:N", title=rows), alt.Tooltip("domain:N", title="Domain"),
                                         alt.Tooltip("net:N", title="Net")])
        + base.mark_text(fontSize=11).encode(text="net:N"),
        width="stretch")

st.subheader("Top 10 opportunities")
top = views.top(df, 10)
st.dataframe(top[["CSU", "Specialty", "Metric", "Actual", "Target", "Gap", "Opportunity", "Type", "Flags"]],
             hide_index=True, width="stretch")
for i, row in top.head(3).iterrows():
    st.page_link("pages/metric.py", label=f"{row['Metric']} in {row['Specialty']} ({row['CSU']}): {row['Opportunity']}",
                 query_params=ui.view_params(csu=row["csu_code"], specialty=ui.specialty_param(row["specialty_code"]),
                                             metric=row["metric_id"]), icon=":material/arrow_forward:")

cursor_factory = ui.cursor
if st.download_button(
    "Download Excel workbook", icon=":material/download:",
    data=lambda: opportunities_workbook(cursor_factory(), user.scope, basis, user.name),
    file_name="opportunity-explorer.xlsx",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    help="Cover, summary chart, every opportunity with how it was calculated, and metric definitions."):
    ui.record("export", "overview", "opportunities workbook")
