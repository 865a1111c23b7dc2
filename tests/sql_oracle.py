"""The opportunity maths written a second, independent way: the whole of METRICS.md as one SQL query.

This was the engine's implementation until the maths moved to arrays over one GROUP BY (for
speed). It stays here as an oracle: tests/test_oracle.py checks the engine gives the same rows
and figures for every target, benchmark, scope, filter and window.
"""
from __future__ import annotations

import duckdb
import pandas as pd

from opportunity_engine.analysis.opportunities import COLUMNS, Basis, _window_months
from opportunity_engine.analysis.stats import Z80, Z95
from opportunity_engine.config import settings
from opportunity_engine.scope import SCOPE_FILTER, Scope


def _pick(target_param: str) -> str:
    """SQL choosing the benchmark percentile for a target; `r` is the row (it carries direction)."""
    return f"""CASE {target_param}
        WHEN 'median' THEN r.p50
        WHEN 'top_quartile' THEN CASE WHEN r.direction = 'lower' THEN r.p25 ELSE r.p75 END
        ELSE CASE WHEN r.direction = 'lower' THEN r.p10 ELSE r.p90 END END"""


def _gap(target: str) -> str:
    """SQL of the gap in numerator units, clamped at zero: beating the target never offsets."""
    return f"""CASE WHEN {target} IS NULL THEN 0
        WHEN r.direction = 'lower' THEN greatest(0, r.num - {target} * r.den)
        ELSE greatest(0, {target} * r.den - r.num) END"""


