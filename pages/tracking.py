"""Tracking: planned vs realised by month, scheme and CSU, RAG, cumulative chart, realised entry,
and the evidence: has the driving metric really moved since the scheme started?"""
import altair as alt
import streamlit as st

import ui
from opportunity_engine.delivery import plans, schemes, tracking
from opportunity_engine.formatting import gbp_short, gbp_whole, metric_value, month, plain

user = ui.require_user()
cur = ui.cursor()
fy = ui.financial_year()
csu = ui.param("csu")
ui.check_scope(user, csu)
as_of = tracking.last_complete_period()

st.title("Tracking")
ui.linked_select("Financial year", list(range(fy - 2, fy + 2)), fy, "fy", format_func=plans.fy_label,
                 help="Committed schemes (approved, delivering, delivered) with a plan in this year.")
seen = tracking.tracking_view(cur, user.scope, fy, csu, as_of)
months, summary = seen.months, seen.summary
st.caption(f"{plain(user.scope.label)}{' · CSU ' + plain(csu) if csu else ''} · {plans.fy_label(fy)} · to date = up to {month(as_of)} "
           f"(the last complete month). RAG: green ≥ 95% of plan to date realised, amber ≥ 80%, red below.")
if summary.empty:
    st.info("No committed schemes with a plan in this year. Approve a scheme on Shortlist & plans, or pick another year.")
    st.stop()

t = seen.totals
assert t is not None  # summary is not empty
k1, k2, k3, k4 = st.columns(4)
k1.metric("Planned in-year", gbp_short(t.in_year_gbp))
k2.metric("Planned to date", gbp_short(t.planned_to_date_gbp))
k3.metric("Realised to date", gbp_short(t.realised_to_date_gbp),
          delta=gbp_short(t.variance_gbp), help="Delta: realised minus planned to date.")
k4.metric("Schemes R / A / G", f"{t.red} / {t.amber} / {t.green}")

SERIES_COLOURS = alt.Scale(domain=["Planned", "Realised"], range=["#005EB8", "#009639"])


def cumulative_lines(long):
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("period:N", title=None), y=alt.Y("gbp:Q", title="£", axis=ui.gbp_axis()),
        color=alt.Color("series:N", scale=SERIES_COLOURS, title=None),
        tooltip=["period:N", "series:N", alt.Tooltip("gbp:Q", format=",.0f", title="£")])


def csu_bars(by_csu_long):
    return alt.Chart(by_csu_long).mark_bar().encode(
        y=alt.Y("csu_code:N", title="CSU"), x=alt.X("gbp:Q", title="£", axis=ui.gbp_axis()),
        yOffset="series:N", color=alt.Color("series:N", scale=SERIES_COLOURS, title=None),
        tooltip=["csu_code:N", "series:N", alt.Tooltip("gbp:Q", format=",.0f", title="£")])


long = seen.cumulative
c1, c2 = st.columns(2)
with c1:
    st.subheader("Cumulative planned vs realised")
    ui.chart(cumulative_lines, long)
with c2:
    st.subheader("By CSU, to date")
    by_csu_long = seen.by_csu
    ui.chart(csu_bars, by_csu_long)

st.subheader("Schemes")
RAG_COLOURS = {"Red": "background-color:#F4B6B6", "Amber": "background-color:#FFE0A3", "Green": "background-color:#BFE6C8"}
summary["status"] = summary["status"].map(schemes.STATUS_LABELS).fillna(summary["status"])  # as Shortlist spells it
show = summary[["scheme_id", "title", "csu_code", "status", "rag", "in_year_gbp", "planned_to_date_gbp",
                "realised_to_date_gbp", "variance_gbp"]].rename(columns={"scheme_id": "ID", "title": "Scheme", "csu_code": "CSU", "status": "Status",
                               "in_year_gbp": "In-year £", "planned_to_date_gbp": "Planned to date £",
                               "realised_to_date_gbp": "Realised to date £", "variance_gbp": "Variance £", "rag": "RAG"})
st.dataframe(show.style.map(lambda v: RAG_COLOURS.get(v, ""), subset=["RAG"])
             .format({c: gbp_whole for c in ("In-year £", "Planned to date £", "Realised to date £", "Variance £")}),
             hide_index=True, width="stretch")
ui.csv_download(show, f"tracking-{fy}.csv", "Download schemes (CSV)")

