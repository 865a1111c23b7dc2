"""Overview: the trust's (or my CSUs') total opportunity, net of overlap, by domain and CSU."""
import altair as alt
import streamlit as st

import ui
from opportunity_engine.analysis.opportunities import opportunities, view
from opportunity_engine.formatting import gbp_short, plain
from opportunity_engine.reports import views
from opportunity_engine.reports.export import opportunities_workbook

user = ui.require_user()
basis = ui.basis()
cur = ui.cursor()
df = opportunities(cur, user.scope, basis)

st.title("Overview")
if df.empty:
    st.caption(f"{plain(user.scope.label)} · {plain(basis.label)}")
    st.info("No data yet. An admin can load extracts on the Data page, or build the demo database with "
            "`make run`.")
    st.stop()
parts = view(cur, user.scope, basis, views.overview_parts, basis)
st.caption(f"{plain(user.scope.label)} · {plain(basis.label)} · {parts.window}")
ui.target_notice(parts.missing_note)

t = parts.totals
c1, c2, c3, c4 = st.columns(4)
ui.annual_metric(c1, "Total opportunity (net)", t.net_gbp, help="Net of overlap: for each CSU and specialty only "
                 "the largest of the metrics that free the same resource counts. A full year at the chosen target. "
                 "The 80% range below comes from each unit's month-to-month variation (see the Guide).")
ui.annual_metric(c2, "Gross (all metrics summed)", t.gross_gbp, help="Every metric's opportunity, overlaps included.")
ui.annual_metric(c3, "Cash-releasing", t.cash_gbp, help="Money leaves the ledger (e.g. agency premium).")
ui.annual_metric(c4, "Productivity", t.productivity_gbp, help="Capacity released (bed days, theatre time, clinic "
                 "slots): cash only if capacity is removed or refilled with income.")
st.caption(f"**{views.headline(t)}**, net of overlap. {gbp_short(t.flagged_gbp)} of the net total is from low-volume "
           "or not-significant gaps, "
           f"flagged below. {t.opportunities} opportunities in all.")

domains, heat, rows = parts.domains, parts.heat, parts.heat_rows
present = ui.presenting()


def domain_bars(domains):
    bars = alt.Chart().encode(
        x=alt.X("net_gbp:Q", title="Net opportunity a year (£)", axis=alt.Axis(labelExpr=ui.GBP_LABELS, tickCount=4)),
        y=alt.Y("domain:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=200)),
        tooltip=[alt.Tooltip("domain:N", title="Domain"), alt.Tooltip("net:N", title="Net")])
    return (ui.layered(domains, bars.mark_bar(color="#005EB8"),
                       bars.mark_text(align="left", dx=4, color="#212B32").encode(text="net:N"))
            .properties(height=max(160, 48 * len(domains))))


def heat_grid(heat, bands, rows, present):
    base = alt.Chart().encode(
        x=alt.X("domain:N", title=None, axis=alt.Axis(labelAngle=0, orient="top", labelOverlap=False)),
        y=alt.Y("row:N", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=260)))
    return (ui.layered(heat, base.mark_rect(stroke="#FFFFFF", strokeWidth=1).encode(
                color=alt.Color("band:N", title="Net £ a year", sort=bands,
                                scale=alt.Scale(domain=bands, range=list(views.HEAT_FILLS[:len(bands)])),
                                legend=alt.Legend(orient="bottom", direction="horizontal", labelLimit=0,
                                                  symbolType="square")),
                tooltip=[alt.Tooltip("row:N", title=rows), alt.Tooltip("domain:N", title="Domain"),
                         alt.Tooltip("net:N", title="Net")]),
                       base.mark_text(fontSize=15 if present else 13).encode(text="net:N",
                                                                           color=alt.Color("ink:N", scale=None)))
            .properties(height=max(120, (30 if present else 26) * heat["row"].nunique())))


left, right = st.columns([1, 2])
with left:
    st.subheader("By domain")
    ui.chart(domain_bars, domains)
with right:
    st.subheader(f"{rows} × domain")
    ui.chart(heat_grid, heat, heat.attrs.get("bands", []), rows, present)

st.subheader("Top 10 opportunities")
top = parts.top
top["CSU"] = top["csu_code"]
top["Detail"] = ui.metric_hrefs(top)
columns = (["Opportunity £", "CSU", "Specialty", "Metric", "Gap", "Detail"] if present else
           ["Opportunity £", "CSU", "Specialty", "Metric", "Actual", "Target", "Gap", "Type", "Flags", "Detail"])
picked = ui.money_table(top[columns], ["Opportunity £"], key="top10", on_select="rerun", selection_mode="single-row",
                        config={"Detail": ui.link_column(), "CSU": st.column_config.TextColumn("CSU", help="CSU code")},
                        help={"Opportunity £": "A year, at the chosen target. Click a row to open its Metric detail."})
row = ui.selected_value(top, picked, "metric_id")
if row is not None:
    chosen = top.iloc[picked.selection.rows[0]]
    st.switch_page("pages/metric.py", query_params=ui.view_params(
        csu=chosen["csu_code"], specialty=ui.specialty_param(chosen["specialty_code"]), metric=chosen["metric_id"]))
st.caption("Click a row (or its Open link) for the metric's detail. Every opportunity, with filters: "
           "the Opportunities page.")

cursor_factory = ui.cursor
ui.excel_download("Download Excel workbook", lambda: opportunities_workbook(cursor_factory(), user.scope, basis, user.name),
                  views.export_name("opportunities", "overview", user.scope.label),
                  "Cover, summary chart, every opportunity with how it was calculated, and metric definitions.",
                  "overview", "opportunities workbook")
