"""Shortlist & plans: totals against the WRP target, the schemes in a table, a new scheme by
hand, the plans workbook, and the workspace of the scheme picked (its details, CIP plan, QIA and
history: ui_workspace.py).

Every write goes through the engine (scope, transitions, QIA gating, version check, audit); the
page only collects input and shows the engine's answer.
"""
import streamlit as st

import ui
import ui_workspace
from opportunity_engine.analysis.opportunities import csu_list
from opportunity_engine.delivery import plans, schemes, workflow
from opportunity_engine.formatting import gbp_short, plain
from opportunity_engine.reports.export_plans import plans_workbook

user = ui.require_user()
cur = ui.cursor()
fy = ui.financial_year()
csu = ui.param("csu")
ui.check_scope(user, csu)
edit = ui.editing(user)

st.title("Shortlist & plans")
csus = dict(csu_list(cur, user.scope)) or {c: c for c in (user.csus or ())}
f1, f2 = st.columns([2, 1])
ui.linked_select("CSU", [None, *csus], csu, "csu", container=f1, clear=("scheme",),
                 format_func=lambda c: "All CSUs in my scope" if c is None else f"{csus.get(c, c)} ({c})",
                 help="Show the schemes of one CSU, or of every CSU you can see.")
ui.linked_select("Financial year", list(range(fy - 2, fy + 3)), fy, "fy", container=f2, clear=("scheme",),
                 format_func=plans.fy_label, help="April to March. Plan totals and the WRP target are for this year.")

# Totals against the WRP target.
by_csu = plans.totals_by_csu(cur, user.scope, fy, csu=csu)
t = plans.trust_total(by_csu)
k1, k2, k3, k4 = st.columns(4)
# Short labels (they must fit four across in presentation type); the year and coverage sit below.
k1.metric("Committed in-year", gbp_short(t["in_year_gbp"]), delta=plans.fy_label(fy), delta_color="off",
          delta_arrow="off", help="In-year £ of approved, delivering and delivered schemes, from each plan's monthly phasing.")
k2.metric("Committed FYE", gbp_short(t["fye_gbp"]),
          help="Full-year effect of approved, delivering and delivered schemes with a plan in this year.")
k3.metric("WRP target", gbp_short(t["target_gbp"]) if t["target_gbp"] else "not set",
          help="Set by finance per CSU and year (below, or on the Data page).")
k4.metric("Still to find", gbp_short(t["gap_to_target_gbp"]),
          delta=f"{t['coverage']:.0%} of target covered" if t["coverage"] is not None else None,
          delta_color="off", delta_arrow="off", help=f"Target minus committed in-year £. Pipeline (plans not yet approved): {gbp_short(t['pipeline_gbp'])}.")
weights = ", ".join(f"{status} {w:.0%}" for status, w in plans.pipeline_weights().items())
st.caption(f"Pipeline (plans not yet approved): {gbp_short(t['pipeline_gbp'])} in-year; weighted by status "
           f"({weights}): **{gbp_short(t['pipeline_weighted_gbp'])}**. Still to find after committed and weighted "
           f"pipeline: **{gbp_short(t['gap_after_pipeline_gbp'])}**.")

