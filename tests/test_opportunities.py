"""The opportunity maths against hand-worked figures (METRICS.md).

The tiny trust (conftest.build_tiny), latest 12 months = 2024-04..2025-03:

A/100 alos_elective: 400 bed days / 100 spells = 4.0 days (2023-01 is outside the window).
    specialty benchmark p10 2.0, p25 2.5, p50 3.0; lower is better; bed day £400 (specialty).
    median: gap 400 - 3.0*100 = 100 bed days -> £40,000
    top quartile (p25): 400 - 250 = 150 -> £60,000;  top decile (p10): 400 - 200 = 200 -> £80,000
    funnel (count per unit: observed ÷ expected on the log scale): O 400, E 3.0 x 100 = 300,
    naive z = ln(400/300) x sqrt(300) = 4.9828 -> naive significant
B/200 alos_elective: 300 / 100 = 3.0; specialty benchmark p50 3.2, p25 2.7, p10 2.2 (the peers'
    all-specialty row, p50 9.9, is no specialty's target: length of stay is given specialty by
    specialty); no specialty unit cost -> bed day £300 (the all-specialty unit cost).
    median: beats 3.2 -> 0 (clamped; it never offsets A)
    top quartile: 300 - 270 = 30 -> £9,000 but z = ln(300/270) x sqrt(270) = 1.7313 -> not significant
    top decile: 300 - 220 = 80 -> £24,000
A/300 alos_elective: 40 / 10 = 4.0, low volume (10 < 30); specialty p50 3.2: 40 - 32 = 8 -> £2,400
A/100 daycase_rate_bads: 60 / 100 = 0.6; HIGHER is better; given for all specialties only: p50 0.8, p75 0.85, p90 0.9; £700 a conversion.
    median: 0.8*100 - 60 = 20 -> £14,000; top quartile (p75!): 25 -> £17,500; top decile (p90): 30 -> £21,000
    funnel (proportion, arcsine scale): z = (asin(sqrt 0.6) - asin(sqrt 0.8)) x 2 sqrt(100) = -4.4214 -> significant
Over-dispersion of alos_elective at the median (three units; z winsorised at 10 % each tail):
    z = 4.9828 (A/100), 1.2623 (A/300: ln(40/32) x sqrt 32), -1.1545 (B/200: ln(300/320) x sqrt 320);
    sorted -1.1545, 1.2623, 4.9828: 10th percentile -1.1545 + 0.2 x 2.4168 = -0.6711, 90th 1.2623 +
    0.8 x 3.7205 = 4.2387; phi = (0.6711² + 1.2623² + 4.2387²) / 3 = 6.6701; w = 1/s² = E = 300, 320, 32:
    Σw 652, Σw² 193,424; tau² = (3 x 6.6701 - 2) / (652 - 193,424/652) = 18.010 / 355.34 = 0.050685;
    A/100 adjusted z = 4.9828 / sqrt(1 + 0.050685 x 300) = 1.2378 -> NOT significant once the spread
    between units is allowed for (day case has one unit: tau² 0, so its z stands).
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
    missing_targets_note,
    opportunities,
    summarise,
    totals,
    trend,
)
from opportunity_engine.scope import Scope, ScopeError
from opportunity_engine.store.db import bump_data_version


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


def test_unit_cost_falls_back_to_all_specialties(tiny):
    r = row(opportunities(tiny, Scope.trust(), Basis(target="top_decile")), "B", "200", "alos_elective")
    assert r.benchmark_level == "specialty" and r.unit_cost_level == "all specialties"
    assert r.target_value == pytest.approx(2.2)
    assert r.unit_cost_gbp == 300
    assert r.opportunity_gbp == pytest.approx(24_000)


def test_a_specialty_without_its_own_peer_benchmark_has_no_target_not_the_all_specialty_one(tiny):
    """Like for like (issue 12): peers' all-specialty length of stay (p50 9.9 days) says nothing fair
    about Cardiology, so B/200 without its own row is not measured (and named), never £0 or a
    figure against other services. CSU-wide metrics still read the all-specialty row."""
    tiny.execute("DELETE FROM benchmarks WHERE metric_id = 'alos_elective' AND specialty_code = '200'")
    bump_data_version(tiny)
    df = opportunities(tiny, Scope.trust())
    r = row(df, "B", "200", "alos_elective")
    assert pd.isna(r.target_value) and r.benchmark_level is None and r.opportunity_gbp == 0
    assert row(df, "A", "100", "alos_elective").target_value == pytest.approx(3.0)
    assert row(df, "A", "", "wf_agency_share").benchmark_level == "all specialties"
    # a metric given for all specialties only (one standard for every service) applies to each
    assert row(df, "A", "100", "daycase_rate_bads").benchmark_level == "all specialties"
    note = missing_targets_note(df, Basis(peer_group="peer"))
    assert note is not None and "Elective length of stay (1 of 3 units)" in note


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
    a = row(df, "A", "100", "alos_elective")
    assert a.z_score == pytest.approx(4.982800, rel=1e-6) and a.significant_naive
    assert a.phi == pytest.approx(6.67012, rel=1e-5) and a.tau2 == pytest.approx(0.050685, rel=1e-4)
    assert a.z_adjusted == pytest.approx(1.23777, rel=1e-5) and not a.significant and a.rank_group == 1
    day = row(df, "A", "100", "daycase_rate_bads")
    assert day.z_score == pytest.approx(-4.421432, rel=1e-6) and day.tau2 == 0 and day.significant
    tq = opportunities(tiny, Scope.trust(), Basis(target="top_quartile"))
    b = row(tq, "B", "200", "alos_elective")
    assert b.opportunity_gbp == pytest.approx(9_000)
    assert not b.significant and b.z_score == pytest.approx(1.731250, rel=1e-6)
    # real gaps first: the £9,000 not-significant row ranks after the smaller real ones
    real = tq[tq.rank_group == 0]
    assert b.name > real.index.max()
    assert list(real.opportunity_gbp) == sorted(real.opportunity_gbp, reverse=True)


def test_a_csu_view_flags_what_the_trust_view_flags(tiny):
    """phi and tau² come from every unit of the trust, whichever scope or filter asks."""
    trust = row(opportunities(tiny, Scope.trust()), "A", "100", "alos_elective")
    mine = row(opportunities(tiny, Scope.of("A"), metric="alos_elective"), "A", "100", "alos_elective")
    assert mine.tau2 == trust.tau2 and mine.z_adjusted == trust.z_adjusted and not mine.significant


def test_the_80_percent_range_of_the_pound(tiny):
    """A/100 alos_elective with months 2025-02 200/50 (4.0 days) and 2025-03 250/50 (5.0): actual 4.5,
    monthly sd 0.7071, se of the mean 0.7071/sqrt 2 = 0.5; 80 %: 4.5 ± 1.281552 x 0.5 = 3.8592 to 5.1408.
    Against the median 3.0 over 100 spells at £400: £60,000 (80 % range £34,369 to £85,631). B/200 beats
    the target: £0 to £0. Net total: the one row with a range widens it on each side by its own distance."""
    tiny.execute("UPDATE metric_facts SET numerator = 250 WHERE csu_code = 'A' AND specialty_code = '100' "
                 "AND metric_id = 'alos_elective' AND period = '2025-03'")
    df = opportunities(tiny, Scope.trust())
    a = row(df, "A", "100", "alos_elective")
    assert a.actual == pytest.approx(4.5) and a.actual_se == pytest.approx(0.5)
    assert a.opportunity_gbp == pytest.approx(60_000)
    assert a.opportunity_low_gbp == pytest.approx((4.5 - 1.281552 * 0.5 - 3.0) * 100 * 400)
    assert a.opportunity_high_gbp == pytest.approx((4.5 + 1.281552 * 0.5 - 3.0) * 100 * 400)
    assert a.opportunity_low_gbp == pytest.approx(34_368.96, abs=0.01)
    b = row(df, "B", "200", "alos_elective")
    assert b.opportunity_low_gbp == 0 and b.opportunity_high_gbp == 0
    t = totals(df)
    assert t.net_gbp == pytest.approx(60_000 + 2_400 + 6_000)
    assert t.net_low_gbp == pytest.approx(t.net_gbp - (60_000 - 34_368.96), abs=0.01)
    assert t.net_high_gbp == pytest.approx(t.net_gbp + (85_631.04 - 60_000), abs=0.01)


def test_ranges_of_totals_combine_as_independent_errors():
    """Two rows of £100 (range £70 to £140) and £50 (£10 to £80): net £150, low 150 − √(30² + 40²) =
    £100, high 150 + √(40² + 30²) = £200."""
    import pandas as pd

    df = pd.DataFrame({"opportunity_gbp": [100.0, 50.0], "opportunity_low_gbp": [70.0, 10.0],
                       "opportunity_high_gbp": [140.0, 80.0], "counted_in_net": [True, True],
                       "rank_group": [0, 0], "saving_type": ["cash", "productivity"]})
    t = totals(df)
    assert (t.net_gbp, t.net_low_gbp, t.net_high_gbp) == (150.0, 100.0, 200.0)


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


def test_the_funnel_frame_places_every_unit_against_this_units_target(tiny):
    """alos_elective around A/100 (target 3.0, tau² 0.050685 from the docstring's working):
    B/200 (own target 3.2, 300 bed days / 100 spells) sits at x = 100 × 3.2/3.0 = 106.67 (the same
    expected count, 320) and value 3.0 × 3.0/3.2 = 2.8125; A/300 at x = 10.667, value 3.75. The 95 %
    upper limit at 100 spells: 3.0 × exp(1.96 √(1/300 + 0.050685)) = 4.7308, above A/100's 4.0:
    inside, as its over-dispersed z of 1.24 says."""
    from opportunity_engine.analysis.opportunities import funnel
    from opportunity_engine.analysis.stats import Z95

    fp = funnel(tiny, Scope.trust(), Basis(), "alos_elective", "A", "100")
    assert fp is not None and fp.kind == "poisson" and fp.target == pytest.approx(3.0) and fp.units == 3
    import numpy as np

    b = fp.points[np.isclose(fp.points["actual"], 3.0)].iloc[0]
    assert b.x == pytest.approx(100 * 3.2 / 3.0) and b.value == pytest.approx(3.0 * 3.0 / 3.2)
    small = fp.points[np.isclose(fp.points["actual"], 4.0) & ~fp.points["this"]].iloc[0]
    assert small.x == pytest.approx(10 * 3.2 / 3.0) and small.value == pytest.approx(3.75)
    me = fp.points[fp.points["this"]].iloc[0]
    assert me.x == 100 and me.value == pytest.approx(4.0) and not me.flagged and me.naive_flagged
    upper = 3.0 * np.exp(Z95 * np.sqrt(1 / 300 + fp.tau2))
    assert upper == pytest.approx(4.7308, rel=1e-4)
    at = np.interp(100, fp.limits["x"], fp.limits["upper_95"])
    assert at == pytest.approx(upper, rel=1e-3)
    assert (fp.limits["upper_998"] > fp.limits["upper_95"]).all() and (fp.limits["lower_998"] < fp.limits["lower_95"]).all()
    # sampling error alone: 3.0 × exp(1.96 / √300) = 3.2369 at 100 spells, which A/100's 4.0 is outside
    assert np.interp(100, fp.limits["x"], fp.limits["naive_upper_95"]) == pytest.approx(3.0 * np.exp(Z95 / 300 ** 0.5), rel=1e-3)
    assert funnel(tiny, Scope.trust(), Basis(), "wf_agency_share", "A", "") is None  # money shares: no funnel
