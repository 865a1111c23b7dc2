"""The opportunity maths (METRICS.md), computed in one DuckDB query over ``metric_facts``.

For each grain (CSU, specialty) and metric over the analysis window:

* actual = Σ numerator / Σ denominator;
* target = the chosen percentile of the benchmark for (metric, specialty), falling back to
  (metric, all specialties). *median* is p50; *top quartile* is p25 when lower is better and p75
  when higher is better; *top decile* p10 / p90 likewise;
* gap_units = max(0, Σnum − target·Σden) when lower is better, max(0, target·Σden − Σnum) when
  higher is better; opportunity £ = gap_units × unit cost (specialty's, else all-specialty);
* a grain beating its target scores zero and never offsets another; totals are sums;
* net totals count, per grain, only the largest opportunity of each overlap group.

The caller's Scope filters grains inside the SQL. Internal benchmarks are computed across the whole
trust (they are percentiles, not any one CSU's data), so a CSU user sees the same targets as finance.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import duckdb
import pandas as pd

from .config import settings
from .scope import SCOPE_FILTER, Scope
from .stats import Z95, xmr

TARGETS = ("median", "top_quartile", "top_decile")
TARGET_LABELS = {"median": "Median", "top_quartile": "Top quartile", "top_decile": "Top decile"}
BENCHMARKS = ("peer", "internal")
BENCHMARK_LABELS = {"peer": "Peer trusts", "internal": "Internal (trust's own units)"}


@dataclass(frozen=True)
class Basis:
    """What an opportunity is measured against, and over which months."""
    target: str = "median"
    benchmark: str = "peer"
    period_from: str | None = None
    period_to: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}")
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}")
        for p in (self.period_from, self.period_to):
            if p is not None and not _is_period(p):
                raise ValueError(f"period {p!r} must be YYYY-MM")

    @property
    def label(self) -> str:
        return f"{TARGET_LABELS[self.target]} of {BENCHMARK_LABELS[self.benchmark].lower()}"


def _is_period(p: str) -> bool:
    return len(p) == 7 and p[4] == "-" and p[:4].isdigit() and p[5:].isdigit() and 1 <= int(p[5:]) <= 12


def add_months(period: str, months: int) -> str:
    y, m = int(period[:4]), int(period[5:])
    index = y * 12 + (m - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


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
           sum(f.numerator) AS num, sum(f.denominator) AS den
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
), scoped AS (
    SELECT * FROM grains WHERE {SCOPE_FILTER}
      AND ($csu IS NULL OR csu_code = $csu)
      AND ($specialty IS NULL OR specialty_code = $specialty)
      AND ($metric IS NULL OR metric_id = $metric)
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
    FROM scoped g
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
           CASE WHEN r.capacity_unit <> '' THEN r.gap_units / r.capacity_divisor * 12.0 / r.months END AS capacity_units,
           -- Funnel limits: binomial for a proportion of counts, Poisson for a count per unit.
           CASE WHEN r.target_value IS NULL OR r.funnel = 'none' THEN NULL
                WHEN r.funnel = 'binomial' THEN r.target_value * (1 - r.target_value) / r.den
                ELSE r.target_value / r.den END AS funnel_variance
    FROM gapped r
    LEFT JOIN csus c ON c.csu_code = r.csu_code
    LEFT JOIN specialties s ON s.specialty_code = r.specialty_code
), tested AS (
    SELECT *,
        CASE WHEN funnel_variance IS NULL THEN NULL
             WHEN funnel_variance > 0 THEN (actual - target_value) / sqrt(funnel_variance)
             WHEN actual = target_value THEN 0
             ELSE sign(actual - target_value) * 1e9 END AS z_score
    FROM final
), flagged AS (
    SELECT *,
        CASE WHEN target_value IS NULL THEN false
             WHEN z_score IS NULL THEN true  -- not testable (money shares): treated as real
             ELSE abs(z_score) > $z END AS significant,
        overlap_group = '' OR row_number() OVER (
            PARTITION BY csu_code, specialty_code, overlap_group ORDER BY opportunity_gbp DESC, metric_id) = 1
            AS counted_in_net
    FROM tested
)
SELECT *, CASE WHEN NOT low_volume AND significant AND opportunity_gbp > 0 THEN 0 ELSE 1 END AS rank_group
FROM flagged
ORDER BY rank_group, opportunity_gbp DESC, csu_code, specialty_code, metric_id
"""

