"""Metric detail: actual vs target, the £ range, monthly trend with SPC limits, the distribution
across units, definition and sources, how it was calculated, scheme ideas, add to shortlist."""
import altair as alt
import pandas as pd
import streamlit as st

import ui
from opportunity_engine.analysis.catalogue import all_metrics
from opportunity_engine.analysis.opportunities import funnel, opportunities, trend
from opportunity_engine.delivery import schemes
from opportunity_engine.formatting import gbp_short, metric_value, months, plain, units
from opportunity_engine.reports import comparators as likeforlike
from opportunity_engine.reports import views

user = ui.require_user()
basis = ui.basis()
cur = ui.cursor()
csu, metric_id = ui.param("csu"), ui.param("metric")
specialty = ui.specialty_from_param(ui.param("specialty"))
ui.check_scope(user, csu)
st.title("Metric detail")
if not (csu and metric_id and specialty is not None):
    st.info("Choose a CSU, specialty and metric on the Explore page to see its detail here.")
    st.page_link("pages/explore.py", label="Go to Explore", icon=":material/account_tree:",
                 query_params=ui.view_params(csu=csu))
    st.stop()

rows = opportunities(cur, user.scope, basis, csu=csu, specialty=specialty, metric=metric_id)
metric = all_metrics(cur).get(metric_id)
if rows.empty or metric is None:
    st.warning("There is no data for that CSU, specialty and metric. Check the link, or pick again on Explore.")
    st.page_link("pages/explore.py", label="Back to Explore", query_params=ui.view_params(csu=csu))
    st.stop()
r = rows.iloc[0]
fmt = metric.value_format

st.page_link("pages/explore.py", label=f"Trust › {plain(r.csu_name)} › {plain(r.specialty_name)}", icon=":material/arrow_back:",
             query_params=ui.view_params(csu=csu, specialty=ui.specialty_param(specialty)))
st.header(f"{plain(metric.metric_name)}: {plain(r.specialty_name)}, {plain(r.csu_name)}")
st.caption(f"{plain(metric.domain)} · {'lower' if metric.lower_is_better else 'higher'} is better · {plain(basis.label)} · "
           f"{months(r.period_from, r.period_to)}")

c1, c2, c3, c4 = st.columns([1, 1, 1, 1.5])
c1.metric("Actual", metric_value(r.actual, fmt))
c2.metric("Target", metric_value(r.target_value, fmt), help=f"Benchmark level: {r.benchmark_level or 'none'}")
ui.annual_metric(c3, "Opportunity", r.opportunity_gbp, help=f"{r.saving_type.capitalize()} saving, a full year "
                 "at the chosen target. The 80% range comes from the unit's own month-to-month variation: its rate "
                 "± 1.28 standard errors of the mean monthly rate, priced the same way.")
gap_unit = metric.unit.removeprefix("£").strip()  # the unit goes in the label: the tile's big type stays short
c4.metric(f"Gap a year, {gap_unit}", units(r.gap_units, metric.unit).removesuffix(" " + gap_unit),
          help=f"Capacity: {units(r.capacity_units, metric.capacity_unit)} a year" if metric.capacity_unit else None)
st.caption(f"Opportunity {gbp_short(r.opportunity_gbp)} a year, **80% range {gbp_short(r.opportunity_low_gbp)}–"
           f"{gbp_short(r.opportunity_high_gbp)}**: this unit's rate ± 1.28 standard errors of its mean monthly rate "
           f"(standard error {metric_value(r.actual_se, fmt)}), priced the same way." if pd.notna(r.actual_se) else
           "No 80% range: fewer than two months of data, so no month-to-month variation to measure.")
flags = []
if r.low_volume:
    flags.append(f"low volume ({r.denominator:,.0f} below the minimum of {metric.min_volume:,.0f})")
if not r.significant and pd.notna(r.target_value):
    flags.append("the gap is within the 95% funnel limit, allowing for the usual spread between units (may be noise)")
if flags:
    st.warning("Treat with care: " + "; ".join(flags) + ".")
note = likeforlike.target_note(r)
if note:
    st.info(note, icon=":material/balance:")
