"""The opportunity maths against hand-worked figures (METRICS.md).

The tiny trust (conftest.build_tiny), latest 12 months = 2024-04..2025-03:

A/100 alos_elective: 400 bed days / 100 spells = 4.0 days (2023-01 is outside the window).
    specialty benchmark p10 2.0, p25 2.5, p50 3.0; lower is better; bed day £400 (specialty).
    median: gap 400 - 3.0*100 = 100 bed days -> £40,000
    top quartile (p25): 400 - 250 = 150 -> £60,000;  top decile (p10): 400 - 200 = 200 -> £80,000
    Poisson z = (4 - 3) / sqrt(3/100) = 5.77 -> significant
B/200 alos_elective: 300 / 100 = 3.0; no specialty benchmark -> all-specialty p50 3.2, p25 2.7, p10 2.2;
    bed day £300 (all-specialty fallback).
    median: beats 3.2 -> 0 (clamped; it never offsets A)
    top quartile: 300 - 270 = 30 -> £9,000 but z = (3 - 2.7)/sqrt(2.7/100) = 1.83 -> not significant
    top decile: 300 - 220 = 80 -> £24,000
A/300 alos_elective: 40 / 10 = 4.0, low volume (10 < 30); all-specialty p50 3.2: 40 - 32 = 8 -> £2,400
A/100 daycase_rate_bads: 60 / 100 = 0.6; HIGHER is better; p50 0.8, p75 0.85, p90 0.9; £700 a conversion.
    median: 0.8*100 - 60 = 20 -> £14,000; top quartile (p75!): 25 -> £17,500; top decile (p90): 30 -> £21,000
    binomial z = (0.6 - 0.8) / sqrt(0.8*0.2/100) = -5 -> significant
A/CSU-wide wf_agency_share: £50,000 / £1,000,000 = 5%; p50 3.5%: gap £15,000 x 0.4 premium = £6,000 cash.
Net of overlap at the median: A/100 alos (40,000) and day case (14,000) share elective_beds -> 40,000 counts.
    net = 40,000 + 2,400 + 0 + 6,000 = 48,400; gross = 62,400; cash 6,000; productivity 42,400.
Custom target "best 35 %": lower is better -> p35, on the line from p25 2.5 to p50 3.0: 2.5 + 0.4 x 0.5
    = 2.7, so A/100 alos 400 - 270 = 130 bed days -> £52,000. Higher is better -> p65, from p50 0.8 to
    p75 0.85: 0.8 + 0.6 x 0.05 = 0.83, so A/100 day case 83 - 60 = 23 -> £16,100.
"""
from __future__ import annotations

import pandas as pd
import pytest

from opportunity_engine.analysis.opportunities import (
    Basis,
    opportunities,
    summarise,
    totals,
    trend,
)
from opportunity_engine.scope import Scope, ScopeError


def row(df, csu, specialty, metric):
    hit = df[(df.csu_code == csu) & (df.specialty_code == specialty) & (df.metric_id == metric)]
    assert len(hit) == 1, f"expected one row for {csu}/{specialty}/{metric}"
    return hit.iloc[0]


def test_lower_is_better_every_target(tiny):
    for target, expected_target, expected_gbp in (("median", 3.0, 40_000), ("top_quartile", 2.5, 60_000),
                                                  ("top_decile", 2.0, 80_000)):
        r = row(opportunities(tiny, Scope.trust(), Basis(target=target)), "A", "100", "alos_elective")
        assert r.actual == pytest.approx(4.0)
        assert r.target_value == pytest.approx(expected_target)
        assert r.opportunity_gbp == pytest.approx(expected_gbp)
        assert r.unit_cost_gbp == 400 and r.benchmark_level == "specialty"


def test_higher_is_better_picks_upper_percentiles(tiny):
    for target, expected_target, expected_gbp in (("median", 0.8, 14_000), ("top_quartile", 0.85, 17_500),
                                                  ("top_decile", 0.9, 21_000)):
        r = row(opportunities(tiny, Scope.trust(), Basis(target=target)), "A", "100", "daycase_rate_bads")
        assert r.target_value == pytest.approx(expected_target)
        assert r.gap_units == pytest.approx(expected_gbp / 700)
        assert r.opportunity_gbp == pytest.approx(expected_gbp)


def test_custom_target_reads_between_percentiles_the_right_way_round(tiny):
    df = opportunities(tiny, Scope.trust(), Basis(target="best_35"))
    alos, daycase = row(df, "A", "100", "alos_elective"), row(df, "A", "100", "daycase_rate_bads")
    assert (alos.target_value, alos.gap_units, alos.opportunity_gbp) == pytest.approx((2.7, 130, 52_000))
    assert (daycase.target_value, daycase.gap_units, daycase.opportunity_gbp) == pytest.approx((0.83, 23, 16_100))
    assert alos.target_median == pytest.approx(3.0)  # the range columns stay the named targets
    assert Basis(target="best_35").label == "Best 35% of peer trusts"


@pytest.mark.parametrize("bad", ["best_5", "best_95", "best_", "best_x", "p35", "custom"])
def test_custom_target_outside_10_to_90_is_refused(bad):
    with pytest.raises(ValueError):
        Basis(target=bad)


def test_range_columns_match_each_target(tiny):
    r = row(opportunities(tiny, Scope.trust()), "A", "100", "daycase_rate_bads")
    assert (r.opportunity_median_gbp, r.opportunity_top_quartile_gbp, r.opportunity_top_decile_gbp) == \
        pytest.approx((14_000, 17_500, 21_000))


