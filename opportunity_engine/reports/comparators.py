"""Like-for-like comparators made readable: the comparator set behind one target (Metric detail,
the Guide) and the figures that show the comparators are like for like (issue 12's measures).

`python -m opportunity_engine comparators --db PATH` prints them; README.md quotes a run on the
`trust` demo. Everything is computed by the opportunity engine at the median, net of overlap,
over the latest 12 months, for the whole trust.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from ..analysis.casemix import HISTORY_MONTHS, QUANTILE_LIST, QUARTER
from ..analysis.maths import _chosen
from ..analysis.opportunities import Basis, kept_per_data_version, opportunities, totals
from ..config import settings
from ..formatting import gbp_short
from ..scope import Scope
from ..store.facts import CASEMIX_METRICS

BIG = 1_000_000  # "no opportunity over £1m compares different specialties"


@dataclass(frozen=True)
class Mover:
    csu_code: str
    specialty_name: str
    metric_name: str
    crude_gbp: float
    adjusted_gbp: float
    los_index: float
    casemix_share: float


@dataclass(frozen=True)
class Comparators:
    peer_net_gbp: float
    internal_net_gbp: float
    unlike_over_1m: dict[str, int]        # benchmark -> opportunities over £1m set against other specialties
    internal_bases: dict[str, int]        # internal target basis -> rows
    crude_los_gbp: float
    adjusted_los_gbp: float
    spells_matched: float                 # share of length-of-stay spells matched to an HRG reference
    movers: list[Mover]

    @property
    def ratio(self) -> float:
        return self.internal_net_gbp / self.peer_net_gbp if self.peer_net_gbp else float("nan")

    def lines(self) -> list[str]:
        out = [
            "Like-for-like comparators (median target, net of overlap, latest 12 months, whole trust)",
            (f"  peer benchmark {gbp_short(self.peer_net_gbp)}, internal benchmark "
             f"{gbp_short(self.internal_net_gbp)}: internal ÷ peer = {self.ratio:.2f}"),
            ("  opportunities over £1m whose target comes from other specialties: "
             + ", ".join(f"{k} {v}" for k, v in self.unlike_over_1m.items())),
            "  internal targets by basis: " + ", ".join(f"{k} {v}" for k, v in self.internal_bases.items()),
            "Case-mix adjusted length of stay (peer median)",
            (f"  crude {gbp_short(self.crude_los_gbp)}, adjusted for case mix {gbp_short(self.adjusted_los_gbp)} "
             f"({self.spells_matched:.0%} of spells matched an HRG reference)"),
            "  units that move most:",
        ]
        out += [f"    {m.csu_code} {m.specialty_name}, {m.metric_name.lower()}: {gbp_short(m.crude_gbp)} crude → "
                f"{gbp_short(m.adjusted_gbp)} adjusted (length of stay index {m.los_index:.2f}, "
                f"{m.casemix_share:.0%} of spells matched)" for m in self.movers]
        return out


def _unlike(df: pd.DataFrame) -> int:
    """Rows over £1m whose target is other specialties' blend: an all-specialty target for a unit
    that has a specialty, where the benchmarks give the metric specialty by specialty (a metric given
    for all specialties only is one standard for every service; CSU-wide metrics are compared with
    CSU-wide benchmarks). Zero by construction since the engine never falls back that way; counted so
    that a regression shows."""
    given = set(df.loc[df["benchmark_level"] == "specialty", "metric_id"])
    return int(((df["opportunity_gbp"] > BIG) & (df["specialty_code"] != "") & df["metric_id"].isin(given)
                & (df["target_basis"] == "all specialties")).sum())


def comparators(con: duckdb.DuckDBPyConnection, movers: int = 3) -> Comparators:
    peer = opportunities(con, Scope.trust(), Basis("median", "peer"))
    internal = opportunities(con, Scope.trust(), Basis("median", "internal"))
    los = peer[peer["metric_id"].isin(list(CASEMIX_METRICS))].copy()
    los["move"] = (los["opportunity_gbp"] - los["crude_opportunity_gbp"]).abs()
    top = los.sort_values(["move", "csu_code", "specialty_code", "metric_id"],
                          ascending=[False, True, True, True]).head(movers)
    spells = los["denominator"].sum()
    return Comparators(
        peer_net_gbp=totals(peer).net_gbp,
        internal_net_gbp=totals(internal).net_gbp,
        unlike_over_1m={"peer": _unlike(peer), "internal": _unlike(internal)},
        internal_bases={str(k): int(v) for k, v in internal["target_basis"].fillna("none").value_counts().items()},
        crude_los_gbp=float(los["crude_opportunity_gbp"].sum()),
        adjusted_los_gbp=float(los["opportunity_gbp"].sum()),
        spells_matched=float((los["casemix_share"] * los["denominator"]).sum() / spells) if spells else 0.0,
        movers=[Mover(r.csu_code, r.specialty_name, r.metric_name, float(r.crude_opportunity_gbp),
                      float(r.opportunity_gbp), float(r.los_index), float(r.casemix_share))
                for r in top.itertuples()],
    )


# --- What Metric detail shows: the comparator set that produced one grain's target ---------------

def hrg_breakdown(con: duckdb.DuckDBPyConnection, row, basis) -> list[dict]:
    """One grain's length-of-stay target spelled out: per HRG its spells, its mean stay and the
    reference stay at the chosen target, then one line for the spells with no reference (at the
    plain target). Σ spells × reference ÷ Σ spells is the target on the page. ``row`` is one
    opportunities row (it carries the window and the peer group), ``basis`` the page's Basis."""
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


