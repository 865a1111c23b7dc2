"""Demo schemes, plans, QIAs, realised savings, WRP targets, usage and feedback.

Built through the same engine functions the app uses (so the demo exercises the real rules),
after the activity data are committed. Everything keyed to the data is deterministic; what is
keyed to today (the current financial year's schemes, recent usage) moves with the calendar so
the demo always looks alive.
"""
from __future__ import annotations

import datetime as dt

import duckdb

from .. import feedback
from ..analysis.opportunities import Basis, opportunities
from ..delivery import plans, qia, schemes, tracking, workflow
from ..scope import Scope
from ..store import facts
from ..store.db import bump_data_version
from ..users import DEMO_CSU, User, get_user

LOW_RISK = {d: (2, 2, "Monitored monthly at the CSU quality meeting.") for d in qia.DOMAINS}


def _advance(con, user, scheme, *statuses):
    for status in statuses:
        scheme = workflow.update(con, user, scheme.scheme_id, scheme.version, status=status)
    return scheme


def _dna_scheme(con, user, title, where, period_to, description, start, fye, monthly):
    """A DNA-rate scheme taken from idea to delivering with a plan, a signed QIA and a realised
    saving each month from its start (fy, month) to March: the two schemes the evidence test
    needs (one already improving before it started, one that changed its metric) differ only in
    these values."""
    csu, specialty = where
    s = schemes.create(con, user, title, csu, specialty=specialty, metric="op_dna_rate",
                       basis=Basis(period_to=period_to), lead="Outpatient manager", finance_category="non_pay",
                       description=description)
    s = _advance(con, user, s, "shortlisted", "planning")
    s = _plan_and_qia(con, user, s, start[0], start[1], fye)
    s = _advance(con, user, s, "approved", "delivering")
    for month in range(start[1], 13):
        tracking.record_realised(con, user, s.scheme_id, plans.period_of(start[0], month), monthly)
    return s


def _plan_and_qia(con, user, scheme, fy, start, fye, scores=LOW_RISK, escalate=False, profile="even"):
    plans.save_plan(con, user, scheme.scheme_id, scheme.version, fy, start, fye, profile,
                    milestones="M1 pathway agreed; M2 staff briefed; M3 live", metric_target_value=None)
    scheme = schemes.get(con, user, scheme.scheme_id)
    qia.save_scores(con, user, scheme.scheme_id, scheme.version, scores)
    signed = plans.period_of(fy, max(1, start - 1)) + "-01"
    roles = list(qia.TRI_TEAM) + (list(qia.ESCALATION) if escalate else [])
    names = {"clinical": "Dr A. Patel", "nursing": "S. Okafor", "operational": "J. Reid",
             "medical_director": "Dr M. Evans", "chief_nurse": "R. Thompson"}
    for role in roles:
        scheme = schemes.get(con, user, scheme.scheme_id)
        qia.sign_off(con, user, scheme.scheme_id, scheme.version, role, names[role], dt.date.fromisoformat(signed))
    return schemes.get(con, user, scheme.scheme_id)


def _demo_user(con: duckdb.DuckDBPyConnection, username: str) -> User:
    """One of the demo users (users.add_demo_users has made them before the schemes are added)."""
    user = get_user(con, username)
    if user is None:
        raise LookupError(f"demo user {username!r} is missing: add the demo users first")
    return user


def _where(row) -> str:
    return "across the CSU" if row.specialty_code == "" else f"in {row.specialty_name}"


def _improving_grain(con) -> tuple[str, str]:
    """The (CSU, specialty) whose DNA rate fell most between the first and last year of data."""
    return con.execute("""
        WITH y AS (SELECT csu_code, specialty_code,
                          sum(numerator) FILTER (WHERE period < '2024-04') / sum(denominator) FILTER (WHERE period < '2024-04') AS first,
                          sum(numerator) FILTER (WHERE period >= '2025-04') / sum(denominator) FILTER (WHERE period >= '2025-04') AS last,
                          sum(denominator) AS volume
                   FROM metric_facts WHERE metric_id = 'op_dna_rate' AND specialty_code <> '' GROUP BY ALL)
        SELECT csu_code, specialty_code FROM y WHERE volume > 1000 AND first > 0
        ORDER BY (first - last) / first DESC, csu_code, specialty_code LIMIT 1""").fetchone()


# A scheme that really worked, planted in the synthetic data: from its start the clinic's DNAs fall
# by a third (every third DNA by a hash of the appointment becomes an attendance).
PLANTED_START = (2025, 7)  # financial year 2025/26, M7 = October 2025


