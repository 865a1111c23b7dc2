"""The opportunity maths (METRICS.md): one DuckDB query over ``metric_facts``, then array arithmetic.

For each grain (CSU, specialty) and metric over the analysis window:

* actual = Σ numerator / Σ denominator;
* target = the chosen percentile of the benchmark for (metric, specialty); a CSU-wide metric, or a
  metric the benchmarks give for no specialty, reads (metric, all specialties). Where a metric is
  given specialty by specialty, a specialty without its row has no target (like for like: never
  peers' blend of all services; named by :func:`missing_targets_note`). *median* is p50; *top quartile* is p25 when lower is better and p75
  when higher is better; *top decile* p10 / p90 likewise;
* gap_units = max(0, Σnum − target·Σden) when lower is better, max(0, target·Σden − Σnum) when
  higher is better; opportunity £ = gap_units × unit cost (specialty's, else all-specialty);
* a grain beating its target scores zero and never offsets another; totals are sums;
* net totals count, per grain, only the largest opportunity of each overlap group.

The caller's Scope filters grains inside the engine's SQL. Internal benchmarks are computed across the whole
trust (they are percentiles, not any one CSU's data), so a CSU user sees the same targets as finance.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TypeVar

import duckdb
import numpy as np
import pandas as pd

from ..config import settings
from ..errors import InvalidInput
from ..scope import SCOPE_FILTER, Scope
from ..store.db import scalar
from . import casemix, lookups, maths, stats
from .maths import COLUMNS, Window  # noqa: F401 (COLUMNS: part of this module's API)
from .stats import xmr
from .targets import BENCHMARK_LABELS, BENCHMARKS, CUSTOM_BEST, TARGETS, custom_best, is_target, target_label
from .versioned import MISSING, VersionedCache

T = TypeVar("T")



@dataclass(frozen=True)
class Basis:
    """What an opportunity is measured against, and over which months.

    ``peer_group`` names the benchmarks' peer group a peer target reads (national, region, …);
    None means the default: the configured ``[analysis] peer_group`` when the data holds it, else
    the only or first group (see :func:`default_peer_group`)."""
    target: str = "median"
    benchmark: str = "peer"
    period_from: str | None = None
    period_to: str | None = None
    peer_group: str | None = None

    def __post_init__(self) -> None:
        if not is_target(self.target):
            raise InvalidInput(f"target must be one of {', '.join(TARGETS)} or best_N "
                             f"(N from {CUSTOM_BEST[0]} to {CUSTOM_BEST[1]}: the level of the best N % of units)")
        if self.benchmark not in BENCHMARKS:
            raise InvalidInput(f"benchmark must be one of {', '.join(BENCHMARKS)}")
        for p in (self.period_from, self.period_to):
            if p is not None and not _is_period(p):
                raise InvalidInput(f"period {p!r} must be YYYY-MM")

    @property
    def best(self) -> int | None:
        """N of a custom target "best N %", else None."""
        return custom_best(self.target)

    @property
    def label(self) -> str:
        """In words, naming the peer group when there is one: "Median of peer trusts (national)"."""
        group = f" ({self.peer_group})" if self.benchmark == "peer" and self.peer_group else ""
        return f"{target_label(self.target)} of {BENCHMARK_LABELS[self.benchmark].lower()}{group}"


def peer_groups(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The peer groups the benchmarks hold (national, region, …), in name order."""
    return sorted(lookups.get(con).peer)


def default_peer_group(groups: list[str] | tuple[str, ...]) -> str:
    """The configured ``[analysis] peer_group`` when the data holds it, else the only or first
    group by name; the configured name when there are no benchmarks at all."""
    configured = str(settings()["analysis"]["peer_group"])
    if configured in groups or not groups:
        return configured
    return sorted(groups)[0]


def resolve_peer_group(con: duckdb.DuckDBPyConnection, basis: Basis) -> Basis:
    """The basis with its peer group named (the default filled in), so every label and export
    says which group the targets came from."""
    if basis.peer_group is not None:
        return basis
    return replace(basis, peer_group=default_peer_group(peer_groups(con)))


def missing_targets(df: pd.DataFrame) -> pd.DataFrame:
    """Per metric with any unit lacking a target: metric_id, metric_name, units, without_target.

    A unit without a target has no gap and no £: that is "not measured", never "£0 to save",
    so pages and the CLI say which metrics these are."""
    if df.empty:
        return pd.DataFrame(columns=["metric_id", "metric_name", "units", "without_target"])
    work = df[["metric_id", "metric_name"]].copy()
    work["units"] = 1
    work["without_target"] = df["target_value"].isna().astype(np.int64)
    counts = work.groupby(["metric_id", "metric_name"], sort=True).sum().reset_index()
    return counts[counts["without_target"] > 0].reset_index(drop=True)


