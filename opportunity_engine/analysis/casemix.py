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

import threading
from collections import OrderedDict
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from ..store.facts import CASEMIX_METRICS
from .lookups import Lookups

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


_CACHE: OrderedDict[tuple, References] = OrderedDict()
_CACHE_SIZE = 32
_LOCK = threading.Lock()


def references(con: duckdb.DuckDBPyConnection, lk: Lookups, windows: tuple, benchmark: str, peer_group: str,
               internal_min: int, min_spells: int) -> References:
    """The case-mix and (internal) own-history references for the analysis windows, cached per
    data version. ``version`` is the data version the queries read: the caller checks it is the
    version of its facts (an import in between means run again)."""
    key = (lk.version, windows, benchmark, peer_group, internal_min, min_spells)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    internal = benchmark == "internal"
    casemix, version = _casemix(con, windows, internal, peer_group, internal_min, min_spells)
    history = _history(con, windows) if internal else None
    found = References(version, casemix, history)
    if version != "0" and version == lk.version:
        with _LOCK:
            _CACHE[key] = found
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
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


# --- What Metric detail shows: the comparator set that produced one grain's target ---------------

def hrg_breakdown(con: duckdb.DuckDBPyConnection, row, basis) -> list[dict]:
    """One grain's length-of-stay target spelled out: per HRG its spells, its mean stay and the
    reference stay at the chosen target, then one line for the spells with no reference (at the
    plain target). Σ spells × reference ÷ Σ spells is the target on the page. ``row`` is one
    opportunities row (it carries the window and the peer group), ``basis`` the page's Basis."""
    from .maths import _chosen  # maths imports this module

    params = {"csu": row.csu_code, "specialty": row.specialty_code, "metric": row.metric_id,
              "from": row.period_from, "to": row.period_to}
    cfg_units, cfg_spells = _internal_settings()
    if basis.benchmark == "internal":
        params.update(units=cfg_units, min_spells=cfg_spells)
        reference = f"""
            SELECT hrg_code, quantile_cont(bed_days / spells, {QUANTILE_LIST}) AS q FROM (
                SELECT csu_code, specialty_code, hrg_code, sum(spells) AS spells, sum(bed_days) AS bed_days
                FROM hrg_facts WHERE metric_id = $metric AND period BETWEEN $from AND $to GROUP BY ALL)
            WHERE spells >= $min_spells GROUP BY hrg_code HAVING count(*) >= $units"""
    else:
        params.update(peer=row.peer_group, type=CASEMIX_METRICS.get(row.metric_id, ""))
        reference = """SELECT hrg_code, [p10, p25, p50, p75, p90] AS q FROM hrg_benchmarks
                       WHERE peer_group = $peer AND admission_type = $type"""
    rows = con.execute(f"""
        WITH mine AS (
            SELECT hrg_code, sum(spells) AS spells, sum(bed_days) AS bed_days FROM hrg_facts
            WHERE csu_code = $csu AND specialty_code = $specialty AND metric_id = $metric
              AND period BETWEEN $from AND $to GROUP BY hrg_code
        ), ref AS ({reference})
        SELECT m.hrg_code, m.spells, m.bed_days, r.q FROM mine m LEFT JOIN ref r USING (hrg_code)
        ORDER BY r.q IS NULL, m.spells DESC, m.hrg_code""", params).fetchall()
    lower = np.array([True])
    out, matched = [], 0.0
    for hrg, spells, bed_days, q in rows:
        if q is None:
            continue
        ref = float(_chosen(np.array([q], dtype=np.float64), lower, basis)[0])
        matched += spells
        out.append({"HRG": hrg, "Spells": spells, "Mean stay": bed_days / spells, "Reference stay": ref,
                    "Expected bed days": spells * ref, "Bed days": bed_days})
    rest = max(float(row.denominator) - matched, 0.0)
    if rest > 0:
        bed_days = float(row.numerator) - sum(o["Bed days"] for o in out)
        out.append({"HRG": "No HRG reference", "Spells": rest, "Mean stay": bed_days / rest,
                    "Reference stay": float(row.crude_target_value),
                    "Expected bed days": rest * float(row.crude_target_value), "Bed days": bed_days})
    return out


def _internal_settings() -> tuple[int, int]:
    from ..config import settings

    cfg = settings()["analysis"]
    return int(cfg["internal_min_units"]), int(cfg["hrg_min_spells"])


def own_quarters(con: duckdb.DuckDBPyConnection, row) -> list[dict]:
    """One unit's rolling quarters over the 36 months to its window end (what its own-history
    target is the best of): quarter ending, value, and whether it counted."""
    rows = con.execute(f"""
        WITH f AS (
            SELECT period, numerator, denominator,
                   year(strptime(period, '%Y-%m')) * 12 + month(strptime(period, '%Y-%m')) AS m
            FROM metric_facts WHERE csu_code = $csu AND specialty_code = $specialty AND metric_id = $metric
              AND period <= $to AND period > strftime(strptime($to, '%Y-%m') - INTERVAL {HISTORY_MONTHS} MONTH, '%Y-%m')
        )
        SELECT period, sum(numerator) OVER w / sum(denominator) OVER w, count(*) OVER w, sum(denominator) OVER w
        FROM f WINDOW w AS (ORDER BY m RANGE BETWEEN {QUARTER - 1} PRECEDING AND CURRENT ROW)
        ORDER BY period""", {"csu": row.csu_code, "specialty": row.specialty_code, "metric": row.metric_id,
                             "to": row.period_to}).fetchall()
    return [{"Quarter ending": p, "value": v, "counted": n == QUARTER and d >= row.min_volume}
            for p, v, n, d in rows if n == QUARTER]


