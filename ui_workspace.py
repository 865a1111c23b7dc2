"""The scheme workspace of Shortlist & plans: one scheme's header and its tabs (details and status,
CIP plan, QIA, history), one function per tab.

A module beside ui.py, not in pages/: Streamlit turns every script in pages/ into a page of its own
(before st.navigation runs, a fresh server routes to any of them), and this is not a page. Every
write goes through the engine (scope, transitions, QIA gating, version check, audit); the
workspace collects input and shows the engine's answer.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd
import streamlit as st

import ui
from opportunity_engine.analysis.catalogue import all_metrics
from opportunity_engine.delivery import plans, qia, schemes, workflow
from opportunity_engine.delivery.schemes import Scheme
from opportunity_engine.formatting import gbp_short, metric_value, months, plain
from opportunity_engine.reports.history import readable as readable_history
from opportunity_engine.users import User

HIGH_RISK_STYLE = "background-color:#F4B6B6;font-weight:bold"


@dataclass
class Workspace:
    """What every tab needs: the connection, the user, the scheme as loaded, the version this
    browser last saw (saves are checked against it), the page's financial year, editing or not."""
    cur: duckdb.DuckDBPyConnection
    user: User
    scheme: Scheme
    seen: int
    fy: int
    edit: bool

    def saved(self, result_version: int | None = None, message: str = "Saved.") -> None:
        """After a save: remember the new version as seen, say so on the next run, rerun."""
        ui.mark_seen(self.scheme.scheme_id,
                     result_version or schemes.get(self.cur, self.user, self.scheme.scheme_id).version)
        st.session_state["flash"] = message
        st.rerun()


def show(cur: duckdb.DuckDBPyConnection, user: User, scheme_id: int, fy: int, edit: bool, metric_name: str | None) -> None:
    """The workspace of one scheme: a warning when someone else changed it, the header, the tabs."""
    scheme = schemes.get(cur, user, scheme_id)
    seen = ui.seen_version(scheme.scheme_id, scheme.version)
    if seen != scheme.version:
        st.warning(f"{plain(scheme.updated_by)} changed this scheme at {scheme.updated_at:%H:%M} after you opened it.")
        if st.button("Reload the latest version", icon=":material/refresh:",
                     help="Shows their change; then make yours again."):
            ui.mark_seen(scheme.scheme_id, scheme.version)
            st.rerun()
    if "flash" in st.session_state:
        st.success(st.session_state.pop("flash"))
    ws = Workspace(cur, user, scheme, seen, fy, edit)
    _header(ws, metric_name)
    tab_details, tab_plan, tab_qia, tab_history = st.tabs(["Details and status", "CIP plan", "QIA", "History"])
    with tab_details:
        details_tab(ws)
    with tab_plan:
        plan_tab(ws)
    with tab_qia:
        qia_tab(ws)
    with tab_history:
        history_tab(ws)


def _header(ws: Workspace, metric_name: str | None) -> None:
    scheme = ws.scheme
    st.header(f"#{scheme.scheme_id} {plain(scheme.title)}")
    bits = [f"Status **{schemes.STATUS_LABELS[scheme.status]}**", f"CSU {plain(scheme.csu_code)}", f"created by {plain(scheme.created_by)}"]
    if scheme.metric_id:
        bits.append(f"from the opportunity on {plain(metric_name)}")
    st.caption(" · ".join(bits))
    if scheme.snapshot_opportunity_gbp is not None:
        driving = all_metrics(ws.cur).get(scheme.metric_id or "")
        fmt = driving.value_format if driving else "ratio"  # the metric's unit: "13.3 days", "57.0%"
        st.info(f"When shortlisted ({plain(scheme.snapshot_basis)}, "
                f"{months(scheme.snapshot_period_from, scheme.snapshot_period_to)}) the opportunity was "
                f"**{gbp_short(scheme.snapshot_opportunity_gbp)}** a year (actual {metric_value(scheme.snapshot_actual, fmt)} "
                f"against target {metric_value(scheme.snapshot_target_value, fmt)}).", icon=":material/history:")
        st.page_link("pages/metric.py", label="Open the driving metric", icon=":material/monitoring:",
                     query_params=ui.view_params(csu=scheme.csu_code, specialty=ui.specialty_param(scheme.specialty_code or ""),
                                                 metric=scheme.metric_id))


# --- Details and status ----------------------------------------------------------------------------

def details_tab(ws: Workspace) -> None:
    scheme = ws.scheme
    if not ws.edit:
        st.markdown(f"**Description.** {plain(scheme.description or '–')}  \n**Lead.** {plain(scheme.lead or '–')}  \n"
                    f"**Finance.** {schemes.FINANCE_LABELS[scheme.finance_category]}, "
                    f"{'recurrent' if scheme.recurrent else 'non-recurrent'}, "
                    f"{'cash-releasing' if scheme.saving_type == 'cash' else scheme.saving_type}")
        return
    _details_form(ws)
    _status_move(ws)