OPPORTUNITY_SQL = f"""
WITH latest AS (
    SELECT metric_id, max(period) AS p_max FROM metric_facts GROUP BY metric_id
), win AS (
    SELECT metric_id,
        CASE WHEN $p_from IS NOT NULL THEN $p_from
             WHEN $p_to IS NOT NULL THEN strftime(strptime($p_to, '%Y-%m') - to_months($window - 1), '%Y-%m')
             ELSE strftime(strptime(p_max, '%Y-%m') - to_months($window - 1), '%Y-%m') END AS p_from,
        coalesce($p_to, p_max) AS p_to
    FROM latest
), grains AS (
    SELECT f.csu_code, f.specialty_code, f.metric_id, any_value(w.p_from) AS period_from,
           any_value(w.p_to) AS period_to, count(DISTINCT f.period) AS months,
           sum(f.numerator) AS num, sum(f.denominator) AS den,
           -- the month-to-month spread of the rate, for the 80 % range of the £
           stddev_samp(CASE WHEN f.denominator > 0 THEN f.numerator / f.denominator END) AS rate_sd,
           count(CASE WHEN f.denominator > 0 THEN 1 END) AS rate_months
    FROM metric_facts f JOIN win w ON f.metric_id = w.metric_id AND f.period BETWEEN w.p_from AND w.p_to
    GROUP BY f.csu_code, f.specialty_code, f.metric_id
    HAVING sum(f.denominator) > 0
), internal_units AS (
    SELECT g.metric_id, g.specialty_code, g.num / g.den AS value
    FROM grains g JOIN metrics m USING (metric_id)
    WHERE g.den >= m.min_volume
), internal AS (
    SELECT metric_id, specialty_code,
           quantile_cont(value, 0.10) AS p10, quantile_cont(value, 0.25) AS p25, quantile_cont(value, 0.50) AS p50,
           quantile_cont(value, 0.75) AS p75, quantile_cont(value, 0.90) AS p90,
           'Internal: ' || count(*) || ' units of the trust in this specialty' AS source
    FROM internal_units WHERE specialty_code <> '' GROUP BY metric_id, specialty_code HAVING count(*) >= $internal_min
    UNION ALL
    SELECT metric_id, '' AS specialty_code,
           quantile_cont(value, 0.10), quantile_cont(value, 0.25), quantile_cont(value, 0.50),
           quantile_cont(value, 0.75), quantile_cont(value, 0.90),
           'Internal: ' || count(*) || ' units of the trust, all specialties'
    FROM internal_units GROUP BY metric_id HAVING count(*) >= 2
), bench AS (
    SELECT metric_id, specialty_code, p10, p25, p50, p75, p90, source FROM benchmarks
    WHERE $benchmark = 'peer' AND peer_group = $peer
    UNION ALL
    SELECT * FROM internal WHERE $benchmark = 'internal'
), joined AS (
    SELECT g.*, m.metric_name, m.domain, m.direction, m.unit, m.value_format, m.cost_driver, m.saving_type,
           m.overlap_group, m.min_volume, m.funnel, m.capacity_unit, m.capacity_divisor,
           CASE WHEN bs.metric_id IS NOT NULL THEN 'specialty'
                WHEN ba.metric_id IS NOT NULL THEN 'all specialties' END AS benchmark_level,
           coalesce(bs.source, ba.source) AS benchmark_source,
           coalesce(bs.p10, ba.p10) AS p10, coalesce(bs.p25, ba.p25) AS p25, coalesce(bs.p50, ba.p50) AS p50,
           coalesce(bs.p75, ba.p75) AS p75, coalesce(bs.p90, ba.p90) AS p90,
           coalesce(us.unit_cost_gbp, ua.unit_cost_gbp) AS unit_cost_gbp,
           coalesce(us.source, ua.source) AS unit_cost_source,
           CASE WHEN us.unit_cost_gbp IS NOT NULL THEN 'specialty'
                WHEN ua.unit_cost_gbp IS NOT NULL THEN 'all specialties' END AS unit_cost_level
    FROM grains g  -- every unit of the trust: over-dispersion is estimated across all of them
    JOIN metrics m ON m.metric_id = g.metric_id
    LEFT JOIN bench bs ON bs.metric_id = g.metric_id AND bs.specialty_code = g.specialty_code AND g.specialty_code <> ''
    LEFT JOIN bench ba ON ba.metric_id = g.metric_id AND ba.specialty_code = ''
    LEFT JOIN unit_costs us ON us.cost_driver = m.cost_driver AND us.specialty_code = g.specialty_code AND g.specialty_code <> ''
    LEFT JOIN unit_costs ua ON ua.cost_driver = m.cost_driver AND ua.specialty_code = ''
), targeted AS (
    SELECT r.*, {_pick('$target')} AS target_value,
           {_pick("'median'")} AS target_median,
           {_pick("'top_quartile'")} AS target_top_quartile,
           {_pick("'top_decile'")} AS target_top_decile
    FROM joined r
), gapped AS (
    SELECT r.*, r.num / r.den AS actual,
           {_gap('r.target_value')} AS gap_units,
           {_gap('r.target_median')} AS gap_median,
           {_gap('r.target_top_quartile')} AS gap_top_quartile,
           {_gap('r.target_top_decile')} AS gap_top_decile
    FROM targeted r
), final AS (
    SELECT r.*, c.csu_name,
           CASE WHEN r.specialty_code = '' THEN 'CSU-wide' ELSE coalesce(s.specialty_name, r.specialty_code) END AS specialty_name,
           r.gap_units * coalesce(r.unit_cost_gbp, 0) AS opportunity_gbp,
           r.gap_median * coalesce(r.unit_cost_gbp, 0) AS opportunity_median_gbp,
           r.gap_top_quartile * coalesce(r.unit_cost_gbp, 0) AS opportunity_top_quartile_gbp,
           r.gap_top_decile * coalesce(r.unit_cost_gbp, 0) AS opportunity_top_decile_gbp,
           r.den < r.min_volume AS low_volume,
           -- capacity a year: the gap over the window's months (as the £ is), not the months with data
           CASE WHEN r.capacity_unit <> '' THEN r.gap_units / r.capacity_divisor * 12.0
                / (datediff('month', strptime(r.period_from, '%Y-%m'), strptime(r.period_to, '%Y-%m')) + 1) END
                AS capacity_units,
           r.rate_sd / sqrt(r.rate_months) AS actual_se,
           -- 80 % range: the rate ± 1.281552 standard errors, through the gap and unit cost
           CASE WHEN r.target_value IS NULL THEN 0
                WHEN r.direction = 'lower' THEN greatest(0, (r.actual - $z80 * coalesce(r.rate_sd / sqrt(r.rate_months), 0) - r.target_value) * r.den)
                ELSE greatest(0, (r.target_value - r.actual - $z80 * coalesce(r.rate_sd / sqrt(r.rate_months), 0)) * r.den) END
                * coalesce(r.unit_cost_gbp, 0) AS opportunity_low_gbp,
           CASE WHEN r.target_value IS NULL THEN 0
                WHEN r.direction = 'lower' THEN greatest(0, (r.actual + $z80 * coalesce(r.rate_sd / sqrt(r.rate_months), 0) - r.target_value) * r.den)
                ELSE greatest(0, (r.target_value - r.actual + $z80 * coalesce(r.rate_sd / sqrt(r.rate_months), 0)) * r.den) END
                * coalesce(r.unit_cost_gbp, 0) AS opportunity_high_gbp,
           -- Funnel (FunnelPlotR's scales): a proportion as asin(sqrt(p)) with s = 1 / (2 sqrt(n));
           -- a count per unit as ln(observed / expected), expected = target x den, s = 1 / sqrt(expected).
           CASE WHEN r.target_value IS NULL OR r.funnel = 'none' THEN NULL
                WHEN r.funnel = 'binomial' THEN (asin(sqrt(least(greatest(r.actual, 0), 1)))
                                                 - asin(sqrt(least(greatest(r.target_value, 0), 1)))) * 2 * sqrt(r.den)
                WHEN r.target_value * r.den > 0 THEN ln(CASE WHEN r.num > 0 THEN r.num ELSE 0.5 END / (r.target_value * r.den))
                                                     * sqrt(r.target_value * r.den)
                WHEN r.actual = r.target_value THEN 0
                ELSE sign(r.actual - r.target_value) * 1e9 END AS z_score,
           -- the weight 1 / s² of the unit in the over-dispersion estimate
           CASE WHEN r.funnel = 'binomial' THEN 4 * r.den ELSE r.target_value * r.den END AS funnel_w
    FROM gapped r
    LEFT JOIN csus c ON c.csu_code = r.csu_code
    LEFT JOIN specialties s ON s.specialty_code = r.specialty_code
), testable AS (
    SELECT * FROM final WHERE z_score IS NOT NULL AND abs(z_score) < 1e9 AND funnel_w > 0
), limits AS (  -- winsorising at the 10th and 90th percentiles of each metric's z
    SELECT metric_id, quantile_cont(z_score, 0.10) AS lz, quantile_cont(z_score, 0.90) AS uz
    FROM testable GROUP BY metric_id
), spread AS (
    SELECT t.metric_id, count(*) AS n, avg(power(least(greatest(t.z_score, l.lz), l.uz), 2)) AS phi,
           sum(t.funnel_w) AS sw, sum(t.funnel_w * t.funnel_w) AS sw2
    FROM testable t JOIN limits l USING (metric_id) GROUP BY t.metric_id
), dispersion AS (  -- Spiegelhalter's additive random effects, as FunnelPlotR's tau_func
    SELECT metric_id, phi,
           CASE WHEN n < 2 OR n * phi < n - 1 OR sw - sw2 / sw <= 0 THEN 0
                ELSE greatest(0, (n * phi - (n - 1)) / (sw - sw2 / sw)) END AS tau2
    FROM spread
), tested AS (
    SELECT f.*, d.phi, coalesce(d.tau2, 0) AS tau2,
           CASE WHEN f.z_score IS NULL OR abs(f.z_score) >= 1e9 THEN f.z_score
                ELSE f.z_score / sqrt(1 + coalesce(d.tau2, 0) * f.funnel_w) END AS z_adjusted
    FROM final f LEFT JOIN dispersion d USING (metric_id)
), flagged AS (
    SELECT *,
        CASE WHEN target_value IS NULL THEN false
             WHEN z_score IS NULL THEN true  -- not testable (money shares): treated as real
             ELSE abs(z_score) > $z END AS significant_naive,
        CASE WHEN target_value IS NULL THEN false
             WHEN z_adjusted IS NULL THEN true
             ELSE abs(z_adjusted) > $z END AS significant,
        overlap_group = '' OR row_number() OVER (
            PARTITION BY csu_code, specialty_code, overlap_group ORDER BY opportunity_gbp DESC, metric_id) = 1
            AS counted_in_net
    FROM tested
)
SELECT *, CASE WHEN NOT low_volume AND significant AND opportunity_gbp > 0 THEN 0 ELSE 1 END AS rank_group,
       CASE WHEN $benchmark = 'peer' THEN $peer END AS peer_group
FROM flagged
WHERE {SCOPE_FILTER}
  AND ($csu IS NULL OR csu_code = $csu)
  AND ($specialty IS NULL OR specialty_code = $specialty)
  AND ($metric IS NULL OR metric_id = $metric)
ORDER BY rank_group, opportunity_gbp DESC, csu_code, specialty_code, metric_id
"""


