"""Adoption and value (admin, finance): who uses the tool, what it has produced, who needs support."""
import altair as alt
import pandas as pd
import streamlit as st

import ui
from opportunity_engine import feedback, usage
from opportunity_engine.delivery import tracking
from opportunity_engine.formatting import gbp_short

user = ui.require_user()
if not user.has_finance_duties:
    st.error("Adoption is for finance and administrators.")
    st.stop()
cur = ui.cursor()
st.title("Adoption and value")

weeks = usage.by_csu_week(cur, weeks=12)


def usage_grid(weeks):
    return alt.Chart(weeks).mark_rect().encode(
        x=alt.X("yearmonthdate(week):O", title="Week starting", axis=alt.Axis(format="%d %b", labelAngle=0)),
        y=alt.Y("csu_code:N", title=None),
        color=alt.Color("events:Q", title="Events", scale=alt.Scale(scheme="blues")),
        tooltip=["csu_code:N", alt.Tooltip("week:T", format="%d %b %Y"), "events:Q", "users:Q", "exports:Q",
                 "schemes_created:Q"])


st.subheader("Use by CSU and week (last 12 weeks)")
if weeks.empty:
    st.info("No usage recorded yet: events appear as people sign in, view pages and export.")
else:
    ui.chart(usage_grid, weeks)

value = usage.value(cur, tracking.evidenced_by_scheme(cur, user))
st.subheader("Value from schemes that started in the tool")
v1, v2, v3, v4 = st.columns(4)
vt = usage.value_totals(value)
v1.metric("Schemes from opportunities", int(vt["schemes"]))
v2.metric("Planned full-year effect", gbp_short(vt["planned_fye_gbp"]))
v3.metric("Realised", gbp_short(vt["realised_gbp"]))
v4.metric("Evidenced by the data (FYE)", gbp_short(vt["evidenced_gbp"]),
          help="What the driving metrics' observed change since each scheme started is worth a year.")
st.dataframe(value.rename(columns={"csu_code": "CSU", "csu_name": "Name", "schemes": "Schemes", "committed": "Committed",
                                   "planned_fye_gbp": "Planned FYE £", "realised_gbp": "Realised £",
                                   "evidenced_gbp": "Evidenced FYE £"}),
             hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="£%,.0f") for c in ("Planned FYE £", "Realised £", "Evidenced FYE £")})

st.subheader("CSUs that have not used it lately")
quiet = usage.inactive_csus(cur)
st.caption("No sign-in or page view from any of the CSU's users in the last four weeks: where to offer support.")
quiet["last_used"] = [f"{d:%d %b %Y}" if pd.notna(d) else "never" for d in quiet["last_used"]]
st.dataframe(quiet.rename(columns={"csu_code": "CSU", "csu_name": "Name", "last_used": "Last used"}),
             hide_index=True, width="stretch")

st.subheader("Feedback received")
fb = feedback.summary(cur)
if not fb["items"]:
    st.info("No feedback yet.")
else:
    f1, f2, f3 = st.columns(3)
    f1.metric("Items", fb["items"])
    f2.metric("Average rating", f"{fb['average_rating']:.1f} / 5")
    f3.metric("Open (new or planned)", fb["open"])
    st.page_link("pages/feedback.py", label="Triage feedback", icon=":material/forum:")