if len(by_csu) > 1:
    with st.expander(f"Totals by CSU, {plans.fy_label(fy)}", icon=":material/table_chart:"):
        st.dataframe(by_csu.rename(columns={"csu_code": "CSU", "csu_name": "Name", "target_gbp": "WRP target £",
                                            "in_year_gbp": "Committed in-year £", "pipeline_gbp": "Pipeline in-year £",
                                            "pipeline_weighted_gbp": "Pipeline weighted £",
                                            "fye_gbp": "Committed FYE £", "gap_to_target_gbp": "Still to find £",
                                            "gap_after_pipeline_gbp": "Still to find after weighted pipeline £",
                                            "coverage": "Covered"}),
                     hide_index=True, width="stretch",
                     column_config={**{c: st.column_config.NumberColumn(format="£%,.0f") for c in (
                         "WRP target £", "Committed in-year £", "Pipeline in-year £", "Pipeline weighted £", "Committed FYE £",
                         "Still to find £", "Still to find after weighted pipeline £")},
                                    "Covered": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent")})

listing = schemes.listing(cur, user, csu=csu)
st.subheader(f"Schemes ({len(listing)})")
if listing.empty:
    st.info("No schemes yet. Use **Add to shortlist** on a Metric detail page, or create one by hand below.")
else:
    for sid, version in zip(listing.scheme_id, listing.version):
        ui.seen_version(int(sid), int(version))
    # FYE first and a number (sorts by value); saving type before the wide text columns so it stays in view.
    table = listing[["scheme_id", "fye_gbp", "title", "csu_code", "status", "saving_type", "finance_category", "recurrent",
                     "lead", "metric_name", "version"]].copy()
    table["metric_name"] = table["metric_name"].fillna("– (by hand)")
    config = {
        "scheme_id": st.column_config.NumberColumn("ID", disabled=True, format="%d"),
        "csu_code": st.column_config.TextColumn("CSU", disabled=True),
        "metric_name": st.column_config.TextColumn("Driving metric", disabled=True),
        "title": st.column_config.TextColumn("Title", required=True, max_chars=200, width="medium"),
        "lead": st.column_config.TextColumn("Lead", max_chars=200),
        "finance_category": st.column_config.SelectboxColumn("Finance category", options=list(schemes.FINANCE_CATEGORIES),
                                                             required=True, format_func=lambda c: schemes.FINANCE_LABELS.get(str(c), str(c))),
        "recurrent": st.column_config.CheckboxColumn("Recurrent"),
        "saving_type": st.column_config.SelectboxColumn("Saving type", options=list(schemes.SAVING_TYPES), required=True,
                                                        format_func=lambda t: str(t).capitalize()),
        "status": st.column_config.SelectboxColumn("Status", options=list(schemes.STATUSES), required=True,
                                                   format_func=lambda s: schemes.STATUS_LABELS.get(str(s), str(s)),
                                                   help="Only allowed moves are saved: idea → shortlisted → planning → "
                                                        "approved → delivering → delivered (or rejected)."),
        "fye_gbp": st.column_config.NumberColumn("FYE £", disabled=True, format="£%,.0f",
                                                 help="Full-year effect of the scheme's CIP plan (blank: no plan yet)."),
        "version": None,
    }
    if edit:
        edited = st.data_editor(table, column_config=config, hide_index=True, width="stretch", key=f"schemes-{csu}-{fy}",
                                num_rows="fixed")
        if st.button("Save table changes", icon=":material/save:",
                     help="Each changed row is saved on its own and checked against the version you loaded."):
            seen_versions = {int(s): ui.seen_version(int(s), 0) for s in table.scheme_id}
            outcomes = workflow.apply_table_edits(cur, user, table, edited, seen_versions)
            for sid, error in outcomes:
                if error:
                    st.error(f"Scheme {sid}: {plain(error)}")
                else:
                    ui.mark_seen(sid, schemes.get(cur, user, sid).version)
            if outcomes and not any(e for _, e in outcomes):
                st.session_state.pop(f"schemes-{csu}-{fy}", None)
                st.rerun()
            elif not outcomes:
                st.info("Nothing changed.")
    else:
        st.dataframe(table.drop(columns=["version"]), column_config=config, hide_index=True, width="stretch")

if edit:
    with st.expander("New scheme by hand", icon=":material/add:"):
        with st.form("new-scheme", clear_on_submit=True):
            n_title = st.text_input("Title", help="What the scheme will do, in a few words.")
            n_csu = st.selectbox("CSU", list(csus), format_func=lambda c: f"{csus[c]} ({c})",
                                 index=list(csus).index(csu) if csu in csus else 0, help="The CSU that will deliver the scheme.")
            n_desc = st.text_area("Description", help="The change, who it affects, and how the saving arises.")
            n_lead = st.text_input("Lead", help="The person accountable for delivery.")
            n_cat = st.selectbox("Finance category", schemes.FINANCE_CATEGORIES, format_func=lambda c: schemes.FINANCE_LABELS.get(c, c),
                                 help="Pay, non-pay or income.")
            if st.form_submit_button("Create scheme", type="primary", help="Creates it as an idea, with no driving metric."):
                with ui.refusals_shown():
                    made = schemes.create(cur, user, n_title, n_csu, description=n_desc, lead=n_lead, finance_category=n_cat)
                    ui.link(scheme=made.scheme_id)

if not listing.empty:
    st.divider()
    ids = [int(i) for i in listing.scheme_id]
    wanted = ui.param("scheme")
    open_ids = [i for i, status in zip(ids, listing.status) if status != "rejected"] or ids
    current_id = int(wanted) if wanted and wanted.isdigit() and int(wanted) in ids else open_ids[0]
    if wanted and wanted.isdigit() and int(wanted) not in ids:
        st.error(f"Scheme {wanted} is not available to you. Ask finance if you need access.")
    titles, statuses = dict(zip(ids, listing.title)), dict(zip(ids, listing.status))
    picked = ui.linked_select("Scheme", ids, current_id, "scheme",
                              format_func=lambda i: f"#{i} {titles[i]} ({schemes.STATUS_LABELS.get(statuses[i], statuses[i])})",
                              help="Open a scheme to edit its details, CIP plan and QIA. The link keeps the scheme.")
    ui.link(rerun=False, scheme=picked)  # the link keeps the scheme shown, even when it came by default
    ui_workspace.show(cur, user, picked, fy, edit, listing.set_index("scheme_id").at[picked, "metric_name"])

if user.has_finance_duties and edit:
    with st.expander(f"WRP targets {plans.fy_label(fy)}", icon=":material/flag:"):
        ui.wrp_target_editor(cur, user, fy)

st.divider()
cursor_factory = ui.cursor
ui.excel_download("Download shortlist and plans (Excel)", lambda: plans_workbook(cursor_factory(), user, fy, csu=csu),
                  f"cip-plans-{plans.fy_label(fy).replace('/', '-')}{'-' + csu if csu else ''}.xlsx",
                  "Schemes with status drop-downs, CIP plan phasing as live formulas, WRP targets, QIA with risk "
                  "scores, tracking with charts.", "shortlist")
