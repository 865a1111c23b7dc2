"""Shortlist & plans: schemes in a table and a form, each scheme's CIP plan, QIA and history.

Every write goes through the engine (scope, transitions, QIA gating, version check, audit); the
page only collects input and shows the engine's answer.
"""
import datetime as dt

import pandas as pd
import streamlit as st

import ui
from opportunity_engine.analysis.catalogue import all_metrics
from opportunity_engine.analysis.opportunities import csu_list
from opportunity_engine.delivery import plans, qia, schemes, workflow
from opportunity_engine.formatting import gbp_short, metric_value, months
from opportunity_engine.reports.export_plans import plans_workbook
from opportunity_engine.reports.history import readable as readable_history
from opportunity_engine.scope import ScopeError
from opportunity_engine.store.audit import ConflictError

user = ui.require_user()
cur = ui.cursor()
fy = ui.financial_year()
csu = ui.param("csu")
ui.check_scope(user, csu)
edit = ui.editing(user)
EXPECTED = (ValueError, ConflictError, PermissionError, ScopeError)

st.title("Shortlist & plans")
csus = dict(csu_list(cur, user.scope)) or {c: c for c in (user.csus or ())}
f1, f2 = st.columns([2, 1])
options = [None] + list(csus)
chosen = f1.selectbox("CSU", options, index=options.index(csu) if csu in options else 0,
                      format_func=lambda c: "All CSUs in my scope" if c is None else f"{csus.get(c, c)} ({c})",
                      help="Show the schemes of one CSU, or of every CSU you can see.")
years = list(range(fy - 2, fy + 3))
chosen_fy = f2.selectbox("Financial year", years, index=years.index(fy), format_func=plans.fy_label,
                         help="April to March. Plan totals and the WRP target are for this year.")
if chosen != csu or chosen_fy != fy:
    st.query_params.update({k: v for k, v in (("csu", chosen), ("fy", str(chosen_fy))) if v})
    if chosen is None and "csu" in st.query_params:
        del st.query_params["csu"]
    st.query_params.pop("scheme", None)
    st.rerun()

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
                    st.error(f"Scheme {sid}: {error}")
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
                try:
                    made = schemes.create(cur, user, n_title, n_csu, description=n_desc, lead=n_lead, finance_category=n_cat)
                    st.query_params["scheme"] = str(made.scheme_id)
                    st.rerun()
                except EXPECTED as exc:
                    st.error(str(exc))

