"""Rules stated once in the engine (issue 11): pages and the CLI ask these instead of re-deriving them."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from opportunity_engine.store import db, statuses


def test_backup_file_name_is_made_in_one_place():
    when = datetime(2026, 4, 1, 9, 5, 7)
    assert db.backup_path(Path("/srv/oe/opportunity.duckdb"), when) == Path(
        "/srv/oe/backups/opportunity-20260401-090507.duckdb")


def test_status_groups_partition_the_lifecycle():
    assert set(statuses.COMMITTED) | set(statuses.PIPELINE) | {"rejected"} == set(statuses.STATUSES)
    assert not set(statuses.COMMITTED) & set(statuses.PIPELINE)
    assert set(statuses.IN_DELIVERY) < set(statuses.COMMITTED)
    assert statuses.sql_list(("approved", "delivered")) == "('approved', 'delivered')"


def test_the_sign_offs_a_qia_needs_follow_its_highest_risk():
    from opportunity_engine.delivery import qia

    low = qia.Assessment({d: (3, 4, "") for d in qia.DOMAINS}, {}, threshold=12)  # 12 is not above 12
    assert low.needed_signoffs == ("clinical", "nursing", "operational") and not low.above_threshold(12)
    high = qia.Assessment({**low.scores, "staff": (4, 4, "")}, {}, threshold=12)  # 16 > 12
    assert high.needed_signoffs == ("clinical", "nursing", "operational", "medical_director", "chief_nurse")
    assert list(qia.table(high)["above_threshold"]) == [d == "staff" for d in qia.DOMAINS]


def test_a_new_plan_starts_from_the_shortlisted_opportunity_to_the_nearest_thousand():
    from types import SimpleNamespace

    from opportunity_engine.delivery import plans

    assert plans.default_fye(SimpleNamespace(snapshot_opportunity_gbp=41_499.0)) == 41_000.0
    assert plans.default_fye(SimpleNamespace(snapshot_opportunity_gbp=41_500.0)) == 42_000.0
    assert plans.default_fye(SimpleNamespace(snapshot_opportunity_gbp=None)) == 0.0


def test_one_csus_totals_and_tracking_come_from_the_engine_in_scope(tiny):
    import pytest

    from opportunity_engine.delivery import plans, schemes, tracking
    from opportunity_engine.scope import ScopeError
    from opportunity_engine.users import User

    finance = User("fin", "Fiona Finance", "", "finance", ())
    for csu, fye in (("A", 120_000), ("B", 24_000)):
        s = schemes.create(tiny, finance, f"Plan {csu}", csu)
        plans.save_plan(tiny, finance, s.scheme_id, s.version, 2026, 1, fye)
    only_b = plans.totals_by_csu(tiny, finance.scope, 2026, csu="B")
    assert list(only_b.csu_code) == ["B"] and only_b.pipeline_gbp.tolist() == [pytest.approx(24_000)]
    whole = plans.totals_by_csu(tiny, finance.scope, 2026)
    assert sorted(whole.csu_code) == ["A", "B"]
    with pytest.raises(ScopeError):
        plans.totals_by_csu(tiny, User("a", "A team", "", "csu", ("A",)).scope, 2026, csu="B")
    with pytest.raises(ScopeError):
        tracking.by_month(tiny, User("a", "A team", "", "csu", ("A",)).scope, 2026, csu="B")
    assert tracking.by_month(tiny, finance.scope, 2026, csu="B").empty  # nothing committed yet


def test_calculation_steps_are_the_engines_figures_for_metric_detail_and_the_guide(tiny):
    """Hand-worked tiny trust: General Surgery elective stays, 400 bed days over 100 spells against a
    median of 3.0 days: gap 400 − 3 × 100 = 100 bed days at £400 = £40,000."""
    from opportunity_engine.analysis.opportunities import Basis, opportunities
    from opportunity_engine.reports import guide, views
    from opportunity_engine.scope import Scope

    row = opportunities(tiny, Scope.trust(), Basis(), csu="A", specialty="100", metric="alos_elective").iloc[0]
    steps = dict(views.calculation_steps(row, Basis().label, "Bed days", "Elective spells").itertuples(index=False))
    assert steps["numerator: Bed days"] == "400.0" and steps["denominator: Elective spells"] == "100.0"
    assert steps["gap = numerator − target × denominator (never below 0)"] == "400.0 − 3 × 100.0 = 100 bed days"
    assert steps["opportunity = gap × unit cost"] == "£40,000 (£40k)"
    example = dict(guide.sections(tiny, Scope.trust()))["Worked example: an opportunity"]
    example = re.sub(r"\\(.)", r"\1", example)  # read as rendered: the table's text is markdown-escaped
    # The Guide's example is the largest real gap: General Surgery day cases (its elective stays are not
    # significant once the spread between units is allowed for), 0.8 × 100 − 60 = 20 at £700 = £14,000.
    day = opportunities(tiny, Scope.trust(), Basis(), csu="A", specialty="100", metric="daycase_rate_bads").iloc[0]
    day_steps = dict(views.calculation_steps(day, Basis().label, "Day cases", "BADS spells").itertuples(index=False))
    gap = day_steps["gap = target × denominator − numerator (never below 0)"]
    assert gap.startswith("0.8 × 100.0 − 60.0 = 20 ")
    assert f"| gap = target × denominator − numerator (never below 0) | {gap} |" in example