if r.target_basis == "case mix":
    with st.expander("Crude figure (not adjusted for case mix)"):
        st.markdown(f"Crude target {metric_value(r.crude_target_value, fmt)} (the specialty's length of stay, "
                    f"whatever its patients' HRGs): opportunity {gbp_short(r.crude_opportunity_gbp)} a year, against "
                    f"{gbp_short(r.opportunity_gbp)} adjusted.")

st.subheader("Opportunity range")
range_df = views.opportunity_range(r, basis)
ui.money_table(range_df, ["Opportunity £ a year"], width="content",
               config={"Chosen": st.column_config.TextColumn("Chosen", help="The target this page is measured against.")})

def comparator_bars(kind, dist, metric_name, fmt, whole_scale, target):
    """The comparator set behind the target (reports.comparators.comparator_chart)."""
    if kind == "hrg":
        long = dist.melt(id_vars=["label", "spells"], value_vars=["Mean stay", "Reference stay"], var_name="what")
        return alt.Chart(long).mark_bar().encode(
            x=alt.X("label:N", title="HRG", sort=None), xOffset="what:N", y=alt.Y("value:Q", title="Days"),
            color=alt.Color("what:N", title=None, scale=alt.Scale(range=["#ED8B00", "#009639"]),
                            legend=alt.Legend(orient="bottom")),
            tooltip=["label", "what", alt.Tooltip("value:Q", format=".2f"), alt.Tooltip("spells:Q", format=",.0f")])
    dist = dist.assign(order=range(len(dist)))
    figure = alt.Chart(dist).mark_bar().encode(
        x=alt.X("order:O", title=None, axis=None),
        y=alt.Y("value:Q", title=metric_name, axis=alt.Axis(format=".0%") if fmt == "percent" else alt.Axis(),
                scale=alt.Scale(domain=[0, 1]) if fmt == "percent" and dist["value"].max() <= 1
                and whole_scale else alt.Scale(zero=whole_scale)),
        color=alt.condition("datum.this", alt.value("#ED8B00"), alt.value("#AEB7BD")),
        tooltip=["label", alt.Tooltip("value:Q", format=".1%" if fmt == "percent" else ".3f")])
    if pd.notna(target):
        figure += alt.Chart(pd.DataFrame({"target": [target]})).mark_rule(color="#009639").encode(y="target:Q")
    return figure


def funnel_plot(limits, points, target, x_label, metric_name, fmt):
    """Every comparable unit against its volume, with the 95 % and 99.8 % limits around the target."""
    axis = alt.Axis(format=".0%") if fmt == "percent" else alt.Axis()
    bands = alt.Chart().encode(x=alt.X("x:Q", title=f"Volume: {x_label}", scale=alt.Scale(type="log")))
    layers = (ui.layered(limits,
                         bands.mark_line(color="#768692", strokeDash=[2, 2]).encode(y="lower_998:Q"),
                         bands.mark_line(color="#768692", strokeDash=[2, 2]).encode(y="upper_998:Q"),
                         bands.mark_line(color="#425563").encode(y=alt.Y("lower_95:Q", title=metric_name, axis=axis)),
                         bands.mark_line(color="#425563").encode(y="upper_95:Q"),
                         bands.mark_line(color="#DA291C", strokeDash=[1, 3], opacity=0.6).encode(y="naive_lower_95:Q"),
                         bands.mark_line(color="#DA291C", strokeDash=[1, 3], opacity=0.6).encode(y="naive_upper_95:Q"))
              + alt.Chart(pd.DataFrame({"target": [target]})).mark_rule(color="#009639").encode(y="target:Q"))
    return layers + alt.Chart(points).mark_circle(size=60, opacity=0.8).encode(
        x="x:Q", y="value:Q",
        color=alt.condition("datum.this", alt.value("#ED8B00"), alt.value("#005EB8")),
        size=alt.condition("datum.this", alt.value(200), alt.value(50)),
        tooltip=["unit", alt.Tooltip("actual:Q", title="Actual", format=".1%" if fmt == "percent" else ".2f"),
                 alt.Tooltip("flagged:N", title="Outside the 95% limit")])


left, right = st.columns(2)
with left:
    st.subheader("Monthly trend (SPC)")
    series = trend(cur, user.scope, metric_id, csu=csu, specialty=specialty)
    if len(series) >= 2:
        ui.chart(ui.spc_chart, series, metric.metric_name, target=r.target_value, percent=fmt == "percent")
        st.caption("Blue: monthly value; grey dashed: XmR process limits; green: target; orange: special cause "
                   "(beyond a limit, a run of 7 on one side of the mean, or 7 rising/falling).")
    else:
        st.info("Not enough months for a trend.")