def _details_form(ws: Workspace) -> None:
    scheme = ws.scheme
    with st.form(f"details-{scheme.scheme_id}"):
        title = st.text_input("Title", scheme.title, help="What the scheme will do, in a few words.")
        description = st.text_area("Description", scheme.description, help="The change, who it affects, how the saving arises.")
        lead = st.text_input("Lead", scheme.lead, help="The person accountable for delivery.")
        c1, c2, c3 = st.columns(3)
        category = c1.selectbox("Finance category", schemes.FINANCE_CATEGORIES,
                                index=schemes.FINANCE_CATEGORIES.index(scheme.finance_category),
                                format_func=lambda c: schemes.FINANCE_LABELS.get(c, c), help="Pay, non-pay or income.")
        recurrent = c2.toggle("Recurrent", scheme.recurrent, help="Off for a one-off (non-recurrent) saving.")
        saving_type = c3.selectbox("Saving type", schemes.SAVING_TYPES, index=schemes.SAVING_TYPES.index(scheme.saving_type),
                                   format_func=lambda t: str(t).capitalize(), help="Cash-releasing, or productivity (capacity released).")
        if st.form_submit_button("Save details", type="primary", help="Checked against the version you loaded; audited."):
            with ui.refusals_shown():
                result = schemes.update(ws.cur, ws.user, scheme.scheme_id, ws.seen, title=title, description=description,
                                        lead=lead, finance_category=category, recurrent=recurrent, saving_type=saving_type)
                ws.saved(result.version)


def _status_move(ws: Workspace) -> None:
    nexts = workflow.allowed_next(ws.scheme)
    if not nexts:
        return
    blockers = workflow.approval_blockers(ws.cur, ws.scheme.scheme_id) if "approved" in nexts else []
    s1, s2 = st.columns([2, 1])
    move_to = s1.selectbox("Move to", nexts, format_func=lambda s: schemes.STATUS_LABELS.get(s, s), help="Only the allowed next statuses are offered.")
    s2.write("")
    if s2.button("Change status", icon=":material/swap_horiz:", help="Approval needs a CIP plan and a completed, signed QIA."):
        with ui.refusals_shown():
            ws.saved(workflow.update(ws.cur, ws.user, ws.scheme.scheme_id, ws.seen, status=move_to).version,
                     f"Moved to {schemes.STATUS_LABELS[move_to]}.")
    if blockers:
        st.caption("Before approval: " + "; ".join(plain(b) for b in blockers) + ".")


# --- CIP plan --------------------------------------------------------------------------------------

def plan_tab(ws: Workspace) -> None:
    plan = plans.get_plan(ws.cur, ws.user, ws.scheme.scheme_id)
    if plan:
        _plan_figures(plan)
    if ws.edit:
        _plan_form(ws, plan)
    elif not plan:
        st.info("No CIP plan yet.")


def _plan_figures(plan: plans.Plan) -> None:
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


def _plan_form(ws: Workspace, plan: plans.Plan | None) -> None:
    scheme_id = ws.scheme.scheme_id
    with st.form(f"plan-{scheme_id}"):
        c1, c2, c3 = st.columns(3)
        years = list(range(ws.fy - 1, ws.fy + 3))
        default_fy = plan.financial_year if plan else ws.fy
        fy = c1.selectbox("Financial year", years, index=years.index(default_fy) if default_fy in years else 1,
                          format_func=plans.fy_label, help="April to March; 2026/27 starts in April 2026.")
        start = c2.selectbox("Start month", list(range(1, 13)), index=(plan.start_month - 1) if plan else 0,
                             format_func=lambda m: f"M{m} {plans.MONTH_NAMES[m - 1]}",
                             help="M1 is April. Savings count from this month.")
        fye = c3.number_input("Full-year effect £", min_value=0.0, step=1000.0, format="%.0f",
                              value=float(plan.fye_gbp) if plan else plans.default_fye(ws.scheme),
                              help="The saving in a full twelve months once running.")
        profile = st.radio("Phasing", plans.PROFILES, index=plans.PROFILES.index(plan.phasing) if plan else 0,
                           format_func=lambda p: plans.PROFILE_LABELS.get(p, p), horizontal=True,
                           help="Even: FYE/12 each month from the start. Ramp-up: ⅓, ⅔, then full. "
                                "Custom: your twelve values, which must sum to FYE × months remaining ÷ 12.")
        with st.expander("Custom monthly values (used when phasing is Custom)"):
            custom = _custom_months(scheme_id, plan)
        milestones = st.text_area("Milestones", plan.milestones if plan else "",
                                  help="Key dates: e.g. pathway agreed, staff trained, go-live.")
        target = st.number_input("Driving metric's target value",
                                 value=plan.metric_target_value if plan else None,
                                 format="%.4f", help="Where the metric should be once the scheme is delivered.")
        if st.form_submit_button("Save plan", type="primary", help="Checks the phasing rules; audited."):
            with ui.refusals_shown():
                plans.save_plan(ws.cur, ws.user, scheme_id, ws.seen, fy, start, fye, profile,
                                custom if profile == "custom" else None, milestones, target)
                ws.saved(message="Plan saved.")