# The columns the CLI contract (DATA.md) promises first, then the rest in a stable order.
COLUMNS = [
    "csu_code", "specialty_code", "metric_id", "numerator", "denominator", "actual", "target_value",
    "gap_units", "unit_cost_gbp", "opportunity_gbp", "saving_type", "low_volume", "significant",
    "csu_name", "specialty_name", "metric_name", "domain", "direction", "unit", "value_format",
    "period_from", "period_to", "months", "benchmark_level", "benchmark_source",
    "p10", "p25", "p50", "p75", "p90", "target_median", "target_top_quartile", "target_top_decile",
    "opportunity_median_gbp", "opportunity_top_quartile_gbp", "opportunity_top_decile_gbp",
    "unit_cost_level", "unit_cost_source", "cost_driver", "overlap_group", "counted_in_net",
    "min_volume", "funnel", "z_score", "capacity_units", "capacity_unit", "rank_group",
]


_CACHE: "OrderedDict[tuple, pd.DataFrame]" = OrderedDict()
_CACHE_SIZE = 128


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """Changes whenever facts, benchmarks, unit costs or the catalogue change (import, demo)."""
    row = con.execute("SELECT value FROM settings WHERE key = 'data_version'").fetchone()
    return row[0] if row else "0"


def opportunities(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis = Basis(),
                  csu: str | None = None, specialty: str | None = None,
                  metric: str | None = None) -> pd.DataFrame:
    """Cached :func:`compute_opportunities`: keyed on the database, its data version, the scope,
    the basis and the filters, so a page re-run or a second user with the same view costs a
    dictionary look-up. A new import changes the data version and so misses the cache."""
    scope.check(csu)
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0]
    if path is None:  # in-memory databases are scratch work: never cached
        return compute_opportunities(con, scope, basis, csu, specialty, metric)
    key = (path, data_version(con), scope.csus, basis, csu, specialty, metric)
    hit = _CACHE.get(key)
    if hit is None:
        hit = compute_opportunities(con, scope, basis, csu, specialty, metric)
        _CACHE[key] = hit
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return hit.copy()


def compute_opportunities(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis = Basis(),
                          csu: str | None = None, specialty: str | None = None,
                          metric: str | None = None) -> pd.DataFrame:
    """One row per (CSU, specialty, metric) in scope, ranked: real gaps first, then by £.

    ``csu`` outside the scope raises ScopeError (the page says "not available to you"); the
    scope is applied in SQL either way. Flags: low_volume (denominator below the metric's minimum
    volume) and significant (actual outside the 95% funnel limit around the target). Rows that are
    low volume or not significant keep their £ but rank after the real ones (rank_group 1).
    """
    scope.check(csu)
    cfg = settings()["analysis"]
    params = {
        "p_from": basis.period_from, "p_to": basis.period_to, "window": _window_months(),
        "internal_min": int(cfg["internal_min_units"]), "benchmark": basis.benchmark,
        "peer": cfg["peer_group"], "target": basis.target, "z": Z95,
        "csu": csu, "specialty": specialty, "metric": metric, **scope.sql_params(),
    }
    df = con.execute(OPPORTUNITY_SQL, params).df()
    df = df.rename(columns={"num": "numerator", "den": "denominator"})
    for col in ("low_volume", "significant", "counted_in_net"):
        df[col] = df[col].astype(bool)
    return df[COLUMNS]


@dataclass(frozen=True)
class Totals:
    net_gbp: float
    gross_gbp: float
    cash_gbp: float
    productivity_gbp: float
    flagged_gbp: float
    opportunities: int


def totals(df: pd.DataFrame) -> Totals:
    """Headline figures of an opportunities frame. Net (overlap removed) is the one to quote;
    cash and productivity split the net total; flagged is the net £ from low-volume or
    not-significant rows (included in net, shown so nobody mistakes noise for money)."""
    net = df[df["counted_in_net"]]
    flagged = net[net["rank_group"] == 1]
    return Totals(
        net_gbp=float(net["opportunity_gbp"].sum()),
        gross_gbp=float(df["opportunity_gbp"].sum()),
        cash_gbp=float(net.loc[net["saving_type"] == "cash", "opportunity_gbp"].sum()),
        productivity_gbp=float(net.loc[net["saving_type"] == "productivity", "opportunity_gbp"].sum()),
        flagged_gbp=float(flagged["opportunity_gbp"].sum()),
        opportunities=int((df["opportunity_gbp"] > 0).sum()),
    )


