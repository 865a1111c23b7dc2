"""The small tables the opportunity maths reads beside the facts, held as arrays per data version.

The catalogue, peer benchmarks, unit costs, CSU and specialty names and each metric's latest month
change only when data is imported, a unit cost is edited or the demo is rebuilt, and each of those
bumps the database's data version (a fresh UUID). So they are read once per data version and
kept here as numpy look-up tables; computing the opportunities then costs one query over
``metric_facts`` plus array arithmetic, instead of re-joining five small tables on every call.
Version "0" (a database never loaded) is never cached.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from itertools import repeat

import duckdb
import numpy as np

VERSION_SQL = "SELECT value FROM settings WHERE key = 'data_version'"
PERCENTILES = ("p10", "p25", "p50", "p75", "p90")


@dataclass(frozen=True)
class Reference:
    """Values keyed by (metric, specialty) with the specialty → all-specialty fallback resolved:
    ``index[metric, specialty]`` is the row of ``values``/``sources`` that applies (the last row,
    NaN/None, when neither exists) and ``level`` says which ("specialty", "all specialties", None)."""
    index: np.ndarray
    level: np.ndarray
    values: np.ndarray
    sources: np.ndarray

    @classmethod
    def resolve(cls, specific: np.ndarray, general: np.ndarray, values: np.ndarray, sources) -> Reference:
        """From the rows of each key's own entry and of its all-specialty entry (-1: none)."""
        index, level = fallback(specific, general)
        pad = np.full((1,) + values.shape[1:], np.nan)
        return cls(index, level, np.concatenate([values, pad]),
                   np.concatenate([np.asarray(sources, dtype=object), np.array([None], dtype=object)]))


