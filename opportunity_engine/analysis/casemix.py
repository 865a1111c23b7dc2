"""Like-for-like targets: case-mix adjusted length of stay and a unit's own best sustained level.

A clinical director's first two questions at a CIP meeting are "our patients are sicker" and "you
are comparing us with a different service". This module holds the two references that answer them;
maths.py applies them.

* **Case mix (indirect standardisation).** For ``alos_elective`` and ``alos_non_elective`` a grain's
  expected length of stay at a percentile is the mean, over its spells, of each spell's HRG
  reference at that percentile; spells with no HRG code, or whose HRG has no reference, take the
  grain's plain target. So the target is "your spells, at the benchmark stay of each HRG". As the
  mean is linear, each of the five percentiles (p10 … p90) is adjusted the same way and every
  target (median, top quartile, top decile, best N %) follows from them. Peer: the HRG reference is
  the ``hrg_benchmarks`` of the peer group. Internal: it comes from the trust's own spells, each
  unit's (CSU × specialty) mean stay per HRG, units counted once, the same percentiles; a unit's
  HRG counts when it has at least ``hrg_min_spells`` spells of it in the window, and an HRG needs
  ``internal_min_units`` such units.
* **Own history.** With too few units of a specialty in the trust for an internal percentile, a
  unit is compared with itself at its best sustained level: its best rolling three-month
  (quarter) value over the last 36 months to the end of the window. One comparator, so the same
  level for every target (median, top quartile, top decile): it is what the unit has shown it can
  do. A quarter counts when its three months are all held and it alone has the metric's minimum
  volume (fewer cases make a lucky quarter, not a level).

Both are read once per data version and window (they do not depend on who asks), in one query
each, and kept as arrays keyed by grain.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np

from ..store.facts import CASEMIX_METRICS
from .lookups import Lookups
from .versioned import VersionedCache

QUANTILE_LIST = "[0.10, 0.25, 0.50, 0.75, 0.90]"
HISTORY_MONTHS = 36
QUARTER = 3


def grain_key(csu: str, specialty: str, metric: str) -> str:
    return f"{csu}\x1f{specialty}\x1f{metric}"


@dataclass(frozen=True)
class CaseMix:
    """Per grain of a length-of-stay metric: spells with an HRG code (``coded``), spells whose
    HRG has a reference (``matched``), Σ spells × the HRG's p10 … p90 over the matched ones
    (``weighted``, one row of five per grain), how many HRGs matched, and the reference's source."""
    rows: dict[str, int]
    coded: np.ndarray
    matched: np.ndarray
    weighted: np.ndarray
    hrgs: np.ndarray
    source: str


@dataclass(frozen=True)
class History:
    """Per grain: its best rolling quarter (as five equal "percentiles"), and how many quarters."""
    rows: dict[str, int]
    values: np.ndarray
    quarters: np.ndarray


@dataclass(frozen=True)
class References:
    version: str
    casemix: CaseMix
    history: History | None  # internal benchmarks only


_CACHE: VersionedCache[References] = VersionedCache(32, "data_version")


def references(con: duckdb.DuckDBPyConnection, lk: Lookups, windows: tuple, benchmark: str, peer_group: str,
               internal_min: int, min_spells: int) -> References:
    """The case-mix and (internal) own-history references for the analysis windows, cached per
    data version. ``version`` is the data version the queries read: the caller checks it is the
    version of its facts (an import in between means run again)."""
    key = (windows, benchmark, peer_group, internal_min, min_spells)
    hit = _CACHE.get(lk.version, key)
    if isinstance(hit, References):
        return hit
    internal = benchmark == "internal"
    casemix, version = _casemix(con, windows, internal, peer_group, internal_min, min_spells)
    history = _history(con, windows) if internal else None
    found = References(version, casemix, history)
    if version == lk.version:
        _CACHE.put(version, key, found)
    return found


