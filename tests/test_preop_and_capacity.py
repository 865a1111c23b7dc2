"""Two maths fixes found by an independent re-implementation of METRICS.md (issue 14, point 5).

Pre-op bed days, hand-worked: four elective spells in one month, one CSU/specialty:
    S1 elective, admitted 1 Apr, procedure 3 Apr -> 2 pre-op days   (with a procedure)
    S2 elective, admitted 1 Apr, procedure 1 Apr -> 0               (with a procedure)
    S3 day case, admitted 2 Apr, procedure 2 Apr -> 0               (with a procedure)
    S4 elective, admitted 5 Apr, no procedure    -> not counted     (no procedure)
    S5 non-elective with a procedure             -> not counted     (not elective)
    numerator 2 bed days, denominator 3 spells with a procedure -> 0.667 days (was 2 / 4 = 0.5).

Capacity, hand-worked on the tiny trust (conftest.build_tiny): A/100 alos_elective has data in
two months (2025-02, 2025-03) of the 12-month window 2024-04..2025-03; gap at the median 100 bed
days (£40,000 over the window). Beds a year = 100 / 365 × 12 / 12 = 0.274, the same 12 months as
the £ (was 100 / 365 × 12 / 2 = 1.644: annualised over the two months with data, six times too big).
A chosen 6-month window 2024-10..2025-03 holds the same facts: 100 / 365 × 12 / 6 = 0.548 beds.
"""
from __future__ import annotations

import pytest

from opportunity_engine.analysis.opportunities import Basis, opportunities
from opportunity_engine.scope import Scope
from opportunity_engine.store import db, facts


def _spells(con) -> None:
    con.execute("INSERT INTO csus VALUES ('A', 'Alpha')")
    con.execute("INSERT INTO specialties VALUES ('100', 'General Surgery', 'A')")
    con.executemany("""INSERT INTO spells (spell_id, csu_code, specialty_code, admission_date, discharge_date,
                       admission_type, bads_eligible, procedure_date, readmitted_30d, period)
                       VALUES (?, 'A', '100', ?, ?, ?, 0, ?, 0, '2025-04')""", [
        ("S1", "2025-04-01", "2025-04-05", "elective", "2025-04-03"),
        ("S2", "2025-04-01", "2025-04-02", "elective", "2025-04-01"),
        ("S3", "2025-04-02", "2025-04-02", "day_case", "2025-04-02"),
        ("S4", "2025-04-05", "2025-04-07", "elective", None),
        ("S5", "2025-04-06", "2025-04-20", "non_elective", "2025-04-10"),
    ])


def test_preop_denominator_is_elective_spells_with_a_procedure():
    con = db.memory()
    _spells(con)
    facts.rebuild(con, "spells")
    num, den = con.execute("""SELECT numerator, denominator FROM metric_facts
                              WHERE metric_id = 'preop_bed_days'""").fetchone()
    assert (num, den) == (2, 3)


def test_capacity_is_annualised_over_the_window_like_the_money(tiny):
    r = opportunities(tiny, Scope.trust(), Basis()).query("csu_code == 'A' and specialty_code == '100' "
                                                          "and metric_id == 'alos_elective'").iloc[0]
    assert r.months == 2 and r.gap_units == pytest.approx(100) and r.opportunity_gbp == pytest.approx(40_000)
    assert r.capacity_units == pytest.approx(100 / 365)
    six = opportunities(tiny, Scope.trust(), Basis(period_from="2024-10", period_to="2025-03"))
    r6 = six.query("csu_code == 'A' and specialty_code == '100' and metric_id == 'alos_elective'").iloc[0]
    assert r6.gap_units == pytest.approx(100)
    assert r6.capacity_units == pytest.approx(100 / 365 * 2)


def test_internal_benchmark_with_fewer_than_two_units_has_no_target_and_the_guide_says_so(tiny):
    """daycase_rate_bads has one unit in the tiny trust (A/100) and one month, so no own best
    quarter either: no internal target, no £."""
    from opportunity_engine.reports import guide

    r = opportunities(tiny, Scope.trust(), Basis(benchmark="internal")).query(
        "metric_id == 'daycase_rate_bads'").iloc[0]
    assert r.target_value != r.target_value and r.opportunity_gbp == 0 and not r.significant  # NaN target
    text = " ".join(dict(guide.sections(tiny, Scope.trust()))["Internal benchmarks"].split())
    assert "own best sustained level" in text and "no internal target" in text
