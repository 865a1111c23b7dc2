"""Library: scheme ideas per metric and best-practice case studies from delivered schemes."""
import streamlit as st

import ui
from opportunity_engine.analysis.catalogue import all_metrics
from opportunity_engine.delivery import library, tracking
from opportunity_engine.formatting import gbp_short, plain

user = ui.require_user()
cur = ui.cursor()
metrics = all_metrics(cur)
metric = ui.param("metric")
if metric not in metrics:
    metric = None

st.title("Library")
a, b = st.columns([2, 1])
search = a.text_input("Search ideas and case studies", ui.param("q") or "", placeholder="e.g. discharge, DNA, theatre",
                      help="Every word must appear in the idea, metric, domain or case study.")
options = [None] + sorted(metrics, key=lambda m: metrics[m].metric_name)
chosen = b.selectbox("Metric", options, index=options.index(metric),
                     format_func=lambda m: "All metrics" if m is None else metrics[m].metric_name,
                     help="Linked from Metric detail: the ideas and case studies for that metric.")
for key, value in (("metric", chosen), ("q", search or None)):
    if value and st.query_params.get(key) != value:
        st.query_params[key] = value
    elif not value and key in st.query_params:
        del st.query_params[key]

st.subheader("Case studies")
st.caption("Delivered schemes published by finance for every CSU to learn from, and your own CSU's delivered schemes.")
cases = library.case_studies(cur, user, search, chosen)
if cases.empty:
    st.info("No case studies match. Delivered schemes appear here once finance publishes them.")
for case in cases.itertuples(index=False):
    with st.container(border=True):
        st.markdown(f"**{plain(case.title)}** · {plain(case.csu_name)} · {plain(case.metric_name or 'no driving metric')}")
        st.markdown(plain(case.description or "–"))
        ev = tracking.evidence(cur, user, int(case.scheme_id)) if user.scope.allows(case.csu_code) else None
        line = f"Realised {gbp_short(case.realised_gbp)}"
        if case.fye_gbp == case.fye_gbp:  # not NaN
            line += f" against a planned FYE of {gbp_short(case.fye_gbp)}"
        if ev is not None:
            line += f" · evidence: {ev.status}"
            if ev.evidenced_fye_gbp is not None:
                line += f" (worth {gbp_short(ev.evidenced_fye_gbp)} a year)"
        st.caption(line)

st.subheader("Scheme ideas")
ideas = library.ideas(cur, search, chosen)
st.dataframe(ideas.rename(columns={"metric_name": "Metric", "domain": "Domain", "idea": "Idea"})[["Domain", "Metric", "Idea"]],
             hide_index=True, width="stretch")

if user.can_manage_data and not ui.presenting():
    with st.expander("Edit scheme ideas (admin)", icon=":material/edit:"):
        target = st.selectbox("Metric to edit", sorted(metrics, key=lambda m: metrics[m].metric_name),
                              format_func=lambda m: metrics[m].metric_name, key="edit-metric",
                              help="The metric whose scheme ideas you want to change.")
        with st.form("ideas"):
            text = st.text_area("One idea per line", "\n".join(metrics[target].scheme_ideas), height=180,
                                help="These show on Metric detail and here for every user.")
            if st.form_submit_button("Save ideas", type="primary", help="Replaces this metric's ideas (audited)."):
                try:
                    library.set_ideas(cur, user, target, text.splitlines())
                    st.success("Saved.")
                except ui.REFUSALS as exc:
                    st.error(str(exc))