def comparator_chart(con: duckdb.DuckDBPyConnection, scope, basis, row,
                     lines: list[dict] | None = None) -> ComparatorChart:
    """Only what produced the target: the specialty's own units (internal), the unit's own
    quarters (own history), its HRGs (case mix) or the peer percentiles (peer); never units of
    other specialties. Units outside the caller's scope are anonymised. ``lines``: the case-mix
    row's hrg_breakdown when the caller has it already."""
    basis_kind = row.target_basis
    if basis_kind == "case mix":
        lines = hrg_breakdown(con, row, basis) if lines is None else lines
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
    level = ("this specialty" if basis_kind == "specialty" else "all specialties (a CSU-wide metric)"
             if row.specialty_code == "" else "all specialties (the benchmarks give this metric for no specialty)")
    return ComparatorChart("units", f"Peer trusts, {level}",
                           "Grey: the peer distribution the target is read from; orange: this unit. Green: target.",
                           frame)


@dataclass(frozen=True)
class Behind:
    """What Metric detail shows behind one unit's target: the comparator chart and, for a
    case-mix target, the HRG lines it is the weighted mean of (empty otherwise)."""
    chart: ComparatorChart
    hrg_lines: tuple[dict, ...]


@kept_per_data_version
def behind_target(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis, csu: str, specialty: str,
                  metric: str) -> Behind | None:
    """:func:`comparator_chart` and :func:`hrg_breakdown` of the unit's opportunities row, read
    once per data version (None when the unit has no row)."""
    rows = opportunities(con, scope, basis, csu=csu, specialty=specialty, metric=metric)
    if rows.empty:
        return None
    row = rows.iloc[0]
    lines = hrg_breakdown(con, row, basis) if row.target_basis == "case mix" else []
    return Behind(comparator_chart(con, scope, basis, row, lines), tuple(lines))


def target_note(row) -> str | None:
    """One sentence beside the target saying what it rests on, when it is not the plain
    specialty benchmark: case mix (with the share of spells matched and the length of stay
    index), the unit's own history, or why there is none."""
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
        return ("One benchmark for every specialty: the benchmarks give this metric for no specialty "
                "(a standard for every service).")
    if pd.isna(row.target_value) and row.specialty_code != "" and row.peer_group:
        return ("No target: the benchmarks give this metric specialty by specialty but hold no row for this "
                "one, and their figure for all specialties together would compare it with other services.")
    return None