with right:
    behind = likeforlike.behind_target(cur, user.scope, basis, csu, specialty, metric_id)
    assert behind is not None  # the row above exists
    comparators = behind.chart  # only what produced the target
    st.subheader(comparators.title)
    ui.chart(comparator_bars, comparators.kind, comparators.frame, metric.metric_name, fmt, comparators.whole_scale,
             r.target_value)
    st.caption(comparators.caption)

st.subheader("Is the gap real? Funnel plot")
fp = funnel(cur, user.scope, basis, metric_id, csu, specialty)
if fp is None:
    st.info("This metric has no funnel plot (money shares are not tested), or the unit has no target.")
else:
    ui.chart(funnel_plot, fp.limits, fp.points, fp.target, fp.x_label, metric.metric_name, fmt)
    naive, adjusted = int(fp.points["naive_flagged"].sum()), int(fp.points["flagged"].sum())
    st.caption(f"Orange: this unit; blue: the trust's other units ({fp.units} in all). Solid grey: 95% limits, dashed: "
               f"99.8%, around the target (green), widened for the spread between units that chance alone does not "
               f"explain (over-dispersion φ = {fp.phi:.1f}, τ² = {fp.tau2:.3g}; Spiegelhalter 2005, as NHS-R FunnelPlotR). "
               f"Outside the 95% limit: {adjusted} of {fp.units} units; with sampling error alone (red dotted) it would be {naive}. "
               "Units judged against another specialty's benchmark are shown at the same distance from this target.")

st.subheader("How this was calculated")
calc = views.calculation_steps(r, basis.label, metric.numerator_label, metric.denominator_label)
st.dataframe(calc, hide_index=True, width="stretch")
if r.target_basis == "case mix":
    st.markdown("**Target = your spells, at the reference length of stay of each HRG** (Σ expected bed days ÷ spells)")
    st.dataframe(pd.DataFrame(list(behind.hrg_lines)), hide_index=True, width="stretch",
                 column_config={"Spells": st.column_config.NumberColumn(format="%.0f"),
                                "Mean stay": st.column_config.NumberColumn(format="%.2f days"),
                                "Reference stay": st.column_config.NumberColumn(format="%.2f days"),
                                "Expected bed days": st.column_config.NumberColumn(format="%.0f"),
                                "Bed days": st.column_config.NumberColumn(format="%.0f")})

d1, d2 = st.columns(2)
with d1:
    st.markdown(f"**Definition.** {plain(metric.definition)}")
    st.markdown(f"**Data source.** {plain(metric.data_source or '–')}")
    st.markdown(f"**Benchmark source.** {plain(r.benchmark_source or '–')}"
                + (f" (peer group {plain(r.peer_group)})" if r.peer_group else ""))
    st.markdown(f"**Unit cost source.** {plain(r.unit_cost_source or '–')}")
with d2:
    st.markdown("**Scheme ideas**")
    for idea in metric.scheme_ideas or ("No ideas recorded yet.",):
        st.markdown(f"- {plain(idea)}")
    if metric.quality_risks:
        st.markdown("**Quality risks to consider (QIA)**: " + "; ".join(plain(q) for q in metric.quality_risks))

st.page_link("pages/library.py", label="Case studies and ideas for this metric in the Library",
             icon=":material/local_library:", query_params=ui.view_params(metric=metric_id))

if ui.editing(user):
    if st.button("Add to shortlist", icon=":material/playlist_add:", type="primary",
                 help="Creates a shortlisted scheme tied to this CSU, specialty and metric, keeping today's figures."):
        scheme = schemes.create(cur, user, f"{metric.metric_name}: {r.specialty_name}", csu, specialty=specialty,
                                metric=metric_id, basis=basis, status="shortlisted")
        st.success(f"Added to the shortlist as scheme {scheme.scheme_id} with an opportunity of "
                   f"{gbp_short(r.opportunity_gbp)}.")
        st.page_link("pages/shortlist.py", label="Open it in Shortlist & plans", icon=":material/arrow_forward:",
                     query_params=ui.view_params(csu=csu, scheme=str(scheme.scheme_id)))