def missing_targets_note(df: pd.DataFrame, basis: Basis) -> str | None:
    """One sentence naming the metrics without a target under ``basis`` (None when all have one)."""
    missing = missing_targets(df)
    if missing.empty:
        return None
    where = (f"in peer group '{basis.peer_group}'" if basis.benchmark == "peer" and basis.peer_group
             else "in the internal benchmark" if basis.benchmark == "internal" else "in the benchmarks")
    whole = missing[missing["without_target"] == missing["units"]]
    part = missing[missing["without_target"] < missing["units"]]
    n_metrics = df["metric_id"].nunique()
    bits = []
    if len(whole):
        bits.append(f"{len(whole)} of {n_metrics} metrics have no target {where}: {', '.join(whole['metric_name'])}")
    if len(part):
        listed = ", ".join(f"{r.metric_name} ({int(r.without_target)} of {int(r.units)} units)"
                           for r in part.itertuples())
        bits.append(f"{'some' if len(whole) else 'Some'} units of {len(part)} {'more ' if len(whole) else ''}"
                    f"metric{'s' if len(part) > 1 else ''} have none: {listed}")
    return "; ".join(bits) + ". Their opportunity is not measured (no target, not £0 to save)."


def _is_period(p: str) -> bool:
    return len(p) == 7 and p[4] == "-" and p[:4].isdigit() and p[5:].isdigit() and 1 <= int(p[5:]) <= 12


def add_months(period: str, months: int) -> str:
    y, m = int(period[:4]), int(period[5:])
    index = y * 12 + (m - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


_CACHE: VersionedCache[pd.DataFrame] = VersionedCache(128, "data_version")


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """Changes whenever facts, benchmarks, unit costs or the catalogue change (import, demo)."""
    return lookups.version(con)


def opportunities(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis = Basis(),
                  csu: str | None = None, specialty: str | None = None,
                  metric: str | None = None) -> pd.DataFrame:
    """Cached :func:`compute_opportunities`: keyed on the data version, the scope, the basis and
    the filters, so a page re-run or a second user with the same view costs a dictionary look-up.

    The data version is a fresh UUID at every import, unit-cost edit or demo build, so it names
    the data of one database at one moment (a backup copy shares it, and its data). Version "0"
    (nothing ever loaded, e.g. scratch in-memory databases) is never cached."""
    scope.check(csu)
    version = data_version(con)
    if version == "0":
        return compute_opportunities(con, scope, basis, csu, specialty, metric)
    key = (scope.csus, basis, csu, specialty, metric)
    hit = _CACHE.get(version, key)
    if not isinstance(hit, pd.DataFrame):
        hit = compute_opportunities(con, scope, basis, csu, specialty, metric)
        _CACHE.put(version, key, hit)
    return hit.copy()


_VIEWS_SIZE = 512


def view(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis, derive: Callable[..., T], *args: Hashable,
         csu: str | None = None, specialty: str | None = None) -> T:
    """``derive(opportunities(con, scope, basis, csu, specialty), *args)``, kept like the opportunities.

    The pages derive the same tables, totals and notes from the same opportunities on every view
    (pandas group-bys over some 760 rows: most of Overview's and Explore's server time with 20
    users at once). ``derive`` must be a function of the frame and ``args`` (hashable) alone; the
    result is kept per data version, scope, basis and filters (:func:`kept_by`), and frames come
    back as copies (in a tuple or a dataclass too), so a page may change its own."""
    return _derived(con, scope, basis, derive, args, csu, specialty)


def _copied(value):
    """A fresh copy of every frame in ``value`` (itself, in a tuple, in a dataclass's fields)."""
    if isinstance(value, pd.DataFrame):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_copied(v) for v in value)
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changed = {f.name: _copied(getattr(value, f.name)) for f in dataclasses.fields(value)
                   if isinstance(getattr(value, f.name), (pd.DataFrame, tuple)) or dataclasses.is_dataclass(getattr(value, f.name))}
        return dataclasses.replace(value, **changed) if changed else value
    return value


F = TypeVar("F", bound=Callable)