if not listing.empty:
    st.divider()
    ids = [int(i) for i in listing.scheme_id]
    wanted = ui.param("scheme")
    open_ids = [i for i, st_ in zip(ids, listing.status) if st_ != "rejected"] or ids
    current_id = int(wanted) if wanted and wanted.isdigit() and int(wanted) in ids else open_ids[0]
    if wanted and wanted.isdigit() and int(wanted) not in ids:
        st.error(f"Scheme {wanted} is not available to you. Ask finance if you need access.")
    titles = dict(zip(ids, listing.title))
    statuses = dict(zip(ids, listing.status))
    picked = st.selectbox("Scheme", ids, index=ids.index(current_id),
                          format_func=lambda i: f"#{i} {titles[i]} ({schemes.STATUS_LABELS.get(statuses[i], statuses[i])})",
                          help="Open a scheme to edit its details, CIP plan and QIA. The link keeps the scheme.")
    if picked != current_id or wanted != str(picked):
        st.query_params["scheme"] = str(picked)
        if picked != current_id:
            st.rerun()
    scheme = schemes.get(cur, user, picked)
    seen = ui.seen_version(scheme.scheme_id, scheme.version)
    if seen != scheme.version:
        st.warning(f"{scheme.updated_by} changed this scheme at {scheme.updated_at:%H:%M} after you opened it.")
        if st.button("Reload the latest version", icon=":material/refresh:",
                     help="Shows their change; then make yours again."):
            ui.mark_seen(scheme.scheme_id, scheme.version)
            st.rerun()

    def saved(result_version: int | None = None, message: str = "Saved.") -> None:
        ui.mark_seen(scheme.scheme_id, result_version or schemes.get(cur, user, scheme.scheme_id).version)
        st.session_state["flash"] = message
        st.rerun()

    if "flash" in st.session_state:
        st.success(st.session_state.pop("flash"))

    st.header(f"#{scheme.scheme_id} {scheme.title}")
    bits = [f"Status **{schemes.STATUS_LABELS[scheme.status]}**", f"CSU {scheme.csu_code}", f"created by {scheme.created_by}"]
    if scheme.metric_id:
        bits.append(f"from the opportunity on {listing.set_index('scheme_id').at[scheme.scheme_id, 'metric_name']}")
    st.caption(" · ".join(bits))
    if scheme.snapshot_opportunity_gbp is not None:
        driving = all_metrics(cur).get(scheme.metric_id or "")
        fmt = driving.value_format if driving else "ratio"  # the metric's unit: "13.3 days", "57.0%"
        st.info(f"When shortlisted ({scheme.snapshot_basis}, "
                f"{months(scheme.snapshot_period_from, scheme.snapshot_period_to)}) the opportunity was "
                f"**{gbp_short(scheme.snapshot_opportunity_gbp)}** a year (actual {metric_value(scheme.snapshot_actual, fmt)} "
                f"against target {metric_value(scheme.snapshot_target_value, fmt)}).", icon=":material/history:")
        st.page_link("pages/metric.py", label="Open the driving metric", icon=":material/monitoring:",
                     query_params=ui.view_params(csu=scheme.csu_code, specialty=ui.specialty_param(scheme.specialty_code or ""),
                                                 metric=scheme.metric_id))

    tab_details, tab_plan, tab_qia, tab_history = st.tabs(["Details and status", "CIP plan", "QIA", "History"])

    with tab_details:
        if edit:
            with st.form(f"details-{scheme.scheme_id}"):
                d_title = st.text_input("Title", scheme.title, help="What the scheme will do, in a few words.")
                d_desc = st.text_area("Description", scheme.description, help="The change, who it affects, how the saving arises.")
                d_lead = st.text_input("Lead", scheme.lead, help="The person accountable for delivery.")
                c1, c2, c3 = st.columns(3)
                d_cat = c1.selectbox("Finance category", schemes.FINANCE_CATEGORIES,
                                     index=schemes.FINANCE_CATEGORIES.index(scheme.finance_category),
                                     format_func=lambda c: schemes.FINANCE_LABELS.get(c, c), help="Pay, non-pay or income.")
                d_rec = c2.toggle("Recurrent", scheme.recurrent, help="Off for a one-off (non-recurrent) saving.")
                d_type = c3.selectbox("Saving type", schemes.SAVING_TYPES, index=schemes.SAVING_TYPES.index(scheme.saving_type),
                                      format_func=str.capitalize, help="Cash-releasing, or productivity (capacity released).")
                if st.form_submit_button("Save details", type="primary", help="Checked against the version you loaded; audited."):
                    try:
                        result = schemes.update(cur, user, scheme.scheme_id, seen, title=d_title, description=d_desc,
                                                lead=d_lead, finance_category=d_cat, recurrent=d_rec, saving_type=d_type)
                        saved(result.version)
                    except EXPECTED as exc:
                        st.error(str(exc))
            nexts = workflow.allowed_next(scheme)
            if nexts:
                blockers = workflow.approval_blockers(cur, scheme.scheme_id) if "approved" in nexts else []
                s1, s2 = st.columns([2, 1])
                move_to = s1.selectbox("Move to", nexts, format_func=lambda s: schemes.STATUS_LABELS.get(s, s),
                                       help="Only the allowed next statuses are offered.")
                s2.write("")
                if s2.button("Change status", icon=":material/swap_horiz:",
                             help="Approval needs a CIP plan and a completed, signed QIA."):
                    try:
                        saved(workflow.update(cur, user, scheme.scheme_id, seen, status=move_to).version,
                              f"Moved to {schemes.STATUS_LABELS[move_to]}.")
                    except EXPECTED as exc:
                        st.error(str(exc))
                if blockers:
                    st.caption("Before approval: " + "; ".join(blockers) + ".")
        else:
            st.markdown(f"**Description.** {scheme.description or '–'}  \n**Lead.** {scheme.lead or '–'}  \n"
                        f"**Finance.** {schemes.FINANCE_LABELS[scheme.finance_category]}, "
                        f"{'recurrent' if scheme.recurrent else 'non-recurrent'}, "
                        f"{'cash-releasing' if scheme.saving_type == 'cash' else scheme.saving_type}")

    with tab_plan:
        plan = plans.get_plan(cur, user, scheme.scheme_id)
        if plan:
            # One row of numbers, a column per month (labels carry the month and year).
            phasing = pd.DataFrame([plan.monthly], index=["Planned £"],
                                   columns=[f"M{i} {plans.MONTH_NAMES[i - 1]} {plans.period_of(plan.financial_year, i)[:4]}"
                                            for i in range(1, 13)])
            p1, p2, p3 = st.columns(3)
            p1.metric("Full-year effect", gbp_short(plan.fye_gbp))
            p2.metric(f"In-year {plans.fy_label(plan.financial_year)}", gbp_short(plan.in_year_gbp))
            p3.metric("Starts", f"M{plan.start_month} ({plans.MONTH_NAMES[plan.start_month - 1]})")
            st.dataframe(phasing, width="stretch",
                         column_config={c: st.column_config.NumberColumn(format="£%,.0f") for c in phasing.columns})
        if edit:
            with st.form(f"plan-{scheme.scheme_id}"):
                c1, c2, c3 = st.columns(3)
                years_p = list(range(fy - 1, fy + 3))
                default_fy = plan.financial_year if plan else fy
                p_fy = c1.selectbox("Financial year", years_p, index=years_p.index(default_fy) if default_fy in years_p else 1,
                                    format_func=plans.fy_label, help="April to March; 2026/27 starts in April 2026.")
                p_start = c2.selectbox("Start month", list(range(1, 13)), index=(plan.start_month - 1) if plan else 0,
                                       format_func=lambda m: f"M{m} {plans.MONTH_NAMES[m - 1]}",
                                       help="M1 is April. Savings count from this month.")
                p_fye = c3.number_input("Full-year effect £", min_value=0.0, step=1000.0, format="%.0f",
                                        value=float(plan.fye_gbp) if plan else plans.default_fye(scheme),
                                        help="The saving in a full twelve months once running.")
                p_profile = st.radio("Phasing", plans.PROFILES, index=plans.PROFILES.index(plan.phasing) if plan else 0,
                                     format_func=plans.PROFILE_LABELS.get, horizontal=True,
                                     help="Even: FYE/12 each month from the start. Ramp-up: ⅓, ⅔, then full. "
                                          "Custom: your twelve values, which must sum to FYE × months remaining ÷ 12.")
                with st.expander("Custom monthly values (used when phasing is Custom)"):
                    cols = st.columns(6)
                    base = plan.custom_phasing if plan and plan.custom_phasing else (plan.monthly if plan else [0.0] * 12)
                    custom = [cols[i % 6].number_input(f"M{i + 1} {plans.MONTH_NAMES[i]}", min_value=0.0,
                                                       value=float(base[i]), step=1000.0, format="%.0f",
                                                       help="£ planned in this month; zero before the start month.",
                                                       key=f"custom-{scheme.scheme_id}-{i}") for i in range(12)]
                p_milestones = st.text_area("Milestones", plan.milestones if plan else "",
                                            help="Key dates: e.g. pathway agreed, staff trained, go-live.")
                p_target = st.number_input("Driving metric's target value",
                                           value=plan.metric_target_value if plan else None, format="%.4f",
                                           help="Where the metric should be once the scheme is delivered.")
                if st.form_submit_button("Save plan", type="primary", help="Checks the phasing rules; audited."):
                    try:
                        plans.save_plan(cur, user, scheme.scheme_id, seen, p_fy, p_start, p_fye, p_profile,
                                        custom if p_profile == "custom" else None, p_milestones, p_target)
                        saved(message="Plan saved.")
                    except EXPECTED as exc:
                        st.error(str(exc))
        elif not plan:
            st.info("No CIP plan yet.")

    with tab_qia:
        assessment = qia.get(cur, user, scheme.scheme_id)
        table_qia = qia.table(assessment)
        if not table_qia.empty:
            st.dataframe(table_qia[["domain_label", "consequence", "likelihood", "risk", "mitigations"]]
                         .rename(columns={"domain_label": "Domain", "consequence": "Consequence", "likelihood": "Likelihood",
                                          "risk": "Risk", "mitigations": "Mitigations"})
                         .style.map(lambda v: "background-color:#F4B6B6;font-weight:bold" if assessment.above_threshold(v) else "",
                                    subset=["Risk"]),
                         hide_index=True, width="stretch")
        if assessment.complete:
            st.success(f"QIA complete: highest risk {assessment.max_risk}; signed off.")
        else:
            st.warning("QIA not complete: " + "; ".join(assessment.missing) + ".")
        if edit:
            with st.form(f"qia-{scheme.scheme_id}"):
                st.caption(f"Consequence × likelihood, each 1–5. A risk above {assessment.threshold} needs the medical "
                           "director's and chief nurse's sign-off. Changing a score clears the sign-offs.")
                new_scores = {}
                for domain in qia.DOMAINS:
                    c, lh, m = assessment.scores.get(domain, (1, 1, ""))
                    a, b, d = st.columns([1, 1, 3])
                    new_scores[domain] = (
                        a.selectbox(f"{qia.DOMAIN_LABELS[domain]}: consequence", range(1, 6), index=c - 1,
                                    help="1 negligible, 2 minor, 3 moderate, 4 major, 5 catastrophic."),
                        b.selectbox("likelihood", range(1, 6), index=lh - 1, key=f"l-{domain}-{scheme.scheme_id}",
                                    help="1 rare, 2 unlikely, 3 possible, 4 likely, 5 almost certain."),
                        d.text_input("mitigations", m, key=f"m-{domain}-{scheme.scheme_id}",
                                     help="What will keep this risk in check, and who watches it."))
                if st.form_submit_button("Save QIA scores", type="primary", help="Saves all five domains; clears sign-offs if a risk changed."):
                    try:
                        qia.save_scores(cur, user, scheme.scheme_id, seen, new_scores)
                        saved(message="QIA scores saved.")
                    except EXPECTED as exc:
                        st.error(str(exc))
            needed = assessment.needed_signoffs
            if len(assessment.scores) == len(qia.DOMAINS):
                st.markdown("**Sign-off**")
                for role in needed:
                    done = assessment.signoffs.get(role)
                    if done:
                        st.markdown(f"- {qia.SIGNOFF_LABELS[role]}: **{done[0]}**, {done[1]:%d %b %Y}")
                        continue
                    with st.form(f"sign-{role}-{scheme.scheme_id}"):
                        a, b, col = st.columns([2, 1, 1])
                        who = a.text_input(f"{qia.SIGNOFF_LABELS[role]}: name", help="The person signing off, as on the paper QIA.")
                        when = b.date_input("date", dt.date.today(), format="DD/MM/YYYY", help="The date on the signed QIA.")
                        col.write("")
                        if col.form_submit_button("Record sign-off", help="Records the name and date against this QIA."):
                            try:
                                qia.sign_off(cur, user, scheme.scheme_id, seen, role, who, when)
                                saved(message=f"{qia.SIGNOFF_LABELS[role]} sign-off recorded.")
                            except EXPECTED as exc:
                                st.error(str(exc))
        else:
            for role, (name, day) in assessment.signoffs.items():
                st.markdown(f"- {qia.SIGNOFF_LABELS[role]}: **{name}**, {day:%d %b %Y}")

    with tab_history:
        history = schemes.history(cur, user, scheme.scheme_id)
        st.dataframe(readable_history(history), hide_index=True, width="stretch",
                     column_config={"When": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm")})

if user.has_finance_duties and edit:
    with st.expander(f"WRP targets {plans.fy_label(fy)}", icon=":material/flag:"):
        ui.wrp_target_editor(cur, user, fy)

st.divider()
cursor_factory = ui.cursor
if st.download_button("Download shortlist and plans (Excel)", icon=":material/download:",
                      data=lambda: plans_workbook(cursor_factory(), user, fy, csu=csu),
                      file_name=f"cip-plans-{plans.fy_label(fy).replace('/', '-')}{'-' + csu if csu else ''}.xlsx",
                      mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                      help="Schemes with status drop-downs, CIP plan phasing as live formulas, WRP targets, QIA with "
                           "risk scores, tracking with charts."):
    ui.record("export", "shortlist")