ids = [int(i) for i in summary.scheme_id]
titles = dict(zip(ids, summary.title))
wanted = ui.param("scheme")
current = int(wanted) if wanted and wanted.isdigit() and int(wanted) in ids else ids[0]
picked = ui.linked_select("Scheme for realised savings and evidence", ids, current, "scheme",
                          format_func=lambda i: f"#{i} {titles[i]}", help="The link keeps this scheme.")

if ui.editing(user):
    # Not a form: the month chosen decides what the amount starts at and whether a replace warning shows.
    with st.container(border=True):
        st.markdown("**Record a realised month**")
        periods = [plans.period_of(fy, m) for m in range(1, 13)]
        recorded = dict(zip(*[tracking.realised(cur, user.scope, picked)[c] for c in ("period", "realised_gbp")]))
        planned = list(months.loc[(months.scheme_id == picked) & (months.planned_gbp > 0), "period"]) or periods
        first = tracking.next_month_to_record(planned, set(recorded), as_of)
        a, b, c = st.columns([1, 1, 1])
        period = a.selectbox("Month", periods, index=periods.index(first) if first in periods else 0,
                             format_func=lambda p: f"{month(p)}{' (recorded)' if p in recorded else ''}",
                             key=f"realised-month-{picked}",
                             help="Starts at the first month of the plan with no figure yet.")
        existing = recorded.get(period)
        gbp = b.number_input("Realised £", min_value=0.0, step=500.0, format="%.0f", key=f"realised-gbp-{picked}-{period}",
                             value=float(existing) if existing is not None else 0.0,
                             help="What the ledger shows was saved in that month.")
        replace = True
        if existing is not None:
            st.warning(f"{month(period)} already has {gbp_whole(existing)} recorded. Saving replaces it.",
                       icon=":material/warning:")
            replace = st.checkbox(f"Replace the recorded {gbp_whole(existing)}", key=f"realised-replace-{picked}-{period}",
                                  help="Tick to correct the month's figure; the old one stays in the history.")
        c.write("")
        if c.button("Save realised £", type="primary", key=f"realised-save-{picked}",
                    help="Saves this month (audited). A month that already has a figure is replaced only if you tick Replace."):
            try:
                tracking.record_realised(cur, user, picked, period, gbp, replace=replace)
                st.success(f"Recorded {gbp_short(gbp)} for {month(period)}"
                           f"{f' (was {gbp_whole(existing)})' if existing is not None else ''}.")
            except ui.REFUSALS as exc:
                st.error(str(exc))
    st.caption("Many months at once: import a `realised_savings` file (scheme_id, period, realised_gbp) on the Data page.")

st.subheader("Evidence from the data")
ev = tracking.evidence(cur, user, picked)
e1, e2, e3 = st.columns(3)
e1.metric("Realised (claimed) to date", gbp_short(ev.realised_gbp))
e2.metric("Evidenced by the metric since the start", gbp_short(ev.evidenced_gbp) if ev.evidenced_gbp is not None else "–",
          help="Change in the metric's rate × volume since the start × the opportunity's unit cost.")
e3.metric("Evidenced, full-year effect", gbp_short(ev.evidenced_fye_gbp) if ev.evidenced_fye_gbp is not None else "–",
          delta=f"plan FYE {gbp_short(ev.fye_claimed_gbp)}" if ev.fye_claimed_gbp else None, delta_color="off",
          delta_arrow="off")
verdict = {"signal of improvement": st.success, "signal of deterioration": st.error,
           "change before the start": st.warning}.get(ev.status, st.info)
verdict(f"**{ev.status.capitalize()}.** {ev.message}")
if not ev.series.empty and "mean" in ev.series:
    percent = ev.value_format == "percent"
    st.markdown(f"**{plain(ev.metric_name)}: {plain(ev.unit_label)}**, month by month")
    ui.chart(ui.spc_chart, ev.series, ev.metric_name or "Driving metric", start=ev.start_period, percent=percent)
    began = f" The change began in {month(ev.change_began)}, before the start." if ev.change_began else ""
    st.caption(f"Red line: the scheme's start ({month(ev.start_period)}). Mean (solid grey) and limits (dashed) come from "
               f"the months before it; orange points are special causes. Before: "
               f"{metric_value(ev.before_value, ev.value_format)}; since: {metric_value(ev.after_value, ev.value_format)}."
               + began)