def kept_by(version_of: Callable[[duckdb.DuckDBPyConnection], str]) -> Callable[[F], F]:
    """A decorator: ``fn(con, *args)`` kept per ``version_of(con)`` and (hashable) arguments,
    handed out as copies. Version "0" (nothing ever loaded) is never kept."""
    def decorate(fn: F) -> F:
        kept: VersionedCache[object] = VersionedCache(_VIEWS_SIZE, version_of.__name__)

        @functools.wraps(fn)
        def wrapper(con, *args, **kwargs):
            version = version_of(con)
            if version == "0":
                return fn(con, *args, **kwargs)
            key = (args, tuple(sorted(kwargs.items())))
            hit = kept.get(version, key)
            if hit is MISSING:
                hit = fn(con, *args, **kwargs)
                kept.put(version, key, hit)
            return _copied(hit)

        return wrapper  # type: ignore[return-value]

    return decorate


def kept_per_data_version(fn: F) -> F:
    """``fn(con, *args)`` kept per data version: for what Metric detail reads on every view that
    only an import changes (a trend, a funnel, the comparators behind a target), each a query and
    some pandas per page view."""
    return kept_by(data_version)(fn)


@kept_per_data_version
def _derived(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis, derive: Callable, args: tuple,
             csu: str | None, specialty: str | None):
    return derive(opportunities(con, scope, basis, csu, specialty), *args)


def compute_opportunities(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis = Basis(),
                          csu: str | None = None, specialty: str | None = None,
                          metric: str | None = None) -> pd.DataFrame:
    """One row per (CSU, specialty, metric) in scope, ranked: real gaps first, then by £.

    ``csu`` outside the scope raises ScopeError (the page says "not available to you"); the
    scope is applied in SQL either way. Flags: low_volume (denominator below the metric's minimum
    volume) and significant (actual outside the 95% funnel limit around the target). Rows that are
    low volume or not significant keep their £ but rank after the real ones (rank_group 1).

    Why one query plus arrays: DuckDB took longer to plan one query joining the facts to five
    small tables than to run it (16 ms of 45). The small tables change only with the data
    version, so they are read once per version (lookups.py); each call is one GROUP BY over the
    facts, in the same snapshot as the data version it checks, and array arithmetic (maths.py).
    """
    scope.check(csu)
    cfg = settings()["analysis"]
    internal = basis.benchmark == "internal"
    lk = lookups.latest_known() or lookups.get(con)
    for _ in range(5):  # more only if imports commit faster than this query runs
        windows = _windows(lk, basis)
        if not windows:
            g, seen = None, lookups.version(con)
        else:
            sql, params = _grains_query(windows, lk, scope, csu, specialty, metric, everyone=internal)
            g, seen = _split_version(con.execute(sql, params).fetchnumpy())
        if seen == lk.version:
            refs = casemix.references(con, lk, windows, basis.benchmark,
                                      basis.peer_group or default_peer_group(tuple(lk.peer)),
                                      int(cfg["internal_min_units"]), int(cfg["hrg_min_spells"]))
            if refs.version == lk.version:
                break
            seen = refs.version  # an import between the two queries: start again at its version
        # The facts are of another data version than the look-ups guessed (an import since, or
        # another database): take that version's look-ups and run again with its windows.
        lk = lookups.get(con, seen)
    else:
        raise RuntimeError("The data kept changing while the opportunities were computed: try again.")
    if g is None or len(g["num"]) == 0:
        return maths.empty()
    wanted = g.pop("wanted", None)
    whole_trust = scope.is_trust and csu is None and specialty is None and metric is None
    dispersion = None if whole_trust else _dispersion(con, basis, lk)
    group = basis.peer_group or default_peer_group(tuple(lk.peer))
    return maths.opportunities(g, lk, basis, windows, wanted, int(cfg["internal_min_units"]), group, dispersion,
                               refs)


def _dispersion(con: duckdb.DuckDBPyConnection, basis: Basis, lk: lookups.Lookups) -> tuple[np.ndarray, np.ndarray]:
    """φ and τ² by metric position, from the whole trust's opportunities on this basis (cached).

    Over-dispersion is a property of the comparator set, every unit of the trust on the metric,
    so a CSU's view, a filtered view and the trust's agree on which units are significant."""
    trust = opportunities(con, Scope.trust(), basis)
    phi, tau2 = np.full(len(lk.metric_ids), np.nan), np.zeros(len(lk.metric_ids))
    first = trust.drop_duplicates("metric_id")
    for metric_id, p, t in zip(first["metric_id"], first["phi"], first["tau2"]):
        at = lk.metric_pos.get(metric_id)
        if at is not None:
            phi[at], tau2[at] = p, t
    return phi, tau2