@dataclass(frozen=True)
class ComparatorChart:
    """The comparator set behind one grain's target, ready to draw: ``kind`` is "units" (bars of
    ``frame.value`` per ``frame.label``, this unit in ``frame.this``, the target as a line), or
    "hrg" (per HRG the unit's mean stay beside the reference stay)."""
    kind: str
    title: str
    caption: str
    frame: pd.DataFrame
    whole_scale: bool = True  # rates drawn on 0-100 %; False for one unit's own quarters (they vary little)


def comparator_chart(con: duckdb.DuckDBPyConnection, scope, basis, row) -> ComparatorChart:
    """Only what produced the target: the specialty's own units (internal), the unit's own
    quarters (own history), its HRGs (case mix) or the peer percentiles (peer); never units of
    other specialties. Units outside the caller's scope are anonymised."""
    from ..scope import Scope
    from .opportunities import opportunities

    basis_kind = row.target_basis
    if basis_kind == "case mix":
        lines = hrg_breakdown(con, row, basis)
        frame = pd.DataFrame([{"label": o["HRG"], "Mean stay": o["Mean stay"], "Reference stay": o["Reference stay"],
                               "spells": o["Spells"]} for o in lines])
        return ComparatorChart("hrg", "This unit's spells by HRG",
                               "Orange: this unit's mean stay per HRG; green: the reference stay at the chosen "
                               "target. The target is the spells-weighted mean of the references.", frame)
    if basis_kind == "own history":
        quarters = [q for q in own_quarters(con, row) if q["counted"]]
        frame = pd.DataFrame({"label": [q["Quarter ending"] for q in quarters],
                              "value": [q["value"] for q in quarters], "this": True})
        return ComparatorChart("units", "This unit's rolling quarters (last 36 months)",
                               "Too few units of this specialty in the trust to compare: the target (green) is "
                               "the unit's own best quarter.", frame, whole_scale=False)
    if basis.benchmark == "internal" and basis_kind in ("specialty", "CSU-wide"):
        everyone = opportunities(con, Scope.trust(), basis, metric=row.metric_id)
        same = everyone[(everyone["specialty_code"] == row.specialty_code) & ~everyone["low_volume"]]
        same = same.sort_values("actual", kind="stable")
        visible = same["csu_code"].map(scope.allows)
        this = (same["csu_code"] == row.csu_code) & (same["specialty_code"] == row.specialty_code)
        frame = pd.DataFrame({"label": (same["csu_code"] + " · " + same["specialty_name"]).where(visible, "Other unit"),
                              "value": same["actual"], "this": this}).reset_index(drop=True)
        what = "CSUs" if basis_kind == "CSU-wide" else "units of this specialty"
        return ComparatorChart("units", f"The trust's {len(frame)} {what}",
                               "The internal percentiles are taken across these units. Orange: this unit; other "
                               "CSUs' units are anonymised. Green: target.", frame)
    frame = pd.DataFrame({"label": ["Peer p10", "Peer p25", "Peer p50", "Peer p75", "Peer p90", "This unit"],
                          "value": [row.p10, row.p25, row.p50, row.p75, row.p90, row.actual],
                          "this": [False] * 5 + [True]})
    level = "this specialty" if basis_kind == "specialty" else "all specialties (no benchmark for this specialty)"
    return ComparatorChart("units", f"Peer trusts, {level}",
                           "Grey: the peer distribution the target is read from; orange: this unit. Green: target.",
                           frame)


def target_note(row) -> str | None:
    """One sentence beside the target saying what it rests on, when it is not the plain
    specialty benchmark: case mix (with the share of spells matched and the length of stay
    index), the unit's own history, or a fall-back to all specialties."""
    basis_kind = row.target_basis
    if basis_kind == "case mix":
        return (f"Adjusted for case mix: {row.casemix_share:.0%} of spells matched an HRG reference. "
                f"Length of stay index {row.los_index:.2f} (actual ÷ expected for these spells at the median).")
    if row.metric_id in CASEMIX_METRICS and pd.notna(row.target_value):
        return "Not adjusted for case mix: no spell in this window has an HRG with a reference (crude figure)."
    if basis_kind == "own history":
        return ("Compared with its own best sustained level (its best rolling quarter of the last "
                f"{HISTORY_MONTHS} months): the trust has too few units of this specialty to compare like with like.")
    if basis_kind == "all specialties" and row.specialty_code != "":
        return "No benchmark for this specialty: the target is the all-specialty one (treat with care)."
    return None