def summarise(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Net and gross £ summed at a coarser grain (e.g. CSU, specialty, domain), largest first."""
    if df.empty:
        return pd.DataFrame(columns=by + ["net_gbp", "gross_gbp", "opportunities"])
    work = df.assign(net_part=df["opportunity_gbp"].where(df["counted_in_net"], 0.0),
                     has_opp=(df["opportunity_gbp"] > 0).astype(int))
    out = (work.groupby(by, dropna=False, sort=False)
           .agg(net_gbp=("net_part", "sum"), gross_gbp=("opportunity_gbp", "sum"), opportunities=("has_opp", "sum"))
           .reset_index()
           .sort_values("net_gbp", ascending=False, kind="stable")
           .reset_index(drop=True))
    return out


def trend(con: duckdb.DuckDBPyConnection, scope: Scope, metric: str, csu: str | None = None,
          specialty: str | None = None) -> pd.DataFrame:
    """Monthly series of a metric (all months held) for the scope, optionally one CSU/specialty."""
    scope.check(csu)
    sql = f"""
        SELECT period, sum(numerator) AS numerator, sum(denominator) AS denominator,
               sum(numerator) / nullif(sum(denominator), 0) AS value
        FROM metric_facts
        WHERE metric_id = $metric AND {SCOPE_FILTER}
          AND ($csu IS NULL OR csu_code = $csu) AND ($specialty IS NULL OR specialty_code = $specialty)
        GROUP BY period ORDER BY period"""
    df = con.execute(sql, {"metric": metric, "csu": csu, "specialty": specialty, **scope.sql_params()}).df()
    chart = xmr(list(df["value"])) if len(df) else None
    if chart is None:
        for col in ("mean", "ucl", "lcl"):
            df[col] = float("nan")
        df["special_cause"] = False
    else:
        df["mean"], df["ucl"], df["lcl"] = chart.mean, chart.ucl, chart.lcl
        df["special_cause"] = chart.special_cause
    return df


def distribution(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis, metric: str) -> pd.DataFrame:
    """Every unit of the trust on one metric over the window, for the peer/internal distribution.

    Units outside the caller's scope are anonymised ("Other unit"): their values are the raw
    material of the internal benchmark, but their names and volumes are not the caller's to see.
    """
    everyone = opportunities(con, Scope.trust(), basis, metric=metric)
    visible = everyone["csu_code"].map(scope.allows)
    out = pd.DataFrame({
        "unit": (everyone["csu_code"] + " · " + everyone["specialty_name"]).where(visible, "Other unit"),
        "value": everyone["actual"],
        "in_scope": visible,
        "csu_code": everyone["csu_code"].where(visible, ""),
        "specialty_code": everyone["specialty_code"].where(visible, ""),
        "low_volume": everyone["low_volume"],
    })
    return out.sort_values("value", kind="stable").reset_index(drop=True)


def latest_period(con: duckdb.DuckDBPyConnection) -> str | None:
    return con.execute("SELECT max(period) FROM metric_facts").fetchone()[0]


def periods(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT period FROM metric_facts ORDER BY 1").fetchall()]


def _window_months() -> int:
    return int(settings()["analysis"]["window_months"])


def csu_list(con: duckdb.DuckDBPyConnection, scope: Scope) -> list[tuple[str, str]]:
    """(code, name) of the CSUs in scope that have metric facts, by name."""
    return [tuple(r) for r in con.execute(
        f"""SELECT csu_code, csu_name FROM csus WHERE {SCOPE_FILTER}
            AND csu_code IN (SELECT DISTINCT csu_code FROM metric_facts) ORDER BY csu_name""",
        scope.sql_params()).fetchall()]


def freshness(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Latest load of each source: months held, rows, who loaded it and when."""
    return con.execute("""
        SELECT kind AS source, arg_max(period_to, loaded_at) AS latest_period, arg_max(row_count, loaded_at) AS rows,
               arg_max(loaded_by, loaded_at) AS loaded_by, max(loaded_at) AS loaded_at, count(*) AS loads
        FROM import_log GROUP BY kind ORDER BY kind""").df()