def _plant_working_scheme(con: duckdb.DuckDBPyConnection, avoid: tuple[str, str]) -> tuple[str, str]:
    """The steadiest busy specialty's DNA rate (smallest change between the first and last year of
    data, other than ``avoid``) drops by a third from the planted start; its facts are rebuilt.
    So the demo shows evidence both ways: the text-reminder case study, whose metric was already
    falling before it started (not credited), and this one, which changed at its start (credited)."""
    row = con.execute("""
        WITH y AS (SELECT csu_code, specialty_code,
                          sum(numerator) FILTER (WHERE period < '2024-04') / sum(denominator) FILTER (WHERE period < '2024-04') AS first,
                          sum(numerator) FILTER (WHERE period >= '2025-04') / sum(denominator) FILTER (WHERE period >= '2025-04') AS last,
                          sum(denominator) AS volume
                   FROM metric_facts WHERE metric_id = 'op_dna_rate' AND specialty_code <> '' GROUP BY ALL)
        SELECT csu_code, specialty_code FROM y
        WHERE volume > 1000 AND first > 0 AND (csu_code, specialty_code) <> ($csu, $specialty)
        ORDER BY abs(first - last) / first, csu_code, specialty_code LIMIT 1""",
                      {"csu": avoid[0], "specialty": avoid[1]}).fetchone()
    if row is None:
        raise RuntimeError("The demo has no busy outpatient specialty to plant a working scheme in.")
    csu, specialty = str(row[0]), str(row[1])
    start = plans.period_of(*PLANTED_START)
    con.begin()
    con.execute("""UPDATE outpatients SET outcome = 'attended'
                   WHERE csu_code = ? AND specialty_code = ? AND period >= ? AND outcome = 'dna'
                     AND hash(appointment_id) % 3 = 0""", [csu, specialty, start])
    periods = [r[0] for r in con.execute("SELECT DISTINCT period FROM outpatients WHERE period >= ?", [start]).fetchall()]
    facts.rebuild(con, "outpatients", periods)
    bump_data_version(con)
    con.commit()
    return csu, specialty


def add(con: duckdb.DuckDBPyConnection, today: dt.date | None = None) -> dict:
    today = today or dt.date.today()
    finance = _demo_user(con, "finance")
    admin = _demo_user(con, "admin")
    fy_now = plans.current_fy(today)
    as_of = tracking.last_complete_period(today)
    made: dict[str, int] = {}
    improving = _improving_grain(con)
    planted = _plant_working_scheme(con, improving)

    # WRP targets: a quarter of each CSU's net opportunity at median, to the nearest £10k.
    all_opps = opportunities(con, Scope.trust(), Basis())
    net = all_opps[all_opps.counted_in_net].groupby("csu_code")["opportunity_gbp"].sum()
    for csu, gbp in net.items():
        for fy in (fy_now - 1, fy_now):
            plans.set_wrp_target(con, finance, csu, fy, round(gbp * 0.25, -4), "Demo: 25% of net median opportunity")

    # Real (significant) gaps first, as the frame is ranked; a small demo, or one where the
    # over-dispersed funnel leaves fewer than three, takes the next ranked rows with a gap.
    ema = all_opps[(all_opps.csu_code == DEMO_CSU) & (all_opps.opportunity_gbp > 0)]
    real = ema[ema.rank_group == 0]
    if (real.specialty_code != "").sum() >= 3:
        ema = real
    basis = Basis()
    in_specialties = ema[ema.specialty_code != ""]
    first, third = in_specialties.iloc[0], in_specialties.iloc[1]
    second = ema[ema.specialty_code == ""].iloc[0] if (ema.specialty_code == "").any() else in_specialties.iloc[2]
    s = schemes.create(con, finance, f"Reduce {first.metric_name.lower()} in {first.specialty_name}", DEMO_CSU,
                       specialty=first.specialty_code, metric=first.metric_id, basis=basis, lead="J. Reid",
                       description="Pathway redesign agreed at the CSU board; see milestones.")
    s = _advance(con, finance, s, "shortlisted", "planning")
    start = 3 if fy_now == plans.fy_month(as_of)[0] else 1
    s = _plan_and_qia(con, finance, s, fy_now, start, round(first.opportunity_gbp * 0.4, -3))
    s = _advance(con, finance, s, "approved", "delivering")
    plan = plans.get_plan(con, finance, s.scheme_id)
    assert plan is not None, "planned above"
    for month, planned in enumerate(plan.monthly, start=1):
        period = plans.period_of(fy_now, month)
        if planned and period <= as_of:
            tracking.record_realised(con, finance, s.scheme_id, period, round(planned * 0.88, 0))
    made["delivering"] = s.scheme_id

    s = schemes.create(con, finance, f"Improve {second.metric_name.lower()} {_where(second)}", DEMO_CSU,
                       specialty=second.specialty_code, metric=second.metric_id, basis=basis, lead="S. Okafor")
    s = _advance(con, finance, s, "shortlisted", "planning")
    plans.save_plan(con, finance, s.scheme_id, s.version, fy_now + 1, 1, round(second.opportunity_gbp * 0.3, -3), "ramp")
    s = schemes.get(con, finance, s.scheme_id)
    qia.save_scores(con, finance, s.scheme_id, s.version, {"patient_safety": (3, 2, "Senior review of each case.")})
    made["planning"] = s.scheme_id

    s = schemes.create(con, finance, f"Explore {third.metric_name.lower()} in {third.specialty_name}", DEMO_CSU,
                       specialty=third.specialty_code, metric=third.metric_id, basis=basis)
    # An idea with a rough plan this year: the pipeline finance weights by status (idea 10 %).
    plans.save_plan(con, finance, s.scheme_id, s.version, fy_now, 7, round(third.opportunity_gbp * 0.2, -3))
    made["idea"] = s.scheme_id

    # A delivered scheme on a specialty whose DNA rate was already falling before it started: the
    # evidence says so and does not credit it (issue 12).
    csu, specialty = improving
    s = _dna_scheme(con, finance, "Text reminders and easy rebooking to cut DNAs", (csu, specialty), "2025-06",
                    "Two-way SMS reminders 7 and 2 days before; rebooking by reply; "
                    "clinic templates backfilled from a waiting list.", (2025, 4), 60_000, 5_000)
    s = _advance(con, finance, s, "delivered")
    workflow.set_case_study(con, finance, s.scheme_id, s.version, True)
    made["case_study"] = s.scheme_id

    # A scheme that changed its metric at its start (planted above): the evidence credits it.
    p_csu, p_specialty = planted
    s = _dna_scheme(con, finance, "Two-way text reminders with same-week rebooking", (p_csu, p_specialty), "2025-09",
                    "Reminders 5 and 1 days before; a reply of 'cancel' offers the slot to the "
                    "waiting list the same day.", PLANTED_START, 30_000, 2_500)
    made["credited"] = s.scheme_id

    # An approved scheme whose QIA was escalated (risk 16) and signed by the MD and chief nurse.
    other = all_opps[(all_opps.csu_code != DEMO_CSU) & (all_opps.csu_code != csu) & (all_opps.opportunity_gbp > 0)
                     & (all_opps.specialty_code != "")].iloc[0]
    s = schemes.create(con, finance, f"Redesign {other.metric_name.lower()} in {other.specialty_name}",
                       other.csu_code, specialty=other.specialty_code, metric=other.metric_id, basis=basis)
    s = _advance(con, finance, s, "shortlisted", "planning")
    risky = dict(LOW_RISK, patient_safety=(4, 4, "Daily safety huddle; stop rule if incidents rise."))
    s = _plan_and_qia(con, finance, s, fy_now, 6, round(other.opportunity_gbp * 0.3, -3), risky, escalate=True)
    s = _advance(con, finance, s, "approved")
    made["escalated"] = s.scheme_id

    s = schemes.create(con, admin, "Close the Saturday list", DEMO_CSU, description="Not supported: access impact.")
    s = _advance(con, admin, s, "rejected")
    made["rejected"] = s.scheme_id

    _usage_and_feedback(con, today)
    return made