def test_fallback_to_all_specialty_benchmark_and_unit_cost(tiny):
    r = row(opportunities(tiny, Scope.trust(), Basis(target="top_decile")), "B", "200", "alos_elective")
    assert r.benchmark_level == "all specialties" and r.unit_cost_level == "all specialties"
    assert r.target_value == pytest.approx(2.2)
    assert r.unit_cost_gbp == 300
    assert r.opportunity_gbp == pytest.approx(24_000)


def test_beating_the_target_is_clamped_at_zero(tiny):
    df = opportunities(tiny, Scope.trust())
    r = row(df, "B", "200", "alos_elective")
    assert r.gap_units == 0 and r.opportunity_gbp == 0
    assert summarise(df, ["csu_code"]).set_index("csu_code").loc["B", "net_gbp"] == 0


def test_window_excludes_old_months_and_explicit_period_uses_them(tiny):
    assert row(opportunities(tiny, Scope.trust()), "A", "100", "alos_elective").numerator == 400
    old = opportunities(tiny, Scope.trust(), Basis(period_from="2023-01", period_to="2023-01"))
    assert row(old, "A", "100", "alos_elective").actual == pytest.approx(10.0)


def test_low_volume_and_significance_flags_and_ranking(tiny):
    df = opportunities(tiny, Scope.trust())
    small = row(df, "A", "300", "alos_elective")
    assert bool(small.low_volume) and small.opportunity_gbp == pytest.approx(2_400)
    assert row(df, "A", "100", "alos_elective").z_score == pytest.approx(1 / (3 / 100) ** 0.5)
    assert row(df, "A", "100", "daycase_rate_bads").z_score == pytest.approx(-5.0)
    tq = opportunities(tiny, Scope.trust(), Basis(target="top_quartile"))
    b = row(tq, "B", "200", "alos_elective")
    assert b.opportunity_gbp == pytest.approx(9_000)
    assert not b.significant and b.z_score == pytest.approx(0.3 / (2.7 / 100) ** 0.5)
    # real gaps first: the £9,000 not-significant row ranks after the smaller real ones
    real = tq[tq.rank_group == 0]
    assert b.name > real.index.max()
    assert list(real.opportunity_gbp) == sorted(real.opportunity_gbp, reverse=True)


def test_net_and_gross_totals_and_cash(tiny):
    df = opportunities(tiny, Scope.trust())
    t = totals(df)
    assert t.gross_gbp == pytest.approx(62_400)
    assert t.net_gbp == pytest.approx(48_400)
    assert t.cash_gbp == pytest.approx(6_000)
    assert t.productivity_gbp == pytest.approx(42_400)
    assert not row(df, "A", "100", "daycase_rate_bads").counted_in_net
    assert row(df, "A", "100", "alos_elective").counted_in_net
    by_domain = summarise(df, ["domain"]).set_index("domain")
    assert by_domain.loc["Beds", "net_gbp"] == pytest.approx(42_400)
    assert by_domain.loc["Beds", "gross_gbp"] == pytest.approx(56_400)


def test_csu_wide_money_share(tiny):
    r = row(opportunities(tiny, Scope.trust()), "A", "", "wf_agency_share")
    assert r.specialty_name == "CSU-wide"
    assert r.gap_units == pytest.approx(15_000) and r.opportunity_gbp == pytest.approx(6_000)
    assert r.saving_type == "cash" and r.significant  # money shares are not funnel-tested


def test_internal_benchmark_never_compares_unlike_specialties(tiny):
    """A/100 (4.0 days) and B/200 (3.0) are different specialties, one unit each: neither is
    compared with the other (the old all-specialty median 3.5 is gone). With fewer than
    internal_min_units units each falls back to its own best rolling quarter, and the tiny trust
    holds no three consecutive months of either, so there is no internal target and no £."""
    df = opportunities(tiny, Scope.trust(), Basis(benchmark="internal"))
    for csu, specialty in (("A", "100"), ("B", "200")):
        r = row(df, csu, specialty, "alos_elective")
        assert pd.isna(r.target_value) and r.opportunity_gbp == 0 and r.benchmark_level is None


def test_scope_is_applied_in_the_engine(tiny):
    df = opportunities(tiny, Scope.of("B"))
    assert set(df.csu_code) == {"B"}
    with pytest.raises(ScopeError):
        opportunities(tiny, Scope.of("B"), csu="A")
    with pytest.raises(ScopeError):
        trend(tiny, Scope.of("B"), "alos_elective", csu="A")
    # a CSU user's internal targets are the same as finance's: tests/test_casemix.py checks it


def test_trend_series_and_limits(tiny):
    t = trend(tiny, Scope.trust(), "alos_elective", csu="A", specialty="100")
    assert list(t.period) == ["2023-01", "2025-02", "2025-03"]
    assert list(t.value) == pytest.approx([10.0, 4.0, 4.0])


def test_bad_basis_is_refused():
    with pytest.raises(ValueError):
        Basis(target="best")
    with pytest.raises(ValueError):
        Basis(period_from="2025-13")


def test_heatmap_rows_are_csus_or_a_single_csus_specialties(tiny):
    from opportunity_engine.reports.views import heatmap

    trust, rows = heatmap(opportunities(tiny, Scope.trust(), Basis()))
    assert rows == "CSU" and set(trust["row"]) == {"A", "B"}
    assert len(trust) == trust["row"].nunique() * trust["domain"].nunique()  # an even grid, zeros included
    own, rows = heatmap(opportunities(tiny, Scope.of("A"), Basis()))
    assert rows == "Specialty" and set(own["row"]) == {"General Surgery", "Small Specialty", "CSU-wide"}
    beds = own[(own["row"] == "General Surgery") & (own["domain"] == "Beds")]["net_gbp"].iloc[0]
    assert beds > 0
