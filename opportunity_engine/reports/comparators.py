"""Figures that show the comparators are like for like (issue 12's measures), from the engine.

`python -m opportunity_engine comparators --db PATH` prints them; README.md quotes a run on the
`trust` demo. Everything is computed by the opportunity engine at the median, net of overlap,
over the latest 12 months, for the whole trust.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from ..analysis.opportunities import Basis, opportunities, totals
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
    """Rows over £1m whose target is another specialties' (the all-specialty fallback of a unit
    that has a specialty; CSU-wide metrics are compared with CSU-wide benchmarks)."""
    return int(((df["opportunity_gbp"] > BIG) & (df["specialty_code"] != "")
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
