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


def _adjusted(k: str) -> str:
    """SQL of one case-mix adjusted percentile (the plain one where no spell matched an HRG)."""
    return f"""CASE WHEN r.matched IS NULL THEN r.c{k}
        ELSE (r.w{k} + CASE WHEN r.unmatched > 0 THEN r.unmatched * r.c{k} ELSE 0 END) / r.den END"""


def _pick_crude(target_param: str) -> str:
    return _pick(target_param).replace("r.p", "r.c")


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
    -- Like for like: the specialty's own units (CSU-wide metrics: the CSUs), never all specialties.
    SELECT metric_id, specialty_code,
           quantile_cont(value, 0.10) AS p10, quantile_cont(value, 0.25) AS p25, quantile_cont(value, 0.50) AS p50,
           quantile_cont(value, 0.75) AS p75, quantile_cont(value, 0.90) AS p90,
           CASE WHEN specialty_code = '' THEN 'Internal: ' || count(*) || ' CSUs of the trust (CSU-wide)'
                ELSE 'Internal: ' || count(*) || ' units of the trust in this specialty' END AS source
    FROM internal_units GROUP BY metric_id, specialty_code HAVING count(*) >= $internal_min
), history AS (
    SELECT f.csu_code, f.specialty_code, f.metric_id, f.period, f.numerator, f.denominator
    FROM metric_facts f JOIN win w ON f.metric_id = w.metric_id
    WHERE f.period <= w.p_to AND f.period > strftime(strptime(w.p_to, '%Y-%m') - INTERVAL 36 MONTH, '%Y-%m')
), quarters AS (
    -- The quarter ending at each month: that month and the two before, all three held.
    SELECT a.csu_code, a.specialty_code, a.metric_id, a.period,
           sum(b.numerator) AS qn, sum(b.denominator) AS qd, count(*) AS qm
    FROM history a JOIN history b
      ON b.csu_code = a.csu_code AND b.specialty_code = a.specialty_code AND b.metric_id = a.metric_id
     AND b.period BETWEEN strftime(strptime(a.period, '%Y-%m') - INTERVAL 2 MONTH, '%Y-%m') AND a.period
    GROUP BY a.csu_code, a.specialty_code, a.metric_id, a.period
), own AS (
    -- The best quarter, whichever direction is better; the one level for every target.
    SELECT q.csu_code, q.specialty_code, q.metric_id, best AS p10, best AS p25, best AS p50, best AS p75, best AS p90,
           'Own history: this unit''s best rolling quarter of the last 36 months (' || n
           || ' quarters), too few units of the specialty to compare' AS source
    FROM (SELECT q.csu_code, q.specialty_code, q.metric_id, count(*) AS n,
                 CASE WHEN any_value(m.direction) = 'lower' THEN min(qn / qd) ELSE max(qn / qd) END AS best
          FROM quarters q JOIN metrics m USING (metric_id)
          WHERE qm = 3 AND qd > 0 AND qd >= m.min_volume
          GROUP BY q.csu_code, q.specialty_code, q.metric_id) q
), peer AS (
    SELECT metric_id, specialty_code, p10, p25, p50, p75, p90, source FROM benchmarks WHERE peer_group = $peer
), hrg_cells AS (
    SELECT h.csu_code, h.specialty_code, h.metric_id, h.hrg_code, sum(h.spells) AS n, sum(h.bed_days) AS b
    FROM hrg_facts h JOIN win w ON h.metric_id = w.metric_id AND h.period BETWEEN w.p_from AND w.p_to
    GROUP BY h.csu_code, h.specialty_code, h.metric_id, h.hrg_code
), hrg_ref AS (
    SELECT CASE admission_type WHEN 'elective' THEN 'alos_elective' ELSE 'alos_non_elective' END AS metric_id,
           hrg_code, p10, p25, p50, p75, p90
    FROM hrg_benchmarks WHERE $benchmark = 'peer' AND peer_group = $peer
    UNION ALL
    SELECT metric_id, hrg_code, quantile_cont(b / n, 0.10), quantile_cont(b / n, 0.25), quantile_cont(b / n, 0.50),
           quantile_cont(b / n, 0.75), quantile_cont(b / n, 0.90)
    FROM hrg_cells WHERE $benchmark = 'internal' AND n >= $min_spells
    GROUP BY metric_id, hrg_code HAVING count(*) >= $internal_min
), casemix AS (
    SELECT c.csu_code, c.specialty_code, c.metric_id, sum(c.n) AS matched, count(*) AS hrgs,
           sum(c.n * r.p10) AS w10, sum(c.n * r.p25) AS w25, sum(c.n * r.p50) AS w50,
           sum(c.n * r.p75) AS w75, sum(c.n * r.p90) AS w90
    FROM hrg_cells c JOIN hrg_ref r ON r.metric_id = c.metric_id AND r.hrg_code = c.hrg_code
    GROUP BY c.csu_code, c.specialty_code, c.metric_id
), casemix_source AS (
    SELECT CASE WHEN $benchmark = 'internal'
                THEN 'Internal: mean stay per HRG across the trust''s units (' || $internal_min || ' or more units with '
                     || $min_spells || ' or more spells of the HRG)'
                ELSE coalesce((SELECT string_agg(DISTINCT source, '; ' ORDER BY source) FROM hrg_benchmarks
                               WHERE peer_group = $peer), 'no HRG benchmarks') END AS text
), plain AS (
    SELECT g.*, m.metric_name, m.domain, m.direction, m.unit, m.value_format, m.cost_driver, m.saving_type,
           m.overlap_group, m.min_volume, m.funnel, m.capacity_unit, m.capacity_divisor,
           CASE WHEN $benchmark = 'internal' THEN
                     CASE WHEN bi.metric_id IS NOT NULL THEN CASE WHEN g.specialty_code = '' THEN 'CSU-wide' ELSE 'specialty' END
                          WHEN ow.metric_id IS NOT NULL THEN 'own history' END
                WHEN bs.metric_id IS NOT NULL THEN 'specialty'
                WHEN ba.metric_id IS NOT NULL THEN 'all specialties' END AS benchmark_level,
           CASE WHEN $benchmark = 'internal' THEN coalesce(bi.source, ow.source) ELSE coalesce(bs.source, ba.source) END AS plain_source,
           CASE WHEN $benchmark = 'internal' THEN coalesce(bi.p10, ow.p10) ELSE coalesce(bs.p10, ba.p10) END AS c10,
           CASE WHEN $benchmark = 'internal' THEN coalesce(bi.p25, ow.p25) ELSE coalesce(bs.p25, ba.p25) END AS c25,
           CASE WHEN $benchmark = 'internal' THEN coalesce(bi.p50, ow.p50) ELSE coalesce(bs.p50, ba.p50) END AS c50,
           CASE WHEN $benchmark = 'internal' THEN coalesce(bi.p75, ow.p75) ELSE coalesce(bs.p75, ba.p75) END AS c75,
           CASE WHEN $benchmark = 'internal' THEN coalesce(bi.p90, ow.p90) ELSE coalesce(bs.p90, ba.p90) END AS c90,
           coalesce(us.unit_cost_gbp, ua.unit_cost_gbp) AS unit_cost_gbp,
           coalesce(us.source, ua.source) AS unit_cost_source,
           CASE WHEN us.unit_cost_gbp IS NOT NULL THEN 'specialty'
                WHEN ua.unit_cost_gbp IS NOT NULL THEN 'all specialties' END AS unit_cost_level,
           cm.matched, cm.hrgs, cm.w10, cm.w25, cm.w50, cm.w75, cm.w90,
           greatest(g.den - cm.matched, 0) AS unmatched
    FROM grains g  -- every unit of the trust: over-dispersion is estimated across all of them
    JOIN metrics m ON m.metric_id = g.metric_id
    LEFT JOIN peer bs ON bs.metric_id = g.metric_id AND bs.specialty_code = g.specialty_code AND g.specialty_code <> ''
    LEFT JOIN peer ba ON ba.metric_id = g.metric_id AND ba.specialty_code = ''
        -- like for like: peers' all-specialty row stands for a specialty only when the metric is given
        -- for no specialty (one standard for every service)
        AND (g.specialty_code = '' OR NOT EXISTS (SELECT 1 FROM peer x WHERE x.metric_id = g.metric_id
                                                                      AND x.specialty_code <> ''))
    LEFT JOIN internal bi ON bi.metric_id = g.metric_id AND bi.specialty_code = g.specialty_code
    LEFT JOIN own ow ON ow.csu_code = g.csu_code AND ow.specialty_code = g.specialty_code AND ow.metric_id = g.metric_id
    LEFT JOIN unit_costs us ON us.cost_driver = m.cost_driver AND us.specialty_code = g.specialty_code AND g.specialty_code <> ''
    LEFT JOIN unit_costs ua ON ua.cost_driver = m.cost_driver AND ua.specialty_code = ''
    LEFT JOIN casemix cm ON cm.csu_code = g.csu_code AND cm.specialty_code = g.specialty_code AND cm.metric_id = g.metric_id
), joined AS (
    -- Case mix: the grain's spells at their HRG's percentile; the unmatched rest at the plain one.
    SELECT r.*,
           {_adjusted('10')} AS p10, {_adjusted('25')} AS p25, {_adjusted('50')} AS p50,
           {_adjusted('75')} AS p75, {_adjusted('90')} AS p90,
           CASE WHEN r.metric_id IN ('alos_elective', 'alos_non_elective')
                THEN CASE WHEN r.matched IS NULL THEN 0.0 ELSE least(r.matched / r.den, 1.0) END END AS casemix_share,
           CASE WHEN r.matched IS NULL THEN r.plain_source
                ELSE 'Case mix: ' || r.hrgs || ' HRGs, ' || printf('%.0f', least(r.matched / r.den, 1.0) * 100) || '% of spells. '
                     || (SELECT text FROM casemix_source) || '. Other spells: ' || coalesce(r.plain_source, 'no benchmark')
           END AS benchmark_source
    FROM plain r
), targeted AS (
    SELECT r.*, {_pick('$target')} AS target_value,
           {_pick("'median'")} AS target_median,
           {_pick("'top_quartile'")} AS target_top_quartile,
           {_pick("'top_decile'")} AS target_top_decile,
           {_pick_crude('$target')} AS crude_target_value
    FROM joined r
), gapped AS (
    SELECT r.*, r.num / r.den AS actual,
           {_gap('r.target_value')} AS gap_units,
           {_gap('r.target_median')} AS gap_median,
           {_gap('r.target_top_quartile')} AS gap_top_quartile,
           {_gap('r.target_top_decile')} AS gap_top_decile,
           {_gap('r.crude_target_value')} AS crude_gap,
           CASE WHEN r.casemix_share IS NOT NULL THEN (r.num / r.den) / r.target_median END AS los_index,
           CASE WHEN r.casemix_share > 0 THEN 'case mix' ELSE r.benchmark_level END AS target_basis
    FROM targeted r
), final AS (
    SELECT r.*, c.csu_name,
           CASE WHEN r.specialty_code = '' THEN 'CSU-wide' ELSE coalesce(s.specialty_name, r.specialty_code) END AS specialty_name,
           r.gap_units * coalesce(r.unit_cost_gbp, 0) AS opportunity_gbp,
           r.gap_median * coalesce(r.unit_cost_gbp, 0) AS opportunity_median_gbp,
           r.gap_top_quartile * coalesce(r.unit_cost_gbp, 0) AS opportunity_top_quartile_gbp,
           r.gap_top_decile * coalesce(r.unit_cost_gbp, 0) AS opportunity_top_decile_gbp,
           r.crude_gap * coalesce(r.unit_cost_gbp, 0) AS crude_opportunity_gbp,
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
    -- The caller's rows, only now: φ and τ² above come from every unit of the trust; the overlap
    -- (counted in net) is among the rows asked for, as the engine's.
    WHERE {SCOPE_FILTER}
      AND ($csu IS NULL OR csu_code = $csu)
      AND ($specialty IS NULL OR specialty_code = $specialty)
      AND ($metric IS NULL OR metric_id = $metric)
)
SELECT *, CASE WHEN NOT low_volume AND significant AND opportunity_gbp > 0 THEN 0 ELSE 1 END AS rank_group,
       CASE WHEN $benchmark = 'peer' THEN $peer END AS peer_group
FROM flagged
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
        "min_spells": int(cfg["hrg_min_spells"]),
        "peer": basis.peer_group or _default_group(con, cfg["peer_group"]), "target": basis.target, "z": Z95,
        "z80": Z80,
        "csu": csu, "specialty": specialty, "metric": metric, **scope.sql_params(),
    }
    df = con.execute(OPPORTUNITY_SQL, params).df()
    df = df.rename(columns={"num": "numerator", "den": "denominator"})
    for col in ("low_volume", "significant", "counted_in_net", "significant_naive"):
        df[col] = df[col].astype(bool)
    return df[COLUMNS]


