"""Funnel plots with over-dispersion (Spiegelhalter 2005, additive random effects) against
NHS-R FunnelPlotR.

Reference figures: FunnelPlotR's own functions (R/od_adjustment.R: transformed_zscore,
winsorisation, phi_func, tau_func; R/calculate_limits.R), commit 9020d49 of
github.com/nhs-r-community/FunnelPlotR, run in R 4.2 on
- the data set of FunnelPlotR's tests (tests/testthat/test-funnel_plot.R: numerators 100, 150,
  180, 80, 120, 225 over expected 108, 112, 165, 95, 100, 220) as standardised ratios ("SR",
  SHMI log method): our "poisson" funnel with target 1 and the expected counts as denominators;
- eight proportions as "PR" (arcsine), whose target FunnelPlotR takes as Σnum ÷ Σden.
The R script is in the commit message of the change that added this file.
"""
import numpy as np
import pytest

from opportunity_engine.analysis import stats

SR_NUM = np.array([100, 150, 180, 80, 120, 225], dtype=float)
SR_DEN = np.array([108, 112, 165, 95, 100, 220], dtype=float)
PR_NUM = np.array([12, 30, 8, 45, 20, 60, 5, 33], dtype=float)
PR_DEN = np.array([150, 200, 90, 310, 260, 400, 80, 210], dtype=float)


def _od(funnel: str, num, den, target):
    kinds = np.array([funnel] * len(num), dtype=object)
    targets = np.full(len(num), target)
    y, t, s = stats.funnel_scale(kinds, num, den, targets)
    z = stats.funnel_z(y, t, s, num / den, targets)
    phi, tau2, n = stats.overdispersion(np.zeros(len(num), dtype=np.int64), z, s, 1)
    return z, phi[0], tau2[0], n[0]


def test_standardised_ratios_match_funnelplotr():
    z, phi, tau2, n = _od("poisson", SR_NUM, SR_DEN, 1.0)
    assert n == 6
    assert z == pytest.approx([-0.799802600707036, 3.09168129454357, 1.1176813744217, -1.67498911236673,
                               1.82321556793955, 0.333326319141511], rel=1e-12)
    assert phi == pytest.approx(2.14905309917045, rel=1e-12)
    assert tau2 == pytest.approx(0.0121184914591765, rel=1e-12)
    low95, high95 = stats.funnel_limits("poisson", 1.0, np.array([50.0, 100.0, 200.0]), tau2, stats.Z95)
    low998, high998 = stats.funnel_limits("poisson", 1.0, np.array([50.0, 100.0, 200.0]), tau2, stats.Z998)
    assert low95 == pytest.approx([0.703802468352419, 0.747148388835451, 0.773803673134160], rel=1e-9)
    assert high95 == pytest.approx([1.42085321516557, 1.33842221296717, 1.29231746335562], rel=1e-9)
    assert low998 == pytest.approx([0.574750051845757, 0.631543683274287, 0.667431375453746], rel=1e-9)
    assert high998 == pytest.approx([1.73988675040323, 1.58342174339457, 1.49828137659870], rel=1e-9)


def test_proportions_match_funnelplotr():
    target = PR_NUM.sum() / PR_DEN.sum()
    z, phi, tau2, _ = _od("binomial", PR_NUM, PR_DEN, target)
    assert z == pytest.approx([-1.83846481707676, 1.01506171261284, -1.12069120047517, 1.02353644188356,
                               -2.6049690948657, 1.43551404062275, -1.95220020200723, 1.32724515460109], rel=1e-12)
    assert phi == pytest.approx(2.343679379054, rel=1e-12)
    assert tau2 == pytest.approx(0.00204216828430541, rel=1e-12)
    low, high = stats.funnel_limits("binomial", target, np.array([50.0, 100.0, 200.0]), tau2, stats.Z95)
    assert low == pytest.approx([0.0384386472853098, 0.0518488926204524, 0.0608993225082133], rel=1e-9)
    assert high == pytest.approx([0.252331754214477, 0.224739890837396, 0.208564355386105], rel=1e-9)
    low, high = stats.funnel_limits("binomial", target, np.array([50.0, 100.0, 200.0]), tau2, stats.Z998)
    assert low == pytest.approx([0.0104667851549528, 0.0233909157999384, 0.0336564832805064], rel=1e-9)
    assert high == pytest.approx([0.338677163102982, 0.291275110248879, 0.263561031723865], rel=1e-9)


