"""Display-ready frames for the pages: the engine formats, the page only renders.

Every function takes an opportunities frame (already scoped) and returns a small frame whose
money columns are both exact (for sorting and charts) and formatted (£1.2m) for reading.
"""
from __future__ import annotations

import pandas as pd

from ..analysis.opportunities import summarise
from ..formatting import gbp_short, metric_value, month, months, units


def _flags(df: pd.DataFrame) -> pd.Series:
    out = []
    for low, sig, target in zip(df["low_volume"], df["significant"], df["target_value"]):
        parts = []
        if pd.isna(target):
            parts.append("No benchmark")
        else:
            if low:
                parts.append("Low volume")
            if not sig:
                parts.append("Not significant")
        out.append(", ".join(parts))
    return pd.Series(out, index=df.index, dtype="object")


def window(df: pd.DataFrame) -> str:
    """The months the figures cover: 'Apr 2025 to Mar 2026', or a note when metrics' sources end
    in different months (each metric then has its own latest 12 months)."""
    spans = df[["period_from", "period_to"]].drop_duplicates()
    if len(spans) == 1:
        return months(spans.iloc[0, 0], spans.iloc[0, 1])
    return (f"latest 12 months of each metric (ending between {month(df['period_to'].min())} "
            f"and {month(df['period_to'].max())})")


def by_csu(df: pd.DataFrame) -> pd.DataFrame:
    out = summarise(df, ["csu_code", "csu_name"])
    out["net"] = out["net_gbp"].map(gbp_short)
    out["gross"] = out["gross_gbp"].map(gbp_short)
    return out


def by_specialty(df: pd.DataFrame) -> pd.DataFrame:
    out = summarise(df, ["specialty_code", "specialty_name"])
    out["net"] = out["net_gbp"].map(gbp_short)
    out["gross"] = out["gross_gbp"].map(gbp_short)
    return out


def by_domain(df: pd.DataFrame) -> pd.DataFrame:
    out = summarise(df, ["domain"])
    out["net"] = out["net_gbp"].map(gbp_short)
    return out


def heatmap(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Net £ by domain against CSU, or against specialty when the view holds one CSU (a CSU team's
    own grid: one row of CSU would say nothing). Every combination present, zeros included, for an
    even grid. Returns the frame (columns ``row``, ``domain``, ``net_gbp``, ``net``) and what a row is."""
    key, label = ("specialty_name", "Specialty") if df["csu_code"].nunique() == 1 else ("csu_code", "CSU")
    out = summarise(df, [key, "domain"])
    if out.empty:
        return out.rename(columns={key: "row"}).assign(net=pd.Series(dtype=object)), label
    grid = pd.MultiIndex.from_product([sorted(df[key].unique()), sorted(df["domain"].unique())], names=[key, "domain"])
    out = out.set_index([key, "domain"]).reindex(grid, fill_value=0).reset_index().rename(columns={key: "row"})
    out["net"] = out["net_gbp"].map(gbp_short)
    return out, label


def metric_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One line per opportunity row with actual, target, gap, £ and flags written out."""
    return pd.DataFrame({
        "csu_code": df["csu_code"], "specialty_code": df["specialty_code"], "metric_id": df["metric_id"],
        "CSU": df["csu_name"], "Specialty": df["specialty_name"], "Metric": df["metric_name"],
        "Domain": df["domain"],
        "Actual": [metric_value(v, f) for v, f in zip(df["actual"], df["value_format"])],
        "Target": [metric_value(v, f) for v, f in zip(df["target_value"], df["value_format"])],
        "Gap": [units(g, u) for g, u in zip(df["gap_units"], df["unit"])],
        "Opportunity": df["opportunity_gbp"].map(gbp_short),
        "opportunity_gbp": df["opportunity_gbp"],
        "Type": df["saving_type"].str.capitalize(),
        "Flags": _flags(df),
        "Counted in net": df["counted_in_net"],
    }).reset_index(drop=True)


def top(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    return metric_rows(df[df["opportunity_gbp"] > 0].head(n))