def fallback(specific: np.ndarray, general: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The specialty's own row else the all-specialty row (-1: neither), and the level's label."""
    chosen = np.where(specific >= 0, specific, general)
    level = np.full(chosen.shape, None, dtype=object)
    level[general >= 0] = "all specialties"
    level[specific >= 0] = "specialty"
    return chosen, level


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per data version
class Lookups:
    """Arrays indexed by metric position and by CSU and specialty position.

    Positions follow the codes' sort order (metric ids, CSU codes, specialty codes with '' first), so
    sorting by position is sorting by code. A code missing from the reference tables gets the
    position after the last, whose benchmark and unit-cost entries are always empty.
    """
    version: str
    metric_ids: tuple[str, ...]
    metric_pos: dict[str, int]
    metric: dict[str, np.ndarray]        # catalogue columns, one array each, by metric position
    overlap_code: np.ndarray             # [metric] -> integer per overlap group (0: none)
    latest: dict[str, str]               # metric_id -> latest period held in metric_facts
    csu_pos: dict[str, int]
    csu_names: np.ndarray                # [csu position] -> name (None past the end)
    specialty_pos: dict[str, int]        # '' (CSU-wide) is position 0
    specialty_names: np.ndarray          # [specialty position] -> name ("CSU-wide" for '')
    peer: dict[str, Reference]           # peer_group -> percentiles (p10, p25, p50, p75, p90)
    unit_costs: Reference                # by metric (through its cost driver) and specialty
    csus_with_facts: frozenset[str]      # CSU codes that have metric facts (the pages' CSU choices)

    def benchmarks(self, peer_group: str) -> Reference:
        """The peer group's percentiles; none at all (every target missing) for an unknown group."""
        if peer_group in self.peer:
            return self.peer[peer_group]
        none = np.full(self.unit_costs.index.shape, -1, dtype=np.int64)
        return Reference.resolve(none, none, np.zeros((0, 5)), [])


def positions(codes: np.ndarray, pos: dict[str, int]) -> tuple[np.ndarray, bool]:
    """Position of each code (len(pos) when unknown) and whether every code was known."""
    missing = len(pos)
    out = np.fromiter(map(pos.get, codes, repeat(missing)), dtype=np.int64, count=len(codes))
    return out, not (out == missing).any()


_METRIC_COLUMNS = ("metric_name", "domain", "direction", "unit", "value_format", "cost_driver", "saving_type",
                   "overlap_group", "min_volume", "funnel", "capacity_unit", "capacity_divisor")

_CACHE: OrderedDict[str, Lookups] = OrderedDict()
_CACHE_SIZE = 8
_LOCK = threading.Lock()
_last: Lookups | None = None


_PINNED = threading.local()


def version(con: duckdb.DuckDBPyConnection) -> str:
    """The database's data version, or the one :func:`pin_version` pinned for this thread."""
    pinned = getattr(_PINNED, "version", None)
    if pinned is not None:
        return pinned
    row = con.execute(VERSION_SQL).fetchone()
    return row[0] if row else "0"


def pin_version(con: duckdb.DuckDBPyConnection | None) -> None:
    """Read the data version once for the rest of this thread's work (one page run), or forget it
    (``None``). A page run asked for it seven times, each a query; one version for the whole run
    also means one page shows one moment of the data. Results stay right if an import commits
    during the run: the opportunities' own query checks the version of the facts it reads."""
    _PINNED.version = None
    if con is not None:
        _PINNED.version = version(con)


def latest_known() -> Lookups | None:
    """The look-ups used most recently: a guess at the caller's database, checked against the
    data version its query returns. Never one of version "0", which two databases can share."""
    return _last if _last is not None and _last.version != "0" else None


def get(con: duckdb.DuckDBPyConnection, expected: str | None = None) -> Lookups:
    """Look-ups for the database's current data version (``expected`` when the caller has just
    read it from a query), from the cache or read afresh."""
    global _last
    wanted = expected if expected is not None else version(con)
    with _LOCK:
        hit = _CACHE.get(wanted) if wanted != "0" else None
        if hit is not None:
            _CACHE.move_to_end(wanted)
            _last = hit
            return hit
    found = _load(con)
    if found.version != "0":
        with _LOCK:
            _CACHE[found.version] = found
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    _last = found
    return found


def _load(con: duckdb.DuckDBPyConnection) -> Lookups:
    """Read every table at one data version: re-read when an import committed in between."""
    for _ in range(5):
        before = version(con)
        found = _read(con, before)
        if version(con) == before:
            return found
    return found


def _read(con: duckdb.DuckDBPyConnection, data_version: str) -> Lookups:
    cols = ", ".join(_METRIC_COLUMNS)
    rows = con.execute(f"SELECT metric_id, {cols} FROM metrics ORDER BY metric_id").fetchall()
    metric_ids = tuple(r[0] for r in rows)
    metric_pos = {m: i for i, m in enumerate(metric_ids)}
    metric = {}
    for j, name in enumerate(_METRIC_COLUMNS, start=1):
        values = [r[j] for r in rows]
        numeric = name in ("min_volume", "capacity_divisor")
        metric[name] = np.array(values, dtype=np.float64 if numeric else object)
    metric["lower"] = metric["direction"] == "lower"
    groups = sorted(set(metric["overlap_group"]) - {""})
    overlap_code = np.array([groups.index(g) + 1 if g else 0 for g in metric["overlap_group"]], dtype=np.int64)

    latest = dict(con.execute("SELECT metric_id, max(period) FROM metric_facts GROUP BY metric_id").fetchall())
    with_facts = frozenset(r[0] for r in con.execute("SELECT DISTINCT csu_code FROM metric_facts").fetchall())
    named = dict(con.execute("SELECT specialty_code, specialty_name FROM specialties").fetchall())
    # Every code a benchmark or unit cost names gets a position, listed in the reference table or not,
    # so matching is by code exactly as a join on the code would be.
    codes = [r[0] for r in con.execute("""SELECT specialty_code FROM specialties UNION SELECT specialty_code FROM benchmarks
                                          UNION SELECT specialty_code FROM unit_costs UNION SELECT ''
                                          ORDER BY 1""").fetchall()]
    specialty_pos = {code: i for i, code in enumerate(codes)}
    specialty_names = np.array(["CSU-wide" if c == "" else named.get(c, c) for c in codes] + [None], dtype=object)
    csus = con.execute("SELECT csu_code, csu_name FROM csus ORDER BY csu_code").fetchall()
    csu_pos = {code: i for i, (code, _) in enumerate(csus)}
    csu_names = np.array([name for _, name in csus] + [None], dtype=object)

    peer: dict[str, Reference] = {}
    bench = con.execute(f"""SELECT peer_group, metric_id, specialty_code, {', '.join(PERCENTILES)}, source
                            FROM benchmarks ORDER BY peer_group, metric_id, specialty_code""").fetchall()
    for group in sorted({r[0] for r in bench}):
        mine = [r for r in bench if r[0] == group and r[1] in metric_pos]
        # Like for like (issue 12): a specialty is compared with the same specialty at peers, never
        # with peers' blend of all specialties (see _reference).
        peer[group] = _reference([(r[1], r[2]) for r in mine], metric_pos, specialty_pos,
                                 np.array([r[3:8] for r in mine], dtype=np.float64).reshape(-1, 5),
                                 [r[8] for r in mine], all_specialty_fallback=False)

    costs = con.execute("SELECT cost_driver, specialty_code, unit_cost_gbp, source FROM unit_costs").fetchall()
    # Unit costs are keyed by cost driver; the maths wants them by metric, so spread each
    # driver's rows over the metrics that use it.
    by_metric = [(m, r[1], r[2], r[3]) for m in metric_ids for r in costs
                 if r[0] == metric["cost_driver"][metric_pos[m]]]
    unit_costs = _reference([(r[0], r[1]) for r in by_metric], metric_pos, specialty_pos,
                            np.array([r[2] for r in by_metric], dtype=np.float64), [r[3] for r in by_metric])
    return Lookups(data_version, metric_ids, metric_pos, metric, overlap_code, latest, csu_pos, csu_names,
                   specialty_pos, specialty_names, peer, unit_costs, with_facts)


def _reference(keys: list[tuple[str, str]], metric_pos: dict[str, int], specialty_pos: dict[str, int],
               values: np.ndarray, sources: list[str], all_specialty_fallback: bool = True) -> Reference:
    """Resolve rows keyed (metric_id, specialty_code; '' = all specialties) for every
    (metric, specialty position); the extra last specialty position (unknown codes) falls back.

    ``all_specialty_fallback`` False (peer benchmarks): where the source gives a metric specialty by
    specialty, its all-specialty row is a blend of different services and says nothing fair about
    a specialty left out, so that specialty has no target; the row still serves CSU-wide grains,
    and a metric given for all specialties only (one standard for every service) applies to each.
    Unit costs always fall back (a bed day's cost is a fair price for any specialty)."""
    n_metric, n_spec = len(metric_pos), len(specialty_pos) + 1
    specific = np.full((n_metric, n_spec), -1, dtype=np.int64)
    general = np.full(n_metric, -1, dtype=np.int64)
    for i, (metric_id, code) in enumerate(keys):
        if code == "":
            general[metric_pos[metric_id]] = i
        else:
            specific[metric_pos[metric_id], specialty_pos[code]] = i
    fallback_rows = np.broadcast_to(general[:, None], specific.shape)
    if not all_specialty_fallback:
        by_specialty = np.asarray((specific >= 0).any(axis=1), dtype=bool)  # given specialty by specialty
        fallback_rows = np.where(by_specialty[:, None], -1, fallback_rows)
        fallback_rows[:, specialty_pos[""]] = general
    return Reference.resolve(specific, fallback_rows, values, sources)