def test_over_dispersion_flags_fewer_units():
    """Hand-worked from the SR figures: naive |z| > 1.96 flags unit 2 only (z 3.09); with τ² =
    0.01212 unit 2's adjusted z is 3.0917 ÷ √(1 + 0.01212 × 112) = 2.02, still flagged, and no
    unit gains a flag."""
    z, _, tau2, _ = _od("poisson", SR_NUM, SR_DEN, 1.0)
    adjusted = z / np.sqrt(1 + tau2 * SR_DEN)
    assert adjusted[1] == pytest.approx(3.09168129454357 / np.sqrt(1 + 0.0121184914591765 * 112), rel=1e-12)
    assert list(np.abs(z) > stats.Z95) == [False, True, False, False, False, False]
    assert list(np.abs(adjusted) > stats.Z95) == [False, True, False, False, False, False]
    assert np.all(np.abs(adjusted) <= np.abs(z))


def test_no_more_spread_than_chance_means_no_adjustment():
    """nφ < n − 1: τ² = 0 (FunnelPlotR's tau_func); one unit alone: τ² = 0."""
    z = np.array([0.1, -0.2, 0.15, -0.05, 0.0])
    phi, tau2, n = stats.overdispersion(np.zeros(5, dtype=np.int64), z, np.full(5, 0.1), 1)
    assert phi[0] < 1 and tau2[0] == 0 and n[0] == 5
    phi, tau2, n = stats.overdispersion(np.zeros(1, dtype=np.int64), np.array([5.0]), np.array([0.1]), 1)
    assert tau2[0] == 0 and n[0] == 1


def test_groups_are_estimated_separately_and_untestable_units_are_left_out():
    kinds = np.array(["poisson"] * 6 + ["binomial"] * 8 + ["none"], dtype=object)
    num = np.concatenate([SR_NUM, PR_NUM, [5.0]])
    den = np.concatenate([SR_DEN, PR_DEN, [100.0]])
    target = np.concatenate([np.ones(6), np.full(8, PR_NUM.sum() / PR_DEN.sum()), [0.1]])
    groups = np.array([0] * 6 + [1] * 8 + [2])
    y, t, s = stats.funnel_scale(kinds, num, den, target)
    z = stats.funnel_z(y, t, s, num / den, target)
    phi, tau2, n = stats.overdispersion(groups, z, s, 3)
    assert list(n) == [6, 8, 0] and np.isnan(phi[2]) and tau2[2] == 0
    assert tau2[0] == pytest.approx(0.0121184914591765, rel=1e-12)
    assert tau2[1] == pytest.approx(0.00204216828430541, rel=1e-12)


def test_a_target_of_zero_is_infinitely_significant_and_takes_no_part():
    kinds = np.array(["poisson", "poisson"], dtype=object)
    num, den, target = np.array([3.0, 0.0]), np.array([100.0, 100.0]), np.array([0.0, 0.0])
    y, t, s = stats.funnel_scale(kinds, num, den, target)
    z = stats.funnel_z(y, t, s, num / den, target)
    assert list(z) == [stats.SENTINEL_Z, 0.0]
    assert stats.overdispersion(np.zeros(2, dtype=np.int64), z, s, 1)[2][0] == 0


def test_rate_se_is_the_standard_error_of_the_mean_monthly_rate():
    """Monthly rates 0.10, 0.12, 0.08, 0.10: mean 0.10, sample sd √(0.0008/3) = 0.016330,
    se = sd ÷ √4 = 0.0081650; a single month has no standard error."""
    rates = np.array([0.10, 0.12, 0.08, 0.10])
    se = stats.rate_se(np.array([rates.sum(), 0.3]), np.array([(rates ** 2).sum(), 0.09]), np.array([4, 1]))
    assert se[0] == pytest.approx(np.sqrt(0.0008 / 3) / 2, rel=1e-9) and np.isnan(se[1])
