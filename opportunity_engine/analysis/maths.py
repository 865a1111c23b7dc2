"""The opportunity maths of METRICS.md as array arithmetic over the grains of one query.

Input: per grain (CSU, specialty, metric) Σnumerator, Σdenominator and months, from
opportunities.py; the look-up tables of lookups.py. Output: the opportunities frame, one row per
grain, ranked. Each step is one numpy operation over all grains at once, which is what makes a
fresh computation cost little more than the GROUP BY feeding it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import casemix, stats
from .lookups import Lookups, Reference, positions
from .stats import Z95

QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)

# The columns the CLI contract (DATA.md) promises first, then the rest in a stable order.
COLUMNS = [
    "csu_code", "specialty_code", "metric_id", "numerator", "denominator", "actual", "target_value",
    "gap_units", "unit_cost_gbp", "opportunity_gbp", "saving_type", "low_volume", "significant",
    "csu_name", "specialty_name", "metric_name", "domain", "direction", "unit", "value_format",
    "period_from", "period_to", "months", "benchmark_level", "benchmark_source",
    "p10", "p25", "p50", "p75", "p90", "target_median", "target_top_quartile", "target_top_decile",
    "opportunity_median_gbp", "opportunity_top_quartile_gbp", "opportunity_top_decile_gbp",
    "unit_cost_level", "unit_cost_source", "cost_driver", "overlap_group", "counted_in_net",
    "min_volume", "funnel", "z_score", "capacity_units", "capacity_unit", "rank_group", "peer_group",
    # Over-dispersion (stats.py) and the 80 % range of the £ (h4, issue 12 points 3-4).
    "significant_naive", "z_adjusted", "phi", "tau2", "actual_se", "opportunity_low_gbp", "opportunity_high_gbp",
    # Like-for-like (casemix.py): what the target rests on, the share of spells matched to an HRG
    # reference (length of stay), actual ÷ expected at the median, and the crude figures.
    "target_basis", "casemix_share", "los_index", "crude_target_value", "crude_opportunity_gbp",
]
PERCENTILE_COLUMNS = ("p10", "p25", "p50", "p75", "p90")
_KNOTS = np.array([10.0, 25.0, 50.0, 75.0, 90.0])  # the percentiles a benchmark holds
# The columns by kind, in the order the arrays below are stacked.
_FLOAT_COLUMNS = ["numerator", "denominator", "actual", "target_value", "gap_units", "unit_cost_gbp", "opportunity_gbp",
                  *PERCENTILE_COLUMNS, "target_median", "target_top_quartile", "target_top_decile",
                  "opportunity_median_gbp", "opportunity_top_quartile_gbp", "opportunity_top_decile_gbp",
                  "min_volume", "z_score", "capacity_units",
                  "z_adjusted", "phi", "tau2", "actual_se", "opportunity_low_gbp", "opportunity_high_gbp",
                  "casemix_share", "los_index", "crude_target_value", "crude_opportunity_gbp"]
_GRAIN_TEXTS = ["csu_code", "specialty_code", "metric_id", "csu_name", "specialty_name", "benchmark_level",
                "benchmark_source", "unit_cost_level", "unit_cost_source", "peer_group", "target_basis"]
# Text columns copied from the catalogue entry of each row's metric.
_CATALOGUE_TEXTS = ["saving_type", "metric_name", "domain", "direction", "unit", "value_format", "cost_driver",
                    "overlap_group", "funnel", "capacity_unit"]
_TEXT_COLUMNS = _GRAIN_TEXTS + _CATALOGUE_TEXTS + ["period_from", "period_to"]
_FLAG_COLUMNS = ["low_volume", "significant", "counted_in_net", "significant_naive"]
# Column labels as ready-made indexes: built per call from lists, pandas infers a string type for
# the labels each time, which cost more than the maths.
_LABELS = {name: pd.Index(cols, dtype=object) for name, cols in (
    ("all", COLUMNS), ("float", _FLOAT_COLUMNS), ("text", _TEXT_COLUMNS), ("flag", _FLAG_COLUMNS),
    ("int", ["months", "rank_group"]))}


class Window(NamedTuple):
    """The months over which some metrics are measured (each metric's latest 12 unless chosen)."""
    period_from: str
    period_to: str
    metric_ids: tuple[str, ...]


def empty() -> pd.DataFrame:
    """No opportunities, with every column and its type."""
    types = ({c: float for c in _FLOAT_COLUMNS} | {c: object for c in _GRAIN_TEXTS + _CATALOGUE_TEXTS}
             | {"period_from": object, "period_to": object, "low_volume": bool, "significant": bool,
                "counted_in_net": bool, "significant_naive": bool, "months": "int64", "rank_group": "int32"})
    return pd.DataFrame({c: pd.Series(dtype=types[c]) for c in COLUMNS})


def opportunities(g: dict[str, np.ndarray], lk: Lookups, basis, windows: tuple[Window, ...],
                  wanted: np.ndarray | None, internal_min: int, peer_group: str,
                  dispersion: tuple[np.ndarray, np.ndarray] | None = None,
                  refs: casemix.References | None = None) -> pd.DataFrame:
    """The opportunities frame from the grains ``g`` (columns csu_code, specialty_code, metric_id,
    num, den, months, rate_sum, rate_sq, rate_months as arrays). ``wanted`` marks the caller's rows
    when the query returned the whole trust for an internal benchmark; the others are used for
    percentiles and then dropped. ``dispersion`` is (φ, τ²) by metric position, estimated across
    the whole trust; None when ``g`` is the whole trust, which then estimates them itself.
    ``refs`` (casemix.py) adjusts length-of-stay targets for case mix and gives internal
    benchmarks the unit's own history where its specialty has too few units."""
    mi, known = positions(g["metric_id"], lk.metric_pos)
    if not known:  # facts of a metric no longer in the catalogue are not opportunities
        keep = mi < len(lk.metric_ids)
        g, mi = _rows(g, keep), mi[keep]
        wanted = None if wanted is None else wanted[keep]
    si, spec_known = positions(g["specialty_code"], lk.specialty_pos)
    if basis.benchmark == "internal":
        bench = _internal(g, mi, si, spec_known, lk, internal_min, refs.history if refs else None)
        b_idx, benchmark_level = bench.index, bench.level
    else:
        bench = lk.benchmarks(peer_group)
        b_idx, benchmark_level = bench.index[mi, si], bench.level[mi, si]
    if wanted is not None:
        keep = np.asarray(wanted, dtype=bool)
        g, mi, si, b_idx, benchmark_level = _rows(g, keep), mi[keep], si[keep], b_idx[keep], benchmark_level[keep]
    if len(mi) == 0:
        return empty()
    ci, csu_known = positions(g["csu_code"], lk.csu_pos)
    num, den, months = g["num"], g["den"], g["months"]
    metric = lk.metric
    lower, min_volume, funnel = metric["lower"][mi], metric["min_volume"][mi], metric["funnel"][mi]
    crude_pct = bench.values[b_idx]
    pct, share, sources = _adjust(g, mi, lk, crude_pct, bench.sources[b_idx], refs)
    costs = lk.unit_costs
    c_idx = costs.index[mi, si]
    unit_cost = costs.values[c_idx]
    cost = np.nan_to_num(unit_cost, nan=0.0)

    # Direction decides the percentile: top quartile is p25 when lower is better, p75 when higher.
    targets = {"median": pct[:, 2], "top_quartile": np.where(lower, pct[:, 1], pct[:, 3]),
               "top_decile": np.where(lower, pct[:, 0], pct[:, 4])}
    with np.errstate(invalid="ignore", divide="ignore"):
        gaps = {k: _gap(t, lower, num, den) for k, t in targets.items()}
        if basis.target in targets:
            target, gap = targets[basis.target], gaps[basis.target]
        else:
            target = _best(pct, lower, basis.best)
            gap = _gap(target, lower, num, den)
        actual = num / den
        crude_target = _chosen(crude_pct, lower, basis)
        crude_opportunity = _gap(crude_target, lower, num, den) * cost
        los_index = np.where(np.isnan(share), np.nan, actual / targets["median"])
        opportunity = gap * cost
        # Capacity a year, annualised over the window like the £ (not over the months this grain
        # has data: a unit with 6 months of a 12-month window would otherwise count double).
        capacity = np.where(metric["capacity_unit"][mi] != "",
                            gap / metric["capacity_divisor"][mi] * 12.0 / _window_lengths(lk, windows)[mi], np.nan)
    # Funnel plots (stats.py): naive z on the funnel's scale (arcsine for a proportion, log
    # observed ÷ expected for a count per unit); φ and τ² per metric from every unit of the trust;
    # significant only outside the over-dispersed 95 % limit.
    y, t, s = stats.funnel_scale(funnel, num, den, target)
    z = stats.funnel_z(y, t, s, actual, target)
    if dispersion is None:
        phi_m, tau2_m, _ = stats.overdispersion(mi, z, s, len(lk.metric_ids))
    else:
        phi_m, tau2_m = dispersion
    phi, tau2 = phi_m[mi], tau2_m[mi]
    z_adjusted = stats.funnel_z(y, t, s, actual, target, tau2)
    # No target is never significant; not testable (money shares: no funnel) counts as real.
    significant_naive = np.where(np.isnan(z), True, np.abs(z) > Z95) & ~np.isnan(target)
    significant = np.where(np.isnan(z_adjusted), True, np.abs(z_adjusted) > Z95) & ~np.isnan(target)
    # The 80 % range: the unit's own rate ± 1.2816 standard errors of its mean monthly rate,
    # through the same gap and unit cost (a bound past the target is clipped at £0).
    actual_se = stats.rate_se(g["rate_sum"], g["rate_sq"], g["rate_months"])
    shift = np.where(lower, -1.0, 1.0) * stats.Z80 * np.nan_to_num(actual_se) * den
    with np.errstate(invalid="ignore"):
        opportunity_low = _gap(target, lower, num + shift, den) * cost
        opportunity_high = _gap(target, lower, num - shift, den) * cost
    low_volume = den < min_volume
    rank_group = np.where(~low_volume & significant & (opportunity > 0), 0, 1).astype(np.int32)

    # Grains and code order (CSU, specialty, metric: the order among equal £) from positions,
    # which sort as the codes do; from the codes themselves when one is missing from the lookups.
    code_order: tuple[np.ndarray, ...]
    if csu_known and spec_known:
        grain, code_order = ci * len(lk.specialty_pos) + si, (mi, si, ci)
    else:
        grain, code_order = _codes(g)
    counted = _net(grain, lk.overlap_code[mi], mi, opportunity)
    # Ranked: real gaps first, then by £, then code order.
    r = np.lexsort(code_order + (-opportunity, rank_group))
    mr = mi[r]

    floats = np.vstack([num, den, actual, target, gap, unit_cost, opportunity, *pct.T, targets["median"],
                        targets["top_quartile"], targets["top_decile"], gaps["median"] * cost,
                        gaps["top_quartile"] * cost, gaps["top_decile"] * cost, min_volume, z, capacity,
                        z_adjusted, phi, tau2, actual_se, opportunity_low, opportunity_high,
                        share, los_index, crude_target, crude_opportunity])[:, r]
    target_basis = np.where(share > 0, "case mix", benchmark_level)
    grain_texts = np.vstack([g["csu_code"], g["specialty_code"], g["metric_id"], lk.csu_names[ci],
                             _specialty_names(lk, si, g["specialty_code"]), benchmark_level,
                             sources, costs.level[mi, si], costs.sources[c_idx],
                             # the group a peer target came from (None for internal benchmarks)
                             np.full(len(r), None if basis.benchmark == "internal" else peer_group, dtype=object),
                             target_basis])[:, r]
    metric_texts = _metric_texts(lk, windows)[:, mr]
    flags = np.vstack([low_volume, significant, counted, significant_naive])[:, r]
    # One frame per kind of column, side by side, in the promised order. Text stays object dtype as
    # in empty(): left to itself pandas infers its string type, whose missing value is a NaN (truthy),
    # and callers test `benchmark_level or "none"`. (A dict of columns costs several times more.)
    parts = [pd.DataFrame(floats.T, columns=_LABELS["float"]),
             pd.DataFrame(np.vstack([grain_texts, metric_texts]).T, columns=_LABELS["text"], dtype=object),
             pd.DataFrame(flags.T, columns=_LABELS["flag"]),
             pd.DataFrame(dict(zip(_LABELS["int"], (months[r].astype(np.int64), rank_group[r]))))]
    return pd.concat(parts, axis=1).reindex(columns=_LABELS["all"])


# Keyed on the look-ups, one object per data version: a small size lets old versions' look-ups go
# (64 kept up to 64 of them alive after the look-ups' own cache had let them go).
@lru_cache(maxsize=16)
def _metric_texts(lk: Lookups, windows: tuple[Window, ...]) -> np.ndarray:
    """The per-metric text columns (catalogue entry, analysis window) as one block, by metric."""
    window = {mid: (w.period_from, w.period_to) for w in windows for mid in w.metric_ids}
    spans = np.array([window.get(x, (None, None)) for x in lk.metric_ids], dtype=object).reshape(-1, 2)
    return np.vstack([lk.metric[c] for c in _CATALOGUE_TEXTS] + [spans[:, 0], spans[:, 1]])


@lru_cache(maxsize=16)
def _window_lengths(lk: Lookups, windows: tuple[Window, ...]) -> np.ndarray:
    """Months in each metric's analysis window (from and to inclusive), by metric position."""
    length = np.ones(len(lk.metric_ids))
    for w in windows:
        span = _month_index(w.period_to) - _month_index(w.period_from) + 1
        for metric_id in w.metric_ids:
            length[lk.metric_pos[metric_id]] = max(span, 1)
    return length


def _month_index(period: str) -> int:
    return int(period[:4]) * 12 + int(period[5:7]) - 1


def _gap(target: np.ndarray, lower: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Gap in numerator units, clamped at zero (a grain beating its target never offsets another);
    no target, no gap."""
    return np.nan_to_num(np.maximum(0.0, np.where(lower, num - target * den, target * den - num)), nan=0.0)


def _chosen(pct: np.ndarray, lower: np.ndarray, basis) -> np.ndarray:
    """The basis's target from percentiles p10 … p90 (the direction decides which)."""
    if basis.target == "median":
        return pct[:, 2]
    if basis.target == "top_quartile":
        return np.where(lower, pct[:, 1], pct[:, 3])
    if basis.target == "top_decile":
        return np.where(lower, pct[:, 0], pct[:, 4])
    return _best(pct, lower, basis.best)


def _adjust(g: dict[str, np.ndarray], mi: np.ndarray, lk: Lookups, pct: np.ndarray, sources: np.ndarray,
            refs: casemix.References | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Length-of-stay percentiles adjusted for case mix (indirect standardisation, casemix.py):
    per grain, (Σ spells × their HRG's percentile + unmatched spells × the plain percentile) ÷
    spells. Returns the percentiles, the share of spells matched (NaN for other metrics, 0 for a
    length-of-stay grain with none) and the benchmark source of each row."""
    los = np.isin(mi, [lk.metric_pos[m] for m in casemix.CASEMIX_METRICS if m in lk.metric_pos])
    share = np.where(los, 0.0, np.nan)
    if refs is None or not los.any():
        return pct, share, sources
    cm = refs.casemix
    at = casemix.find(cm.rows, g["csu_code"], g["specialty_code"], g["metric_id"], los)
    has = at >= 0
    has[has] = cm.matched[at[has]] > 0
    if not has.any():
        return pct, share, sources
    rows, den = at[has], g["den"][has]
    matched = cm.matched[rows]
    unmatched = np.maximum(den - matched, 0.0)[:, None]
    with np.errstate(invalid="ignore"):
        plain = np.where(unmatched > 0, pct[has] * unmatched, 0.0)  # all matched: no plain part needed
    adjusted, sources = pct.copy(), sources.copy()
    adjusted[has] = (cm.weighted[rows] + plain) / den[:, None]
    share[has] = np.minimum(matched / den, 1.0)
    for i, row in zip(np.flatnonzero(has), rows):
        sources[i] = (f"Case mix: {cm.hrgs[row]} HRGs, {share[i]:.0%} of spells. {cm.source}. "
                      f"Other spells: {sources[i] or 'no benchmark'}")
    return adjusted, share, sources


def _best(pct: np.ndarray, lower: np.ndarray, best: int) -> np.ndarray:
    """The level of the best ``best`` % of units: the percentile ``best`` when lower is better,
    ``100 − best`` when higher is better, linear between the benchmark's p10, p25, p50, p75, p90."""
    return np.where(lower, _percentile(pct, best), _percentile(pct, 100 - best))


def _percentile(pct: np.ndarray, q: float) -> np.ndarray:
    j = min(int(np.searchsorted(_KNOTS, q, side="right")) - 1, len(_KNOTS) - 2)
    w = (q - _KNOTS[j]) / (_KNOTS[j + 1] - _KNOTS[j])
    return pct[:, j] * (1 - w) + pct[:, j + 1] * w


def _codes(g: dict[str, np.ndarray]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Grain numbers and code-order sort keys from the code strings themselves."""
    csu, spec, metric = (np.unique(g[c].astype(str), return_inverse=True)[1]
                         for c in ("csu_code", "specialty_code", "metric_id"))
    return csu * (int(spec.max(initial=0)) + 1) + spec, (metric, spec, csu)


def _net(grain: np.ndarray, group: np.ndarray, mi: np.ndarray, opportunity: np.ndarray) -> np.ndarray:
    """Counted in the net total: per grain, only the largest opportunity of each overlap group
    (ties to the first metric id); metrics in no group (0) always count."""
    key = grain * (int(group.max(initial=0)) + 1) + group
    order = np.lexsort((mi, -opportunity, key))
    first = np.empty(len(key), dtype=bool)
    ordered = key[order]
    first[order] = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    return (group == 0) | first


def _specialty_names(lk: Lookups, si: np.ndarray, codes: np.ndarray) -> np.ndarray:
    names = lk.specialty_names[si]
    unknown = si == len(lk.specialty_pos)
    names[unknown] = codes[unknown]  # a code missing from the reference list shows as itself
    return names


def _rows(g: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in g.items()}


def _internal(g: dict[str, np.ndarray], mi: np.ndarray, si: np.ndarray, spec_known: bool, lk: Lookups,
              minimum: int, history: casemix.History | None) -> Reference:
    """Internal benchmarks, like for like: percentiles across the trust's units of the same
    specialty with enough volume, when there are ``minimum`` of them (CSU-wide metrics: across
    the CSUs); else the unit's own history (casemix.py), never other specialties. Unweighted:
    each unit is one value, as the Guide says. Resolved per grain row."""
    spec = g["specialty_code"]
    if not spec_known:  # group by the codes themselves, not the shared "unknown" position
        _, si = np.unique(spec.astype(str), return_inverse=True)
    unit = g["den"] >= lk.metric["min_volume"][mi]
    value = g["num"] / g["den"]
    key = mi * (int(si.max(initial=0)) + 1) + si
    k_s, n_s, q_s = _at_least(*stats.group_quantiles(key[unit], value[unit], QUANTILES), minimum)
    blank = set(key[spec == ""].tolist())
    sources = [f"Internal: {n} CSUs of the trust (CSU-wide)" if k in blank
               else f"Internal: {n} units of the trust in this specialty" for k, n in zip(k_s.tolist(), n_s.tolist())]
    specific = _find(k_s, key)
    level = np.full(len(key), None, dtype=object)
    level[specific >= 0] = "specialty"
    level[(specific >= 0) & (spec == "")] = "CSU-wide"
    values = [q_s.reshape(-1, 5)]
    chosen = specific
    if history is not None and len(history.quarters):
        own = casemix.find(history.rows, g["csu_code"], spec, g["metric_id"], specific < 0)
        chosen = np.where(specific >= 0, specific, np.where(own >= 0, own + len(k_s), -1))
        level[(specific < 0) & (own >= 0)] = "own history"
        values.append(history.values)
        sources = sources + [f"Own history: this unit's best rolling quarter of the last {casemix.HISTORY_MONTHS} "
                             f"months ({q} quarters), too few units of the specialty to compare"
                             for q in history.quarters.tolist()]
    values.append(np.full((1, 5), np.nan))
    table = np.concatenate(values)
    index = np.where(chosen >= 0, chosen, len(table) - 1)
    return Reference(index, level, table, np.array(sources + [None], dtype=object))


def _at_least(keys: np.ndarray, counts: np.ndarray, values: np.ndarray, minimum: int):
    keep = counts >= minimum
    return keys[keep], counts[keep], values[keep]


def _find(sorted_keys: np.ndarray, keys: np.ndarray, offset: int = 0) -> np.ndarray:
    """Position of each key in ``sorted_keys`` (plus offset), -1 where absent."""
    if len(sorted_keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[at] == keys, at + offset, -1)