def _window_sql(windows: tuple, metric_ids, params: dict) -> str:
    """``period`` within each metric's window, for the given metrics (false when none is held)."""
    parts = []
    for i, (p_from, p_to, ids) in enumerate(windows):
        mine = [m for m in ids if m in metric_ids]
        if mine:
            parts.append(f"(period BETWEEN $from{i} AND $to{i} AND list_contains($metrics{i}, metric_id))")
            params.update({f"from{i}": p_from, f"to{i}": p_to, f"metrics{i}": mine})
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def _casemix(con, windows, internal: bool, peer_group: str, internal_min: int, min_spells: int):
    params: dict = {}
    in_window = _window_sql(windows, CASEMIX_METRICS, params)
    if internal:
        params.update(units=internal_min, min_spells=min_spells)
        reference = f"""
            SELECT metric_id, hrg_code, quantile_cont(bed_days / spells, {QUANTILE_LIST}) AS q
            FROM cells WHERE spells >= $min_spells GROUP BY metric_id, hrg_code HAVING count(*) >= $units"""
    else:
        params["peer"] = peer_group
        reference = """
            SELECT CASE admission_type WHEN 'elective' THEN 'alos_elective' ELSE 'alos_non_elective' END AS metric_id,
                   hrg_code, [p10, p25, p50, p75, p90] AS q
            FROM hrg_benchmarks WHERE peer_group = $peer AND admission_type IN ('elective', 'non_elective')"""
    sql = f"""
        WITH cells AS (
            SELECT csu_code, specialty_code, metric_id, hrg_code, sum(spells) AS spells, sum(bed_days) AS bed_days
            FROM hrg_facts WHERE {in_window} GROUP BY csu_code, specialty_code, metric_id, hrg_code
        ), ref AS ({reference})
        SELECT c.csu_code, c.specialty_code, c.metric_id, sum(c.spells) AS coded,
               coalesce(sum(c.spells) FILTER (r.q IS NOT NULL), 0) AS matched,
               count(r.q) AS hrgs,
               {", ".join(f"coalesce(sum(c.spells * r.q[{k}]), 0) AS w{k}" for k in range(1, 6))}
        FROM cells c LEFT JOIN ref r USING (metric_id, hrg_code)
        GROUP BY c.csu_code, c.specialty_code, c.metric_id
        UNION ALL
        SELECT value, '', '', 0, 0, -1, 0, 0, 0, 0, 0 FROM settings WHERE key = 'data_version'"""
    rows = con.execute(sql, params).fetchall()
    version = next((r[0] for r in rows if r[5] == -1), "0")
    rows = [r for r in rows if r[5] != -1]
    if internal:
        source = (f"Internal: mean stay per HRG across the trust's units ({internal_min} or more units with "
                  f"{min_spells} or more spells of the HRG)")
    else:
        found = con.execute("SELECT string_agg(DISTINCT source, '; ' ORDER BY source) FROM hrg_benchmarks WHERE peer_group = ?",
                            [peer_group]).fetchone()[0]
        source = found or "no HRG benchmarks"
    casemix = CaseMix(
        rows={grain_key(r[0], r[1], r[2]): i for i, r in enumerate(rows)},
        coded=np.array([r[3] for r in rows], dtype=np.float64),
        matched=np.array([r[4] for r in rows], dtype=np.float64),
        weighted=np.array([r[6:11] for r in rows], dtype=np.float64).reshape(-1, 5),
        hrgs=np.array([r[5] for r in rows], dtype=np.int64),
        source=source)
    return casemix, version


def _history(con, windows) -> History:
    """Each unit's best rolling quarter over the 36 months to each metric's window end."""
    parts, params = [], {}
    for i, (_, p_to, ids) in enumerate(windows):
        parts.append(f"""(list_contains($metrics{i}, metric_id) AND period <= $to{i}
                          AND period > strftime(strptime($to{i}, '%Y-%m') - INTERVAL {HISTORY_MONTHS} MONTH, '%Y-%m'))""")
        params.update({f"to{i}": p_to, f"metrics{i}": list(ids)})
    if not parts:
        return History({}, np.zeros((0, 5)), np.zeros(0, dtype=np.int64))
    sql = f"""
        WITH f AS (
            SELECT csu_code, specialty_code, metric_id, numerator, denominator,
                   year(strptime(period, '%Y-%m')) * 12 + month(strptime(period, '%Y-%m')) AS m
            FROM metric_facts WHERE {" OR ".join(parts)}
        ), q AS (
            SELECT csu_code, specialty_code, metric_id,
                   sum(numerator) OVER w AS qn, sum(denominator) OVER w AS qd, count(*) OVER w AS qm
            FROM f WINDOW w AS (PARTITION BY csu_code, specialty_code, metric_id ORDER BY m
                                RANGE BETWEEN {QUARTER - 1} PRECEDING AND CURRENT ROW)
        )
        SELECT q.csu_code, q.specialty_code, q.metric_id,
               CASE WHEN any_value(direction) = 'lower' THEN min(qn / qd) ELSE max(qn / qd) END, count(*)
        FROM q JOIN metrics USING (metric_id)
        WHERE qm = {QUARTER} AND qd > 0 AND qd >= min_volume
        GROUP BY q.csu_code, q.specialty_code, q.metric_id"""
    rows = con.execute(sql, params).fetchall()
    best = np.array([r[3] for r in rows], dtype=np.float64)
    return History(rows={grain_key(r[0], r[1], r[2]): i for i, r in enumerate(rows)},
                   values=np.repeat(best[:, None], 5, axis=1),
                   quarters=np.array([r[4] for r in rows], dtype=np.int64))


def find(rows: dict[str, int], csu: np.ndarray, specialty: np.ndarray, metric: np.ndarray,
         mask: np.ndarray | None = None) -> np.ndarray:
    """Row of each grain in ``rows`` (-1 where absent or outside ``mask``)."""
    out = np.full(len(csu), -1, dtype=np.int64)
    at = np.flatnonzero(mask) if mask is not None else np.arange(len(csu))
    for i in at:
        out[i] = rows.get(grain_key(csu[i], specialty[i], metric[i]), -1)
    return out
