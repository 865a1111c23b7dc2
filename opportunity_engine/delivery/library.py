"""The library: scheme ideas per metric (from the catalogue, editable by admin) and case studies.

Case studies are delivered schemes that finance or an admin published (workflow.set_case_study):
publishing is the deliberate act that shares one CSU's scheme with every CSU. A CSU user sees
published case studies plus their own CSU's delivered schemes, never another CSU's unpublished work.
"""
from __future__ import annotations

import duckdb
import pandas as pd

from ..errors import InvalidInput, NotAllowed
from ..scope import scope_filter
from ..store import audit
from ..store.audit import transaction
from ..users import User


def ideas(con: duckdb.DuckDBPyConnection, search: str = "", metric: str | None = None) -> pd.DataFrame:
    """One row per (metric, idea), filtered by a case-insensitive search over idea, metric and domain."""
    df = con.execute("""
        SELECT metric_id, metric_name, domain, unnest(scheme_ideas) AS idea FROM metrics
        WHERE $metric IS NULL OR metric_id = $metric ORDER BY domain, metric_name""", {"metric": metric}).df()
    return _search(df, search, ["idea", "metric_name", "domain"])


def set_ideas(con: duckdb.DuckDBPyConnection, user: User, metric: str, new_ideas: list[str]) -> None:
    if not user.can_manage_data:
        raise NotAllowed("Only an admin can edit scheme ideas.")
    cleaned = [i.strip() for i in new_ideas if i and i.strip()]
    if any(len(i) > 500 for i in cleaned):
        raise InvalidInput("Keep each scheme idea under 500 characters.")
    with transaction(con):
        row = con.execute("SELECT scheme_ideas FROM metrics WHERE metric_id = ?", [metric]).fetchone()
        if row is None:
            raise InvalidInput(f"Unknown metric {metric}.")
        con.execute("UPDATE metrics SET scheme_ideas = ? WHERE metric_id = ?", [cleaned, metric])
        audit.record(con, user.username, "metric", metric, {"scheme_ideas": (list(row[0]), cleaned)})


def case_studies(con: duckdb.DuckDBPyConnection, user: User, search: str = "",
                 metric: str | None = None) -> pd.DataFrame:
    """Delivered schemes the user may read: published ones, and their own CSUs' delivered ones."""
    df = con.execute(f"""
        SELECT s.scheme_id, s.title, s.description, s.lead, c.csu_name, s.csu_code, s.metric_id, m.metric_name,
               m.domain, s.case_study AS published, p.fye_gbp,
               (SELECT coalesce(sum(realised_gbp), 0) FROM realised_savings r WHERE r.scheme_id = s.scheme_id)
                   AS realised_gbp
        FROM schemes s JOIN csus c USING (csu_code) LEFT JOIN metrics m USING (metric_id)
        LEFT JOIN cip_plans p USING (scheme_id)
        WHERE s.status = 'delivered' AND (s.case_study OR {scope_filter('s.csu_code')})
          AND ($metric IS NULL OR s.metric_id = $metric)
        ORDER BY realised_gbp DESC""", {**user.scope.sql_params(), "metric": metric}).df()
    return _search(df, search, ["title", "description", "metric_name", "csu_name", "domain"])


def _search(df: pd.DataFrame, text: str, columns: list[str]) -> pd.DataFrame:
    words = [w for w in (text or "").lower().split() if w]
    if not words or df.empty:
        return df.reset_index(drop=True)
    haystack = df[columns].fillna("").astype(str).agg(" ".join, axis=1).str.lower()
    mask = pd.Series(True, index=df.index)
    for word in words:
        mask &= haystack.str.contains(word, regex=False)
    return df[mask].reset_index(drop=True)