def _split_version(g: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """Take out the row carrying the data version (months 0: every grain has a month), and any
    grain whose denominators sum to zero or less (no rate; cheaper here than a HAVING clause)."""
    at = np.flatnonzero(g["months"] == 0)
    version = g["csu_code"][at[0]] if len(at) else "0"
    keep = (g["months"] != 0) & (g["den"] > 0)
    return {k: v[keep] for k, v in g.items()}, version


def _windows(lk: lookups.Lookups, basis: Basis) -> tuple[Window, ...]:
    """Metrics grouped by their analysis window (from, to): the latest N months of each metric
    unless the basis names the months. Usually one group; more when sources end in different months."""
    return _windows_for(lk, basis.period_from, basis.period_to, _window_months())


@lru_cache(maxsize=8)  # keyed on the look-ups: a small size lets old data versions' look-ups go
def _windows_for(lk: lookups.Lookups, period_from: str | None, period_to: str | None,
                 size: int) -> tuple[Window, ...]:
    out: dict[tuple[str, str], list[str]] = {}
    for metric_id in lk.metric_ids:
        latest = lk.latest.get(metric_id)
        if latest is None:
            continue
        p_to = period_to or latest
        p_from = period_from or add_months(p_to, -(size - 1))
        out.setdefault((p_from, p_to), []).append(metric_id)
    return tuple(Window(p_from, p_to, tuple(ids)) for (p_from, p_to), ids in out.items())


def _grains_query(windows: tuple[Window, ...], lk: lookups.Lookups, scope: Scope,
                  csu: str | None, specialty: str | None, metric: str | None, everyone: bool) -> tuple[str, dict]:
    """The one query over the facts: Σnum, Σden and months per grain within each metric's window.

    Only the conditions a call needs are written (each costs DuckDB time on every call); every
    value is a parameter. With ``everyone`` (internal benchmarks) the whole trust comes back,
    ``wanted`` marking the caller's rows: an internal percentile is taken across every unit, and
    only the caller's rows leave the engine. One extra row (months 0, which no grain has)
    carries the data version in the csu_code column: read in the same snapshot as the facts, and
    cheaper for DuckDB than a second query or a scalar subquery.
    ``count(*)`` is the months held: facts have one row per (period, CSU, specialty, metric), by
    the rebuild's GROUP BY and the import template's key (tests/test_oracle.py checks).
    """
    params: dict = {}
    if len(windows) == 1 and len(windows[0].metric_ids) == len(lk.latest):
        p_from, p_to, _ = windows[0]
        in_window = "period BETWEEN $from0 AND $to0"  # every metric held: facts of unknown metrics drop later
        params.update(from0=p_from, to0=p_to)
    else:
        parts = []
        for i, (p_from, p_to, metric_ids) in enumerate(windows):
            parts.append(f"(period BETWEEN $from{i} AND $to{i} AND list_contains($metrics{i}, metric_id))")
            params.update({f"from{i}": p_from, f"to{i}": p_to, f"metrics{i}": list(metric_ids)})
        in_window = "(" + " OR ".join(parts) + ")"
    conditions = []
    if not scope.is_trust:
        conditions.append(SCOPE_FILTER)
        params.update(scope.sql_params())
    for column, value in (("csu_code", csu), ("specialty_code", specialty), ("metric_id", metric)):
        if value is not None:
            conditions.append(f"{column} = ${column}")
            params[column] = value
    wanted = " AND ".join(conditions)
    if not wanted:
        where, select_wanted = in_window, ""
    elif everyone:
        where, select_wanted = in_window, f", {wanted} AS wanted"
    else:
        where, select_wanted = f"{in_window} AND {wanted}", ""
    # rate_*: Σ monthly rate, Σ its square and the months with one, for the 80 % range of the £.
    sql = f"""
        SELECT csu_code, specialty_code, metric_id, sum(numerator) AS num, sum(denominator) AS den,
               count(*) AS months,
               coalesce(sum(CASE WHEN denominator > 0 THEN numerator / denominator END), 0) AS rate_sum,
               coalesce(sum(CASE WHEN denominator > 0 THEN (numerator / denominator) ^ 2 END), 0) AS rate_sq,
               count(CASE WHEN denominator > 0 THEN 1 END) AS rate_months{select_wanted}
        FROM metric_facts WHERE {where}
        GROUP BY csu_code, specialty_code, metric_id
        UNION ALL
        SELECT value, '', '', 0, 0, 0, 0, 0, 0{", false" if select_wanted else ""} FROM settings WHERE key = 'data_version'"""
    return sql, params


@dataclass(frozen=True)
class Totals:
    net_gbp: float
    gross_gbp: float
    cash_gbp: float
    productivity_gbp: float
    flagged_gbp: float
    opportunities: int
    net_low_gbp: float = 0.0   # the net total's 80 % range (see totals)
    net_high_gbp: float = 0.0


def totals(df: pd.DataFrame) -> Totals:
    """Headline figures of an opportunities frame. Net (overlap removed) is the one to quote;
    cash and productivity split the net total; flagged is the net £ from low-volume or
    not-significant rows (included in net, shown so nobody mistakes noise for money).

    The net total's 80 % range treats the rows' errors as independent: each side's distance from
    the figure is the square root of the sum of the rows' squared distances on that side (so a
    range narrows relative to the total as rows add up, as independent errors do)."""
    net = df[df["counted_in_net"]]
    flagged = net[net["rank_group"] == 1]
    net_gbp = float(net["opportunity_gbp"].sum())
    below = float(np.sqrt(((net["opportunity_gbp"] - net["opportunity_low_gbp"]) ** 2).sum()))
    above = float(np.sqrt(((net["opportunity_high_gbp"] - net["opportunity_gbp"]) ** 2).sum()))
    return Totals(
        net_gbp=net_gbp,
        gross_gbp=float(df["opportunity_gbp"].sum()),
        cash_gbp=float(net.loc[net["saving_type"] == "cash", "opportunity_gbp"].sum()),
        productivity_gbp=float(net.loc[net["saving_type"] == "productivity", "opportunity_gbp"].sum()),
        flagged_gbp=float(flagged["opportunity_gbp"].sum()),
        opportunities=int((df["opportunity_gbp"] > 0).sum()),
        net_low_gbp=max(0.0, net_gbp - below),
        net_high_gbp=net_gbp + above,
    )


def summarise(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Net and gross £ summed at a coarser grain (e.g. CSU, specialty, domain), largest first."""
    if df.empty:
        return pd.DataFrame(columns=by + ["net_gbp", "gross_gbp", "opportunities"])
    # A narrow frame summed whole: named aggregation over the 47-column frame cost several times
    # more, on every page run of Overview and Explore.
    work = df[by].copy()
    work["net_gbp"] = df["opportunity_gbp"].where(df["counted_in_net"], 0.0)
    work["gross_gbp"] = df["opportunity_gbp"]
    work["opportunities"] = (df["opportunity_gbp"] > 0).astype(np.int64)
    out = work.groupby(by, dropna=False, sort=False).sum().reset_index()
    return out.sort_values("net_gbp", ascending=False, kind="stable").reset_index(drop=True)


@kept_per_data_version
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


@dataclass(frozen=True)
class Funnel:
    """A metric's funnel plot for one unit, ready to draw: every comparable unit of the trust
    (``points``: x, value, unit, this, flagged, naive_flagged) and the over-dispersed limits around
    this unit's target (``limits``: x, lower_95, upper_95, lower_998, upper_998, and the naive
    95 % limits from sampling error alone, naive_lower_95 and naive_upper_95, for comparison)."""
    points: pd.DataFrame
    limits: pd.DataFrame
    target: float
    kind: str          # binomial | poisson
    phi: float
    tau2: float
    units: int
    x_label: str       # what x is: the denominator, or for a count per unit the equivalent one


@kept_per_data_version
def funnel(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis, metric: str, csu: str,
           specialty: str) -> Funnel | None:
    """The funnel plot of ``metric`` around the unit (csu, specialty): None when the metric has no
    funnel (money shares) or the unit no target.

    Units whose benchmark differs (another specialty's) are placed at the same distance from this
    unit's target on the funnel's scale: for a proportion, sin²(asin √target + (asin √p − asin √own
    target)); for a count per unit, target × (actual ÷ own target) at the denominator that gives
    the same expected count. A point outside the 95 % limit is then exactly a unit flagged
    significant. Units outside the caller's scope are anonymised, as in :func:`distribution`."""
    scope.check(csu)
    everyone = opportunities(con, Scope.trust(), basis, metric=metric)
    here = everyone[(everyone["csu_code"] == csu) & (everyone["specialty_code"] == specialty)]
    if here.empty or here.iloc[0]["funnel"] not in ("binomial", "poisson") or pd.isna(here.iloc[0]["target_value"]):
        return None
    me = here.iloc[0]
    kind, target, tau2 = str(me["funnel"]), float(me["target_value"]), float(me["tau2"])
    units = everyone[everyone["z_score"].notna() & (everyone["z_score"].abs() < stats.SENTINEL_Z)]
    own = units["target_value"].to_numpy(float)
    actual, den = units["actual"].to_numpy(float), units["denominator"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "binomial":
            angle = (np.arcsin(np.sqrt(np.clip(target, 0, 1))) + np.arcsin(np.sqrt(np.clip(actual, 0, 1)))
                     - np.arcsin(np.sqrt(np.clip(own, 0, 1))))
            x, value = den, np.sin(np.clip(angle, 0, np.pi / 2)) ** 2
        else:
            x, value = den * own / target, target * actual / own
    visible = units["csu_code"].map(scope.allows).to_numpy(bool)
    this = ((units["csu_code"] == csu) & (units["specialty_code"] == specialty)).to_numpy(bool)
    points = pd.DataFrame({
        "x": x, "value": value, "actual": actual,
        "unit": np.where(visible, units["csu_code"] + " · " + units["specialty_name"], "Other unit"),
        "this": this, "flagged": units["significant"].to_numpy(bool),
        "naive_flagged": units["significant_naive"].to_numpy(bool)})
    points = points[np.isfinite(points["x"]) & np.isfinite(points["value"]) & (points["x"] > 0)].reset_index(drop=True)
    if points.empty:
        return None
    grid = np.geomspace(max(points["x"].min() * 0.8, 1.0), points["x"].max() * 1.25, 200)
    low95, high95 = stats.funnel_limits(kind, target, grid, tau2, stats.Z95)
    low998, high998 = stats.funnel_limits(kind, target, grid, tau2, stats.Z998)
    naive_low, naive_high = stats.funnel_limits(kind, target, grid, 0.0, stats.Z95)  # sampling error alone
    limits = pd.DataFrame({"x": grid, "lower_95": low95, "upper_95": high95, "lower_998": low998, "upper_998": high998,
                           "naive_lower_95": naive_low, "naive_upper_95": naive_high})
    x_label = "denominator" if kind == "binomial" else "denominator (at this unit's target: same expected count)"
    return Funnel(points, limits, target, kind, float(me["phi"]), tau2, len(points), x_label)


def significance_shares(df: pd.DataFrame) -> pd.DataFrame:
    """Per metric: units tested, share flagged significant naive (sampling error only) and
    over-dispersed (Spiegelhalter's additive random effects), with φ and τ². Units with no
    funnel (money shares) or no target are not tested and not counted."""
    tested = df[df["z_score"].notna() & df["target_value"].notna()]
    if tested.empty:
        return pd.DataFrame(columns=["metric_id", "units", "naive_share", "adjusted_share", "phi", "tau2"])
    out = (tested.groupby("metric_id", sort=True)
           .agg(units=("z_score", "size"), naive_share=("significant_naive", "mean"),
                adjusted_share=("significant", "mean"), phi=("phi", "first"), tau2=("tau2", "first"))
           .reset_index())
    return out


def latest_period(con: duckdb.DuckDBPyConnection) -> str | None:
    return scalar(con, "SELECT max(period) FROM metric_facts")


def periods(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT period FROM metric_facts ORDER BY 1").fetchall()]


def _window_months() -> int:
    return int(settings()["analysis"]["window_months"])


def csu_list(con: duckdb.DuckDBPyConnection, scope: Scope) -> list[tuple[str, str]]:
    """(code, name) of the CSUs in scope that have metric facts, by name. From the look-ups of the
    data version (every page's CSU choice asked for it: a scan of metric_facts per page view)."""
    found = lookups.get(con)
    return sorted(((code, found.csu_names[pos]) for code, pos in found.csu_pos.items()
                   if code in found.csus_with_facts and scope.allows(code)), key=lambda r: (r[1], r[0]))


def freshness(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Latest load of each source: months held, rows, who loaded it and when."""
    return con.execute("""
        SELECT kind AS source, arg_max(period_to, loaded_at) AS latest_period, arg_max(row_count, loaded_at) AS rows,
               arg_max(loaded_by, loaded_at) AS loaded_by, max(loaded_at) AS loaded_at, count(*) AS loads
        FROM import_log GROUP BY kind ORDER BY kind""").df()