def _custom_months(scheme_id: int, plan: plans.Plan | None) -> list[float]:
    cols = st.columns(6)
    base = plan.custom_phasing if plan and plan.custom_phasing else (plan.monthly if plan else [0.0] * 12)
    return [cols[i % 6].number_input(f"M{i + 1} {plans.MONTH_NAMES[i]}", min_value=0.0, value=float(base[i]), step=1000.0,
                                     format="%.0f", help="£ planned in this month; zero before the start month.",
                                     key=f"custom-{scheme_id}-{i}") for i in range(12)]


# --- QIA -------------------------------------------------------------------------------------------

def qia_tab(ws: Workspace) -> None:
    assessment = qia.get(ws.cur, ws.user, ws.scheme.scheme_id)
    scores = qia.table(assessment)
    if not scores.empty:
        high = scores["above_threshold"]
        st.dataframe(scores[["domain_label", "consequence", "likelihood", "risk", "mitigations"]]
                     .rename(columns={"domain_label": "Domain", "consequence": "Consequence", "likelihood": "Likelihood",
                                      "risk": "Risk", "mitigations": "Mitigations"})
                     .style.apply(lambda column: [HIGH_RISK_STYLE if h else "" for h in high], subset=["Risk"]),
                     hide_index=True, width="stretch")
    if assessment.complete:
        st.success(f"QIA complete: highest risk {assessment.max_risk}; signed off.")
    else:
        st.warning("QIA not complete: " + "; ".join(assessment.missing) + ".")
    if not ws.edit:
        for role, (name, day) in assessment.signoffs.items():
            st.markdown(f"- {qia.SIGNOFF_LABELS[role]}: **{plain(name)}**, {day:%d %b %Y}")
        return
    _scores_form(ws, assessment)
    if len(assessment.scores) == len(qia.DOMAINS):
        st.markdown("**Sign-off**")
        for role in assessment.needed_signoffs:
            _sign_off(ws, assessment, role)


def _scores_form(ws: Workspace, assessment: qia.Assessment) -> None:
    scheme_id = ws.scheme.scheme_id
    with st.form(f"qia-{scheme_id}"):
        st.caption(f"Consequence × likelihood, each 1–5. A risk above {assessment.threshold} needs the medical "
                   "director's and chief nurse's sign-off. Changing a score clears the sign-offs.")
        new_scores = {}
        for domain in qia.DOMAINS:
            c, lh, m = assessment.scores.get(domain, (1, 1, ""))
            a, b, d = st.columns([1, 1, 3])
            new_scores[domain] = (
                a.selectbox(f"{qia.DOMAIN_LABELS[domain]}: consequence", range(1, 6), index=c - 1,
                            help="1 negligible, 2 minor, 3 moderate, 4 major, 5 catastrophic."),
                b.selectbox("likelihood", range(1, 6), index=lh - 1, key=f"l-{domain}-{scheme_id}",
                            help="1 rare, 2 unlikely, 3 possible, 4 likely, 5 almost certain."),
                d.text_input("mitigations", m, key=f"m-{domain}-{scheme_id}",
                             help="What will keep this risk in check, and who watches it."))
        if st.form_submit_button("Save QIA scores", type="primary", help="Saves all five domains; clears sign-offs if a risk changed."):
            with ui.refusals_shown():
                qia.save_scores(ws.cur, ws.user, scheme_id, ws.seen, new_scores)
                ws.saved(message="QIA scores saved.")


def _sign_off(ws: Workspace, assessment: qia.Assessment, role: str) -> None:
    done = assessment.signoffs.get(role)
    if done:
        st.markdown(f"- {qia.SIGNOFF_LABELS[role]}: **{plain(done[0])}**, {done[1]:%d %b %Y}")
        return
    with st.form(f"sign-{role}-{ws.scheme.scheme_id}"):
        a, b, col = st.columns([2, 1, 1])
        who = a.text_input(f"{qia.SIGNOFF_LABELS[role]}: name", help="The person signing off, as on the paper QIA.")
        when = b.date_input("date", dt.date.today(), format="DD/MM/YYYY", help="The date on the signed QIA.")
        col.write("")
        if col.form_submit_button("Record sign-off", help="Records the name and date against this QIA."):
            with ui.refusals_shown():
                qia.sign_off(ws.cur, ws.user, ws.scheme.scheme_id, ws.seen, role, who, when)
                ws.saved(message=f"{qia.SIGNOFF_LABELS[role]} sign-off recorded.")


# --- History ---------------------------------------------------------------------------------------

def history_tab(ws: Workspace) -> None:
    history = schemes.history(ws.cur, ws.user, ws.scheme.scheme_id)
    st.dataframe(readable_history(history), hide_index=True, width="stretch",
                 column_config={"When": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm")})