def _usage_and_feedback(con: duckdb.DuckDBPyConnection, today: dt.date) -> None:
    """Eight weeks of plausible usage for a handful of CSUs, so Adoption shows a pattern
    (and a list of CSUs that have not used the tool), and three feedback items."""
    active = con.execute("SELECT csu_code FROM csus ORDER BY csu_code LIMIT 6").fetchall()
    codes = [DEMO_CSU] + [c for (c,) in active if c != DEMO_CSU][:5]
    con.execute("""
        INSERT INTO usage_events (event_at, username, role, csus, event, page, detail)
        SELECT $today::TIMESTAMP - to_days(d) + to_hours(9 + d % 8), 'demo-' || lower(c), 'csu', [c],
               CASE WHEN d % 9 = 0 THEN 'export' WHEN d % 4 = 0 THEN 'sign_in' ELSE 'page_view' END,
               CASE d % 3 WHEN 0 THEN 'overview' WHEN 1 THEN 'explore' ELSE 'metric' END, 'demo'
        FROM unnest($codes) AS t(c), range(1, 56) AS r(d)
        WHERE (d + length(c)) % (1 + list_position($codes, c)) = 0""", {"today": today, "codes": codes})
    viewer = _demo_user(con, "viewer")
    csu_user = _demo_user(con, "csu")
    admin = _demo_user(con, "admin")
    done = feedback.submit(con, csu_user, "explore", "csu=EMA", 4,
                           "Please let me download the specialty table on its own.")
    feedback.triage(con, admin, done, "done", "Added a one-click CSU briefing pack on Explore.")
    planned = feedback.submit(con, viewer, "metric", "metric=op_dna_rate", 3, "What does 'not significant' mean here?")
    feedback.triage(con, admin, planned, "planned", "Guide entry on funnel limits being written.")
    feedback.submit(con, csu_user, "overview", "", 5, "Clear and quick at our CIP meeting.")