def _default_group(con: duckdb.DuckDBPyConnection, configured: str) -> str:
    """The configured group if the benchmarks hold it, else the first by name (else the configured)."""
    row = con.execute("""SELECT coalesce(max(peer_group) FILTER (peer_group = $c), min(peer_group), $c)
                         FROM benchmarks""", {"c": configured}).fetchone()
    return row[0]


def oracle_opportunities(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis = Basis(),
                         csu: str | None = None, specialty: str | None = None,
                         metric: str | None = None) -> pd.DataFrame:
    scope.check(csu)
    cfg = settings()["analysis"]
    params = {
        "p_from": basis.period_from, "p_to": basis.period_to, "window": _window_months(),
        "internal_min": int(cfg["internal_min_units"]), "benchmark": basis.benchmark,
        "peer": basis.peer_group or _default_group(con, cfg["peer_group"]), "target": basis.target, "z": Z95,
        "z80": Z80,
        "csu": csu, "specialty": specialty, "metric": metric, **scope.sql_params(),
    }
    df = con.execute(OPPORTUNITY_SQL, params).df()
    df = df.rename(columns={"num": "numerator", "den": "denominator"})
    for col in ("low_volume", "significant", "counted_in_net", "significant_naive"):
        df[col] = df[col].astype(bool)
    return df[COLUMNS]


